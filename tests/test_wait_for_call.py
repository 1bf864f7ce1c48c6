"""wait_for_call: the poll schedule, what ``until`` means, deadlines, errors, cancellation."""

from __future__ import annotations

import asyncio
import math
import pickle

import pytest
import signalwire_calls as swc
from signalwire_calls._polling import POLL_MAX, make_condition, poll_delay
from signalwire_calls.testing import FakeSignalWire

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=3, seed=7) as emulator:
        yield emulator


def on_fake_clock(client: swc.CallsClient, fake: FakeSignalWire, slept: list[float]) -> None:
    """Make the client's waits move the emulator's clock instead of sleeping."""

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await fake.advance(seconds)

    client._wait_sleep = sleep  # type: ignore[method-assign]
    client._wait_clock = lambda: fake.now.timestamp()  # noqa: PLW0108 - fake.now changes


def test_schedule_grows_by_half_from_one_second_to_thirty():
    """Without jitter the waits are 1, 1.5, 2.25, ... capped at 30 seconds."""
    expected = [min(30.0, 1.5**n) for n in range(12)]
    assert expected == [poll_delay(n) for n in range(12)]
    assert POLL_MAX == poll_delay(10_000)


@pytest.mark.parametrize("poll", [0, 3, 9, 50])
def test_jitter_only_shortens_a_wait_by_up_to_a_fifth(poll):
    """Full jitter takes a fifth off the scheduled wait, never more, never adds."""
    assert math.isclose(0.8 * poll_delay(poll), poll_delay(poll, 1.0))
    assert poll_delay(poll, 0.5) < poll_delay(poll)


@pytest.mark.parametrize("until", ["ringing", "done", [], ["ringing", "ended"], 3])
def test_bad_until_is_refused(until):
    """``until`` is 'final', 'priced' or a non-empty collection of real statuses."""
    with pytest.raises(ValueError, match="until"):
        make_condition(until)


async def test_bad_arguments_send_nothing(fake):
    """An invalid SID, until or timeout raises ValueError before any request."""
    sid = fake.place_call(outcome=None)
    async with fake.client() as client:
        for kwargs in ({"until": "ringing"}, {"timeout": 0}, {"timeout": True}):
            with pytest.raises(ValueError):
                await client.wait_for_call(sid, **kwargs)
        with pytest.raises(ValueError, match="UUID"):
            await client.wait_for_call("not-a-sid")
    assert 0 == fake.attempts(sid)


async def test_returns_the_final_priced_call_of_a_progressing_call(fake):
    """until='priced' keeps polling past 'completed' until the price appears."""
    sid = fake.place_call(queue=2, ring=8, talk=95, price_delay=12)
    slept: list[float] = []
    async with fake.client() as client:
        on_fake_clock(client, fake, slept)
        call = await client.wait_for_call(sid, until="priced")
    assert ("completed", 8 + 95) == (call.status, call.duration)
    assert call.price is not None
    assert len(slept) + 1 == fake.attempts(sid)
    assert max(slept) <= POLL_MAX


async def test_final_returns_a_completed_call_before_its_price(fake):
    """until='final' (the default) returns the call as soon as it is completed, unpriced."""
    sid = fake.place_call(talk=10, price_delay=3_600)
    async with fake.client() as client:
        on_fake_clock(client, fake, [])
        call = await client.wait_for_call(sid)
    assert ("completed", None) == (call.status, call.price)


@pytest.mark.parametrize("outcome", ["busy", "failed", "no-answer", "canceled"])
async def test_priced_returns_an_unanswered_call_as_soon_as_it_is_final(fake, outcome):
    """A call that ended without being completed is never priced: it is returned when final."""
    sid = fake.place_call(outcome=outcome, price_delay=None)
    await fake.advance(60)
    async with fake.client() as client:
        call = await client.wait_for_call(sid, until="priced")
    assert (outcome, None) == (call.status, call.price)
    assert 1 == fake.attempts(sid)


async def test_a_set_of_statuses_ends_the_wait_on_one_of_them(fake):
    """until={'in-progress'} returns the call once it is answered, not when it ends."""
    sid = fake.place_call(outcome=None, ring=20)
    async with fake.client() as client:
        on_fake_clock(client, fake, [])
        call = await client.wait_for_call(sid, until={swc.CallStatus.IN_PROGRESS})
    assert "in-progress" == call.status


