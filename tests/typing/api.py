"""The public API as a user's code sees it: checked by mypy (``nox -s typecheck``), never run.

Each ``assert_type`` pins what a caller gets, so a change that loosens a public
type (``Call.status`` becoming ``Any``, a method losing its return type) fails
type-checking here before it reaches anyone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, assert_type

import signalwire_calls as swc
from signalwire_calls.testing import FakeSignalWire, FaultProfile


async def retrieve(client: swc.CallsClient) -> None:
    call = await client.get_call("7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21")
    assert_type(call, swc.Call)
    assert_type(await client.get_call(uuid.uuid4()), swc.Call)
    assert_type(call.status, swc.CallStatus | swc.UnknownValue)
    assert_type(call.direction, swc.CallDirection | swc.UnknownValue)
    if not isinstance(call.status, swc.CallStatus):
        assert_type(call.status, swc.UnknownValue)  # a value the API added later
    assert_type(call.duration, int)
    assert_type(call.price, Decimal | None)
    assert_type(call.date_created, datetime)
    assert_type(call.start_time, datetime | None)
    assert_type(call.subresource_uris, swc.SubresourceUris | None)
    assert_type(call.to_dict(), dict[str, Any])
    assert_type(call.extra, Mapping[str, Any])
    assert_type(swc.Call.from_dict({}), swc.Call)


async def many(client: swc.CallsClient, sids: list[str]) -> None:
    results = client.iter_call_results(sids, concurrency=10, ordered=True)
    assert_type(results, AsyncIterator[swc.CallResult])
    async for result in results:
        assert_type(result, swc.CallFound | swc.FailedLookup)
        assert_type(result.sid, str)
        assert_type(result.call, swc.Call | None)
        assert_type(result.error, swc.SignalWireError | ValueError | None)
        assert_type(result.outcome, Literal["found", "missing", "failed"])
        if result.ok:  # the success check narrows
            assert_type(result, swc.CallFound)
            assert_type(result.call, swc.Call)
            assert_type(result.error, None)
        else:
            assert_type(result, swc.FailedLookup)
            assert_type(result.error, swc.LookupFailure)
            assert_type(result.outcome, Literal["missing", "failed"])
        if result.call is not None:
            assert_type(result, swc.CallFound)
    collected = await client.get_calls(sids)
    assert_type(collected, swc.BulkResult)
    assert_type(collected.found, Mapping[str, swc.Call])
    assert_type(collected.missing, tuple[str, ...])
    assert_type(collected.failed, Mapping[str, swc.SignalWireError | ValueError])
    listed = client.iter_calls(status=swc.CallStatus.COMPLETED, limit=10)
    assert_type(listed, AsyncIterator[swc.Call])
    client.iter_calls(status="completed")  # a status as text type-checks ...
    client.iter_calls(status="complete")  # type: ignore[arg-type]  # ... a misspelt one does not
    name: swc.CallStatusName = "no-answer"
    assert_type(client.iter_calls(status=name), AsyncIterator[swc.Call])
    direction: swc.CallDirectionName = "outbound-dial"
    assert_type(swc.CallDirection(direction), swc.CallDirection)


def progress(snapshot: swc.BulkProgress) -> None:
    assert_type(snapshot.done, int)
    assert_type(snapshot.rate, float)


def errors(err: swc.SignalWireError) -> None:
    if isinstance(err, swc.APIError):
        assert_type(err.status, int)
        assert_type(err.code, int | None)
    if isinstance(err, swc.RateLimitedError):
        assert_type(err.retry_after, float | None)
    if isinstance(err, swc.DecodeError):
        assert_type(err.field, str)


async def emulator() -> None:
    async with FakeSignalWire(calls=10, faults=FaultProfile.parse("flaky")) as fake:
        assert_type(fake.call_sids, list[str])
        assert_type(fake.client(), swc.CallsClient)


def instrumentation(client: swc.CallsClient) -> None:
    from signalwire_calls.instrumentation import (
        Event,
        Hook,
        LoggingHook,
        OpenTelemetryHook,
        RetryScheduled,
        default_hooks,
    )

    def mine(event: Event) -> None:
        if isinstance(event, RetryScheduled):
            assert_type(event.wait, float)
            assert_type(event.sid, str | None)

    hooks: list[Hook] = [*default_hooks(), LoggingHook(), OpenTelemetryHook(), mine]
    swc.CallsClient("p", "t", space_url="x.signalwire.com", hooks=hooks)
    assert_type(client.stats.retries_by_reason["503"], int)
    assert_type(client.stats.lowest_concurrency, int | None)


def shards(sids: list[str]) -> None:
    planned = swc.plan_sid_shards(sids, size=100)
    assert_type(planned, list[swc.SidShard])
    assert_type(swc.run_shard(planned[0]), list[swc.CallResult])
    windows = swc.plan_window_shards(date(2026, 1, 1), date(2026, 2, 1), 8, status="completed")
    assert_type(windows, list[swc.WindowShard])
    assert_type(swc.run_shard(windows[0], swc.ShardOptions(concurrency=8)), list[swc.Call])
