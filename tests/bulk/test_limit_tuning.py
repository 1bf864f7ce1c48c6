"""The self-tuning limit, the de-duplication store and the early stop of a bulk job."""

# The house style puts the expected value first, which SIM300 calls a Yoda condition.
from __future__ import annotations

import asyncio
import uuid

import pytest
from signalwire_calls._bulk import AdaptiveLimit, fan_out
from signalwire_calls._bulk._seen import SeenKeys
from signalwire_calls._checks import sid_bytes
from signalwire_calls._errors import NotFoundError

BASE = 0.040


def feed(limit: AdaptiveLimit, rtt: float, rounds: int = 1) -> None:
    """Report ``rounds`` full rounds of successes that each took ``rtt`` seconds."""
    for _ in range(rounds):
        for _ in range(max(limit.current, 16)):
            limit.succeeded(limit.generation, rtt)


def capacity_rtt(limit: int, capacity: int, per_extra: float = 0.001) -> float:
    """The round trip of a server that slows down past ``capacity`` calls in flight."""
    return BASE + max(0, limit - capacity) * per_extra


def test_slow_start_doubles_while_latency_holds():
    """Each round at the no-load round trip doubles the limit, up to the ceiling."""
    limit = AdaptiveLimit(1000, initial=32, tune=True)
    feed(limit, BASE, rounds=3)
    assert 256 == limit.current
    feed(limit, BASE, rounds=5)
    assert 1000 == limit.current


def test_settles_near_a_servers_capacity_without_overshooting():
    """Against a server that slows past 200 in flight, the limit ends where throughput is >= 0.9."""
    limit = AdaptiveLimit(1000, initial=32, tune=True)
    for _ in range(60):
        feed(limit, capacity_rtt(limit.current, 200))
    throughput = limit.current / capacity_rtt(limit.current, 200)
    assert throughput >= 0.9 * 200 / BASE
    assert limit.current <= 240
    assert limit.base_rtt == pytest.approx(BASE, rel=0.02)


def test_rising_latency_cuts_the_limit_and_opens_a_generation():
    """A round trip that doubles at the same limit lowers it and makes older slots stale."""
    limit = AdaptiveLimit(1000, initial=400, tune=True)
    feed(limit, BASE)  # no queue: slow start doubles
    generation = limit.generation
    feed(limit, 2 * BASE, rounds=2)
    assert limit.current < 800
    assert limit.generation > generation


def test_throttle_in_slow_start_halves_then_later_bursts_cut_a_tenth():
    """A 429 in slow start halves the limit; a later burst of 429s cuts it once by 10%."""
    limit = AdaptiveLimit(1000, initial=200, tune=True, backoff=0.9)
    assert limit.throttled(limit.generation)
    assert 100 == limit.current
    generation = limit.generation
    assert limit.throttled(generation)
    assert not limit.throttled(generation)  # the same burst: stale
    assert 90 == limit.current


def test_after_a_throttle_growth_is_one_slot_per_round():
    """For a while after a 429 the limit probes upward by one slot a round."""
    limit = AdaptiveLimit(1000, initial=100, tune=True, backoff=0.9)
    limit.throttled(limit.generation)
    start = limit.current
    feed(limit, BASE, rounds=5)
    assert start + 5 == limit.current


def test_tuned_limit_ignores_calls_without_a_round_trip():
    """Successes reported without a round trip (retried calls) do not close a round."""
    limit = AdaptiveLimit(100, initial=10, tune=True)
    for _ in range(1000):
        limit.succeeded(limit.generation)
    assert 10 == limit.current


def test_initial_and_backoff_are_checked():
    """An initial limit above the maximum or a backoff outside (0, 1) is refused."""
    with pytest.raises(ValueError, match="initial"):
        AdaptiveLimit(10, initial=11)
    with pytest.raises(ValueError, match="backoff"):
        AdaptiveLimit(10, backoff=1.0)


def test_seen_keys_stay_exact_after_moving_to_the_compact_store():
    """Keys that moved from the set to the compact store are still found, and others not."""
    seen: SeenKeys[str] = SeenKeys(sid_bytes, recent_max=8)
    sids = [str(uuid.UUID(int=i)) for i in range(1, 50)]
    for sid in sids:
        assert sid not in seen
        seen.add(sid)
    assert all(sid in seen for sid in sids)
    assert str(uuid.UUID(int=10_000)) not in seen
    seen.close()


async def test_job_with_a_compact_store_gives_each_distinct_key_once():
    """A job whose de-duplication spills to the compact store still yields each key once."""
    sids = [str(uuid.UUID(int=i % 5000 + 1)) for i in range(20_000)]

    async def work(sid: str) -> str:
        await asyncio.sleep(0)
        return sid

    got = [o.key async for o in fan_out(sids, work, concurrency=8, compact=sid_bytes)]
    assert sorted(set(sids)) == sorted(got)


async def test_distinct_input_keeps_no_state_and_repeats_are_worked_again():
    """With distinct=True nothing is remembered: a repeated key is worked on twice."""
    calls: list[int] = []

    async def work(key: int) -> int:
        calls.append(key)
        return key

    got = [o.key async for o in fan_out([1, 2, 1], work, concurrency=2, distinct=True)]
    assert [1, 1, 2] == sorted(got)
    assert [1, 1, 2] == sorted(calls)


class UnreachableError(Exception):
    """What ``abort`` turns a connection failure into."""


def abort_on_oserror(error: Exception, not_tried: int | None) -> BaseException | None:
    return UnreachableError(not_tried) if isinstance(error, OSError) else None


async def test_nothing_reachable_stops_the_job_after_the_first_failure():
    """When the first outcomes are connection failures, the job raises once and stops trying."""
    tried: list[int] = []

    async def work(key: int) -> int:
        tried.append(key)
        await asyncio.sleep(0)
        raise ConnectionRefusedError("refused")

    with pytest.raises(UnreachableError) as caught:
        [o async for o in fan_out(range(10_000), work, concurrency=4, abort=abort_on_oserror)]
    assert len(tried) <= 8
    assert caught.value.args[0] >= 10_000 - 8


async def test_an_answer_first_means_later_outages_are_reported_per_key():
    """Once a key has had an answer (a 404 counts), a connection failure is that key's outcome."""

    async def work(key: int) -> int:
        await asyncio.sleep(0)
        if key == 0:
            raise NotFoundError(404)
        raise ConnectionRefusedError("refused")

    outcomes = [o async for o in fan_out(range(5), work, concurrency=1, abort=abort_on_oserror)]
    assert 5 == len(outcomes)
    assert 4 == sum(isinstance(o.error, ConnectionRefusedError) for o in outcomes)


async def test_round_trips_come_from_the_injected_clock():
    """The limit learns the round trip the job's clock measured."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.020
        return now[0]

    limit = AdaptiveLimit(100, initial=4, tune=True)

    async def work(key: int) -> int:
        return key

    [o async for o in fan_out(range(64), work, concurrency=limit, clock=clock)]
    assert limit.base_rtt == pytest.approx(0.020)
