"""``CallsClient``: lifecycle, ``get_call``, and the endpoint paths."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import ssl as _ssl
import uuid
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from yarl import URL

from signalwire_calls._bulk import AdaptiveLimit, BulkProgress, fan_out
from signalwire_calls._config import DEFAULT_MAX_BODY_SIZE, Settings, env_options, make_settings
from signalwire_calls._converter import structure_call
from signalwire_calls._errors import (
    ConfigError,
    DecodeError,
    NotFoundError,
    RequestTimeoutError,
    TransportError,
    error_from_response,
)
from signalwire_calls._listing import (
    MAX_PAGE_SIZE,
    build_list_query,
    encode_query,
    follow_pages,
    merge_windows,
    split_windows,
)
from signalwire_calls._models import BulkResult, CallResult
from signalwire_calls._retry import (
    AttemptsExhaustedError,
    RetryMiddleware,
    RetryPolicy,
    parse_retry_after,
    throttle_listener,
)
from signalwire_calls._session import build_session, user_agent

if TYPE_CHECKING:
    from types import TracebackType

    from signalwire_calls._models import Call, CallStatus

__all__ = ["CallsClient", "check_sid"]

try:  # an optional speedup: about twice as fast as json for call bodies
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    _loads = json.loads

log = logging.getLogger("signalwire_calls")

#: Successes that win back one slot of a bulk job's concurrency after a 429.
_GROWTH_STEP = 8

_SID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def check_sid(sid: object) -> str:
    """Return ``sid`` if it is a call SID (a UUID string), else raise ``ValueError``.

    SignalWire call SIDs are UUIDs without Twilio's ``CA`` prefix. Checking them
    before any I/O also means that nothing a caller passes can change the request
    path or query.
    """
    if isinstance(sid, str) and _SID.fullmatch(sid):
        return sid
    shown = repr(sid) if len(repr(sid)) <= 60 else repr(sid)[:57] + "..."  # noqa: PLR2004
    raise ValueError(
        f"Invalid call SID {shown}: expected a UUID such as "
        "'82e7850d-054e-4067-8c4f-6568acd96575' (SignalWire SIDs have no 'CA' prefix)"
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
        ssl: _ssl.SSLContext | None = None,
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
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise ConfigError(f"ssl must be an ssl.SSLContext, got {type(ssl).__name__}")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigError(f"session must be an aiohttp.ClientSession, got {session!r}")
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._max_connections = max_connections
        self._ssl: _ssl.SSLContext | bool = ssl if ssl is not None else True
        self._middleware = RetryMiddleware(
            policy=self._retry,
            timeout=timeout,
            max_body_size=max_body_size,
            limiter=_make_limiter(rate_limit),
        )
        self._rate_limit = rate_limit
        self._slots = AdaptiveLimit(max_connections, minimum=max_connections)
        self._session = session
        self._owns_session = session is None
        self._closed = False
        base = str(self._settings.base_url).rstrip("/")
        self._calls_url = f"{base}/Accounts/{self._settings.project_id}/Calls"
        # A lookup's URL is this one with the SID appended to its (encoded) path:
        # cheaper than parsing a new string per request.
        self._calls_base = URL(self._calls_url, encoded=True)
        self._calls_path = self._calls_base.raw_path + "/"
        # What a server could echo back (a proxy's error page, a debug body): scrubbed
        # from every body before any of it can reach an error message or a log.
        basic = self._settings.authorization.removeprefix("Basic ")
        token = base64.b64decode(basic).decode().split(":", 1)[1]
        self._secrets = (token.encode(), basic.encode())
        self._headers = {
            "Authorization": self._settings.authorization,
            "Accept": "application/json",
            "User-Agent": user_agent(),
        }
        # An owned session carries the headers and the middleware itself; a
        # caller's session gets them with each request.
        self._request_options: dict[str, Any] = (
            {}
            if self._owns_session
            else {"headers": self._headers, "ssl": self._ssl, "middlewares": (self._middleware,)}
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
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<CallsClient project_id={self._settings.project_id!r} "
            f"base_url={self.base_url!r} {state}>"
        )

    async def __aenter__(self) -> Self:
        self._ensure_session()
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
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        session = getattr(self, "_session", None)
        if session is not None and getattr(self, "_owns_session", False) and not session.closed:
            _warn(
                f"Unclosed {self!r}: use 'async with' or 'await client.aclose()'",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("This CallsClient is closed; create a new one")
        session = self._session
        if session is None:
            asyncio.get_running_loop()  # the session must belong to the running loop
            session = build_session(
                middleware=self._middleware,
                headers=self._headers,
                max_connections=self._max_connections,
                connect_timeout=self._timeout,
                ssl=self._ssl,
            )
            self._session = session
        return session

    # ---------------------------------------------------------------- requests

    async def _get(self, url: str | URL, *, sid: str | None = None) -> Any:
        """GET ``url`` (already encoded) and return its decoded JSON body.

        Raises:
            APIError: A non-2xx answer, after retries.
            TransportError: No answer, after retries.
            DecodeError: A 2xx body that is not JSON.
        """
        session = self._session
        if session is None or self._closed:
            session = self._ensure_session()
        if isinstance(url, str):
            url = URL(url, encoded=True)
        # Hold one of max_connections slots before the first attempt starts, so
        # that waiting for a pooled connection never eats into an attempt's
        # timeout (a user may gather thousands of get_call at once).
        slots = self._slots
        if slots.try_acquire() is None:
            await slots.acquire()
        try:
            response = await session.get(url, allow_redirects=False, **self._request_options)
            try:
                body = await response.read()  # already read, capped, by the middleware
                status = response.status
                if status < 300:  # noqa: PLR2004
                    try:
                        return _loads(body)
                    except ValueError:
                        content_type = response.content_type
                    raise self._not_json(url, sid, content_type, body)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            finally:
                response.release()
        except AttemptsExhaustedError as exhausted:
            err = exhausted.__cause__
            shown = _without_query(url)
            if isinstance(err, TimeoutError):
                raise RequestTimeoutError(
                    f"GET {shown}{_for(sid)} timed out after {self._timeout}s "
                    f"({exhausted.attempts} attempt(s))",
                    url=shown,
                ) from err
            raise TransportError(
                f"GET {shown}{_for(sid)} failed after {exhausted.attempts} attempt(s): "
                f"{type(err).__name__}: {err}",
                url=shown,
            ) from err
        except aiohttp.ClientError as err:  # not retryable: an invalid URL, a bad TLS setup
            shown = _without_query(url)
            raise TransportError(
                f"GET {shown}{_for(sid)} failed: {type(err).__name__}: {err}", url=shown
            ) from err
        finally:
            slots.release()
        # Redirects are never followed, so a 3xx is an error too. The body is
        # scrubbed here, on the error path only: a server (or proxy) that echoes
        # the credentials must not get them into a message or a log.
        raise error_from_response(
            status,
            _scrub(body, self._secrets),
            method="GET",
            url=_without_query(url),
            retry_after=retry_after,
            token=None,
        )

    def _not_json(self, url: URL, sid: str | None, content_type: str, body: bytes) -> DecodeError:
        start = _scrub(body[:200], self._secrets)[:40]
        return DecodeError(
            f"GET {_without_query(url)}{_for(sid)}: expected a JSON body, got "
            f"{content_type or 'no type'} ({len(body)} bytes) starting {start!r}",
            sid=sid,
        )

    def _scrubbed(self, err: DecodeError) -> DecodeError:
        """Return ``err`` with any echoed credential removed from its message."""
        text = str(err)
        clean = _scrub(text.encode(), self._secrets).decode()
        if clean == text:
            return err
        return DecodeError(clean, field=err.field, sid=err.sid)

    async def get_call(self, sid: str) -> Call:
        """Retrieve one call by its SID.

        Args:
            sid: The call's SID, a UUID string.

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
        return await self._fetch_call(check_sid(sid))

    async def _fetch_call(self, sid: str) -> Call:
        """:meth:`get_call` for a SID already checked (the bulk jobs check theirs first)."""
        data = await self._get(
            self._calls_base.with_path(self._calls_path + sid, encoded=True), sid=sid
        )
        try:
            call = structure_call(data)
        except DecodeError as err:
            raise self._scrubbed(err) from None
        if call.sid != sid and call.sid.lower() != sid.lower():
            mismatch = f"Asked for call {sid} but the API returned call {call.sid}"
            raise self._scrubbed(DecodeError(mismatch, field="$.sid", sid=sid))
        return call

    # -------------------------------------------------------------------- bulk

    def get_calls(
        self,
        sids: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> AsyncIterator[CallResult]:
        """Look up many calls concurrently; yield one :class:`CallResult` per distinct SID.

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
        self._ensure_session()
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
        return fan_out(
            sids,
            self._fetch_call,  # fan_out checks each SID first, with check_sid
            concurrency=limit,
            ordered=ordered,
            validate=check_sid,
            on_progress=on_progress,
            throttle_hook=throttle_listener,
            wrap=CallResult,
        )

    async def fetch_calls(
        self,
        sids: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = 64,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> BulkResult:
        """Look up many calls and collect the outcome: a convenience for small jobs.

        Every distinct SID ends up in exactly one of ``found``, ``missing``
        (the API answered 404) and ``failed`` (any other error, including an
        invalid SID). Call :meth:`BulkResult.raise_for_failures` to turn
        failures into an exception.
        """
        found: dict[str, Call] = {}
        missing: list[str] = []
        failed: dict[str, Exception] = {}
        async for result in self.get_calls(sids, concurrency=concurrency, on_progress=on_progress):
            if result.call is not None:
                found[result.sid] = result.call
            elif isinstance(result.error, NotFoundError):
                missing.append(result.sid)
            else:
                failed[result.sid] = result.error or RuntimeError("no result")
        return BulkResult(found=found, missing=tuple(missing), failed=failed)

    # ----------------------------------------------------------------- listing

    def iter_calls(
        self,
        *,
        status: CallStatus | str | None = None,
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
        if windows == 1:
            return follow_pages(self._list_url(query), self._fetch_page, limit=limit)
        if started_after is None:
            raise ValueError("windows > 1 needs started_after (the start of the range to split)")
        end = started_before if started_before is not None else datetime.now(UTC)

        def open_window(after: datetime, before: datetime) -> AsyncIterator[Call]:
            window_query = build_list_query(started_after=after, started_before=before, **filters)
            return follow_pages(self._list_url(window_query), self._fetch_page)

        return merge_windows(
            split_windows(started_after, end, windows),
            open_window,
            key=lambda call: call.sid,
            timestamp=lambda call: call.start_time,
            concurrency=min(windows, self._max_connections),
            limit=limit,
        )

    def _list_url(self, query: Sequence[tuple[str, str]]) -> str:
        return f"{self._calls_url}?{encode_query(query)}"

    async def _fetch_page(self, url: str) -> tuple[list[Call], str | None]:
        """Fetch one page of List Calls; return its calls and ``next_page_uri``."""
        self._ensure_session()
        data = await self._get(url)
        if not isinstance(data, dict) or not isinstance(data.get("calls"), list):
            raise DecodeError(
                "Invalid List Calls page: expected an object with a 'calls' list",
                field="$.calls",
            )
        next_uri = data.get("next_page_uri")
        if next_uri is not None and not isinstance(next_uri, str):
            raise DecodeError(
                f"Invalid List Calls page: next_page_uri is {type(next_uri).__name__}",
                field="$.next_page_uri",
            )
        calls = []
        for index, item in enumerate(data["calls"]):
            try:
                calls.append(structure_call(item))
            except DecodeError as err:
                err = self._scrubbed(err)
                err.field = f"$.calls[{index}]{err.field[1:]}"
                raise err from None
        return calls, next_uri


def _without_query(url: URL) -> str:
    return str(url.with_query(None))


def _for(sid: str | None) -> str:
    return f" for call {sid}" if sid else ""


def _scrub(body: bytes, secrets: tuple[bytes, ...]) -> bytes:
    for secret in secrets:
        if secret in body:
            body = body.replace(secret, b"***")
    return body


def _make_limiter(rate_limit: float | None) -> Any:
    if rate_limit is None:
        return None
    try:
        from aiolimiter import AsyncLimiter  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise ConfigError(
            "rate_limit needs aiolimiter: pip install 'signalwire-calls[ratelimit]'"
        ) from None
    # One request per 1/N seconds: a bucket of one never bursts, so no one-second
    # window holds more than N requests.
    return AsyncLimiter(1, 1 / rate_limit)
