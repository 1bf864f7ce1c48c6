# The house style puts the expected value first, which SIM300 calls a Yoda condition.
import asyncio
import contextlib
import contextvars
import itertools
import logging

import pytest
from signalwire_calls._bulk import (
    MAX_THROTTLE_RETRIES,
    AdaptiveLimit,
    BulkProgress,
    Outcome,
    fan_out,
)
from signalwire_calls._errors import NotFoundError, RateLimitedError


async def settle(turns=50):
    """Give every ready task a few turns of the event loop."""
    for _ in range(turns):
        await asyncio.sleep(0)


def others():
    """Return the tasks other than the running test."""
    return asyncio.all_tasks() - {asyncio.current_task()}


async def collect(outcomes):
    return [outcome async for outcome in outcomes]


async def echo(key):
    await asyncio.sleep(0)
    return key * 10


def counting(iterable, reads):
    """Yield from ``iterable``, appending each item to ``reads`` as it is read."""
    for item in iterable:
        reads.append(item)
        yield item


def throttle():
    return RateLimitedError(429, message="slow down")


async def test_every_distinct_key_once():
    """Each distinct key is worked on and yielded exactly once, duplicates skipped."""
    calls = []

    async def work(key):
        calls.append(key)
        return await echo(key)

    outcomes = await collect(fan_out([3, 1, 3, 2, 1, 3], work, concurrency=2))

    assert [1, 2, 3] == sorted(calls)
    assert [(1, 10, None), (2, 20, None), (3, 30, None)] == sorted(outcomes)


async def test_in_flight_never_exceeds_concurrency():
    """At most ``concurrency`` calls run at once, and that many do run."""
    running = 0
    peak = 0

    async def work(key):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(key % 4):
            await asyncio.sleep(0)
        running -= 1
        return key

    limit = AdaptiveLimit(5)
    outcomes = await collect(fan_out(range(100), work, concurrency=limit))

    assert 100 == len(outcomes)
    assert 5 == peak
    assert 5 == limit.max_in_flight
    assert 0 == limit.in_flight


async def test_workers_follow_the_current_limit_not_its_maximum():
    """Below its maximum the limit runs only as many workers as it grants slots.

    A worker more would hold a key and wait for a slot: a future and a task switch
    per key. So no call ever waits in ``acquire`` while the limit is steady.
    """
    workers = []
    waits = 0
    limit = AdaptiveLimit(100, initial=6, increase_after=10**6)
    acquire = limit.acquire

    async def counted_acquire():
        nonlocal waits
        waits += 1
        return await acquire()

    limit.acquire = counted_acquire

    async def work(key):
        workers.append(len(others()))  # the job's tasks (the consumer is this one)
        await settle(10)
        return key

    outcomes = await collect(fan_out(range(200), work, concurrency=limit))

    assert 200 == len(outcomes)
    assert 6 == limit.current == max(workers)
    assert 0 == waits


async def test_a_large_limit_fills_within_a_few_turns_of_the_loop():
    """The workers double until they fill the limit, not one per turn of the event loop.

    One per turn, a limit of 512 over calls that each take three turns was still at
    about 110 calls in flight after 2,000 keys.
    """
    in_flight = []
    limit = AdaptiveLimit(512)

    async def work(key):
        in_flight.append(limit.in_flight)
        await settle(3)
        return key

    outcomes = await collect(fan_out(range(2000), work, concurrency=limit))

    assert 2000 == len(outcomes)
    assert 512 == limit.max_in_flight
    assert 512 == max(in_flight[:1000])  # full well before half of the keys


