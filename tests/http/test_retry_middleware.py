"""The retry policy, Retry-After parsing and the middleware against a loopback server."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import signalwire_calls as swc
from signalwire_calls._retry import parse_retry_after

from conftest import PROJECT, SID, TOKEN, Reply, sample

FAST = swc.RetryPolicy(attempts=4, wait_initial=0.5, wait_max=2.0, wait_jitter=0.0)


class SleepRecorder:
    """Stands in for asyncio.sleep: records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps():
    return SleepRecorder()


def make_client(scripted, sleeps, **kwargs):
    client = swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, **{"retry": FAST, **kwargs}
    )
    client._requester.middleware.sleep = sleeps
    return client


# ------------------------------------------------------------------- pure parts


def test_backoff_formula():
    """Backoff grows by wait_exp_base from wait_initial and is capped at wait_max."""
    policy = swc.RetryPolicy(wait_initial=0.1, wait_max=1.0, wait_jitter=0.0, wait_exp_base=2.0)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_jitter_bounds():
    """Jitter adds between 0 and wait_jitter seconds."""
    policy = swc.RetryPolicy(wait_initial=1.0, wait_max=1.0, wait_jitter=0.5)
    rng = random.Random(3)
    waits = [policy.backoff(1, rng) for _ in range(200)]
    assert all(1.0 <= w <= 1.5 for w in waits)
    assert len(set(waits)) > 100


def test_backoff_huge_attempt_does_not_overflow():
    """A huge attempt number is capped instead of overflowing."""
    policy = swc.RetryPolicy(wait_jitter=0.0, wait_max=7.0)
    assert policy.backoff(100_000) == 7.0


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"attempts": 1.5}, {"wait_initial": -1}, {"wait_max": float("inf")},
     {"max_retry_after": float("nan")}, {"wait_jitter": "1"}],
)  # fmt: skip
def test_policy_validation(kwargs):
    """Nonsense policies are a ConfigError naming the option."""
    name = next(iter(kwargs))
    with pytest.raises(swc.ConfigError, match=name):
        swc.RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("  7 ", 7.0),
        ("-5", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header, expected):
    """Delay-seconds and HTTP dates parse; past dates mean now; garbage means no hint."""
    assert expected == parse_retry_after(header)


def test_parse_retry_after_future_date():
    """An HTTP date in the future gives the seconds until then."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now.timestamp()) == 30.0


# ------------------------------------------------------------- the middleware


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(scripted, sleeps, status):
    """Each retryable status is tried again, and success after it returns the call."""
    scripted.script = [
        Reply(status, {"code": 1, "message": "later"}),
        Reply(200, sample("call_real_2024.json")),
    ]
    async with make_client(scripted, sleeps) as client:
        call = await client.get_call(SID)
    assert call.sid == SID
    assert len(scripted.hits) == 2
    assert sleeps.waits == [0.5]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, swc.APIError), (401, swc.AuthenticationError), (403, swc.PermissionDeniedError),
     (404, swc.NotFoundError), (409, swc.APIError), (422, swc.APIError), (501, swc.ServerError)],
)  # fmt: skip
async def test_other_statuses_are_not_retried(scripted, sleeps, status, cls):
    """4xx other than 408/429 (and 501) fail at once with their exception."""
    scripted.script = [Reply(status, {"code": 20404, "message": "nope", "status": status})]
    async with make_client(scripted, sleeps) as client:
        with pytest.raises(cls) as info:
            await client.get_call(SID)
    assert type(info.value) is cls
    assert (status, 20404, "nope") == (info.value.status, info.value.code, info.value.message)
    assert len(scripted.hits) == 1
    assert sleeps.waits == []


async def test_exhausted_retries_raise_the_last_status(scripted, sleeps):
    """After every attempt failed, the last status's error is raised; backoff grows."""
    scripted.default = lambda _: Reply(503, {"code": 20504, "message": "busy"})
    async with make_client(scripted, sleeps) as client:
        with pytest.raises(swc.ServerError) as info:
            await client.get_call(SID)
    assert info.value.status == 503
    assert len(scripted.hits) == 4
    assert sleeps.waits == [0.5, 1.0, 2.0]


async def test_retry_after_seconds_is_honoured(scripted, sleeps):
    """Retry-After in seconds replaces the backoff."""
    scripted.script = [
        Reply(429, {}, headers={"Retry-After": "3"}),
        Reply(200, sample("call_real_2024.json")),
    ]
    async with make_client(scripted, sleeps) as client:
        await client.get_call(SID)
    assert sleeps.waits == [3.0]


