"""See what a client does: events for hooks, logging, OpenTelemetry.

Every :class:`~signalwire_calls.CallsClient` reports each request, each attempt,
each scheduled retry, each give-up and each change of a bulk job's concurrency to
its hooks (``CallsClient(hooks=...)``; by default :func:`default_hooks`). A hook
is any callable that takes one event; the built-in ones are :class:`LoggingHook`
and :class:`OpenTelemetryHook`.
"""

from __future__ import annotations

from signalwire_calls._observe import (
    AttemptEnded,
    ClientStats,
    ConcurrencyChanged,
    Event,
    GaveUp,
    Hook,
    RequestEnded,
    RequestStarted,
    RetryScheduled,
)
from signalwire_calls.instrumentation._logging import LoggingHook
from signalwire_calls.instrumentation._otel import OpenTelemetryHook

__all__ = [
    "AttemptEnded",
    "ClientStats",
    "ConcurrencyChanged",
    "Event",
    "GaveUp",
    "Hook",
    "LoggingHook",
    "OpenTelemetryHook",
    "RequestEnded",
    "RequestStarted",
    "RetryScheduled",
    "default_hooks",
]


def default_hooks() -> tuple[Hook, ...]:
    """Return the hooks a client gets unless told otherwise: logging, then OpenTelemetry.

    Both cost next to nothing until they are switched on: :class:`LoggingHook` by
    the ``signalwire_calls`` loggers' levels, :class:`OpenTelemetryHook` by an
    OpenTelemetry SDK being configured (it does nothing without ``opentelemetry-api``).
    Pass ``hooks=[*default_hooks(), your_hook]`` to add yours.
    """
    return (LoggingHook(), OpenTelemetryHook())