async def test_a_set_of_statuses_also_ends_on_a_final_call(fake):
    """A call that ends without reaching the statuses is returned: it can change no more."""
    sid = fake.place_call(outcome="busy")
    async with fake.client() as client:
        on_fake_clock(client, fake, [])
        call = await client.wait_for_call(sid, until={"in-progress"}, timeout=60)
    assert "busy" == call.status


async def test_a_call_that_never_ends_times_out_with_the_last_call(fake):
    """On the deadline, WaitTimeoutError carries the last call seen and says what was awaited."""
    sid = fake.place_call(outcome=None)
    slept: list[float] = []
    async with fake.client() as client:
        on_fake_clock(client, fake, slept)
        with pytest.raises(swc.WaitTimeoutError) as caught:
            await client.wait_for_call(sid, timeout=120)
    err = caught.value
    assert isinstance(err, TimeoutError)
    assert (sid, "final", 120.0) == (err.sid, err.until, err.timeout)
    assert err.call is not None
    assert "in-progress" == err.call.status
    assert f"call {sid} to be final after 120s" in str(err)
    assert "in-progress" in str(err)
    # The last poll falls in the deadline's final second: a second before it, or, with
    # less than two seconds left after a jittered wait, halfway through what is left.
    assert 120.0 - 1.0 - 1e-3 <= sum(slept) < 120.0
    assert len(slept) + 1 == fake.attempts(sid)


async def test_priced_times_out_on_a_completed_call_that_is_never_priced(fake):
    """A completed call with no price ends a 'priced' wait only at the deadline, and says so."""
    sid = fake.place_call(talk=5, price_delay=None)
    async with fake.client() as client:
        on_fake_clock(client, fake, [])
        with pytest.raises(swc.WaitTimeoutError, match=r"not priced yet") as caught:
            await client.wait_for_call(sid, until="priced", timeout=300)
    assert caught.value.call is not None
    assert "completed" == caught.value.call.status


async def test_a_missing_call_is_not_found_at_once(fake):
    """A SID the API does not know raises NotFoundError after one request."""
    async with fake.client() as client:
        on_fake_clock(client, fake, slept := [])
        with pytest.raises(swc.NotFoundError):
            await client.wait_for_call(MISSING)
    assert [] == slept
    assert 1 == fake.attempts(MISSING)


async def test_each_poll_is_retried_by_the_client_policy(fake):
    """A 503 on a poll is retried inside that poll, as any request is."""
    sid = fake.place_call(outcome="failed")
    await fake.advance(10)
    fake.fail(sid, status=503, times=2)
    policy = swc.RetryPolicy(attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)
    async with fake.client(retry=policy) as client:
        call = await client.wait_for_call(sid)
    assert "failed" == call.status
    assert 3 == fake.attempts(sid)


async def test_a_poll_error_after_retries_ends_the_wait(fake):
    """When a poll's retries are exhausted, its error is raised, not swallowed."""
    sid = fake.place_call(outcome=None)
    fake.fail(sid, status=500, times=None)
    async with fake.client(retry=swc.RetryPolicy.no_retries()) as client:
        with pytest.raises(swc.ServerError):
            await client.wait_for_call(sid)
    assert 1 == fake.attempts(sid)


async def test_no_poll_answered_before_the_deadline(fake):
    """A poll still hanging at the deadline is cut off; the error's call is None."""
    sid = fake.place_call(outcome=None)
    fake.fail(sid, kind="hang", times=None)
    async with fake.client(timeout=None) as client:
        with pytest.raises(swc.WaitTimeoutError, match="no poll answered") as caught:
            await client.wait_for_call(sid, timeout=0.05)
    assert caught.value.call is None


async def test_cancelling_stops_the_wait(fake):
    """Cancelling the awaiting task ends the wait at once, with no more polls."""
    sid = fake.place_call(outcome=None)
    asleep = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        asleep.set()
        await asyncio.Event().wait()  # forever, until cancelled

    async with fake.client() as client:
        client._wait_sleep = sleep  # type: ignore[method-assign]
        task = asyncio.create_task(client.wait_for_call(sid))
        await asleep.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert 1 == fake.attempts(sid)


def test_wait_timeout_error_pickles_with_its_fields():
    """The error survives pickling (for multiprocessing users) with sid, until and call."""
    err = swc.WaitTimeoutError("gave up", sid="s", until="priced", timeout=5.0, call=None)
    copy = pickle.loads(pickle.dumps(err))
    assert ("gave up", "s", "priced", 5.0) == (str(copy), copy.sid, copy.until, copy.timeout)
