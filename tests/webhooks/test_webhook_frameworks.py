"""The aiohttp and Starlette/FastAPI helpers, against real servers on 127.0.0.1.

The expected signatures are computed here with ``hmac`` from the scheme in API-NOTES
§10.2 (or are the notes' real vectors), never with the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import socket
import sys
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from signalwire_calls import DecodeError
from signalwire_calls.webhooks import (
    CallStatusCallback,
    status_callback_dependency,
    verify_aiohttp_request,
    verify_starlette_request,
)
from yarl import URL

from conftest import sample

KEY = "PSK_V3bF8oyeRNpJWGoRWHNYQMUU"
#: The real signed status callbacks of API-NOTES §10.3 (V1, V2), shared by the webhook tests.
VECTORS = sample("status_callbacks_real.json")
V1_URL = VECTORS["V1"]["url"]
V1_SIG = VECTORS["V1"]["signature"]
V1_PARAMS = VECTORS["V1"]["params"]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PUBLIC = "https://public.example.com/status?tenant=7"


def sign(url: str, params: dict[str, str] | None = None, key: str = KEY) -> str:
    """Compute a Scheme B signature: URL, then name+value sorted by name (API-NOTES §10.2)."""
    text = url + "".join(name + value for name, value in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()).decode()


def summary(callback: CallStatusCallback) -> dict[str, str]:
    """What a handler reports back about the callback it accepted."""
    return {"sid": callback.call_sid, "status": str(callback.status), "from": callback.from_}


EXPECTED = {
    "sid": "0703574f-b151-465d-aedb-28972eb513c7",
    "status": "busy",
    "from": "sip:+17063958228@sip.swire.io",
}


# aiohttp.web -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def aiohttp_server(**options) -> AsyncIterator[str]:
    """Serve an aiohttp app whose /status handler verifies with the given options."""

    async def status(request: web.Request) -> web.Response:
        try:
            callback = await verify_aiohttp_request(request, signing_key=KEY, **options)
        except DecodeError as err:
            return web.json_response({"field": err.field}, status=422)
        # The body stays readable for the application after verification.
        form = dict(await request.post()) if request.method == "POST" else {}
        return web.json_response({**summary(callback), "form_fields": len(form)})

    app = web.Application()
    app.router.add_route("*", "/status", status)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/status"))
    finally:
        await server.close()


async def send(url: str, *, method: str = "POST", data=None, headers=None):
    """Send one request, its URL exactly as given, and return (status, JSON body or text)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, URL(url, encoded=True), data=data, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_aiohttp_accepts_a_correctly_signed_post():
    """A form POST signed over the server's own URL is verified, parsed and still readable."""
    async with aiohttp_server() as url:
        headers = {**FORM, "X-SignalWire-Signature": sign(url, V1_PARAMS)}
        status, body = await send(url, data=urlencode(V1_PARAMS), headers=headers)
    assert 200 == status
    assert {**EXPECTED, "form_fields": 12} == body


async def test_aiohttp_accepts_the_real_v1_request_with_its_configured_url():
    """The real V1 signature verifies through a real server when url= is the configured URL."""
    async with aiohttp_server(url=V1_URL) as url:
        headers = {**FORM, "X-SignalWire-Signature": V1_SIG}
        status, body = await send(url, data=urlencode(V1_PARAMS), headers=headers)
    assert 200 == status
    assert EXPECTED["sid"] == body["sid"]


async def test_aiohttp_falls_back_to_the_twilio_header():
    """Without X-SignalWire-Signature, X-Twilio-Signature is checked."""
    async with aiohttp_server() as url:
        headers = {**FORM, "X-Twilio-Signature": sign(url, V1_PARAMS)}
        status, _ = await send(url, data=urlencode(V1_PARAMS), headers=headers)
    assert 200 == status


async def test_aiohttp_reads_the_signalwire_header_first():
    """A wrong X-SignalWire-Signature is refused even when X-Twilio-Signature is right."""
    async with aiohttp_server() as url:
        good = sign(url, V1_PARAMS)
        headers = {**FORM, "X-SignalWire-Signature": good[::-1], "X-Twilio-Signature": good}
        status, _ = await send(url, data=urlencode(V1_PARAMS), headers=headers)
    assert 403 == status


