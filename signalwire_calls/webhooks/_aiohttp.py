"""Verify a status callback received by an :mod:`aiohttp.web` server."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from signalwire_calls.webhooks._callback import CallStatusCallback
from signalwire_calls.webhooks._request import Incoming, RefusedError, check

if TYPE_CHECKING:
    from aiohttp import web


async def verify_aiohttp_request(
    request: web.Request,
    *,
    signing_key: str | Iterable[str],
    url: str | None = None,
    trust_forwarded: bool = False,
) -> CallStatusCallback:
    """Verify the signature of a status callback request and return the parsed callback.

    Reads the body once (aiohttp keeps it, so ``await request.post()`` still works
    afterwards). A ``POST`` callback is read from its form body, a ``GET`` one from its
    query string.

    Args:
        request: The request, in a handler of an :class:`aiohttp.web.Application`.
        signing_key: The project's Signing Key, or several during a rotation.
        url: The URL configured at SignalWire, exactly. This is the safest choice: without
            it the URL is rebuilt from the request's scheme, ``Host`` header and raw path,
            which behind a proxy or a tunnel is not the URL SignalWire signed.
        trust_forwarded: Rebuild the URL from ``X-Forwarded-Proto`` and
            ``X-Forwarded-Host``. Set it only behind a proxy that overwrites both headers:
            anyone can send them.

    Returns:
        The verified, parsed callback.

    Raises:
        aiohttp.web.HTTPForbidden: The request is not a validly signed status callback
            (no or a wrong signature, another method, a body that is not a form).
        DecodeError: The signature is valid but the parameters are not a valid callback.
        ConfigError: The key or ``url`` is unusable.
    """
    from aiohttp import web  # noqa: PLC0415 - aiohttp.web is imported only by its users

    content_type = request.content_type if request.body_exists else ""
    incoming = Incoming(
        method=request.method.upper(),
        scheme=request.scheme,
        host=request.host,
        target=request.raw_path,
        content_type=content_type.lower(),
        body=await request.read() if request.method.upper() == "POST" else b"",
        header=request.headers.get,
    )
    try:
        return check(incoming, signing_key=signing_key, url=url, trust_forwarded=trust_forwarded)
    except RefusedError as refused:
        raise web.HTTPForbidden(reason="Forbidden", text=f"403: {refused}") from None
