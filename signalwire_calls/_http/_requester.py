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
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from signalwire_calls import _json
from signalwire_calls._errors import (
    ConfigError,
    ConnectError,
    DecodeError,
    RequestTimeoutError,
    SignalWireError,
    TransportError,
    error_from_response,
)
from signalwire_calls._http._middleware import AttemptsExhaustedError, RetryMiddleware
from signalwire_calls._observe import Emitter, observed
from signalwire_calls._retry import RetryPolicy, parse_retry_after
from signalwire_calls._wire import WIRE

if TYPE_CHECKING:
    from signalwire_calls._config import Proxy, Settings
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
        max_connections: How many requests :meth:`get_call`, :meth:`get_json` and
            :meth:`get_page` have in flight at once (the slots); :meth:`lookup`, for
            a bulk job that bounds itself, takes none.
        session: A caller-owned session to use instead of an owned one (never closed here).
        rate_limit: At most this many requests per second (needs aiolimiter).
        max_body_size: Larger bodies are refused without being read.
        ssl: A custom TLS context (verification stays on by default).
        strict_account: Refuse a call whose ``account_sid`` is not the project's.

        emitter: Where requests and attempts are reported (default: nowhere).

    A requester belongs to the event loop it first runs in (its session, pool and
    timers do): used from another loop it raises ``RuntimeError`` saying so.

    Every :class:`~signalwire_calls.SignalWireError` it raises has been cleaned at
    this boundary: no credential in its text or attributes, not even one a server
    echoed back with JSON escapes; its ``__cause__`` (the aiohttp error) is a copy
    without the request's headers; and no ``__context__`` that could hold the
    unscrubbed original.

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
        strict_account: bool = False,
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._secrets = settings.secrets
        self._secret_texts = tuple(secret.decode() for secret in settings.secrets)
        self._project_id = settings.project_id
        self._strict_account = strict_account
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
        self._session_headers = dict(self._headers)
        # An owned session carries the headers and the middleware itself; a
        # caller's session gets them with each request.
        self._request_options: dict[str, Any] = (
            {}
            if self._owns_session
            else {
                "headers": self._headers,
                "ssl": self._ssl,
                "middlewares": (self._middleware,),
                # A caller's session may raise on 4xx/5xx: this client maps statuses itself.
                "raise_for_status": False,
            }
        )
        proxy = settings.proxy
        if proxy is not None:
            self._use_proxy(proxy, settings)

    def _use_proxy(self, proxy: Proxy, settings: Settings) -> None:
        """Send every request through ``proxy``, each credential only to its owner.

        Per request, so that a caller's session goes through it too.
        """
        options = self._request_options
        options["proxy"] = proxy.url
        headers: dict[str, str] = dict(options.get("headers", {}))
        if self._owns_session:
            # aiohttp copies a session's default headers into the proxy's headers and
            # sends an Authorization among them to the proxy (as Proxy-Authorization,
            # or in the CONNECT): the API's credentials go with each request instead.
            self._session_headers.pop("Authorization")
            headers["Authorization"] = settings.authorization
        if proxy.authorization is not None:
            if settings.base_url.scheme == "https":
                # Only in the CONNECT that opens the tunnel; never inside it.
                options["proxy_headers"] = {hdrs.PROXY_AUTHORIZATION: proxy.authorization}
            else:
                # A plain-http request is sent to the proxy itself (absolute form), which
                # consumes Proxy-Authorization: aiohttp sends proxy_headers only in a CONNECT.
                headers[hdrs.PROXY_AUTHORIZATION] = proxy.authorization
        if headers:
            options["headers"] = headers

    @property
    def middleware(self) -> RetryMiddleware:
        """The retry middleware every request of this requester goes through."""
        return self._middleware

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    @property
    def connection_cap(self) -> int | None:
        """The most connections the session may open to the API (``None``: no cap).

        The owned session's connector has no cap of its own (the slots and each
        bulk job's limit bound the requests); a caller's session keeps its
        connector's ``limit`` / ``limit_per_host``, which a bulk job cannot exceed.
        """
        if self._owns_session or self._session is None:
            return None
        connector = self._session.connector
        if connector is None:
            return None
        caps = [cap for cap in (connector.limit, getattr(connector, "limit_per_host", 0)) if cap]
        return min(caps) if caps else None

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
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        session = self._session
        if session is None:
            session = self._session = self._build_session()
        return session

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tie the requester to ``loop`` on first use; refuse any other loop after that."""
        if self._loop is None:
            self._loop = loop
            return
        state = "now closed" if self._loop.is_closed() else "still running"
        raise RuntimeError(
            f"This CallsClient belongs to the event loop it first ran in ({state}), and "
            "cannot be used from another one: create the client inside the loop that uses "
            "it (one client per asyncio.run(), or per thread with its own loop)"
        )

    def _build_session(self) -> aiohttp.ClientSession:
        """Create the pooled session.

        The connector itself is not bounded: individual requests hold one of
        ``max_connections`` slots, and a bulk job's requests are bounded by the
        job's own limit, which may be larger (a pool capped below it would queue
        them silently). It keeps connections alive for reuse.
        ``ClientTimeout.total`` is left unset on purpose: it would span every retry
        of the middleware, which applies its own per-attempt timeout instead.
        ``trust_env`` stays off so that no proxy or ``.netrc`` from the environment
        sees the Authorization header unasked (the client's own ``trust_env`` option
        resolves the proxy once, in ``signalwire_calls._config``, and without ``.netrc``).
        """
        connector = aiohttp.TCPConnector(
            limit=0,  # the slots and the bulk jobs' limits bound it (see above)
            ssl=self._ssl,
            keepalive_timeout=30.0,
            ttl_dns_cache=300,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            middlewares=(self._middleware,),
            headers=self._session_headers,
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
        return self._get_call(sid, slotted=True)

    def lookup(self, sid: str) -> Coroutine[Any, Any, Call]:
        """As :meth:`get_call`, for a bulk job: no slot (its limit bounds it), and no loop check.

        The job checks once, when it starts, that it runs in this requester's event loop
        (:meth:`ensure_session`), and its tasks cannot move to another. Checking on every
        call costs a ``getpid()`` system call on CPython 3.11, whose
        ``asyncio.get_running_loop()`` guards against a fork with it: 4 % of a lookup.
        """
        return self._get_call(sid, slotted=False)

    def _get_call(self, sid: str, *, slotted: bool) -> Coroutine[Any, Any, Call]:
        url = self._calls_base.with_path(self._calls_path + sid, encoded=True)
        request = self._get(url, sid=sid, as_call=True, slotted=slotted, in_loop=not slotted)
        emitter = self._emitter
        if emitter.hot and emitter.listening():
            return observed(emitter, request, "GET", _shown(url), sid)
        return request

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
            calls, next_uri = WIRE.structure_page(data)
            if self._strict_account:
                for index, call in enumerate(calls):
                    self._check_account(call, call.sid, f"$.calls[{index}].account_sid")
        except DecodeError as err:
            failure = err
        else:
            return calls, next_uri
        raise self._cleaned(failure)  # outside the except: no __context__

    async def _get(  # noqa: C901, PLR0912 - one frame per request, on the hot path
        self,
        url: str | URL,
        *,
        sid: str | None = None,
        as_call: bool = False,
        slotted: bool = True,
        in_loop: bool = False,
    ) -> Any:
        """GET ``url`` and return its decoded JSON body (with ``as_call``, that call).

        With ``as_call`` (and ``sid``), the body is structured as that call after
        the request's slot is given back: one coroutine less per lookup than
        structuring in a caller. ``in_loop``: the caller has checked that this runs
        in the requester's event loop (see :meth:`lookup`).

        Raises:
            APIError: A non-2xx answer, after retries.
            TransportError: No answer, after retries.
            DecodeError: A 2xx body that is not JSON (or, with ``as_call``, not the call).
        """
        self.requests += 1
        session = self._session
        if (
            session is None
            or self._closed
            or (not in_loop and asyncio.get_running_loop() is not self._loop)
        ):
            session = self.ensure_session()
        if type(url) is not URL:  # yarl's URL cannot be subclassed
            url = URL(url, encoded=True)
        slots = self._slots if slotted else None
        if slots is not None and not slots.try_acquire():
            await slots.acquire()
        try:
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
                message = f"GET {shown}{_for(sid)} failed: {type(err).__name__}: {err}"
                if isinstance(err, aiohttp.ClientConnectorError):
                    raise ConnectError(message, url=shown, host=_host(url)) from err
                raise TransportError(message, url=shown) from err
            finally:
                if slots is not None:
                    slots.release()
            if status < _REDIRECT_OR_ERROR:
                return self._to_call(sid, data) if as_call and sid is not None else data
            # Redirects are never followed, so a 3xx is an error too. The body is
            # scrubbed here, on the error path only (and the decoded message again by
            # _cleaned): a server or proxy that echoes the credentials must not get
            # them into a message or a log.
            raise error_from_response(
                status,
                _scrub(body, self._secrets),
                method="GET",
                url=_without_query(url),
                retry_after=retry_after,
            )
        except SignalWireError as err:
            failure = err
        raise self._cleaned(failure)  # outside the except: no __context__ to leak

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
        message = (
            f"GET {shown}{_for(sid)} failed after {exhausted.attempts} attempt(s): "
            f"{type(err).__name__}: {err}"
        )
        if isinstance(err, aiohttp.ClientConnectorError):
            return ConnectError(message, url=shown, host=_host(url))
        return TransportError(message, url=shown)

    def _not_json(self, url: URL, sid: str | None, content_type: str, body: bytes) -> DecodeError:
        start = _scrub(body[:200], self._secrets)[:40]
        return DecodeError(
            f"GET {_without_query(url)}{_for(sid)}: expected a JSON body, got "
            f"{content_type or 'no type'} ({len(body)} bytes) starting {start!r}",
            sid=sid,
        )

    def _cleaned(self, err: SignalWireError) -> SignalWireError:
        """Return ``err`` fit to leave the library: no secret anywhere in it or its chain.

        The credentials are scrubbed from its text and string attributes (also when a
        server echoed them with JSON escapes, which decoding turned back into the
        secret); an aiohttp error in ``__cause__`` is replaced by a copy without the
        request's headers (``request_info.headers`` holds Authorization) and without a
        chain of its own; ``__context__`` is dropped. Raise the result outside any
        ``except`` block, or Python sets ``__context__`` again.
        """
        texts = self._secret_texts
        for name, value in vars(err).items():
            if isinstance(value, str) and any(secret in value for secret in texts):
                setattr(err, name, _scrub_text(value, texts))
        if any(isinstance(arg, str) and any(s in arg for s in texts) for arg in err.args):
            err.args = tuple(_scrub_text(a, texts) if isinstance(a, str) else a for a in err.args)
        if err.__cause__ is not None:
            err.__cause__ = _sanitized(err.__cause__)
        err.__context__ = None
        return err

    def _check_account(self, call: Call, sid: str, field: str) -> None:
        """With ``strict_account``, refuse a call that belongs to another account."""
        if call.account_sid.lower() != self._project_id.lower():
            raise DecodeError(
                f"Call {sid} belongs to account {call.account_sid}, not to project "
                f"{self._project_id}: refused because strict_account=True (a subproject's "
                "calls carry the subproject's account_sid)",
                field=field,
                sid=sid,
            )

    def _to_call(self, sid: str, data: Any) -> Call:
        """Structure the JSON of the call asked for as ``sid``."""
        call = WIRE.structure(data)  # a DecodeError is cleaned by _get
        if call.sid != sid and call.sid.lower() != sid.lower():
            mismatch = f"Asked for call {sid} but the API returned call {call.sid}"
            raise DecodeError(mismatch, field="$.sid", sid=sid)
        if self._strict_account:
            self._check_account(call, sid, "$.account_sid")
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


def _host(url: URL) -> str:
    return f"{url.host}:{url.port}" if url.port is not None else str(url.host)


def _shown(url: URL) -> str:
    """Return ``url`` as events show it: no credentials, query or fragment."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _without_query(url: URL) -> str:
    return str(url.with_query(None))


