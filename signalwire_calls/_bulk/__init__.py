"""Bounded, adaptive fan-out of many lookups: generic over key and value, no HTTP.

The client runs its bulk lookups through :func:`fan_out`; the limit it adapts is
an :class:`AdaptiveLimit`, and a running job reports itself as
:class:`BulkProgress`.
"""

from __future__ import annotations

from signalwire_calls._bulk._job import MAX_THROTTLE_RETRIES, BulkProgress, Outcome, fan_out
from signalwire_calls._bulk._limit import AdaptiveLimit, LimitMemory

__all__ = [
    "MAX_THROTTLE_RETRIES",
    "AdaptiveLimit",
    "BulkProgress",
    "LimitMemory",
    "Outcome",
    "fan_out",
]
