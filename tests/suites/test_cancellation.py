"""Cancellation and timeouts: cancelled at any await point, the client leaves nothing behind.

Each test cancels a call after ``n`` turns of the event loop, for every ``n`` until
the call finishes first, so every await point on the way (pool slot, connect,
send, headers, body, retry sleep, decode, the next page, the bulk workers) gets
cancelled at least once. After each cancellation no client task may be left, no
connection checked out, and the client must still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import signalwire_calls as swc
from signalwire_calls.testing import FakeSignalWire

from conftest import PROJECT, SID, TOKEN, Reply, pool_capacity, sample

CALL = sample("call_real_2024.json")
NO_WAIT = swc.RetryPolicy(attempts=3, wait_initial=0, wait_jitter=0, wait_max=0)
#: Stop once the call completed before the cancel this many turns in a row.
SETTLED_RUNS = 3


def client_tasks() -> set[asyncio.Task[Any]]:
    """Tasks of the client side (the loopback servers' handler tasks share this loop)."""
    mine = set()
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is current:
            continue
        files = {f.f_code.co_filename for f in task.get_stack()}
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None:
            files.add(code.co_filename)
        server_side = ("web_protocol", "_fake_", "conftest")
        if any(mark in f for f in files for mark in server_side):
            continue
        if files and all(f.endswith("asyncio/locks.py") for f in files):
            continue  # the emulator's wait_for(Event.wait()) of a hanging answer
        mine.add(task)
    return mine


async def settle(condition: Callable[[], bool], turns: int = 100) -> bool:
    """Give the loop turns until ``condition`` holds (finalisers run as tasks)."""
    for _ in range(turns):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


async def assert_clean(client: swc.CallsClient) -> None:
    """Assert no client task is left (the pool is checked once, at the end: see whole_pool)."""
    assert await settle(lambda: not client_tasks()), client_tasks()


#: The pool of the clients here: small, so that probing all of it is cheap.
POOL = 6


async def assert_whole_pool(client: swc.CallsClient, server: Any) -> None:
    """Assert the client can still have POOL requests at the server at once: none leaked."""
    if isinstance(server, FakeSignalWire):
        server.fail("*", kind="hang", times=POOL)
        sids = server.call_sids[-POOL:]

        def arrivals() -> int:
            return sum(server.attempts(sid) for sid in sids)
    else:
        server.script[:] = [Reply(kind="hang") for _ in range(POOL)]
        sids = [SID] * POOL

        def arrivals() -> int:
            return len(server.hits)

    assert POOL == await pool_capacity(client, sids, arrivals)
    if isinstance(server, FakeSignalWire):
        server.clear_faults()
    else:
        server.script.clear()
        server.hang.set()


async def cancel_everywhere(
    client: swc.CallsClient,
    server: Any,
    make: Callable[[], Awaitable[Any]],
    check: Callable[[Any], None],
) -> int:
    """Cancel ``make()`` after 0, 1, 2, ... loop turns until it finishes first; return the cancels."""
    cancelled = finished = turns = 0
    while finished < SETTLED_RUNS:
        task = asyncio.ensure_future(make())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        try:
            result = await task
        except asyncio.CancelledError:
            cancelled += 1
            finished = 0
        else:
            check(result)
            finished += 1
        await assert_clean(client)
        turns += 1
    check(await make())  # still usable
    await assert_clean(client)
    await assert_whole_pool(client, server)
    return cancelled


@pytest.mark.parametrize(
    "script",
    [
        [],
        [Reply(503), Reply(kind="reset")],
        [
            Reply(429, {"code": 20429}, headers={"Retry-After": "0"}),
            Reply(200, CALL, kind="truncate"),
        ],
    ],
    ids=["plain", "503-then-reset", "429-then-truncated"],
)
async def test_get_call_cancelled_at_every_await_point(scripted, script):
    """Cancelling get_call anywhere, through its retries too, leaves no task and no connection."""
    scripted.default = lambda _: Reply(200, CALL, kind="chunked")
    async with swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, max_connections=POOL
    ) as client:

        async def call() -> swc.Call:
            scripted.script[:] = [Reply(r.status, r.body, r.headers, r.kind) for r in script]
            return await client.get_call(CALL["sid"])

        cancels = await cancel_everywhere(
            client, scripted, call, lambda c: _same_sid(c, CALL["sid"])
        )
    assert cancels >= 5


def _same_sid(call: swc.Call, sid: str) -> None:
    assert sid == call.sid


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=120, seed=11) as server:
        yield server


async def test_get_calls_cancelled_at_every_await_point(fake):
    """Cancelling a iter_call_results loop anywhere cancels its workers and returns every connection."""
    sids = fake.call_sids[:40]
    async with fake.client(retry=NO_WAIT, max_connections=POOL) as client:

        async def consume() -> list[swc.CallResult]:
            return [r async for r in client.iter_call_results(sids, concurrency=8)]

        def check(results: list[swc.CallResult]) -> None:
            assert sorted(sids) == sorted(r.sid for r in results)
            assert all(r.ok for r in results)

        cancels = await cancel_everywhere(client, fake, consume, check)
    assert cancels >= 10


