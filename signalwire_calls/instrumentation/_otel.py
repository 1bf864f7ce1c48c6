"""Events as OpenTelemetry spans and metrics, through ``opentelemetry-api`` only.

``opentelemetry`` is imported on first use, and only if installed (the ``otel``
extra); until an SDK is configured (a tracer or meter provider that is not the
API's own proxy or no-op one) the hook asks for no per-request event, so it costs
one provider check per request and builds nothing.
"""

from __future__ import annotations

import contextvars
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from signalwire_calls._observe import (
    AttemptEnded,
    ConcurrencyChanged,
    Event,
    GaveUp,
    RequestEnded,
    RequestStarted,
    RetryScheduled,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider, UpDownCounter
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["OpenTelemetryHook"]

_SCOPE = "signalwire_calls"
#: Seconds between two looks for a provider while none is configured: the look
#: costs a few microseconds, too much for every request.
_RECHECK = 1.0
_monotonic = time.monotonic
#: The bucket boundaries OpenTelemetry's HTTP semantic conventions advise, in seconds.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def _version() -> str:
    try:
        return version("signalwire-calls")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _is_api_default(provider: object) -> bool:
    """Whether ``provider`` is the API's own proxy or no-op provider: no SDK is configured."""
    module = type(provider).__module__
    return module == "opentelemetry.trace" or module.startswith("opentelemetry.metrics")


class _Lookup:
    """The span of one request, and what its attempts need."""

    __slots__ = ("address", "context", "port", "span", "token")

    def __init__(self, span: Span, context: Any, address: str, port: int | None) -> None:
        self.span = span
        self.context = context
        self.address = address
        self.port = port
        self.token: contextvars.Token[_Lookup | None] | None = None


class _Meters:
    """The instruments, created once a meter provider is configured."""

    __slots__ = ("concurrency", "duration", "retries", "throttled")

    def __init__(self, provider: MeterProvider, version: str) -> None:
        meter = provider.get_meter(_SCOPE, version)
        self.duration: Histogram = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests (one per attempt).",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self.retries: Counter = meter.create_counter(
            "signalwire_calls.retries",
            unit="{retry}",
            description="Retries scheduled, by error.type (the status code, timeout, ...).",
        )
        self.throttled: Counter = meter.create_counter(
            "signalwire_calls.throttled",
            unit="{response}",
            description="Answers of HTTP 429 Too Many Requests.",
        )
        self.concurrency: UpDownCounter = meter.create_up_down_counter(
            "signalwire_calls.bulk.concurrency",
            unit="{request}",
            description="The concurrency limits of the running bulk jobs, summed.",
        )


