"""iter_call_results, get_calls and iter_calls against the emulator, counting on the server."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import signalwire_calls as swc
from signalwire_calls.testing import FakeSignalWire, FaultProfile

from conftest import pool_capacity

NO_WAIT = swc.RetryPolicy(attempts=6, wait_initial=0, wait_jitter=0, wait_max=0)
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=300, seed=7) as server:
        yield server


def client_tasks():
    """Tasks of the client side: the emulator's handler tasks share this loop."""
    mine = set()
    for task in asyncio.all_tasks():
        frames = task.get_stack()
        files = {f.f_code.co_filename for f in frames} | {task.get_coro().cr_code.co_filename}
        if not any("web_protocol" in f or "_fake_" in f or "locks.py" in f for f in files):
            mine.add(task)
    return mine


async def settle(condition, turns=200):
    """Give the loop turns (async-generator finalisers run as tasks) until condition holds."""
    for _ in range(turns):
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


async def collect(client, sids, **kwargs):
    return [r async for r in client.iter_call_results(sids, **kwargs)]


# ------------------------------------------------------------------- iter_call_results


async def test_every_sid_once_and_equal_to_server(fake):
    """Each distinct SID gives one result whose call equals what the server holds."""
    sids = fake.call_sids[:200]
    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(client, sids, concurrency=16)
    assert sorted(sids) == sorted(r.sid for r in results)
    for result in results:
        assert result.error is None
        assert fake.calls[result.sid] == result.call.to_dict()


async def test_in_flight_never_exceeds_concurrency(fake):
    """The server never sees more than `concurrency` requests at once."""
    fake.faults = FaultProfile(latency=(0.001, 0.004), seed=3)
    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(client, fake.call_sids, concurrency=8)
    assert len(results) == 300
    assert fake.max_in_flight <= 8
    assert fake.max_in_flight >= 2  # it really ran concurrently


async def test_connections_reused_not_one_per_call(fake):
    """A bulk job uses a handful of keep-alive connections, not one per call."""
    async with fake.client(retry=NO_WAIT) as client:
        await collect(client, fake.call_sids, concurrency=10)
    assert fake.connections <= 10


async def test_faults_complete_with_every_sid_exactly_once(fake):
    """Random 503/429/resets/truncations are absorbed: every SID exactly once, all found."""
    fake.faults = FaultProfile(
        error_rate=0.08, rate_limit_rate=0.05, reset_rate=0.03, truncate_rate=0.03, seed=11
    )
    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(client, fake.call_sids, concurrency=20)
    assert sum(fake.faults_injected.values()) > 20
    assert sorted(fake.call_sids) == sorted(r.sid for r in results)
    assert [r.sid for r in results if r.error is not None] == []
    assert all(fake.calls[r.sid] == r.call.to_dict() for r in results)


async def test_missing_and_invalid_are_results(fake):
    """A 404 is a NotFoundError result and a bad SID a ValueError result costing no request."""
    sids = [fake.call_sids[0], MISSING, "not-a-sid", fake.call_sids[1]]
    async with fake.client(retry=NO_WAIT) as client:
        results = {r.sid: r for r in await collect(client, sids)}
    assert set(sids) == set(results)
    assert isinstance(results[MISSING].error, swc.NotFoundError)
    assert isinstance(results["not-a-sid"].error, ValueError)
    assert results[fake.call_sids[0]].ok
    assert len(fake.requests) == 3


async def test_duplicates_fetched_once(fake):
    """Duplicate SIDs give one result and one request each."""
    sids = [fake.call_sids[0], fake.call_sids[1]] * 5
    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(client, sids)
    assert sorted(fake.call_sids[:2]) == sorted(r.sid for r in results)
    assert fake.attempts(fake.call_sids[0]) == 1


async def test_ordered_mode_keeps_input_order(fake):
    """ordered=True yields results in input order despite random latency."""
    fake.faults = FaultProfile(latency=(0.0, 0.005), seed=5)
    sids = fake.call_sids[:80][::-1]
    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(client, sids, concurrency=16, ordered=True)
    assert sids == [r.sid for r in results]


async def test_async_iterable_input(fake):
    """An async generator of SIDs is streamed through."""

    async def source():
        for sid in fake.call_sids[:50]:
            yield sid

    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(client, source(), concurrency=5)
    assert sorted(fake.call_sids[:50]) == sorted(r.sid for r in results)