async def test_iter_calls_cancelled_at_every_await_point(fake):
    """Cancelling an iter_calls loop anywhere, between or inside pages, leaves nothing behind."""
    async with fake.client(retry=NO_WAIT, max_connections=POOL) as client:

        async def consume() -> list[swc.Call]:
            return [c async for c in client.iter_calls(page_size=25)]

        def check(calls: list[swc.Call]) -> None:
            assert fake.call_sids == [c.sid for c in calls]

        cancels = await cancel_everywhere(client, fake, consume, check)
    assert cancels >= 5


@pytest.mark.parametrize("method", ["iter_call_results", "iter_calls"])
async def test_breaking_out_leaves_nothing_running(fake, method):
    """Breaking out of iter_call_results or iter_calls (no aclosing) stops it once it is collected."""
    async with fake.client(retry=NO_WAIT, max_connections=POOL) as client:
        if method == "iter_call_results":
            stream = client.iter_call_results(fake.call_sids, concurrency=16)
        else:
            stream = client.iter_calls(page_size=10)
        async for _ in stream:
            break
        del stream
        gc.collect()
        await assert_clean(client)
        assert fake.call_sids[0] == (await client.get_call(fake.call_sids[0])).sid
        await assert_whole_pool(client, fake)


async def test_timeout_around_get_call_raises_timeout_error(scripted):
    """asyncio.timeout() around a hanging get_call raises TimeoutError, and the client goes on working."""
    scripted.script[:] = [Reply(kind="hang")]
    scripted.default = lambda _: Reply(200, CALL)
    async with swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url, timeout=30) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.get_call(CALL["sid"])
        await assert_clean(client)
        assert CALL["sid"] == (await client.get_call(CALL["sid"])).sid
    assert len(scripted.hits) == 2  # no retry of the attempt the user's timeout cut off


async def test_wait_for_around_get_call(scripted):
    """asyncio.wait_for() around a hanging get_call raises TimeoutError and leaves nothing behind."""
    scripted.default = lambda _: Reply(kind="hang")
    async with swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, max_connections=POOL
    ) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get_call(SID), 0.05)
        await assert_clean(client)
        await assert_whole_pool(client, scripted)


async def test_timeout_that_does_not_expire_changes_nothing(scripted):
    """A generous asyncio.timeout() around get_call returns the call as usual."""
    scripted.default = lambda _: Reply(200, CALL)
    async with swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url) as client:
        async with asyncio.timeout(30):
            call = await client.get_call(CALL["sid"])
    assert CALL["sid"] == call.sid


async def test_client_timeout_is_a_request_timeout_error_not_timeout_error(scripted):
    """The client's own per-attempt timeout raises RequestTimeoutError, which a user's timeout block does not swallow."""
    scripted.default = lambda _: Reply(kind="hang")
    async with swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, timeout=0.05, retry=NO_WAIT
    ) as client:
        with pytest.raises(swc.RequestTimeoutError):
            async with asyncio.timeout(30):
                await client.get_call(CALL["sid"])
        await assert_clean(client)
    assert len(scripted.hits) == NO_WAIT.attempts


async def test_timeout_around_iter_calls(fake):
    """asyncio.timeout() around an iter_calls loop whose second page hangs raises TimeoutError cleanly."""
    async with fake.client(retry=NO_WAIT, max_connections=POOL) as client:
        seen: list[swc.Call] = []

        async def consume() -> None:
            async with asyncio.timeout(0.5):
                async for call in client.iter_calls(page_size=10):
                    seen.append(call)
                    if len(seen) == 10:
                        fake.fail("list", kind="hang", times=1)

        with pytest.raises(TimeoutError):
            await consume()
        assert fake.call_sids[:10] == [c.sid for c in seen]
        await assert_clean(client)


async def test_timeout_around_get_calls(fake):
    """asyncio.timeout() around a iter_call_results loop with a hanging SID raises TimeoutError, workers gone."""
    fake.fail(fake.call_sids[5], kind="hang", times=1)
    async with fake.client(retry=NO_WAIT, max_connections=POOL) as client:
        done: list[str] = []

        async def consume() -> None:
            async with asyncio.timeout(0.5):
                async for result in client.iter_call_results(fake.call_sids[:20], concurrency=4):
                    done.append(result.sid)  # noqa: PERF401 - kept as they stream in

        with pytest.raises(TimeoutError):
            await consume()
        assert fake.call_sids[5] not in done
        await assert_clean(client)
        await assert_whole_pool(client, fake)


async def test_aclose_during_requests_leaves_nothing(fake):
    """Closing the client while requests are in flight fails them with an error, and leaves no task."""
    fake.fail("*", kind="hang", times=None)
    client = fake.client(retry=NO_WAIT, max_connections=POOL)
    async with client:
        tasks = [asyncio.ensure_future(client.get_call(sid)) for sid in fake.call_sids[:5]]
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            task.cancel()
    assert all(isinstance(r, swc.TransportError) for r in results), results
    assert await settle(lambda: not client_tasks())


async def test_the_leak_detector_sees_a_leftover_task():
    """A task left running counts as left behind, so the checks above can fail."""
    stray = asyncio.ensure_future(asyncio.sleep(3600))
    await asyncio.sleep(0)
    assert {stray} == client_tasks()
    stray.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stray
    assert set() == client_tasks()
