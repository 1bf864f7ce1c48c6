"""LoggingHook: levels a service can leave on, structured extra fields, never a secret."""

from __future__ import annotations

import logging

import pytest
import signalwire_calls as swc
from signalwire_calls.instrumentation import LoggingHook

from conftest import PROJECT, SID, TOKEN, Reply, sample

NO_WAIT = swc.RetryPolicy(attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)


async def test_giving_up_logs_one_warning_with_the_sid_and_no_token(scripted, caplog):
    """Three 503s: two INFO retries, then one WARNING naming the SID, and the token nowhere."""
    scripted.default = lambda _: Reply(503, {"message": f"echo {TOKEN}"})
    with caplog.at_level(logging.INFO, logger="signalwire_calls"):
        async with swc.CallsClient(
            PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, hooks=[LoggingHook()]
        ) as client:
            with pytest.raises(swc.ServerError):
                await client.get_call(SID)
    ours = [r for r in caplog.records if r.name.startswith("signalwire_calls")]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert [logging.INFO, logging.INFO, logging.WARNING] == [r.levelno for r in ours]
    assert 1 == len(warnings)
    gave_up = warnings[0]
    assert SID in gave_up.getMessage()
    assert (SID, 3, 503, "503") == (gave_up.sid, gave_up.attempt, gave_up.status, gave_up.reason)
    for record in ours:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(vars(record))


async def test_retry_records_carry_structured_fields(scripted, caplog):
    """A retry's record has sid, attempt, status, reason and wait as attributes."""
    scripted.script = [Reply(429, {}, headers={"Retry-After": "0"})]
    scripted.default = lambda _: Reply(200, sample("call_real_2024.json"))
    with caplog.at_level(logging.INFO, logger="signalwire_calls"):
        async with swc.CallsClient(
            PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, hooks=[LoggingHook()]
        ) as client:
            await client.get_call(SID)
    (retry,) = [r for r in caplog.records if r.name == "signalwire_calls"]
    assert (SID, 1, 429, "429", 0.0, "GET") == (
        retry.sid,
        retry.attempt,
        retry.status,
        retry.reason,
        retry.wait,
        retry.method,
    )


async def test_debug_logs_each_request_and_each_attempt(scripted, caplog):
    """At DEBUG, one line per request (path, status, attempts) and one per attempt."""
    scripted.script = [Reply(503, {})]
    scripted.default = lambda _: Reply(200, sample("call_real_2024.json"))
    with caplog.at_level(logging.DEBUG, logger="signalwire_calls"):
        async with swc.CallsClient(
            PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, hooks=[LoggingHook()]
        ) as client:
            await client.get_call(SID)
    requests = [r.getMessage() for r in caplog.records if r.name == "signalwire_calls.requests"]
    attempts = [r.getMessage() for r in caplog.records if r.name == "signalwire_calls.attempts"]
    path = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{SID}"
    assert 1 == len(requests)
    assert requests[0].startswith(f"GET {path} 200 in ")
    assert requests[0].endswith("(2 attempts)")
    assert [f"attempt 1: GET {path} 503", f"attempt 2: GET {path} 200"] == [
        a.rsplit(" in ", 1)[0] for a in attempts
    ]


def test_at_the_default_level_the_hook_wants_no_request_events():
    """With signalwire_calls at WARNING, per-request events are not asked for."""
    logger = logging.getLogger("test_logging_hook.quiet")
    logger.setLevel(logging.WARNING)
    hook = LoggingHook(logger)
    assert hook.wants_requests() is False
    logger.setLevel(logging.DEBUG)
    assert hook.wants_requests() is True
