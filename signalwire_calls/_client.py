"""``CallsClient``: options, lifecycle and the public methods.

It composes a :class:`~signalwire_calls._http.Requester` (the HTTP side) and runs
its bulk lookups and listings through :mod:`signalwire_calls._bulk` and
:mod:`signalwire_calls._listing`, which know no HTTP.
"""

from __future__ import annotations

import logging
import ssl
import uuid
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Self, cast

from signalwire_calls._bulk import AdaptiveLimit, BulkProgress, fan_out
from signalwire_calls._checks import check_sid
from signalwire_calls._config import DEFAULT_MAX_BODY_SIZE, Settings, env_options, make_settings
from signalwire_calls._errors import ConfigError
from signalwire_calls._http import Requester, throttle_listener
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
from signalwire_calls._retry import RetryPolicy

if TYPE_CHECKING:
    from types import TracebackType

    import aiohttp

__all__ = ["CallsClient"]

log = logging.getLogger("signalwire_calls")

#: Successes that win back one slot of a bulk job's concurrency after a 429.
_GROWTH_STEP = 8
#: The default number of lookups a bulk job has in flight.
_CONCURRENCY = 64


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
        max_connections: Size of the connection pool.
        session: A caller-owned :class:`aiohttp.ClientSession` to use instead of an
            owned one; it is never closed by this client. Its own middlewares are
            replaced by this client's retry middleware on this client's requests.
        rate_limit: At most this many requests in any one-second window, for every
            request this client sends (needs the ``ratelimit`` extra: aiolimiter).
        max_body_size: Larger response bodies are refused without being read.
        ssl: A custom :class:`ssl.SSLContext` (TLS verification stays on by default).
        allow_insecure_http: Permit plain ``http://`` to a non-loopback host.

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
    ) -> None:
        self._settings: Settings = make_settings(
            project_id=project_id,
            api_token=api_token,
            space_url=space_url,
            base_url=base_url,
            allow_insecure_http=allow_insecure_http,
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
        self._requester = Requester(
            self._settings,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            max_connections=max_connections,
            session=session,
            rate_limit=rate_limit,
            max_body_size=max_body_size,
            ssl=ssl,
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

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<CallsClient project_id={self._settings.project_id!r} "
            f"base_url={self.base_url!r} {state}>"
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

    # ------------------------------------------------------------------ many calls

    def iter_call_results(
        self,
        sids: Iterable[str | uuid.UUID] | AsyncIterable[str | uuid.UUID],
        *,
        concurrency: int = _CONCURRENCY,
        ordered: bool = False,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> AsyncIterator[CallResult]:
        """Look up many calls concurrently; yield one :data:`CallResult` per distinct SID.

        The input is streamed (it may be a huge iterable or an async iterable) and
        each distinct SID is fetched once. At most ``concurrency`` requests are in
        flight at any time (never more than ``max_connections``); when the service
        answers 429 the job halves its concurrency and grows back after a run of
        successes, and a SID that was only rate-limited is tried again rather than
        reported. A failing SID never stops the others: its result carries the
        error (:class:`NotFoundError` for a missing call, ``ValueError`` for a SID
        that is not a UUID, which costs no request).

        Breaking out of the loop, or cancelling the task that runs it, cancels
        the requests in flight and leaves no task behind.

        Args:
            sids: The SIDs to look up.
            concurrency: The most requests in flight at once.
            ordered: Yield results in input order (with a bounded reorder buffer)
                instead of as they complete.
            on_progress: Called with a :class:`BulkProgress` after every result;
                an exception in it is logged and the hook dropped.

        Returns:
            An async iterator of one result per distinct SID. Use it with
            ``contextlib.aclosing()`` to have everything cancelled the moment
            you leave the loop early (otherwise that happens when the iterator
            is garbage-collected, a few event-loop turns later).

        Raises:
            ValueError: ``concurrency`` is not a positive integer.
        """
        self._requester.ensure_session()
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        if concurrency > self._max_connections:
            log.debug(
                "concurrency %d capped at max_connections=%d", concurrency, self._max_connections
            )
            concurrency = self._max_connections
        # Halve on a 429 but win the slots back quickly: one more slot per few
        # successes rather than per full window, or a handful of scattered 429s
        # keeps a large job at a fraction of its concurrency for most of its run.
        limit = AdaptiveLimit(concurrency, increase_after_max=_GROWTH_STEP)
        # check_sid (the validator) turns every key into a SID string before work sees it.
        keys = cast("Iterable[str] | AsyncIterable[str]", sids)
        return fan_out(
            keys,
            self._requester.get_call,
            concurrency=limit,
            ordered=ordered,
            validate=check_sid,
            on_progress=on_progress,
            throttle_hook=throttle_listener,
            wrap=build_call_result,  # CallResult(sid, call, error), faster
        )

    async def get_calls(
        self,
        sids: Iterable[str | uuid.UUID] | AsyncIterable[str | uuid.UUID],
        *,
        concurrency: int = _CONCURRENCY,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> BulkResult:
        """Look up many calls and collect the outcome (:meth:`iter_call_results`, gathered).

        Every distinct SID ends up in exactly one of ``found``, ``missing``
        (the API answered 404) and ``failed`` (any other error, including an
        invalid SID), as :attr:`FailedLookup.outcome` files it. Call
        :meth:`BulkResult.raise_for_failures` to turn failures into an exception.
        For large jobs, stream with :meth:`iter_call_results` instead: this
        holds every call in memory.
        """
        found: dict[str, Call] = {}
        missing: list[str] = []
        failed: dict[str, LookupFailure] = {}
        results = self.iter_call_results(sids, concurrency=concurrency, on_progress=on_progress)
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