class OpenTelemetryHook:
    """Trace and measure a client with OpenTelemetry (needs the ``otel`` extra).

    With a tracer provider, each request is a span (``signalwire_calls.retrieve_call``
    or ``signalwire_calls.list_calls``, a child of the caller's current span) with
    one ``CLIENT`` span per attempt under it, carrying the HTTP client semantic
    conventions: ``http.request.method``, ``server.address``, ``server.port``,
    ``url.full`` (no credentials, no query), ``http.response.status_code``,
    ``error.type`` and, on attempts after the first, ``http.request.resend_count``.
    Each backoff wait is a ``signalwire_calls.backoff`` event on the request's span.

    With a meter provider: ``http.client.request.duration`` (seconds, per attempt),
    ``signalwire_calls.retries`` (by ``error.type``), ``signalwire_calls.throttled``
    (429s) and ``signalwire_calls.bulk.concurrency`` (the running bulk jobs' limits).

    Args:
        tracer_provider: The provider to use (default: the global one, once set).
        meter_provider: Likewise for metrics.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: Tracer | None = None
        self._meters: _Meters | None = None
        self._missing = False  # opentelemetry-api is not installed
        self._trace: Any = None  # the opentelemetry.trace module, once imported
        self._next_look = 0.0  # time.monotonic() of the next look for a provider
        self._complete = False  # both providers found: no need to look again
        self._lookup: contextvars.ContextVar[_Lookup | None] = contextvars.ContextVar(
            "signalwire_calls_otel_lookup", default=None
        )

    def __repr__(self) -> str:
        return (
            f"<OpenTelemetryHook tracing={self._tracer is not None} "
            f"metrics={self._meters is not None}>"
        )

    # ------------------------------------------------------------ activation

    def wants_requests(self) -> bool:
        """Return whether an OpenTelemetry SDK is configured (for tracing or for metrics).

        While none is, look again at most once a second: a global provider set after
        the client's first request is found within a second.
        """
        if self._complete or self._missing:
            return self._complete
        now = _monotonic()
        if now >= self._next_look:
            self._next_look = now + _RECHECK
            self._resolve()
        return self._tracer is not None or self._meters is not None

    def _resolve(self) -> None:
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415 - optional, on first use
        except ImportError:
            self._missing = True
            return
        self._trace = trace
        if self._tracer is None:
            provider = self._tracer_provider or trace.get_tracer_provider()
            if not _is_api_default(provider):
                self._tracer = provider.get_tracer(_SCOPE, _version())
        if self._meters is None:
            meters = self._meter_provider or metrics.get_meter_provider()
            if not _is_api_default(meters):
                self._meters = _Meters(meters, _version())
        self._complete = self._tracer is not None and self._meters is not None

    # ---------------------------------------------------------------- events

    def __call__(self, event: Event) -> None:
        """Turn ``event`` into spans, span events and measurements."""
        if not self.wants_requests():
            return
        if isinstance(event, AttemptEnded):
            self._attempt(event)
        elif isinstance(event, RequestStarted):
            self._start(event)
        elif isinstance(event, RequestEnded):
            self._end(event)
        elif isinstance(event, RetryScheduled):
            self._retry(event)
        elif isinstance(event, GaveUp):
            self._gave_up(event)
        elif isinstance(event, ConcurrencyChanged) and self._meters is not None:
            self._meters.concurrency.add(event.current - event.previous)

    def _start(self, event: RequestStarted) -> None:
        parts = urlsplit(event.url)
        address = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        tracer = self._tracer
        if tracer is None:
            lookup = _Lookup(self._trace.INVALID_SPAN, None, address, port)
        else:
            attributes: dict[str, Any] = {
                "http.request.method": event.method,
                "server.address": address,
                "server.port": port,
                "url.full": event.url,
            }
            if event.sid:
                attributes["signalwire.call.sid"] = event.sid
            name = "retrieve_call" if event.sid else "list_calls"
            span = tracer.start_span(f"{_SCOPE}.{name}", attributes=attributes)
            lookup = _Lookup(span, self._trace.set_span_in_context(span), address, port)
        lookup.token = self._lookup.set(lookup)

    def _end(self, event: RequestEnded) -> None:
        lookup = self._lookup.get()
        if lookup is None:
            return
        if lookup.token is not None:
            self._lookup.reset(lookup.token)
        span = lookup.span
        if not span.is_recording():
            return
        if event.status is not None:
            span.set_attribute("http.response.status_code", event.status)
        span.set_attribute("signalwire_calls.attempts", event.attempts)
        if event.error is not None:
            kind = event.error_type or "_OTHER"
            span.set_attribute("error.type", kind)
            span.set_status(self._trace.StatusCode.ERROR, kind)
        span.end()

    def _attempt(self, event: AttemptEnded) -> None:
        lookup = self._lookup.get()
        address = lookup.address if lookup is not None else urlsplit(event.url).hostname or ""
        port = lookup.port if lookup is not None else urlsplit(event.url).port
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "server.address": address,
        }
        if port is not None:
            attributes["server.port"] = port
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        kind = event.error_type
        if kind is not None:
            attributes["error.type"] = kind
        meters = self._meters
        if meters is not None:
            meters.duration.record(event.duration, attributes)
            if event.status == 429:  # noqa: PLR2004 - Too Many Requests
                meters.throttled.add(1, {"server.address": address})
        tracer = self._tracer
        if tracer is None or lookup is None:
            return
        attributes["url.full"] = event.url
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        span = tracer.start_span(
            event.method,
            context=lookup.context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=event.started_at,
        )
        if kind is not None:
            span.set_status(self._trace.StatusCode.ERROR, kind)
        span.end(end_time=event.started_at + int(event.duration * 1e9))

    def _retry(self, event: RetryScheduled) -> None:
        if self._meters is not None:
            self._meters.retries.add(1, {"error.type": event.reason})
        lookup = self._lookup.get()
        if lookup is not None and lookup.span.is_recording():
            lookup.span.add_event(
                "signalwire_calls.backoff",
                {
                    "signalwire_calls.retry.attempt": event.attempt,
                    "signalwire_calls.retry.wait": event.wait,
                    "error.type": event.reason,
                },
            )

    def _gave_up(self, event: GaveUp) -> None:
        lookup = self._lookup.get()
        if lookup is not None and lookup.span.is_recording():
            lookup.span.add_event(
                "signalwire_calls.gave_up",
                {"signalwire_calls.attempts": event.attempts, "error.type": event.reason},
            )
