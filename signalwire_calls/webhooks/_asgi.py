"""Verify a status callback received by a Starlette or FastAPI application."""

# No ``from __future__ import annotations``: the dependency's ``Request`` annotation must
# be the class itself, because FastAPI reads it at run time and Starlette is imported
# only when a helper is used (it is not a dependency of this library).

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from signalwire_calls.webhooks._callback import CallStatusCallback
from signalwire_calls.webhooks._request import Incoming, RefusedError, check
from signalwire_calls.webhooks._signature import check_keys

if TYPE_CHECKING:
    from starlette.requests import Request


async def verify_starlette_request(
    request: "Request",
    *,
    signing_key: str | Iterable[str],
    url: str | None = None,
    trust_forwarded: bool = False,
) -> CallStatusCallback:
    """Verify the signature of a status callback request and return the parsed callback.

    Reads the body once (Starlette keeps it, so ``await request.form()`` still works
    afterwards). A ``POST`` callback is read from its form body, a ``GET`` one from its
    query string. The URL is rebuilt from the ASGI scope: its scheme (as the ASGI server
    reports it, after its own proxy-header handling), the ``Host`` header, the raw path
    and the query string.

    Args:
        request: The Starlette (or FastAPI) request.
        signing_key: The project's Signing Key, or several during a rotation.
        url: The URL configured at SignalWire, exactly; the safest choice behind a proxy
            or a tunnel.
        trust_forwarded: Rebuild the URL from ``X-Forwarded-Proto`` and
            ``X-Forwarded-Host``. Set it only behind a proxy that overwrites both headers.

    Returns:
        The verified, parsed callback.

    Raises:
        starlette.exceptions.HTTPException: 403, the request is not a validly signed status
            callback. Starlette and FastAPI answer it as a plain ``403 Forbidden``.
        DecodeError: The signature is valid but the parameters are not a valid callback.
        ConfigError: The key or ``url`` is unusable.
    """
    from starlette.exceptions import HTTPException  # noqa: PLC0415 - optional framework

    scope = request.scope
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes):
        path = raw_path.decode("latin-1")
    else:  # an ASGI server need not send raw_path
        path = quote(scope.get("root_path", "") + scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    method = request.method.upper()
    incoming = Incoming(
        method=method,
        scheme=request.url.scheme,
        host=request.headers.get("host") or request.url.netloc,
        target=f"{path}?{query}" if query else path,
        content_type=request.headers.get("content-type", "").partition(";")[0].strip().lower(),
        body=await request.body() if method == "POST" else b"",
        header=request.headers.get,
    )
    try:
        return check(incoming, signing_key=signing_key, url=url, trust_forwarded=trust_forwarded)
    except RefusedError as refused:
        raise HTTPException(status_code=403, detail=str(refused)) from None


def status_callback_dependency(
    *,
    signing_key: str | Iterable[str],
    url: str | None = None,
    trust_forwarded: bool = False,
) -> Callable[["Request"], Awaitable[CallStatusCallback]]:
    """Make a FastAPI dependency that verifies and parses a status callback.

    Use it as ``callback: CallStatusCallback = Depends(status_callback_dependency(...))``;
    it calls :func:`verify_starlette_request` with these settings. The keys are checked
    (and an iterator of keys is read) now, once.

    Args:
        signing_key: The project's Signing Key, or several during a rotation.
        url: The URL configured at SignalWire, exactly.
        trust_forwarded: Rebuild the URL from ``X-Forwarded-Proto`` and ``X-Forwarded-Host``.

    Returns:
        An ``async`` callable taking the request.

    Raises:
        ConfigError: The key is unusable.
        TypeError: The key is not a ``str`` or an iterable of ``str``.
    """
    try:
        from starlette.requests import Request  # noqa: PLC0415 - optional framework
    except ImportError:
        raise ImportError(
            "status_callback_dependency is for FastAPI: pip install fastapi (or starlette)"
        ) from None

    keys = check_keys(signing_key)

    async def verified_status_callback(request: Request) -> CallStatusCallback:
        return await verify_starlette_request(
            request, signing_key=keys, url=url, trust_forwarded=trust_forwarded
        )

    return verified_status_callback
