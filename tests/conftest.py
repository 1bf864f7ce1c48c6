"""Shared fixtures: a scripted loopback HTTP server that counts what it receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

SAMPLES = Path(__file__).parent / "samples"
PROJECT = "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40"
TOKEN = "PTsecret-token-value-0123456789abcdef"
SID = "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21"


def sample(name: str) -> Any:
    """Load a JSON sample body from tests/samples."""
    return json.loads((SAMPLES / name).read_text())


@attrs.define
class Reply:
    """One scripted answer: a status, a body, headers, or a misbehaviour."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    #: "reset" aborts the connection, "truncate" sends half the body, "hang" never
    #: answers, "chunked" sends the body with chunked encoding (no Content-Length).
    kind: str = "normal"
    content_type: str = "application/json; charset=utf-8"


@attrs.define
class ScriptedServer:
    """A loopback aiohttp server answering each request with the next scripted reply.

    When the script runs out, the ``default`` reply (a factory of the request) answers.
    """

    server: TestServer | None = None
    script: list[Reply] = attrs.field(factory=list)
    default: Callable[[web.Request], Reply] | None = None
    hits: list[web.Request] = attrs.field(factory=list)
    #: The client address (host, port) of each request: one per TCP connection.
    peers: list[tuple[str, int]] = attrs.field(factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    hang: asyncio.Event = attrs.field(factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/api/laml/2010-04-01"))

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request)
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.script:
                reply = self.script.pop(0)
            elif self.default is not None:
                reply = self.default(request)
            else:
                reply = Reply(500, {"message": "script exhausted"})
            return await self._answer(request, reply)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        body = reply.body
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if reply.kind == "hang":
            await self.hang.wait()
        if reply.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if reply.kind == "truncate":
            response = web.StreamResponse(status=reply.status, headers=reply.headers)
            response.content_type = reply.content_type.split(";")[0]
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.abort()
            return response
        if reply.kind == "chunked":
            response = web.StreamResponse(status=reply.status, headers=reply.headers)
            response.content_type = reply.content_type.split(";")[0]
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(body), 1024):
                await response.write(body[start : start + 1024])
            await response.write_eof()
            return response
        headers = {"Content-Type": reply.content_type, **reply.headers}
        return web.Response(status=reply.status, body=body, headers=headers)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    """Start a scripted loopback server; stop it (and release hung handlers) afterwards."""
    state = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.server = server
    try:
        yield state
    finally:
        state.hang.set()
        await server.close()


async def pool_capacity(
    client: Any, sids: list[str], arrivals: Callable[[], int], within: float = 5.0
) -> int:
    """Start one ``get_call`` per SID against answers that hang; return how many arrive.

    The caller makes the server hang first, so no request of the probe can finish
    and free its connection: all of them arrive only if the pool has that many
    connections to give. A pool of ``max_connections`` that has leaked one (checked
    out and never given back) delivers ``max_connections - 1``. ``arrivals`` counts
    the requests the server has received: public behaviour, counted on the server.
    """
    before = arrivals()
    tasks = [asyncio.create_task(client.get_call(sid)) for sid in sids]
    try:
        async with asyncio.timeout(within):
            while arrivals() - before < len(sids):  # noqa: ASYNC110 - the server's count has no event
                await asyncio.sleep(0.005)
    except TimeoutError:
        pass
    reached = arrivals() - before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return reached