async def test_rate_limited_sid_is_retried_not_failed(fake):
    """A SID that keeps getting 429 past the retry policy is tried again by the job."""
    sid = fake.call_sids[0]
    fake.fail(sid, status=429, times=3, retry_after=0)
    policy = swc.RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0)
    async with fake.client(retry=policy) as client:
        results = await collect(client, [sid, *fake.call_sids[1:20]], concurrency=4)
    by_sid = {r.sid: r for r in results}
    assert by_sid[sid].ok
    assert fake.attempts(sid) == 4


async def test_429s_shrink_concurrency(fake):
    """A burst of 429s halves the job's limit, visible in the progress reports."""
    fake.fail("*", status=429, times=30, retry_after=0)
    seen = []
    async with fake.client(retry=NO_WAIT) as client:
        results = await collect(
            client, fake.call_sids[:100], concurrency=32, on_progress=seen.append
        )
    assert len(results) == 100
    assert all(r.ok for r in results)
    assert min(p.limit for p in seen) < 32


async def test_progress_reports_totals(fake):
    """The progress hook reports done, failed and the total of a sized input."""
    seen = []
    sids = [*fake.call_sids[:30], MISSING]
    async with fake.client(retry=NO_WAIT) as client:
        await collect(client, sids, on_progress=seen.append)
    last = seen[-1]
    assert (31, 1, 31) == (last.done, last.failed, last.total)


async def test_break_leaves_no_tasks_or_connections(fake):
    """Breaking out mid-run cancels in-flight work: no tasks, no connections checked out."""
    fake.faults = FaultProfile(latency=(0.01, 0.02), seed=2)
    before = client_tasks()
    async with fake.client(retry=NO_WAIT, max_connections=10) as client:
        async for _ in client.iter_call_results(fake.call_sids, concurrency=10):
            break
        assert await settle(lambda: client_tasks() == before)
        fake.fail("*", kind="hang", times=10)
        probe = fake.call_sids[-10:]  # SIDs the broken-off job never reached
        assert 10 == await pool_capacity(
            client, probe, lambda: sum(fake.attempts(sid) for sid in probe)
        )
    assert client.closed


async def test_aclosing_cleans_up_at_once(fake):
    """With contextlib.aclosing, leaving the loop has cancelled everything already."""
    import contextlib

    fake.faults = FaultProfile(latency=(0.01, 0.02), seed=2)
    before = client_tasks()
    async with fake.client(retry=NO_WAIT, max_connections=10) as client:
        async with contextlib.aclosing(
            client.iter_call_results(fake.call_sids, concurrency=10)
        ) as results:
            async for _ in results:
                break
        assert client_tasks() == before
        fake.fail("*", kind="hang", times=10)
        probe = fake.call_sids[-10:]  # SIDs the broken-off job never reached
        assert 10 == await pool_capacity(
            client, probe, lambda: sum(fake.attempts(sid) for sid in probe)
        )


async def test_cancelling_consumer_leaves_no_tasks(fake):
    """Cancelling the task that consumes iter_call_results leaves nothing running."""
    fake.faults = FaultProfile(latency=(0.01, 0.02), seed=2)
    before = client_tasks()
    async with fake.client(retry=NO_WAIT, max_connections=10) as client:
        started = asyncio.Event()

        async def consume():
            async for _ in client.iter_call_results(fake.call_sids, concurrency=10):
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
        assert await settle(lambda: client_tasks() == before)
        fake.fail("*", kind="hang", times=10)
        probe = fake.call_sids[-10:]  # SIDs the broken-off job never reached
        assert 10 == await pool_capacity(
            client, probe, lambda: sum(fake.attempts(sid) for sid in probe)
        )
    assert await settle(lambda: client_tasks() == before)


async def test_fetch_calls_partitions_every_sid(fake):
    """get_calls puts each distinct SID in exactly one of found, missing and failed."""
    sids = [*fake.call_sids[:10], MISSING, "bad"]
    async with fake.client(retry=NO_WAIT) as client:
        result = await client.get_calls(sids)
    assert set(fake.call_sids[:10]) == set(result.found)
    assert (MISSING,) == result.missing
    assert ["bad"] == list(result.failed)
    assert len(result) == 12
    with pytest.raises(swc.BulkLookupError, match="1 lookup"):
        result.raise_for_failures()


