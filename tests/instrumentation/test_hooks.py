"""The hook protocol, the counters behind CallsClient.stats and BulkProgress, against real servers."""

from __future__ import annotations

import logging

import pytest
import signalwire_calls as swc
from signalwire_calls.instrumentation import (
    AttemptEnded,
    ConcurrencyChanged,
    GaveUp,
    RequestEnded,
    RequestStarted,
    RetryScheduled,
    default_hooks,
)
from signalwire_calls.testing import FakeSignalWire

from conftest import PROJECT, SID, TOKEN, Reply, sample

NO_WAIT = swc.RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0)


class Recorder:
    """A custom hook: a plain callable that keeps every event."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class Quiet(Recorder):
    """A hook that never wants the per-request events."""

    def wants_requests(self) -> bool:
        return False


def scripted_client(scripted, *, hooks, retry=NO_WAIT):
    return swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url, retry=retry, hooks=hooks)


async def test_custom_hook_sees_a_request_its_attempts_and_its_retries_in_order(scripted):
    """503, 503, 200 reaches a hook as start, three attempts, two retries between, end."""
    scripted.script = [Reply(503, {}), Reply(503, {}), Reply(200, sample("call_real_2024.json"))]
    hook = Recorder()
    async with scripted_client(scripted, hooks=[hook]) as client:
        await client.get_call(SID)
    assert [
        "RequestStarted",
        "AttemptEnded",
        "RetryScheduled",
        "AttemptEnded",
        "RetryScheduled",
        "AttemptEnded",
        "RequestEnded",
    ] == hook.kinds()
    attempts = [e for e in hook.events if isinstance(e, AttemptEnded)]
    assert [(1, 503), (2, 503), (3, 200)] == [(a.attempt, a.status) for a in attempts]
    assert ["503", "503", None] == [a.error_type for a in attempts]
    retries = [e for e in hook.events if isinstance(e, RetryScheduled)]
    assert [(1, "503", 0.0), (2, "503", 0.0)] == [(r.attempt, r.reason, r.wait) for r in retries]
    end = hook.events[-1]
    assert isinstance(end, RequestEnded)
    assert (3, 200, None, SID) == (end.attempts, end.status, end.error, end.sid)
    start = hook.events[0]
    assert isinstance(start, RequestStarted)
    assert start.url.endswith(f"/Accounts/{PROJECT}/Calls/{SID}")


async def test_a_hook_that_wants_no_request_events_still_gets_retries_and_give_ups(scripted):
    """wants_requests() False: no per-request event is built, the rare ones still arrive."""
    scripted.default = lambda _: Reply(503, {})
    hook = Quiet()
    async with scripted_client(scripted, hooks=[hook]) as client:
        with pytest.raises(swc.ServerError):
            await client.get_call(SID)
    assert ["RetryScheduled"] * 3 + ["GaveUp"] == hook.kinds()
    gave_up = hook.events[-1]
    assert isinstance(gave_up, GaveUp)
    assert (SID, 4, "503", 503) == (gave_up.sid, gave_up.attempts, gave_up.reason, gave_up.status)


async def test_a_timeout_is_an_attempt_error_and_the_reason_timeout(scripted):
    """An attempt cut off by the timeout ends with TimeoutError; its retry's reason is 'timeout'."""
    scripted.script = [Reply(kind="hang"), Reply(200, sample("call_real_2024.json"))]
    hook = Recorder()
    client = swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, timeout=0.05, hooks=[hook]
    )
    async with client:
        await client.get_call(SID)
    first = next(e for e in hook.events if isinstance(e, AttemptEnded))
    assert (None, "timeout") == (first.status, first.error_type)
    assert isinstance(first.error, TimeoutError)
    assert ["timeout"] == [e.reason for e in hook.events if isinstance(e, RetryScheduled)]
    assert {"timeout": 1} == client.stats.retries_by_reason