@pytest.mark.parametrize(
    "case",
    [
        "no signature",
        "wrong key",
        "tampered body",
        "other path",
        "json body",
        "put",
        "empty header",
    ],
)
async def test_aiohttp_refuses_what_is_not_a_signed_callback(case):
    """Unsigned, wrongly signed, tampered or non-form requests get a 403."""
    async with aiohttp_server() as url:
        params, method, headers = dict(V1_PARAMS), "POST", dict(FORM)
        signature = sign(url, params)
        data: str = urlencode(params)
        if case == "wrong key":
            signature = sign(url, params, key="PSK_V3bF8oyeRNpJWGoRWHNYQMUV")
        elif case == "tampered body":
            data = urlencode({**params, "CallStatus": "completed"})
        elif case == "other path":
            signature = sign(url.replace("/status", "/other"), params)
        elif case == "json body":
            headers["Content-Type"] = "application/json"
        elif case == "put":
            method = "PUT"
        if case == "empty header":
            signature = ""
        if case != "no signature":
            headers["X-SignalWire-Signature"] = signature
        status, text = await send(url, method=method, data=data, headers=headers)
    assert 403 == status
    assert KEY not in text


async def test_aiohttp_get_callback_signs_the_url_with_its_query():
    """A GET callback carries its parameters in the query string, signed as part of the URL."""
    async with aiohttp_server() as url:
        full = f"{url}?{urlencode(V1_PARAMS)}"
        status, body = await send(
            full, method="GET", headers={"X-SignalWire-Signature": sign(full)}
        )
        refused, _ = await send(
            full.replace("busy", "failed"),
            method="GET",
            headers={"X-SignalWire-Signature": sign(full)},
        )
    assert 200 == status
    assert {**EXPECTED, "form_fields": 0} == body
    assert 403 == refused


@pytest.mark.parametrize(("trust", "expected"), [(True, 200), (False, 403)])
async def test_aiohttp_forwarded_headers_only_when_trusted(trust, expected):
    """X-Forwarded-Proto/Host rebuild the public URL only when the caller opts in."""
    async with aiohttp_server(trust_forwarded=trust) as url:
        headers = {
            **FORM,
            "X-SignalWire-Signature": sign(PUBLIC, V1_PARAMS),
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "public.example.com, proxy.internal",
        }
        status, _ = await send(f"{url}?tenant=7", data=urlencode(V1_PARAMS), headers=headers)
    assert expected == status


async def test_aiohttp_signed_but_invalid_callback_raises_decode_error():
    """A correctly signed request with a bad value raises DecodeError naming the field."""
    params = {**V1_PARAMS, "CallDuration": "soon"}
    async with aiohttp_server() as url:
        headers = {**FORM, "X-SignalWire-Signature": sign(url, params)}
        status, body = await send(url, data=urlencode(params), headers=headers)
    assert (422, {"field": "CallDuration"}) == (status, body)


# Starlette and FastAPI on uvicorn --------------------------------------------------------


