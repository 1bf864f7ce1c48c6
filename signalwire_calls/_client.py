"""``CallsClient``: lifecycle, ``get_call``, and the endpoint paths."""

from __future__ import annotations

import asyncio
import json
import re
import ssl as _ssl
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from yarl import URL

from signalwire_calls._config import DEFAULT_MAX_BODY_SIZE, Settings, env_options, make_settings
from signalwire_calls._converter import structure_call
from signalwire_calls._errors import (
    ConfigError,
    DecodeError,
    RequestTimeoutError,
    TransportError,
    error_from_response,
)
from signalwire_calls._retry import (
    AttemptsExhaustedError,
    RetryMiddleware,
    RetryPolicy,
    parse_retry_after,
)
from signalwire_calls._session import build_session, user_agent

if TYPE_CHECKING:
    from types import TracebackType

    from signalwire_calls._models import Call

__all__ = ["CallsClient", "check_sid"]

try:  # an optional speedup: about twice as fast as json for call bodies
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    _loads = json.loads

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
        timeout: Seconds each attempt may take, connect and read included.
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
        self._session = session
        self._owns_session = session is None
        self._closed = False
        base = str(self._settings.base_url).rstrip("/")
        self._calls_url = f"{base}/Accounts/{self._settings.project_id}/Calls"
        self._headers = {
            "Authorization": self._settings.authorization,
            "Accept": "application/json",
            "User-Agent": user_agent(),
        }

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
                max_connections=self._max_connections,
                connect_timeout=self._timeout,
                ssl=self._ssl,
            )
            self._session = session
        return session

    # ---------------------------------------------------------------- requests

    async def _get(self, url: str, *, sid: str | None = None) -> Any:
        """GET ``url`` (already encoded) and return its decoded JSON body.

        Raises:
            APIError: A non-2xx answer, after retries.
            TransportError: No answer, after retries.
            DecodeError: A 2xx body that is not JSON.
        """
        session = self._ensure_session()
        shown = url.split("?", 1)[0]
        what = f" for call {sid}" if sid else ""
        try:
            async with session.get(
                URL(url, encoded=True),
                headers=self._headers,
                allow_redirects=False,
                ssl=self._ssl,
                middlewares=None if self._owns_session else (self._middleware,),
            ) as response:
                body = await response.read()
                status = response.status
                headers = response.headers
                content_type = response.content_type
        except AttemptsExhaustedError as exhausted:
            err = exhausted.__cause__
            if isinstance(err, TimeoutError):
                raise RequestTimeoutError(
                    f"GET {shown}{what} timed out after {self._timeout}s "
                    f"({exhausted.attempts} attempt(s))",
                    url=shown,
                ) from err
            raise TransportError(
                f"GET {shown}{what} failed after {exhausted.attempts} attempt(s): "
                f"{type(err).__name__}: {err}",
                url=shown,
            ) from err
        except aiohttp.ClientError as err:  # not retryable: an invalid URL, a bad TLS setup
            raise TransportError(
                f"GET {shown}{what} failed: {type(err).__name__}: {err}", url=shown
            ) from err
        if status >= 300:  # noqa: PLR2004 - redirects are never followed: an error too
            raise error_from_response(
                status,
                body,
                method="GET",
                url=shown,
                retry_after=parse_retry_after(headers.get("Retry-After")),
                token=None,
            )
        try:
            return _loads(body)
        except ValueError:
            raise DecodeError(
                f"GET {shown}{what}: expected a JSON body, got {content_type or 'no type'} "
                f"({len(body)} bytes) starting {body[:40]!r}",
                sid=sid,
            ) from None

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
        check_sid(sid)
        data = await self._get(f"{self._calls_url}/{sid}", sid=sid)
        call = structure_call(data)
        if call.sid.lower() != sid.lower():
            raise DecodeError(
                f"Asked for call {sid} but the API returned call {call.sid}", field="$.sid", sid=sid
            )
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