async def test_a_failing_hook_is_logged_once_and_dropped_and_the_lookup_goes_on(scripted, caplog):
    """A hook that raises never breaks a lookup: it is logged with its traceback and not called again."""
    scripted.default = lambda _: Reply(200, sample("call_real_2024.json"))
    calls = []

    def broken(event: object) -> None:
        calls.append(event)
        raise RuntimeError("boom")

    after = Recorder()
    with caplog.at_level(logging.ERROR, logger="signalwire_calls"):
        async with scripted_client(scripted, hooks=[broken, after]) as client:
            first = await client.get_call(SID)
            await client.get_call(SID)
    assert SID == first.sid
    assert 1 == len(calls)
    assert 1 == len([r for r in caplog.records if "failed" in r.getMessage()])
    assert ["RequestStarted", "AttemptEnded", "RequestEnded"] * 2 == after.kinds()


async def test_stats_count_without_any_hook(scripted):
    """hooks=() reports to nobody, and the counters still count requests, attempts, retries."""
    scripted.script = [Reply(503, {}), Reply(429, {}, headers={"Retry-After": "0"})]
    scripted.default = lambda _: Reply(200, sample("call_real_2024.json"))
    async with scripted_client(scripted, hooks=()) as client:
        await client.get_call(SID)
        await client.get_call(SID)
        stats = client.stats
    assert (2, 4, 2, 1, 0) == (
        stats.requests,
        stats.attempts,
        stats.retries,
        stats.throttled,
        stats.failures,
    )
    assert {"503": 1, "429": 1} == stats.retries_by_reason
    assert (0, None) == (stats.concurrency, stats.lowest_concurrency)


async def test_stats_count_a_give_up_as_a_failure(scripted):
    """A request whose attempts all fail is one failure; a 404 (an answer) is none."""
    scripted.script = [Reply(404, {"message": "nope"})]
    scripted.default = lambda _: Reply(503, {})
    async with scripted_client(scripted, hooks=()) as client:
        with pytest.raises(swc.NotFoundError):
            await client.get_call(SID)
        with pytest.raises(swc.ServerError):
            await client.get_call(SID)
        stats = client.stats
    assert (2, 5, 3, 1) == (stats.requests, stats.attempts, stats.retries, stats.failures)


def test_default_hooks_are_logging_then_opentelemetry():
    """A client reports to a LoggingHook and an OpenTelemetryHook unless told otherwise."""
    assert ["LoggingHook", "OpenTelemetryHook"] == [type(h).__name__ for h in default_hooks()]


# ------------------------------------------------------------------ bulk jobs


async def test_a_throttled_job_shows_in_stats_progress_and_concurrency_events():
    """429s cut a job's concurrency: the counters, BulkProgress and the hook all say so."""
    hook = Quiet()
    seen: list[swc.BulkProgress] = []
    async with FakeSignalWire(calls=80, seed=5) as fake:
        fake.fail("*", status=429, times=12, retry_after=0)
        async with fake.client(retry=NO_WAIT, hooks=[hook]) as client:
            results = [
                r
                async for r in client.iter_call_results(
                    fake.call_sids, concurrency=32, on_progress=seen.append
                )
            ]
            during = seen[-1]
            stats = client.stats
    assert 80 == len(results)
    assert all(r.call is not None for r in results)
    assert 12 == stats.throttled
    assert 12 == stats.retries_by_reason["429"]
    assert stats.lowest_concurrency is not None
    assert stats.lowest_concurrency < 32
    assert 0 == stats.concurrency  # the job is over
    assert 12 == during.throttled
    assert 12 == during.retries
    assert during.limit < 32 or any(p.limit < 32 for p in seen)
    changes = [e for e in hook.events if isinstance(e, ConcurrencyChanged)]
    assert (0, 32) == (changes[0].previous, changes[0].current)
    assert 0 == changes[-1].current
    assert any(c.current < c.previous and c.current for c in changes)
