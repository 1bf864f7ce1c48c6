"""``CallsClient``: configuration, lifecycle, and the endpoint paths.

Its methods come from three bases, one concern each: the request path and
``get_call`` (:mod:`signalwire_calls._client_requests`), the bulk lookups
(:mod:`signalwire_calls._client_bulk`) and the listing
(:mod:`signalwire_calls._client_listing`).
"""

from __future__ import annotations

import base64
import ssl as _ssl
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from yarl import URL

from signalwire_calls._bulk import AdaptiveLimit
from signalwire_calls._client_bulk import _Bulk
from signalwire_calls._client_listing import _Listing
from signalwire_calls._client_requests import check_sid, host_parts
from signalwire_calls._config import DEFAULT_MAX_BODY_SIZE, Settings, env_options, make_settings
from signalwire_calls._errors import ConfigError
from signalwire_calls._retry import RetryMiddleware, RetryPolicy
from signalwire_calls._session import user_agent

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["CallsClient", "check_sid"]


def _check_positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


class CallsClient(_Listing, _Bulk):
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
        self._calls_host_parts = host_parts(self._calls_base)
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