async def test_workers_retire_after_a_cut_and_return_when_it_grows():
    """A cut retires the workers above the new limit; a raised limit spawns them again."""
    live = []
    limit = AdaptiveLimit(16, increase_after=10**6)

    async def work(key):
        live.append((key, len(others())))
        if key == 40:
            limit._set(4, "test")  # a cut, without a throttle's retry
        if key == 120:
            limit._set(12, "test")  # and a rise
        await settle(20)
        return key

    outcomes = await collect(fan_out(range(200), work, concurrency=limit))

    assert 200 == len(outcomes)
    before = [n for key, n in live if key < 40]
    cut = [n for key, n in live if 80 <= key < 120]
    grown = [n for key, n in live if key >= 160]
    assert 16 == max(before)
    assert 4 == max(cut)
    assert 12 == max(grown)


async def test_ordered_yields_input_order():
    """With ordered=True, outcomes come in input order although work finishes out of order."""

    async def work(key):
        for _ in range(10 - key):  # later keys finish first
            await asyncio.sleep(0)
        return key

    outcomes = await collect(fan_out(range(10), work, concurrency=10, ordered=True))

    assert list(range(10)) == [outcome.key for outcome in outcomes]


async def test_ordered_slow_head_bounds_intake():
    """A stuck head-of-line key stops intake after a window (four keys per slot) instead of reading on."""
    gate = asyncio.Event()
    reads = []

    async def work(key):
        if key == 0:
            await gate.wait()
        return key

    outcomes = fan_out(counting(itertools.count(), reads), work, concurrency=2, ordered=True)
    first = asyncio.ensure_future(anext(outcomes))
    await settle()

    assert 8 == len(reads)
    assert not first.done()
    gate.set()
    assert 0 == (await first).key
    await outcomes.aclose()


async def test_slow_consumer_bounds_intake():
    """Unordered, a consumer that stops asking holds intake to one window (four keys per slot)."""
    reads = []
    outcomes = fan_out(counting(itertools.count(), reads), echo, concurrency=2)

    await anext(outcomes)
    await settle()

    # One window of keys in process, plus the one whose outcome was yielded.
    assert 9 == len(reads)
    await outcomes.aclose()
    assert set() == others()


async def test_async_iterable_input_is_read_and_closed():
    """An async generator input is consumed and then closed."""
    closed = asyncio.Event()

    async def sids():
        try:
            for key in range(20):
                await asyncio.sleep(0)
                yield key
        finally:
            closed.set()

    outcomes = await collect(fan_out(sids(), echo, concurrency=3, ordered=True))

    assert list(range(20)) == [outcome.key for outcome in outcomes]
    assert closed.is_set()


async def test_endless_input_is_read_lazily():
    """An endless input is read only as far as the consumer goes plus one window."""
    reads = []
    outcomes = fan_out(counting(itertools.count(), reads), echo, concurrency=2)

    first = []
    async with contextlib.aclosing(outcomes):
        async for outcome in outcomes:
            first.append(outcome.key)
            if len(first) == 25:
                break

    assert 25 == len(set(first))
    assert len(reads) <= 25 + 8
    assert set() == others()


async def test_invalid_keys_cost_no_call():
    """A key the validator rejects is an outcome carrying its ValueError, with no work call."""
    calls = []

    def validate(key):
        if key % 2:
            raise ValueError(f"odd key {key}")
        return key

    async def work(key):
        calls.append(key)
        return key

    outcomes = await collect(fan_out(range(6), work, concurrency=2, validate=validate))
    errors = {o.key: str(o.error) for o in outcomes if o.error is not None}

    assert [0, 2, 4] == sorted(calls)
    assert {1: "odd key 1", 3: "odd key 3", 5: "odd key 5"} == errors


async def test_errors_from_work_become_outcomes():
    """An exception from work is that key's outcome and the other keys carry on."""

    async def work(key):
        await asyncio.sleep(0)
        if key == 2:
            raise NotFoundError(404, message="no such call")
        return key

    outcomes = {o.key: o for o in await collect(fan_out(range(5), work, concurrency=2))}

    assert isinstance(outcomes[2].error, NotFoundError)
    assert outcomes[2].value is None
    assert [0, 1, 3, 4] == sorted(k for k, o in outcomes.items() if o.error is None)