async def test_concurrency_is_validated(fake):
    """A non-positive concurrency is a ValueError."""
    async with fake.client() as client:
        with pytest.raises(ValueError, match="concurrency"):
            await collect(client, fake.call_sids[:1], concurrency=0)


# --------------------------------------------------------------------- listing


async def test_iter_calls_pages_through_everything_newest_first(fake):
    """All calls come back once, newest first, across many pages."""
    async with fake.client(retry=NO_WAIT) as client:
        calls = [c async for c in client.iter_calls(page_size=37)]
    assert fake.call_sids == [c.sid for c in calls]
    pages = [r for r in fake.requests if r.sid is None]
    assert len(pages) == 9  # ceil(300 / 37)
    assert all("PageToken" in r.query for r in pages[1:])


async def test_iter_calls_filters_and_limit(fake):
    """Filters are sent with the API's names and carried by next_page_uri; limit stops early."""
    expected = [s for s in fake.call_sids if fake.calls[s]["status"] == "completed"]
    async with fake.client(retry=NO_WAIT) as client:
        calls = [c async for c in client.iter_calls(status="completed", page_size=20)]
        first = [c async for c in client.iter_calls(status="completed", limit=7)]
    assert expected == [c.sid for c in calls]
    assert expected[:7] == [c.sid for c in first]
    assert all(r.query.get("Status") == "completed" for r in fake.requests if r.sid is None)


async def test_iter_calls_time_range(fake):
    """started_after/started_before select calls by start time (sent as RFC 2822)."""
    starts = sorted(
        datetime.strptime(c["start_time"], "%a, %d %b %Y %H:%M:%S %z")
        for c in fake.calls.values()
        if c["start_time"]
    )
    after, before = starts[50], starts[150]
    async with fake.client(retry=NO_WAIT) as client:
        calls = [c async for c in client.iter_calls(started_after=after, started_before=before)]
    assert calls
    assert all(after <= c.start_time <= before for c in calls)
    query = next(r.query for r in fake.requests if r.sid is None)
    assert query["StartTime>"].endswith("+0000")


async def test_iter_calls_validates_before_any_request(fake):
    """A bad filter is a ValueError at call time, with no request sent."""
    async with fake.client() as client:
        with pytest.raises(ValueError):
            client.iter_calls(status="done-ish")
        with pytest.raises(ValueError):
            client.iter_calls(started_after=datetime(2026, 1, 1))  # naive
        with pytest.raises(ValueError):
            client.iter_calls(page_size=5000)
        with pytest.raises(ValueError, match="started_after"):
            client.iter_calls(windows=4)
    assert fake.requests == []


async def test_windows_yield_each_call_once(fake):
    """Windowed listing pages concurrently and yields each call exactly once."""
    times = [
        datetime.strptime(c["start_time"], "%a, %d %b %Y %H:%M:%S %z")
        for c in fake.calls.values()
        if c["start_time"]
    ]
    after, before = min(times), max(times) + timedelta(seconds=1)
    async with fake.client(retry=NO_WAIT) as client:
        serial = [
            c.sid async for c in client.iter_calls(started_after=after, started_before=before)
        ]
        windowed = [
            c.sid
            async for c in client.iter_calls(started_after=after, started_before=before, windows=6)
        ]
    assert len(windowed) == len(set(windowed))
    assert sorted(serial) == sorted(windowed)


async def test_windows_edge_call_not_duplicated(fake):
    """A call exactly on a window edge (inclusive bounds on the server) comes out once."""
    edge = datetime(2026, 10, 1, 12, 0, 0, tzinfo=UTC)
    sid = "11111111-2222-4333-8444-555555555555"
    fake.add_call(sid=sid, start_time=edge, date_created=edge, end_time=edge + timedelta(seconds=5))
    after, before = edge - timedelta(hours=1), edge + timedelta(hours=1)
    async with fake.client(retry=NO_WAIT) as client:
        sids = [
            c.sid
            async for c in client.iter_calls(started_after=after, started_before=before, windows=2)
        ]
    assert sids.count(sid) == 1


