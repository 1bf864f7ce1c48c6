"""``CallsClient``: options, lifecycle and the public methods.

It composes a :class:`~signalwire_calls._http.Requester` (the HTTP side) and runs
its bulk lookups and listings through :mod:`signalwire_calls._bulk` and
:mod:`signalwire_calls._listing`, which know no HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
import warnings
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Sequence,
)
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Self, cast

from signalwire_calls._bulk import AdaptiveLimit, BulkProgress, LimitMemory, fan_out
from signalwire_calls._checks import check_sid, sid_bytes
from signalwire_calls._config import DEFAULT_MAX_BODY_SIZE, Settings, env_options, make_settings
from signalwire_calls._errors import ConfigError, ConnectError, UnreachableError
from signalwire_calls._http import Requester, retry_listener, throttle_listener
from signalwire_calls._listing import (
    MAX_PAGE_SIZE,
    build_list_query,
    encode_query,
    follow_pages,
    merge_windows,
    split_windows,
)
from signalwire_calls._models import (
    BulkResult,
    Call,
    CallResult,
    CallStatus,
    CallStatusName,
    LookupFailure,
    build_call_result,
)
from signalwire_calls._observe import ClientStats, ConcurrencyGauge, Emitter, Hook
from signalwire_calls._polling import make_condition, wait_for
from signalwire_calls._retry import RetryPolicy
from signalwire_calls.instrumentation import default_hooks

if TYPE_CHECKING:
    from types import TracebackType

    import aiohttp

__all__ = ["CallsClient"]

log = logging.getLogger("signalwire_calls")

#: Successes that win back one slot of a pinned bulk job's concurrency after a 429.
_GROWTH_STEP = 8
#: The ceiling of a self-tuning bulk job's concurrency (the docs cite it).
MAX_CONCURRENCY = 1000
#: Where a self-tuning bulk job starts, unless the client's last job settled somewhere.
_INITIAL_CONCURRENCY = 32
#: What a self-tuning job multiplies its limit by on a burst of 429s.
_THROTTLE_BACKOFF = 0.9
#: File descriptors left to the rest of the process when the default ceiling is
#: lowered to fit ``ulimit -n``.
_FD_RESERVE = 64


def _fd_budget() -> int | None:
    """Connections this process can open beside its other files (``None``: unknown)."""
    try:
        import resource  # noqa: PLC0415 - Unix only
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - _FD_RESERVE)


def _unreachable(error: Exception, not_tried: int | None) -> UnreachableError | None:
    """The error that ends a bulk job whose first lookups could not connect, if this is one."""
    if not isinstance(error, ConnectError) or isinstance(error, UnreachableError):
        return None
    cause = error.__cause__
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
    left = f"{not_tried:,} SID(s)" if not_tried is not None else "the rest of the input"
    return UnreachableError(
        f"Cannot reach {error.host or error.url} ({reason}); no lookup had succeeded, "
        f"so the job stopped with {left} not tried",
        url=error.url,
        host=error.host,
        not_tried=not_tried,
    )


def _check_positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


class CallsClient:
    """An asyncio client for the Calls resource of SignalWire's Compatibility API.

    Use it as an async context manager (or call :meth:`aclose`); it owns one pooled
    :class:`aiohttp.ClientSession`, created inside the running loop on first use.

    Args:
        project_id: The Project ID (the API's ``AccountSid``).
        api_token: An API token with the *Voice* scope. It is never shown in a
            repr, an error message or a log line.
        space_url: Your space, e.g. ``"example.signalwire.com"``.
        base_url: The API root, overriding ``space_url``; by default
            ``https://{space}/api/laml/2010-04-01``. Plain ``http://`` is refused
            unless the host is loopback or ``allow_insecure_http`` is set.
        retry: How failed attempts are retried (:class:`RetryPolicy`).
        timeout: Seconds each attempt may take, connect and read included (an
            attempt is cut off between 1x and 1.25x this, by one shared timer).
        max_connections: The most individual requests (:meth:`get_call`, listing
            pages) in flight at once; a bulk job's requests are bounded by its
            own limit instead (:meth:`iter_call_results`).
        session: A caller-owned :class:`aiohttp.ClientSession` to use instead of an
            owned one; it is never closed by this client. Its own middlewares are
            replaced by this client's retry middleware on this client's requests.
        rate_limit: At most this many requests in any one-second window, for every
            request this client sends (needs the ``ratelimit`` extra: aiolimiter).
        max_body_size: Larger response bodies are refused without being read.
        ssl: A custom :class:`ssl.SSLContext` (TLS verification stays on by default).
        allow_insecure_http: Permit plain ``http://`` to a non-loopback host.
        strict_account: Refuse (as a :class:`DecodeError` on ``$.account_sid``) a call
            whose ``account_sid`` is not this client's project. Off by default, because
            the service legitimately returns calls whose ``account_sid`` differs: those
            of a subproject carry the subproject's. Turn it on when every call must be
            the project's own.
        proxy: A forward proxy every request goes through,
            ``http://[user:password@]host:port``. Its credentials are sent only to
            the proxy (``Proxy-Authorization``) and never shown; an ``https://`` API
            is still reached over TLS, through a ``CONNECT`` tunnel.
        trust_env: Use the proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name for the
            API's URL, unless ``NO_PROXY`` matches its host (read once, here). Off by
            default, so that no proxy sees the requests unless you said so.
            ``proxy`` wins over it; ``.netrc`` is never read.
        hooks: What to report requests, attempts, retries, give-ups and bulk
            concurrency to (see :mod:`signalwire_calls.instrumentation`); by
            default :func:`~signalwire_calls.instrumentation.default_hooks`
            (logging, and OpenTelemetry once an SDK is configured). ``()`` reports
            to nobody.

    A client belongs to the event loop it first runs in (its connection pool and
    timers do). Create it inside the loop that uses it: one client per
    ``asyncio.run()``, or per thread that runs its own loop. Used from another loop,
    it raises ``RuntimeError`` saying so.

    Raises:
        ConfigError: An option is invalid (before any I/O).
    """

    def __init__(
        self,
        project_id: str | None = None,
        api_token: str | None = None,
        *,
        space_url: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 30.0,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        rate_limit: float | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        ssl: ssl.SSLContext | None = None,
        allow_insecure_http: bool = False,
        strict_account: bool = False,
        proxy: str | None = None,
        trust_env: bool = False,
        hooks: Iterable[Hook] | None = None,
    ) -> None:
        self._settings: Settings = make_settings(
            project_id=project_id,
            api_token=api_token,
            space_url=space_url,
            base_url=base_url,
            allow_insecure_http=allow_insecure_http,
            proxy=proxy,
            trust_env=trust_env,
        )
        _check_positive("timeout", timeout, allow_none=True)
        _check_positive("rate_limit", rate_limit, allow_none=True)
        if not isinstance(max_connections, int) or isinstance(max_connections, bool):
            raise ConfigError(f"max_connections must be an integer, got {max_connections!r}")
        _check_positive("max_connections", max_connections)
        _check_positive("max_body_size", max_body_size)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self._max_connections = max_connections
        emitter = Emitter(default_hooks() if hooks is None else hooks)
        self._concurrency = ConcurrencyGauge(emitter)
        # Where the last self-tuning job settled: the next one starts there.
        self._limit_memory = LimitMemory()
        self._requester = Requester(
            self._settings,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            max_connections=max_connections,
            session=session,
            rate_limit=rate_limit,
            max_body_size=max_body_size,
            ssl=ssl,
            strict_account=bool(strict_account),
            emitter=emitter,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> CallsClient:
        """Build a client from ``SIGNALWIRE_*`` environment variables.

        Reads ``SIGNALWIRE_SPACE_URL`` (or ``SIGNALWIRE_SPACE``),
        ``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` (or ``SIGNALWIRE_TOKEN``)
        and ``SIGNALWIRE_BASE_URL``; keyword arguments take precedence.
        """
        options: dict[str, Any] = dict(env_options())
        options.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**options)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """The API root requests go to, e.g. ``https://example.signalwire.com/api/laml/2010-04-01``."""
        return str(self._settings.base_url)

    @property
    def project_id(self) -> str:
        """The Project ID (``AccountSid``) this client reads calls of."""
        return self._settings.project_id

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._requester.closed

    @property
    def proxy(self) -> str | None:
        """The forward proxy requests go through, without its credentials, or ``None``."""
        proxy = self._settings.proxy
        return None if proxy is None else str(proxy.url)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        via = f" proxy={self.proxy!r}" if self.proxy is not None else ""
        return (
            f"<CallsClient project_id={self._settings.project_id!r} "
            f"base_url={self.base_url!r}{via} {state}>"
        )

    @property
    def stats(self) -> ClientStats:
        """This client's counters so far (requests, attempts, retries, 429s, give-ups).

        A fresh :class:`~signalwire_calls.instrumentation.ClientStats` on each read.
        """
        requester = self._requester
        middleware = requester.middleware
        return ClientStats(
            requests=requester.requests,
            attempts=middleware.attempts_made,
            retries=middleware.retries,
            retries_by_reason=dict(middleware.retry_reasons),
            throttled=middleware.throttled,
            failures=middleware.gave_up,
            concurrency=self._concurrency.current,
            lowest_concurrency=self._concurrency.lowest,
        )

    async def __aenter__(self) -> Self:
        self._requester.ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the owned session and its connections. Idempotent.

        A session passed in by the caller is left open.
        """
        await self._requester.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        requester = getattr(self, "_requester", None)
        if requester is not None and requester.holds_open_session:
            _warn(
                f"Unclosed {self!r}: use 'async with' or 'await client.aclose()'",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    # ------------------------------------------------------------------ one call

    async def get_call(self, sid: str | uuid.UUID) -> Call:
        """Retrieve one call by its SID.

        Args:
            sid: The call's SID: a UUID string, or a :class:`uuid.UUID`.

        Returns:
            The call, with every field typed.

        Raises:
            ValueError: ``sid`` is not a UUID (no request is sent).
            NotFoundError: There is no such call in this project.
            AuthenticationError: The credentials were refused.
            APIError: Any other error answer, after retries.
            TransportError: The API could not be reached, after retries.
            DecodeError: The API's answer is not a valid call.
        """
        return await self._requester.get_call(check_sid(sid))

    async def wait_for_call(
        self,
        sid: str | uuid.UUID,
        *,
        until: str | Collection[CallStatus | str] = "final",
        timeout: float = 600.0,  # noqa: ASYNC109 - the issue's name; a deadline of many polls
    ) -> Call:
        """Poll a call until it ends (or reaches ``until``), and return it.

        The first poll is immediate; then the waits grow from 1 second by half each
        time up to 30 seconds (1, 1.5, 2.25, 3.4, ... 30, 30, ...), each shortened by up
        to a fifth at random, and never past the deadline: one last poll is made at
        it. Each poll is an ordinary :meth:`get_call`, retried by the client's
        :class:`RetryPolicy`. Cancelling the awaiting task stops the wait at once.

        Args:
            sid: The call's SID.
            until: ``"final"``: ``completed``, ``busy``, ``failed``, ``no-answer`` or
                ``canceled``. ``"priced"``: final and, for a completed call, with its
                :attr:`~Call.price` set (the price can appear some time after the call
                ends; a call that ended any other way is never priced, so it is
                returned as soon as it is final). Or a collection of statuses, such
                as ``{"in-progress"}``: the wait ends when the call is in one of
                them, or final (a final call changes no more: check its status).
            timeout: The overall deadline, in seconds, polls included.

        Returns:
            The call as the last poll saw it.

        Raises:
            ValueError: ``sid``, ``until`` or ``timeout`` is invalid (no request is sent).
            WaitTimeoutError: The deadline passed first. It is also a
                :class:`TimeoutError`; ``.call`` is the last call seen (``None`` if
                no poll answered).
            NotFoundError: There is no such call (at the first poll).
            APIError: Any other error answer to a poll, after retries.
            TransportError: A poll could not reach the API, after retries.
        """
        checked = check_sid(sid)
        condition = make_condition(until)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._requester.ensure_session()
        return await wait_for(
            self._requester.get_call,
            checked,
            condition,
            timeout=float(timeout),
            clock=self._wait_clock or asyncio.get_running_loop().time,
            sleep=self._wait_sleep,
        )

    #: The clock and the sleep of :meth:`wait_for_call`; tests replace them on an instance.
    _wait_clock: Callable[[], float] | None = None
    _wait_sleep: Callable[[float], Awaitable[object]] = staticmethod(asyncio.sleep)

    # ------------------------------------------------------------------ many calls

    def iter_call_results(
        self,
        sids: Iterable[str | uuid.UUID] | AsyncIterable[str | uuid.UUID],
        *,
        concurrency: int | None = None,
        max_concurrency: int | None = None,
        ordered: bool = False,
        on_progress: Callable[[BulkProgress], None] | None = None,
        distinct: bool = False,
    ) -> AsyncIterator[CallResult]:
        """Look up many calls concurrently; yield one :data:`CallResult` per distinct SID.

        The input is streamed (it may be a huge iterable or an async iterable) and
        each distinct SID is fetched once. By default the number of requests in
        flight tunes itself (see :doc:`/bulk`): it starts at 32 (or where this
        client's last job got to, within ten minutes), doubles each round while
        the answers per second grow, settles where more requests would not
        deliver more, eases when the round trip rises while this process is idle
        (a service's capacity), and on a burst of 429s is cut by 10 % and paced
        just below what got through; always between 1 and ``max_concurrency``.
        ``concurrency=N`` pins it at N instead (halved on 429s, grown back after
        successes). A bulk job's requests do not count against
        ``max_connections``: the job's limit bounds them.

        A SID that was only rate-limited is tried again rather than reported. A
        failing SID never stops the others: its result carries the error
        (:class:`NotFoundError` for a missing call, ``ValueError`` for a SID that
        is not a UUID, which costs no request). The one exception: when the first
        lookups cannot connect at all (refused, the name does not resolve, TLS
        fails) and none has succeeded, the iterator raises
        :class:`UnreachableError` at once instead of trying every SID.

        Breaking out of the loop, or cancelling the task that runs it, cancels
        the requests in flight and leaves no task behind.

        Args:
            sids: The SIDs to look up.
            concurrency: Pin the requests in flight at this number (no latency
                tuning); cannot be combined with ``max_concurrency``.
            max_concurrency: The ceiling of the self-tuning limit (default 1000,
                lowered to fit ``ulimit -n`` if that is smaller).
            ordered: Yield results in input order (with a bounded reorder buffer)
                instead of as they complete.
            on_progress: Called with a :class:`BulkProgress` after every result;
                an exception in it is logged and the hook dropped.
            distinct: The input is known to hold no SID twice: keep no
                de-duplication state, so memory is proportional to the
                concurrency only (a repeated SID would then be fetched again).
                Otherwise the state costs about 25 bytes per distinct SID.

        Returns:
            An async iterator of one result per distinct SID. Use it with
            ``contextlib.aclosing()`` to have everything cancelled the moment
            you leave the loop early (otherwise that happens when the iterator
            is garbage-collected, a few event-loop turns later).

        Raises:
            ValueError: ``concurrency`` or ``max_concurrency`` is not a positive integer.
            ConfigError: Both are given, or one is more than the connections
                available: a caller's session whose connector has a smaller
                ``limit``, or ``ulimit -n``.
        """
        self._requester.ensure_session()
        limit = self._bulk_limit(concurrency, max_concurrency)
        # check_sid (the validator) turns every key into a SID string before work sees it.
        keys = cast("Iterable[str] | AsyncIterable[str]", sids)
        return fan_out(
            keys,
            self._requester.lookup,
            concurrency=limit,
            ordered=ordered,
            validate=check_sid,
            on_progress=on_progress,
            throttle_hook=throttle_listener,
            distinct=distinct,
            compact=sid_bytes,
            abort=_unreachable,
            retry_hook=retry_listener,
            on_limit_change=self._concurrency.changed,
            # The loop is checked here, once: lookup() does not check it per call.
            on_start=self._requester.ensure_session,
            wrap=build_call_result,  # CallResult(sid, call, error), faster
        )

    def _bulk_limit(self, concurrency: int | None, max_concurrency: int | None) -> AdaptiveLimit:
        """Build a bulk job's limit: pinned or self-tuning, and never above what can connect."""
        for name, value in (("concurrency", concurrency), ("max_concurrency", max_concurrency)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if concurrency is not None and max_concurrency is not None:
            raise ConfigError(
                "pass concurrency (a fixed limit) or max_concurrency (the ceiling of "
                "the self-tuning one), not both"
            )
        cap, why = self._requester.connection_cap, "the connector of the session passed in"
        fds = _fd_budget()
        if fds is not None and (cap is None or fds < cap):
            cap, why = fds, "ulimit -n (open files) minus a reserve"
        asked = concurrency if concurrency is not None else max_concurrency
        if asked is not None and cap is not None and asked > cap:
            name = "concurrency" if concurrency is not None else "max_concurrency"
            raise ConfigError(
                f"{name}={asked} is more than the {cap} connections available ({why}); "
                "ask for fewer, or raise that limit"
            )
        if concurrency is not None:
            # Halve on a 429 but win the slots back quickly: one more slot per few
            # successes rather than per full window, or a handful of scattered 429s
            # keeps a large job at a fraction of its concurrency for most of its run.
            return AdaptiveLimit(concurrency, increase_after_max=_GROWTH_STEP)
        ceiling = max_concurrency or (MAX_CONCURRENCY if cap is None else min(MAX_CONCURRENCY, cap))
        return AdaptiveLimit(
            ceiling,
            initial=min(_INITIAL_CONCURRENCY, ceiling),
            tune=True,
            backoff=_THROTTLE_BACKOFF,
            cpu_clock=time.process_time,  # latency counts only while this process is idle
            memory=self._limit_memory,
        )

    async def get_calls(
        self,
        sids: Iterable[str | uuid.UUID] | AsyncIterable[str | uuid.UUID],
        *,
        concurrency: int | None = None,
        max_concurrency: int | None = None,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> BulkResult:
        """Look up many calls and collect the outcome (:meth:`iter_call_results`, gathered).

        Every distinct SID ends up in exactly one of ``found``, ``missing``
        (the API answered 404) and ``failed`` (any other error, including an
        invalid SID), as :attr:`FailedLookup.outcome` files it. Call
        :meth:`BulkResult.raise_for_failures` to turn failures into an exception.
        For large jobs, stream with :meth:`iter_call_results` instead: this
        holds every call in memory. ``concurrency`` and ``max_concurrency`` are
        :meth:`iter_call_results`'s.

        Raises:
            UnreachableError: No lookup could connect (nothing was collected).
        """
        found: dict[str, Call] = {}
        missing: list[str] = []
        failed: dict[str, LookupFailure] = {}
        results = self.iter_call_results(
            sids,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            on_progress=on_progress,
        )
        async for result in results:
            if result.ok:
                found[result.sid] = result.call
            elif result.outcome == "missing":
                missing.append(result.sid)
            else:
                failed[result.sid] = result.error
        return BulkResult(found=found, missing=tuple(missing), failed=failed)

    # ------------------------------------------------------------------ listing

    def iter_calls(
        self,
        *,
        status: CallStatus | CallStatusName | None = None,
        to: str | None = None,
        from_: str | None = None,
        parent_call_sid: str | uuid.UUID | None = None,
        started_after: datetime | date | None = None,
        started_before: datetime | date | None = None,
        ended_after: datetime | date | None = None,
        ended_before: datetime | date | None = None,
        page_size: int = MAX_PAGE_SIZE,
        limit: int | None = None,
        windows: int = 1,
    ) -> AsyncIterator[Call]:
        """List calls, newest first, following the API's page cursor.

        Filters map to the API's query parameters (``Status``, ``To``, ``From``,
        ``ParentCallSid``, ``StartTime>``, ``StartTime<``, ``EndTime>``,
        ``EndTime<``); datetimes must be timezone-aware and are sent as RFC 2822.
        Every value is checked here, before any request. Pages are fetched as
        the iteration needs them, by following ``next_page_uri`` exactly as
        returned.

        With ``windows=N`` (N > 1), ``[started_after, started_before)`` is split
        into N time windows that are paged concurrently; each call is still
        yielded exactly once, but not in date order. ``started_after`` is then
        required; ``started_before`` defaults to now.

        Args:
            status: Only calls with this status.
            to: Only calls to this number or SIP address.
            from_: Only calls from this number or SIP address.
            parent_call_sid: Only the legs of this parent call.
            started_after: Only calls that started at or after this time.
            started_before: Only calls that started before this time.
            ended_after: Only calls that ended at or after this time.
            ended_before: Only calls that ended before this time.
            page_size: Calls per page, 1 to 1000.
            limit: Stop after this many calls.
            windows: Time windows to page concurrently.

        Returns:
            An async iterator of calls.

        Raises:
            ValueError: A filter is invalid (raised here, before any request).
        """
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise ValueError(f"windows must be a positive integer, got {windows!r}")
        size = page_size if limit is None else max(1, min(page_size, limit))
        filters: dict[str, Any] = {
            "status": status,
            "to": to,
            "from_": from_,
            "parent_call_sid": parent_call_sid,
            "ended_after": ended_after,
            "ended_before": ended_before,
            "page_size": size,
        }
        query = build_list_query(
            started_after=started_after, started_before=started_before, **filters
        )
        get_page = self._requester.get_page
        if windows == 1:
            return follow_pages(self._list_url(query), get_page, limit=limit)
        if started_after is None:
            raise ValueError("windows > 1 needs started_after (the start of the range to split)")
        end = started_before if started_before is not None else datetime.now(UTC)

        def open_window(after: datetime, before: datetime) -> AsyncIterator[Call]:
            window_query = build_list_query(started_after=after, started_before=before, **filters)
            return follow_pages(self._list_url(window_query), get_page)

        return merge_windows(
            split_windows(started_after, end, windows),
            open_window,
            key=lambda call: call.sid,
            timestamp=lambda call: call.start_time,
            concurrency=min(windows, self._max_connections),
            limit=limit,
        )

    def _list_url(self, query: Sequence[tuple[str, str]]) -> str:
        return f"{self._requester.calls_url}?{encode_query(query)}"