async def test_cancelled_error_from_work_is_not_swallowed():
    """A CancelledError raised by work propagates instead of becoming an outcome."""

    async def work(key):
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await collect(fan_out([1], work, concurrency=1))
    assert set() == others()


async def test_input_error_propagates():
    """An error raised by the input iterator reaches the consumer, and nothing is left running."""

    async def sids():
        yield 1
        raise RuntimeError("input broke")

    with pytest.raises(RuntimeError, match="input broke"):
        await collect(fan_out(sids(), echo, concurrency=2))
    assert set() == others()


async def test_throttle_burst_halves_limit_once_and_requeues():
    """A burst of throttles from calls in flight together halves the limit once; keys retry."""
    attempts = {}
    all_in = asyncio.Event()

    async def work(key):
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] == 1:
            if len(attempts) == 8:
                all_in.set()
            await all_in.wait()
            raise throttle()
        return key

    limit = AdaptiveLimit(8, increase_after=100)
    outcomes = await collect(fan_out(range(8), work, concurrency=limit))

    assert [None] * 8 == [o.error for o in outcomes]
    assert dict.fromkeys(range(8), 2) == attempts
    assert 4 == limit.current
    assert 1 == limit.generation


async def test_retries_start_only_under_the_shrunk_limit():
    """After a throttle, new calls start only while in-flight is below the new limit."""
    gate = asyncio.Event()
    limit = AdaptiveLimit(4, increase_after=100)
    running = 0
    starts_over_limit = []
    throttled = []

    async def work(key):
        nonlocal running
        running += 1
        if running > limit.current:
            starts_over_limit.append((key, running, limit.current))
        try:
            if key == 0 and not throttled:
                throttled.append(key)
                raise throttle()
            if key < 4:
                await gate.wait()
            await asyncio.sleep(0)
            return key
        finally:
            running -= 1

    task = asyncio.ensure_future(collect(fan_out(range(12), work, concurrency=limit)))
    await settle()
    assert 2 == limit.current
    gate.set()
    outcomes = await task

    assert 12 == len(outcomes)
    assert [] == starts_over_limit


async def test_persistently_throttled_key_is_reported_failed():
    """A key throttled on every try fails with the throttle error after MAX_THROTTLE_RETRIES more tries."""
    calls = []

    async def work(key):
        calls.append(key)
        raise throttle()

    outcomes = await collect(fan_out(["a"], work, concurrency=2))

    assert ["a"] * (1 + MAX_THROTTLE_RETRIES) == calls
    assert isinstance(outcomes[0].error, RateLimitedError)


async def test_limit_grows_back_after_successes():
    """The limit adds one slot per run of successes and never passes its maximum."""
    limit = AdaptiveLimit(4, increase_after=2)
    assert limit.throttled(0)
    generation = await limit.acquire()
    limit.release()

    grown = [limit.succeeded(generation) for _ in range(6)]

    assert [False, True, False, True, False, False] == grown
    assert 4 == limit.current


async def test_stale_signals_are_ignored():
    """Throttles and successes from before a decrease change nothing."""
    limit = AdaptiveLimit(8, increase_after=1)
    assert limit.throttled(0)

    assert not limit.throttled(0)
    assert not limit.succeeded(0)
    assert 4 == limit.current


async def test_limit_never_below_minimum():
    """Repeated throttles in fresh generations stop at the minimum."""
    limit = AdaptiveLimit(8, minimum=2)
    for _ in range(5):
        limit.throttled(limit.generation)

    assert 2 == limit.current


async def test_cancelled_waiter_does_not_leak_a_slot():
    """A caller cancelled while waiting for a slot leaves the slot count intact."""
    limit = AdaptiveLimit(1)
    await limit.acquire()
    waiter = asyncio.ensure_future(limit.acquire())
    await settle(3)
    limit.release()  # hands the slot to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert 0 == limit.in_flight
    assert 0 == await limit.acquire()