async def test_retry_after_http_date_is_honoured(scripted, sleeps):
    """Retry-After as an HTTP date is waited until that time (here: in the past, so 0)."""
    scripted.script = [
        Reply(503, {}, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Reply(200, sample("call_real_2024.json")),
    ]
    async with make_client(scripted, sleeps) as client:
        await client.get_call(SID)
    assert sleeps.waits == [0.0]


async def test_retry_after_beyond_cap_fails_at_once(scripted, sleeps):
    """A Retry-After longer than max_retry_after is not slept on: the 429 is raised with it."""
    scripted.default = lambda _: Reply(
        429, {"code": 20429, "message": "slow down"}, headers={"Retry-After": "3600"}
    )
    policy = swc.RetryPolicy(attempts=5, max_retry_after=60.0)
    async with make_client(scripted, sleeps, retry=policy) as client:
        with pytest.raises(swc.RateLimitedError) as info:
            await client.get_call(SID)
    assert info.value.retry_after == 3600.0
    assert info.value.code == 20429
    assert len(scripted.hits) == 1
    assert sleeps.waits == []


async def test_connection_reset_is_retried(scripted, sleeps):
    """A connection reset before any answer is retried."""
    scripted.script = [Reply(kind="reset"), Reply(200, sample("call_real_2024.json"))]
    async with make_client(scripted, sleeps) as client:
        call = await client.get_call(SID)
    assert call.sid == SID
    assert len(scripted.hits) == 2


async def test_truncated_body_is_retried(scripted, sleeps):
    """A body that breaks off mid-read is retried like a reset."""
    good = sample("call_real_2024.json")
    scripted.script = [Reply(200, good, kind="truncate"), Reply(200, good)]
    async with make_client(scripted, sleeps) as client:
        call = await client.get_call(SID)
    assert call.to_dict() == good
    assert len(scripted.hits) == 2


async def test_resets_exhausted_raise_transport_error(scripted, sleeps):
    """Only resets: a TransportError whose cause is aiohttp's error, after every attempt."""
    scripted.default = lambda _: Reply(kind="reset")
    async with make_client(scripted, sleeps) as client:
        with pytest.raises(swc.TransportError) as info:
            await client.get_call(SID)
    assert not isinstance(info.value, swc.RequestTimeoutError)
    assert info.value.__cause__ is not None
    assert "4 attempt(s)" in str(info.value)
    assert len(scripted.hits) == 4


async def test_hang_past_timeout_is_retried_then_raises(scripted, sleeps):
    """Each attempt has its own timeout; hangs become RequestTimeoutError after retries."""
    scripted.default = lambda _: Reply(kind="hang")
    policy = swc.RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0)
    async with make_client(scripted, sleeps, retry=policy, timeout=0.2) as client:
        with pytest.raises(swc.RequestTimeoutError) as info:
            await client.get_call(SID)
    assert isinstance(info.value, swc.TransportError)
    assert len(scripted.hits) == 2


async def test_hang_then_success(scripted, sleeps):
    """A hung attempt is abandoned at the timeout and the next attempt succeeds."""
    scripted.script = [Reply(kind="hang"), Reply(200, sample("call_real_2024.json"))]
    async with make_client(scripted, sleeps, timeout=0.2) as client:
        call = await client.get_call(SID)
    assert call.sid == SID
    assert len(scripted.hits) == 2


async def test_no_retries_policy(scripted, sleeps):
    """RetryPolicy.no_retries() makes exactly one attempt."""
    scripted.default = lambda _: Reply(503, {})
    async with make_client(scripted, sleeps, retry=swc.RetryPolicy.no_retries()) as client:
        with pytest.raises(swc.ServerError):
            await client.get_call(SID)
    assert len(scripted.hits) == 1


async def test_retries_logged_at_info_without_secrets(scripted, sleeps, caplog):
    """Each retry is logged at INFO on the signalwire_calls logger, without the token."""
    scripted.script = [Reply(503, {}), Reply(200, sample("call_real_2024.json"))]
    with caplog.at_level(logging.DEBUG, logger="signalwire_calls"):
        async with make_client(scripted, sleeps) as client:
            await client.get_call(SID)
    records = [r for r in caplog.records if r.name == "signalwire_calls"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert "HTTP 503" in records[0].getMessage()
    assert TOKEN not in caplog.text


async def test_throttle_listener_sees_each_429(scripted, sleeps):
    """A bulk job's listener is told of every 429, even ones retried successfully."""
    from signalwire_calls._http import throttle_listener

    seen = []
    scripted.script = [Reply(429, {}), Reply(429, {}), Reply(200, sample("call_real_2024.json"))]
    token = throttle_listener.set(lambda: seen.append(1))
    try:
        async with make_client(scripted, sleeps) as client:
            await client.get_call(SID)
    finally:
        throttle_listener.reset(token)
    assert seen == [1, 1]


async def test_a_bulk_jobs_suggested_wait_replaces_the_backoff_of_a_429(scripted, sleeps):
    """The listener's suggested wait is slept after a 429 without Retry-After; Retry-After wins."""
    from signalwire_calls._http import throttle_listener

    scripted.script = [
        Reply(429, {}),
        Reply(429, {}, headers={"Retry-After": "3"}),
        Reply(200, sample("call_real_2024.json")),
    ]
    token = throttle_listener.set(lambda: 0.042)
    try:
        async with make_client(scripted, sleeps) as client:
            await client.get_call(SID)
    finally:
        throttle_listener.reset(token)
    assert sleeps.waits == [0.042, 3.0]
