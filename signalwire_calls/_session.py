"""Build the aiohttp session a client owns: pool, timeouts, TLS, middlewares."""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Mapping

import aiohttp

from signalwire_calls._retry import RetryMiddleware

__all__ = ["build_session", "user_agent"]


def user_agent() -> str:
    """Return the User-Agent this library sends."""
    from signalwire_calls import __version__  # noqa: PLC0415 - the package imports this module

    return f"signalwire-calls/{__version__} aiohttp/{aiohttp.__version__}"


def build_session(
    *,
    middleware: RetryMiddleware,
    headers: Mapping[str, str],
    max_connections: int,
    connect_timeout: float | None,
    ssl: _ssl.SSLContext | bool,
) -> aiohttp.ClientSession:
    """Create the pooled session; call it inside the running event loop.

    The connector is bounded (``max_connections``, all to the one API host) and
    keeps connections alive for reuse. ``ClientTimeout.total`` is left unset on
    purpose: it would span every retry of the middleware, which applies its own
    per-attempt timeout instead. ``trust_env`` stays off so that no proxy or
    ``.netrc`` from the environment sees the Authorization header unasked.
    """
    connector = aiohttp.TCPConnector(
        limit=max_connections,  # every request goes to the one API host: no per-host limit
        ssl=ssl,
        keepalive_timeout=30.0,
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        middlewares=(middleware,),
        headers=headers,
        raise_for_status=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