async def test_throttle_hook_shrinks_limit_for_retried_429s():
    """A 429 reported through the hook shrinks the limit even when the call then succeeds."""
    hook = contextvars.ContextVar("hook", default=None)

    async def work(key):
        hook.get()()  # what the retry middleware does on each 429 it retries
        return key

    limit = AdaptiveLimit(6, increase_after=100)
    outcomes = await collect(fan_out([1], work, concurrency=limit, throttle_hook=hook))

    assert [Outcome(1, 1, None)] == outcomes
    assert 3 == limit.current
    assert hook.get() is None


async def test_progress_reports_totals():
    """The hook sees every outcome, duplicate and failure, ending at done == distinct keys."""
    seen = []

    async def work(key):
        if key == 3:
            raise NotFoundError(404)
        return key

    await collect(fan_out([1, 2, 2, 3], work, concurrency=2, on_progress=seen.append))
    last = seen[-1]

    assert BulkProgress(0, 0, 0, 0, 4, 0, 2, seen[0].elapsed) == seen[0]
    assert (3, 1, 1, 4, 4) == (last.done, last.failed, last.duplicates, last.total, last.processed)
    assert [o.done for o in seen] == sorted(o.done for o in seen)


async def test_progress_total_unknown_for_generators():
    """Input without len() reports total as None."""
    seen = []
    await collect(fan_out(iter([1, 2]), echo, concurrency=1, on_progress=seen.append))

    assert {None} == {p.total for p in seen}
    assert 2 == seen[-1].done


async def test_failing_progress_hook_is_logged_once_and_dropped(caplog):
    """A hook that raises is logged once and never breaks the job."""
    calls = []

    def hook(progress):
        calls.append(progress)
        raise ZeroDivisionError

    with caplog.at_level(logging.ERROR, logger="signalwire_calls._bulk"):
        outcomes = await collect(fan_out(range(5), echo, concurrency=2, on_progress=hook))

    assert 5 == len(outcomes)
    assert 1 == len(calls)
    assert 1 == len([r for r in caplog.records if "on_progress" in r.getMessage()])


async def test_break_leaves_no_tasks():
    """Breaking out of the loop shuts the job down once the generator is finalized."""
    gate = asyncio.Event()
    cancelled = []

    async def work(key):
        if key:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                cancelled.append(key)
                raise
        return key

    async for _ in fan_out(range(100), work, concurrency=4):
        break
    for _ in range(20):
        if not others():
            break
        await settle(1)

    assert set() == others()
    assert 4 == len(cancelled)


async def test_aclosing_break_cleans_up_at_once():
    """With contextlib.aclosing, breaking out leaves nothing running immediately."""
    gate = asyncio.Event()

    async def work(key):
        if key:
            await gate.wait()
        return key

    async with contextlib.aclosing(fan_out(range(100), work, concurrency=4)) as outcomes:
        async for _ in outcomes:
            break

    assert set() == others()


async def test_cancelling_the_consumer_cancels_work():
    """Cancelling the consuming task cancels in-flight calls and leaves no task behind."""
    started = asyncio.Event()
    cancelled = []

    async def work(key):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(key)
            raise

    consumer = asyncio.ensure_future(collect(fan_out(range(10), work, concurrency=3)))
    await started.wait()
    await settle(5)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    assert [0, 1, 2] == sorted(cancelled)
    assert set() == others()


def test_single_string_is_rejected():
    """A lone string is refused rather than fanned out character by character."""
    with pytest.raises(TypeError, match="not a single string"):
        fan_out("82e7850d-054e-4067-8c4f-6568acd96575", echo, concurrency=1)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"concurrency": 0}, "maximum"),
        ({"concurrency": True}, "maximum"),
    ],
)
def test_bad_options_are_rejected(options, name):
    """Out-of-range options raise ValueError naming the option, before anything runs."""
    with pytest.raises(ValueError, match=name):
        fan_out([1], echo, **options)


