"""The client's HTTP layer: the only client code that imports aiohttp.

A :class:`Requester` sends every request through one pooled session and the
:class:`RetryMiddleware`, which runs each attempt under one shared watchdog.
"""

from __future__ import annotations

from signalwire_calls._http._middleware import (
    AttemptsExhaustedError,
    RetryMiddleware,
    retry_listener,
    throttle_listener,
)
from signalwire_calls._http._requester import Requester, user_agent

__all__ = [
    "AttemptsExhaustedError",
    "Requester",
    "RetryMiddleware",
    "retry_listener",
    "throttle_listener",
    "user_agent",
]
