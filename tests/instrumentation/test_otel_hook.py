"""OpenTelemetryHook with the SDK's in-memory exporters: spans, span events, metrics, no secrets."""

from __future__ import annotations

import json

import pytest
import signalwire_calls as swc
from signalwire_calls.instrumentation import OpenTelemetryHook
from signalwire_calls.testing import FakeSignalWire

from conftest import PROJECT, SID, TOKEN, Reply, sample

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

NO_WAIT = swc.RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0)


@pytest.fixture
def otel():
    """Providers of the SDK wired to in-memory exporters (never the global ones)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    hook = OpenTelemetryHook(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield hook, exporter, reader, tracer_provider
    tracer_provider.shutdown()
    meter_provider.shutdown()


def metrics_by_name(reader):
    data = reader.get_metrics_data()
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_503_503_200_is_a_lookup_span_with_three_attempt_spans_and_two_waits(scripted, otel):
    """The lookup span (child of the caller's span) holds three attempts, resend_count absent, 1, 2."""
    hook, exporter, _, tracer_provider = otel
    scripted.script = [Reply(503, {}), Reply(503, {}), Reply(200, sample("call_real_2024.json"))]
    client = swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, hooks=[hook]
    )
    with tracer_provider.get_tracer("test").start_as_current_span("caller") as caller:
        async with client:
            await client.get_call(SID)
    spans = exporter.get_finished_spans()
    lookup = next(s for s in spans if s.name == "signalwire_calls.retrieve_call")
    attempts = sorted((s for s in spans if s.name == "GET"), key=lambda s: s.start_time)
    assert caller.get_span_context().span_id == lookup.parent.span_id
    assert 3 == len(attempts)
    assert all(a.parent.span_id == lookup.context.span_id for a in attempts)
    assert all(a.kind is SpanKind.CLIENT for a in attempts)
    assert [None, 1, 2] == [a.attributes.get("http.request.resend_count") for a in attempts]
    assert [503, 503, 200] == [a.attributes["http.response.status_code"] for a in attempts]
    assert ["503", "503", None] == [a.attributes.get("error.type") for a in attempts]
    assert [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET] == [
        a.status.status_code for a in attempts
    ]
    first = attempts[0].attributes
    assert ("GET", "127.0.0.1") == (first["http.request.method"], first["server.address"])
    assert first["url.full"] == f"{scripted.base_url}/Accounts/{PROJECT}/Calls/{SID}"
    waits = [e for e in lookup.events if e.name == "signalwire_calls.backoff"]
    assert [1, 2] == [e.attributes["signalwire_calls.retry.attempt"] for e in waits]
    assert (200, SID) == (
        lookup.attributes["http.response.status_code"],
        lookup.attributes["signalwire.call.sid"],
    )
    assert all(lookup.start_time <= a.start_time <= a.end_time <= lookup.end_time for a in attempts)


async def test_a_failed_lookup_span_carries_the_error_type(scripted, otel):
    """A lookup answered 404 ends its span with status ERROR and error.type NotFoundError."""
    hook, exporter, _, _ = otel
    scripted.script = [Reply(404, {"message": "missing"})]
    async with swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url, hooks=[hook]) as client:
        with pytest.raises(swc.NotFoundError):
            await client.get_call(SID)
    lookup = next(
        s for s in exporter.get_finished_spans() if s.name == "signalwire_calls.retrieve_call"
    )
    assert ("NotFoundError", StatusCode.ERROR, 404) == (
        lookup.attributes["error.type"],
        lookup.status.status_code,
        lookup.attributes["http.response.status_code"],
    )


async def test_metrics_count_attempts_retries_429s_and_the_job_concurrency(otel):
    """A throttled bulk job records per-attempt durations, retries by reason, 429s, concurrency."""
    hook, _, reader, _ = otel
    async with FakeSignalWire(calls=40, seed=3) as fake:
        fake.fail("*", status=429, times=6, retry_after=0)
        async with fake.client(retry=NO_WAIT, hooks=[hook]) as client:
            results = [r async for r in client.iter_call_results(fake.call_sids, concurrency=16)]
    assert 40 == len(results)
    metrics = metrics_by_name(reader)
    durations = metrics["http.client.request.duration"].data.data_points
    assert 46 == sum(p.count for p in durations)
    retries = metrics["signalwire_calls.retries"].data.data_points
    assert {"429": 6} == {p.attributes["error.type"]: p.value for p in retries}
    assert 6 == sum(p.value for p in metrics["signalwire_calls.throttled"].data.data_points)
    concurrency = metrics["signalwire_calls.bulk.concurrency"].data.data_points
    assert [0] == [p.value for p in concurrency]  # the job ended: its limit is gone


async def test_bulk_workers_keep_the_callers_span_as_parent(otel):
    """Each lookup of a bulk job is a child of the span current where the job is iterated."""
    hook, exporter, _, tracer_provider = otel
    async with FakeSignalWire(calls=10, seed=1) as fake, fake.client(hooks=[hook]) as client:
        with tracer_provider.get_tracer("test").start_as_current_span("job") as job:
            [r async for r in client.iter_call_results(fake.call_sids, concurrency=4)]
    lookups = [
        s for s in exporter.get_finished_spans() if s.name == "signalwire_calls.retrieve_call"
    ]
    assert 10 == len(lookups)
    assert {job.get_span_context().span_id} == {s.parent.span_id for s in lookups}


async def test_no_span_or_metric_carries_the_token(scripted, otel):
    """Spans, span events and metric attributes never mention the token or the Authorization header."""
    hook, exporter, reader, _ = otel
    scripted.script = [Reply(503, {}), Reply(200, sample("call_real_2024.json"))]
    async with swc.CallsClient(
        PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, hooks=[hook]
    ) as client:
        await client.get_call(SID)
    spans = exporter.get_finished_spans()
    dumped = "".join(s.to_json() for s in spans) + reader.get_metrics_data().to_json()
    assert 3 == len(spans)
    for secret in (TOKEN, "Authorization", "Basic "):
        assert secret not in dumped
    json.loads(spans[0].to_json())  # the export is whole


def test_without_an_sdk_the_hook_wants_nothing():
    """With only the API's default providers (no SDK configured), no per-request event is asked for."""
    hook = OpenTelemetryHook()
    assert hook.wants_requests() is False
    assert hook.wants_requests() is False