async def test_wrap_builds_each_yielded_item():
    """With wrap, fan_out yields what wrap builds from (key, value, error), in order if asked."""

    def validate(key):
        if key == 2:
            raise ValueError("two")
        return key

    def wrap(key, value, error):
        return ("ok", key, value) if error is None else ("bad", key, str(error))

    items = await collect(
        fan_out(range(4), echo, concurrency=2, ordered=True, validate=validate, wrap=wrap)
    )

    assert [("ok", 0, 0), ("ok", 1, 10), ("bad", 2, "two"), ("ok", 3, 30)] == items


async def test_sync_input_error_propagates():
    """An error raised by a plain generator input reaches the consumer, and nothing is left running."""

    def sids():
        yield from range(3)
        raise RuntimeError("input broke")

    with pytest.raises(RuntimeError, match="input broke"):
        await collect(fan_out(sids(), echo, concurrency=2))
    assert set() == others()


async def test_async_input_with_duplicates_is_read_by_one_worker_at_a_time():
    """Several workers share an async generator input: each distinct key once, duplicates counted."""
    seen = []

    async def sids():
        for key in [1, 2, 1, 3, 2, 4, 5, 5, 6]:
            await asyncio.sleep(0)
            yield key

    outcomes = await collect(fan_out(sids(), echo, concurrency=4, on_progress=seen.append))

    assert [1, 2, 3, 4, 5, 6] == sorted(o.key for o in outcomes)
    assert (6, 3) == (seen[-1].done, seen[-1].duplicates)


async def test_long_run_of_duplicates_gives_the_loop_turns():
    """Reading thousands of duplicates in a row lets other tasks run meanwhile."""
    ticks = 0
    ticks_at_duplicate = {}

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def progress(p):
        if p.duplicates:
            ticks_at_duplicate.setdefault(p.duplicates, ticks)

    task = asyncio.ensure_future(ticker())
    await collect(fan_out([1] * 5000, echo, concurrency=2, on_progress=progress))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert 4999 == len(ticks_at_duplicate)
    assert ticks_at_duplicate[4999] - ticks_at_duplicate[1] >= 5


async def test_hook_signals_carry_each_workers_slot_generation():
    """Hook signals from calls that started together halve the limit once, not once per call."""
    hook = contextvars.ContextVar("hook", default=None)
    started = []
    all_in = asyncio.Event()

    async def work(key):
        started.append(key)
        if len(started) == 3:
            all_in.set()
        await all_in.wait()
        hook.get()()
        return key

    limit = AdaptiveLimit(8, increase_after=100)
    outcomes = await collect(fan_out(range(3), work, concurrency=limit, throttle_hook=hook))

    assert 3 == len(outcomes)
    assert (4, 1) == (limit.current, limit.generation)


async def test_try_acquire_takes_only_a_free_slot():
    """try_acquire takes a free slot at once, and refuses while the limit is full."""
    limit = AdaptiveLimit(1)

    assert 0 == limit.try_acquire()
    assert limit.try_acquire() is None
    limit.release()
    assert 0 == limit.try_acquire()
    assert 1 == limit.max_in_flight


def test_growth_window_is_capped_by_increase_after_max():
    """With increase_after_max, a large limit grows per few successes, a small one per window."""
    limit = AdaptiveLimit(64, increase_after_max=8)
    assert limit.throttled(0)
    assert limit.current == 32
    grown = [limit.succeeded(1) for _ in range(8)]
    assert [False] * 7 + [True] == grown
    assert limit.current == 33
    small = AdaptiveLimit(64, increase_after_max=8)
    for generation in range(5):  # 64 -> 2
        small.throttled(generation)
    assert small.current == 2
    assert [False, True] == [small.succeeded(5), small.succeeded(5)]
    assert small.current == 3