async def test_real_escaped_next_page_uri_is_followed(fake):
    """The service's \\u0026-escaped next_page_uri is followed without doubling /api/laml."""
    async with fake.client(retry=NO_WAIT) as client:
        [c async for c in client.iter_calls(page_size=100)]
    paths = [r.path for r in fake.requests]
    assert all(p.startswith("/api/laml/2010-04-01/Accounts/") for p in paths)
    assert not any("/api/laml/2010-04-01/api/laml" in p for p in paths)


async def test_list_page_decode_error_names_index(scripted):
    """A bad call inside a page names its index in the page."""
    from conftest import PROJECT, TOKEN, Reply, sample

    page = sample("list_page_real.json")
    page["calls"][1]["duration"] = "x"
    page["next_page_uri"] = None
    scripted.script = [Reply(200, json.dumps(page))]
    async with swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url) as client:
        with pytest.raises(swc.DecodeError) as info:
            [c async for c in client.iter_calls()]
    assert info.value.field == "$.calls[1].duration"


async def test_gathered_lookups_beyond_pool_do_not_time_out(fake):
    """Waiting for a pooled connection does not count against an attempt's timeout."""
    fake.faults = FaultProfile(latency=(0.02, 0.02), seed=1)
    policy = swc.RetryPolicy.no_retries()
    async with fake.client(retry=policy, max_connections=2, timeout=0.3) as client:
        calls = await asyncio.gather(*(client.get_call(s) for s in fake.call_sids[:60]))
    assert fake.call_sids[:60] == [c.sid for c in calls]
    assert fake.max_in_flight <= 2


async def test_broken_bodies_become_results_and_count_as_failed(scripted):
    """A body that is not a call, or is another call, is that SID's DecodeError; the rest succeed."""
    from conftest import PROJECT, TOKEN, Reply, sample

    call = sample("call_real_2024.json")
    good, broken, other = (f"{n:08d}-2a6b-4f3e-8c12-5b9a0e6f3d21" for n in range(3))

    def answer(request):
        sid = request.path.rsplit("/", 1)[-1]
        if sid == broken:
            return Reply(200, {**call, "sid": sid, "duration": "five"})
        if sid == other:
            return Reply(200, {**call, "sid": good})
        return Reply(200, {**call, "sid": sid})

    scripted.default = answer
    progress = []
    async with swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url) as client:
        results = {
            r.sid: r
            async for r in client.iter_call_results(
                [good, broken, other], concurrency=3, on_progress=progress.append
            )
        }
    assert good == results[good].call.sid
    assert isinstance(results[broken].error, swc.DecodeError)
    assert "$.duration" == results[broken].error.field
    assert broken in str(results[broken].error)
    assert isinstance(results[other].error, swc.DecodeError)
    assert "$.sid" == results[other].error.field
    assert (3, 2) == (progress[-1].done, progress[-1].failed)


# ------------------------------------------------ issue 14: reach, pool, fail fast


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_api_stops_a_bulk_job_with_one_error():
    """Refused connections before any success end the job with UnreachableError, naming the rest."""
    port = _closed_port()
    sids = [str(uuid.UUID(int=i + 1)) for i in range(2_000)]
    async with swc.CallsClient(
        "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
        "PTtest",
        base_url=f"http://127.0.0.1:{port}/api/laml/2010-04-01",
        retry=swc.RetryPolicy(attempts=2, wait_initial=0, wait_max=0, wait_jitter=0),
    ) as client:
        with pytest.raises(swc.UnreachableError) as caught:
            await client.get_calls(sids)
    err = caught.value
    assert f"127.0.0.1:{port}" == err.host
    assert err.not_tried is not None
    assert err.not_tried > 1_900
    assert isinstance(err, swc.TransportError)


async def test_concurrency_above_a_caller_sessions_connector_is_refused():
    """A pinned concurrency above the caller's connector limit is a ConfigError, not a cap."""
    import pytest

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as session:
        client = swc.CallsClient(
            "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
            "PTtest",
            base_url="http://127.0.0.1:1/api/laml/2010-04-01",
            session=session,
        )
        with pytest.raises(swc.ConfigError, match="10 connections"):
            client.iter_call_results([], concurrency=500)
        with pytest.raises(swc.ConfigError, match="not both"):
            client.iter_call_results([], concurrency=5, max_concurrency=50)
        await client.aclose()
