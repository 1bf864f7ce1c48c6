"""The client's HTTP side: one pooled session, connection slots, and the three GETs.

:class:`Requester` owns (or borrows) the :class:`aiohttp.ClientSession`, holds a
connection slot for each request, maps a failed answer to an exception, scrubs the
credentials from anything a server echoes back, and hands bodies to the wire form
(``signalwire_calls._wire``). :class:`~signalwire_calls.CallsClient` composes one.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque
from collections.abc import Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import hdrs
from yarl import URL

from signalwire_calls import _json
from signalwire_calls._errors import (
    ConfigError,
    DecodeError,
    RequestTimeoutError,
    TransportError,
    error_from_response,
)
from signalwire_calls._http._middleware import AttemptsExhaustedError, RetryMiddleware
from signalwire_calls._observe import Emitter, observed
from signalwire_calls._retry import RetryPolicy, parse_retry_after
from signalwire_calls._wire import WIRE

if TYPE_CHECKING:
    from signalwire_calls._config import Settings
    from signalwire_calls._models import Call

__all__ = ["Requester", "user_agent"]

_REDIRECT_OR_ERROR: Final = 300


def user_agent() -> str:
    """Return the User-Agent this library sends."""
    try:
        ours = version("signalwire-calls")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "0+unknown"
    return f"signalwire-calls/{ours} aiohttp/{aiohttp.__version__}"


class _Slots:
    """At most ``size`` requests at once, first come first served, with a sync fast path.

    A request holds a slot before its first attempt starts, so that waiting for a
    pooled connection never eats into an attempt's timeout (a user may gather
    thousands of ``get_call`` at once).
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot and take it."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, but the caller is gone: hand it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, to the first waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Requester:
    """Send the client's GETs through one pooled session and the retry middleware.

    Args:
        settings: The validated connection settings.
        retry: How failed attempts are retried.
        timeout: Seconds each attempt may take (``None``: no limit).
        max_connections: Size of the connection pool, and of the slots.
        session: A caller-owned session to use instead of an owned one (never closed here).
        rate_limit: At most this many requests per second (needs aiolimiter).
        max_body_size: Larger bodies are refused without being read.
        ssl: A custom TLS context (verification stays on by default).
        emitter: Where requests and attempts are reported (default: nowhere).

    Raises:
        ConfigError: ``session``, ``ssl`` or ``rate_limit`` is unusable.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy,
        timeout: float | None,
        max_connections: int,
        session: aiohttp.ClientSession | None,
        rate_limit: float | None,
        max_body_size: int,
        ssl: _ssl.SSLContext | None,
        emitter: Emitter | None = None,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigError(f"session must be an aiohttp.ClientSession, got {session!r}")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise ConfigError(f"ssl must be an ssl.SSLContext, got {type(ssl).__name__}")
        self.timeout = timeout
        self._max_connections = max_connections
        self._ssl: _ssl.SSLContext | bool = ssl if ssl is not None else True
        self._emitter = emitter = emitter if emitter is not None else Emitter()
        #: Requests started, for ``CallsClient.stats``.
        self.requests = 0
        self._middleware = RetryMiddleware(
            emitter=emitter,
            policy=retry,
            timeout=timeout,
            max_body_size=max_body_size,
            limiter=_make_limiter(rate_limit),
        )
        self._slots = _Slots(max_connections)
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._secrets = settings.secrets
        base = str(settings.base_url).rstrip("/")
        #: The List Calls URL; a lookup's URL is this one plus ``/{sid}``.
        self.calls_url: Final = f"{base}/Accounts/{settings.project_id}/Calls"
        self._calls_base = URL(self.calls_url, encoded=True)
        self._calls_path = self._calls_base.raw_path + "/"
        self._headers = {
            "Authorization": settings.authorization,
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

    @property
    def middleware(self) -> RetryMiddleware:
        """The retry middleware every request of this requester goes through."""
        return self._middleware

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    @property
    def holds_open_session(self) -> bool:
        """Whether an owned session is open (for the client's ``ResourceWarning``)."""
        session = self._session
        return self._owns_session and session is not None and not session.closed

    def ensure_session(self) -> aiohttp.ClientSession:
        """Return the session, creating the owned one inside the running loop on first use.

        Raises:
            RuntimeError: The requester is closed.
        """
        if self._closed:
            raise RuntimeError("This CallsClient is closed; create a new one")
        session = self._session
        if session is None:
            asyncio.get_running_loop()  # the session must belong to the running loop
            session = self._session = self._build_session()
        return session

    def _build_session(self) -> aiohttp.ClientSession:
        """Create the pooled session.

        The connector is bounded (``max_connections``, all to the one API host) and
        keeps connections alive for reuse. ``ClientTimeout.total`` is left unset on
        purpose: it would span every retry of the middleware, which applies its own
        per-attempt timeout instead. ``trust_env`` stays off so that no proxy or
        ``.netrc`` from the environment sees the Authorization header unasked.
        """
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,  # every request goes to one host: no per-host limit
            ssl=self._ssl,
            keepalive_timeout=30.0,
            ttl_dns_cache=300,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            middlewares=(self._middleware,),
            headers=self._headers,
            raise_for_status=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def aclose(self) -> None:
        """Close the owned session and its connections. Idempotent.

        A session passed in by the caller is left open.
        """
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    # ------------------------------------------------------------------ the GETs

    def get_call(self, sid: str) -> Coroutine[Any, Any, Call]:
        """Return the coroutine that retrieves the call ``sid`` (already checked)."""
        url = self._calls_base.with_path(self._calls_path + sid, encoded=True)
        emitter = self._emitter
        if emitter.hot and emitter.listening():
            return observed(emitter, self._get(url, sid=sid, as_call=True), "GET", _shown(url), sid)
        return self._get(url, sid=sid, as_call=True)

    async def get_json(self, url: str | URL) -> Any:
        """GET ``url`` (already encoded) and return its decoded JSON body."""
        emitter = self._emitter
        if emitter.hot and emitter.listening():
            shown = _shown(url if type(url) is URL else URL(url, encoded=True))
            return await observed(emitter, self._get(url), "GET", shown, None)
        return await self._get(url)

    async def get_page(self, url: str) -> tuple[list[Call], str | None]:
        """Fetch one page of List Calls; return its calls and ``next_page_uri``."""
        self.ensure_session()
        data = await self.get_json(url)
        try:
            return WIRE.structure_page(data)
        except DecodeError as err:
            raise self._scrubbed(err) from None

    async def _get(self, url: str | URL, *, sid: str | None = None, as_call: bool = False) -> Any:
        """GET ``url`` and return its decoded JSON body (with ``as_call``, that call).

        With ``as_call`` (and ``sid``), the body is structured as that call after
        the request's slot is given back: one coroutine less per lookup than
        structuring in a caller.

        Raises:
            APIError: A non-2xx answer, after retries.
            TransportError: No answer, after retries.
            DecodeError: A 2xx body that is not JSON (or, with ``as_call``, not the call).
        """
        self.requests += 1
        session = self._session
        if session is None or self._closed:
            session = self.ensure_session()
        if type(url) is not URL:  # yarl's URL cannot be subclassed
            url = URL(url, encoded=True)
        slots = self._slots
        if not slots.try_acquire():
            await slots.acquire()
        try:
            response = await session.get(url, allow_redirects=False, **self._request_options)
            try:
                # The middleware has read the body (capped): this returns it.
                body = await self._middleware.body(response)
                status = response.status
                if status < _REDIRECT_OR_ERROR:
                    try:
                        data = _json.loads(body)
                    except ValueError:
                        raise self._not_json(url, sid, response.content_type, body) from None
                else:
                    retry_after = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
            finally:
                # Reading the whole body already gave the connection back to the pool
                # and closed the response; release() would still notify the stream.
                if not response.closed:
                    response.release()
        except AttemptsExhaustedError as exhausted:
            raise self._exhausted(exhausted, url, sid) from exhausted.__cause__
        except aiohttp.ClientError as err:  # not retryable: an invalid URL, a bad TLS setup
            shown = _without_query(url)
            raise TransportError(
                f"GET {shown}{_for(sid)} failed: {type(err).__name__}: {err}", url=shown
            ) from err
        finally:
            slots.release()
        if status < _REDIRECT_OR_ERROR:
            return self._to_call(sid, data) if as_call and sid is not None else data
        # Redirects are never followed, so a 3xx is an error too. The body is
        # scrubbed here, on the error path only: a server (or proxy) that echoes
        # the credentials must not get them into a message or a log.
        raise error_from_response(
            status,
            _scrub(body, self._secrets),
            method="GET",
            url=_without_query(url),
            retry_after=retry_after,
        )

    def _exhausted(
        self, exhausted: AttemptsExhaustedError, url: URL, sid: str | None
    ) -> TransportError:
        """Word the error of a request whose every attempt got no answer."""
        err = exhausted.__cause__
        shown = _without_query(url)
        if isinstance(err, TimeoutError):
            return RequestTimeoutError(
                f"GET {shown}{_for(sid)} timed out after {self.timeout}s "
                f"({exhausted.attempts} attempt(s))",
                url=shown,
            )
        return TransportError(
            f"GET {shown}{_for(sid)} failed after {exhausted.attempts} attempt(s): "
            f"{type(err).__name__}: {err}",
            url=shown,
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

    def _to_call(self, sid: str, data: Any) -> Call:
        """Structure the JSON of the call asked for as ``sid``."""
        try:
            call = WIRE.structure(data)
        except DecodeError as err:
            raise self._scrubbed(err) from None
        if call.sid != sid and call.sid.lower() != sid.lower():
            mismatch = f"Asked for call {sid} but the API returned call {call.sid}"
            raise self._scrubbed(DecodeError(mismatch, field="$.sid", sid=sid))
        return call


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


def _shown(url: URL) -> str:
    """Return ``url`` as events show it: no credentials, query or fragment."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _without_query(url: URL) -> str:
    return str(url.with_query(None))


def _for(sid: str | None) -> str:
    return f" for call {sid}" if sid else ""


def _scrub(body: bytes, secrets: tuple[bytes, ...]) -> bytes:
    for secret in secrets:
        if secret in body:
            body = body.replace(secret, b"***")
    return body