def _for(sid: str | None) -> str:
    return f" for call {sid}" if sid else ""


def _scrub_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _sanitized(cause: BaseException) -> BaseException:
    """Return an aiohttp error without the request's headers, and without a chain.

    aiohttp's ``ClientResponseError`` (bad status line, bad ``Content-Length``,
    oversized header, unsupported ``Content-Encoding``...) keeps the request's
    headers in ``request_info``, Authorization included, and shows them in its
    repr; the copy keeps the URL, method, status and message.
    """
    if isinstance(cause, aiohttp.ClientResponseError):
        info = cause.request_info
        headers = CIMultiDict(
            (name, value)
            for name, value in info.headers.items()
            if name.lower() not in {"authorization", "proxy-authorization", "cookie"}
        )
        safe = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
        try:
            copy: BaseException = type(cause)(
                safe, (), status=cause.status, message=cause.message, headers=None
            )
        except TypeError:  # pragma: no cover - a subclass with another signature
            copy = aiohttp.ClientError(f"{type(cause).__name__}: {cause}")
        cause = copy
    cause.__cause__ = None
    cause.__context__ = None
    return cause


def _scrub(body: bytes, secrets: tuple[bytes, ...]) -> bytes:
    for secret in secrets:
        if secret in body:
            body = body.replace(secret, b"***")
    return body