@contextlib.asynccontextmanager
async def uvicorn_server(app) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on a socket bound to 127.0.0.1, port 0.

    The socket listens before uvicorn starts, so requests can be sent at once: the
    kernel queues the connections until uvicorn accepts them (no waiting loop).
    """
    uvicorn = pytest.importorskip("uvicorn", reason="serves the ASGI helpers: a test peer")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,  # the helper, not uvicorn, decides about X-Forwarded-*
        http="h11",
        ws="none",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}/status"
    finally:
        server.should_exit = True
        await task
        sock.close()


def starlette_app(**options):
    """A Starlette app whose /status endpoint verifies with the given options."""
    pytest.importorskip("starlette", reason="the Starlette helper's framework: a test peer")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def status(request: Request) -> JSONResponse:
        callback = await verify_starlette_request(request, signing_key=KEY, **options)
        # The body stays readable (python-multipart, which request.form() needs, is not
        # installed: the helper does not need it).
        form = parse_qsl((await request.body()).decode()) if request.method == "POST" else []
        return JSONResponse({**summary(callback), "form_fields": len(form)})

    return Starlette(routes=[Route("/status", status, methods=["GET", "POST", "PUT"])])


def fastapi_app(**options):
    """A FastAPI app taking the verified callback as a dependency."""
    pytest.importorskip("fastapi", reason="the FastAPI dependency's framework: a test peer")
    from fastapi import Depends, FastAPI

    app = FastAPI()
    # A generator: the dependency must read it once, not once per request.
    verified = Depends(status_callback_dependency(signing_key=(k for k in [KEY]), **options))

    @app.post("/status")
    async def status(callback: CallStatusCallback = verified) -> dict[str, str]:
        return summary(callback)

    return app


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app])
async def test_asgi_accepts_a_correctly_signed_post(make_app):
    """Form POSTs signed over the server's own URL are verified and parsed, request after request."""
    async with uvicorn_server(make_app()) as url:
        headers = {**FORM, "X-SignalWire-Signature": sign(url, V1_PARAMS)}
        replies = [await send(url, data=urlencode(V1_PARAMS), headers=headers) for _ in range(2)]
    assert [200, 200] == [status for status, _ in replies]
    assert EXPECTED == {name: replies[1][1][name] for name in EXPECTED}
    # Starlette's endpoint re-reads the body after verifying; FastAPI's returns no count.
    assert (12 if make_app is starlette_app else None) == replies[1][1].get("form_fields")


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app])
async def test_asgi_accepts_the_real_v1_request_with_its_configured_url(make_app):
    """The real V1 signature verifies under uvicorn when url= is the configured URL."""
    async with uvicorn_server(make_app(url=V1_URL)) as url:
        headers = {**FORM, "X-Twilio-Signature": V1_SIG}
        status, body = await send(url, data=urlencode(V1_PARAMS), headers=headers)
    assert 200 == status
    assert EXPECTED["sid"] == body["sid"]


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app])
@pytest.mark.parametrize("case", ["no signature", "wrong signature", "tampered body", "json body"])
async def test_asgi_refuses_what_is_not_a_signed_callback(make_app, case):
    """Unsigned, wrongly signed, tampered or non-form requests get a 403."""
    async with uvicorn_server(make_app()) as url:
        headers, data = dict(FORM), urlencode(V1_PARAMS)
        if case != "no signature":
            headers["X-SignalWire-Signature"] = sign(url, V1_PARAMS)
        if case == "wrong signature":
            headers["X-SignalWire-Signature"] = sign(url + "x", V1_PARAMS)
        elif case == "tampered body":
            data = urlencode({**V1_PARAMS, "To": "sip:someone@else"})
        elif case == "json body":
            headers["Content-Type"] = "application/json"
        status, body = await send(url, data=data, headers=headers)
    assert 403 == status
    assert KEY not in str(body)


async def test_starlette_get_callback_signs_the_url_with_its_query():
    """A GET callback is verified over the URL and parsed from the query string."""
    async with uvicorn_server(starlette_app()) as url:
        full = f"{url}?{urlencode(V1_PARAMS)}"
        status, body = await send(
            full, method="GET", headers={"X-SignalWire-Signature": sign(full)}
        )
    assert 200 == status
    assert {**EXPECTED, "form_fields": 0} == body


@pytest.mark.parametrize(("trust", "expected"), [(True, 200), (False, 403)])
async def test_starlette_forwarded_headers_only_when_trusted(trust, expected):
    """X-Forwarded-Proto/Host rebuild the public URL only when the caller opts in."""
    async with uvicorn_server(starlette_app(trust_forwarded=trust)) as url:
        headers = {
            **FORM,
            "X-SignalWire-Signature": sign(PUBLIC, V1_PARAMS),
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "public.example.com",
        }
        status, _ = await send(f"{url}?tenant=7", data=urlencode(V1_PARAMS), headers=headers)
    assert expected == status


def test_dependency_checks_the_keys_at_creation():
    """A bad key fails when the dependency is made, and the dependency's repr hides the key."""
    pytest.importorskip("starlette", reason="the FastAPI dependency's framework: a test peer")
    from signalwire_calls import ConfigError

    with pytest.raises(ConfigError, match="signing_key is empty"):
        status_callback_dependency(signing_key="")
    dependency = status_callback_dependency(signing_key=(key for key in [KEY]))
    assert KEY not in repr(dependency)


def test_importing_webhooks_imports_no_web_framework():
    """Importing the subpackage loads neither Starlette, FastAPI, uvicorn nor aiohttp.web."""
    import subprocess
    import sys

    code = (
        "import sys, signalwire_calls.webhooks\n"
        "print(sorted(m for m in ('starlette', 'fastapi', 'uvicorn', 'aiohttp.web') if m in sys.modules))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "[]" == done.stdout.strip()


def test_dependency_without_starlette_says_what_to_install(monkeypatch):
    """Without Starlette, making the FastAPI dependency says in one line what to install."""
    monkeypatch.setitem(sys.modules, "starlette.requests", None)

    with pytest.raises(ImportError, match="pip install fastapi"):
        status_callback_dependency(signing_key=KEY)
