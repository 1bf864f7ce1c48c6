"""Fuzz the response path end to end: hostile bodies from a loopback server.

Every answer a broken or hostile server could give (random bytes, wrong content
types, truncated or mutated JSON, deep nesting, huge and compressed bodies, error
statuses with junk bodies, a trickle of bytes) must end in a :class:`Call` or a
:class:`SignalWireError` with a short message, in bounded memory and time.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import tracemalloc
import uuid
import zlib
from typing import Any

import pytest
import signalwire_calls as swc
from aiohttp import web

from conftest import PROJECT, TOKEN, Reply, sample

CALL = sample("call_real_2024.json")
FAST = swc.RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0)
CAP = 256 * 1024
CONTENT_TYPES = (
    "application/json; charset=utf-8",
    "application/json",
    "text/html; charset=utf-8",
    "text/plain",
    "application/octet-stream",
    "application/xml",
    "application/json; charset=latin-1",
    "",
)
DEEP = (64, 1_000, 5_000, 100_000)


def client_for(scripted, **kwargs):
    options: dict[str, Any] = {"retry": FAST, "timeout": 5.0, "max_body_size": CAP}
    options.update(kwargs)
    return swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url, **options)


def call_body(sid: str) -> dict[str, Any]:
    return {**CALL, "sid": sid}


def deep(n: int, rng: random.Random) -> bytes:
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    return opener * n + b"1" + closer * (n if rng.random() < 0.5 else n // 2)


def mutate(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(3)
        pos = rng.randrange(len(data))
        if op == 0:
            data[pos] = rng.randrange(256)
        elif op == 1:
            del data[pos]
        else:
            data.insert(pos, rng.choice(b'{}[]",:0\\\x00\xff'))
    return bytes(data)


def hostile_reply(sid: str, rng: random.Random) -> Reply:  # noqa: C901, PLR0911, PLR0912
    """Return one hostile answer for ``sid``, drawn from every family of bad input."""
    good = json.dumps(call_body(sid)).encode()
    content_type = rng.choice(CONTENT_TYPES) or "application/json"
    family = rng.randrange(12)
    if family == 0:  # random bytes
        return Reply(200, rng.randbytes(rng.randrange(0, 4096)), content_type=content_type)
    if family == 1:  # a valid call, served under a wrong content type
        return Reply(200, good, content_type=content_type)
    if family == 2:  # cut short, though the length header matches what is sent
        return Reply(200, good[: rng.randrange(len(good))], content_type=content_type)
    if family == 3:  # flipped, dropped and inserted bytes
        return Reply(200, mutate(good, rng), content_type=content_type)
    if family == 4:  # valid JSON that is not an object
        value = rng.choice([[], [call_body(sid)], "call", 42, 1.5, None, True, {"calls": []}])
        return Reply(200, json.dumps(value).encode())
    if family == 5:  # deep nesting, at the top or inside a field
        inner = deep(rng.choice(DEEP), rng)
        if rng.random() < 0.5:
            return Reply(200, inner)
        key = rng.choice(list(CALL))
        return Reply(200, good.replace(json.dumps(key).encode() + b":", b'"x":' + inner + b",", 1))
    if family == 6:  # an error status with a junk body
        status = rng.choice([300, 302, 400, 401, 403, 404, 409, 418, 422, 429, 451, 500, 503, 599])
        body = rng.choice(
            [
                rng.randbytes(rng.randrange(0, 2048)),
                deep(rng.choice(DEEP), rng),
                b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                b'{"errors": [' + b"[" * 50_000 + b"]}",
                json.dumps({"code": "x" * 5000, "message": ["no"], "errors": 3}).encode(),
                "\u00e9\u00e8\ud7ff".encode("utf-16"),
                b"",
            ]
        )
        headers = {"Retry-After": rng.choice(["-5", "nan", "1e309", "Wed, 99 Foo 2019", "0"])}
        return Reply(status, body, headers=headers, content_type=content_type)
    if family == 7:  # a compressed body that does not decompress
        encoding = rng.choice(["gzip", "deflate", "br", "x-unknown"])
        return Reply(200, rng.randbytes(512), headers={"Content-Encoding": encoding})
    if family == 8:  # chunked random bytes
        return Reply(200, rng.randbytes(rng.randrange(1, 8192)), kind="chunked")
    if family == 9:  # the wrong call, or a call whose sid is not a string
        other = call_body(str(uuid.UUID(int=rng.getrandbits(128))))
        if rng.random() < 0.5:
            other["sid"] = rng.choice([None, 7, [sid], {"sid": sid}])
        return Reply(200, json.dumps(other).encode())
    if family == 10:  # a connection dropped, or a body broken off
        return Reply(200, good, kind=rng.choice(["reset", "truncate"]))
    # an empty success, or 204
    return Reply(rng.choice([200, 201, 204]), b"", content_type=content_type)


async def test_hostile_bodies_give_a_call_or_a_signalwire_error(scripted):
    """Every hostile answer ends in a Call or a SignalWireError with a short message."""
    rng = random.Random(20261112)  # a reproducible corpus
    replies = {str(uuid.UUID(int=rng.getrandbits(128))): None for _ in range(1_200)}
    for sid in replies:
        replies[sid] = hostile_reply(sid, rng)
    scripted.default = lambda request: replies[request.path.rsplit("/", 1)[-1]]
    outcomes: dict[str, object] = {}
    gate = asyncio.Semaphore(32)

    async def one(sid: str) -> None:
        async with gate:
            try:
                outcomes[sid] = await client.get_call(sid)
            except swc.SignalWireError as err:
                outcomes[sid] = err

    async with client_for(scripted) as client:
        await asyncio.gather(*(one(sid) for sid in replies))
    assert len(replies) == len(outcomes)
    kinds = {type(o).__name__ for o in outcomes.values()}
    assert {"Call", "DecodeError", "TransportError", "NotFoundError", "ServerError"} <= kinds
    for sid, outcome in outcomes.items():
        if isinstance(outcome, swc.Call):
            assert sid == outcome.sid
        else:
            assert len(str(outcome)) < 1_000, str(outcome)[:200]
            assert TOKEN not in str(outcome)


@pytest.mark.parametrize("status", [200, 404, 500])
@pytest.mark.parametrize("depth", [1_000, 100_000, 1_000_000])
async def test_deep_nesting_is_a_clear_error(scripted, status, depth):
    """A deeply nested body is a DecodeError (2xx) or an APIError of its status, not a RecursionError."""
    scripted.default = lambda _: Reply(status, b"[" * depth + b"]" * depth)
    async with client_for(scripted, max_body_size=4 * depth) as client:
        with pytest.raises(swc.SignalWireError) as caught:
            await client.get_call(CALL["sid"])
    if status == 200:
        assert isinstance(caught.value, swc.DecodeError)
    else:
        assert status == caught.value.status


async def test_huge_chunked_body_is_refused_in_bounded_memory(scripted):
    """A 32 MiB chunked body against a 256 KiB cap is refused with little memory used."""
    body = b" " * (32 * 1024 * 1024)  # built before measuring: the server shares the process
    scripted.default = lambda _: Reply(200, body, kind="chunked")
    async with client_for(scripted) as client:
        tracemalloc.start()
        try:
            with pytest.raises(swc.DecodeError, match="Refusing"):
                await client.get_call(CALL["sid"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * CAP


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compression_bomb_is_refused_in_bounded_memory(scripted, encoding):
    """A small compressed body that inflates to 64 MiB is refused under the cap, not inflated."""
    raw = b" " * (64 * 1024 * 1024)
    body = gzip.compress(raw, 9) if encoding == "gzip" else zlib.compress(raw, 9)
    assert len(body) < CAP
    scripted.default = lambda _: Reply(200, body, headers={"Content-Encoding": encoding})
    async with client_for(scripted) as client:
        tracemalloc.start()
        try:
            with pytest.raises(swc.DecodeError, match="Refusing"):
                await client.get_call(CALL["sid"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 * CAP


async def test_hung_server_is_a_timeout_error(scripted):
    """A server that never answers gives RequestTimeoutError after the policy's attempts."""
    scripted.default = lambda _: Reply(kind="hang")
    async with client_for(scripted, timeout=0.2) as client:
        with pytest.raises(swc.RequestTimeoutError, match=r"timed out after 0\.2s \(2 attempt"):
            await client.get_call(CALL["sid"])
    assert len(scripted.hits) == 2


async def test_trickling_body_is_a_timeout_error():
    """A server that sends the body a byte at a time past the timeout gives RequestTimeoutError."""
    sent = []

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 10_000
        await response.prepare(request)
        for _ in range(10_000):
            await response.write(b" ")
            sent.append(1)
            await asyncio.sleep(0.01)
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", trickle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with swc.CallsClient(
            PROJECT,
            TOKEN,
            base_url=f"http://127.0.0.1:{port}/api",
            retry=swc.RetryPolicy.no_retries(),
            timeout=0.3,
        ) as client:
            with pytest.raises(swc.RequestTimeoutError):
                await client.get_call(CALL["sid"])
    finally:
        await runner.cleanup()
    assert 0 < len(sent) < 10_000
