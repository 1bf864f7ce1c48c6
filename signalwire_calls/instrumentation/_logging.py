"""Events as log records with structured ``extra`` fields, never a secret."""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlsplit

from signalwire_calls._observe import (
    AttemptEnded,
    ConcurrencyChanged,
    Event,
    GaveUp,
    RequestEnded,
    RetryScheduled,
)

__all__ = ["LoggingHook"]


def _path(url: str) -> str:
    return urlsplit(url).path or url


def _what(status: int | None, error: BaseException | None) -> str:
    if error is not None:
        if isinstance(error, TimeoutError):
            return "timed out"
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return f"HTTP {status}"


class LoggingHook:
    """Log what a client does, at levels a service can leave on.

    - ``signalwire_calls``: each give-up at WARNING; each scheduled retry (with
      its wait) and each cut of a bulk job's concurrency at INFO; its growing
      back at DEBUG.
    - ``signalwire_calls.requests``: each request (method, path, status,
      latency, attempts) at DEBUG.
    - ``signalwire_calls.attempts``: each attempt at DEBUG.

    Per-request and per-attempt records are made only while the parent logger is
    enabled for DEBUG (one cheap check per request); set ``signalwire_calls.attempts``
    to INFO to keep the requests and drop the attempts.

    Every record carries the fields ``method``, ``url``, ``sid``, ``attempt``,
    ``status``, ``reason``, ``wait`` and ``elapsed`` (``None`` where they do not
    apply) for structured formatters. URLs carry no credentials, query or
    fragment; the API token is never part of an event.

    Args:
        logger: The parent logger (default: ``signalwire_calls``); the per-request
            and per-attempt loggers are its ``.requests`` and ``.attempts`` children.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("signalwire_calls")
        self._requests = self.logger.getChild("requests")
        self._attempts = self.logger.getChild("attempts")
        # The bound check itself, without a Python frame around it: it runs per request.
        self.wants_requests = functools.partial(  # type: ignore[method-assign]
            self.logger.isEnabledFor, logging.DEBUG
        )

    def __repr__(self) -> str:
        return f"<LoggingHook logger={self.logger.name!r}>"

    def wants_requests(self) -> bool:
        """Return whether the parent logger is enabled for DEBUG (one check per request)."""
        return self.logger.isEnabledFor(logging.DEBUG)

    def __call__(self, event: Event) -> None:
        """Log ``event`` if its logger is enabled for its level."""
        if isinstance(event, RequestEnded):
            self._request_ended(event)
        elif isinstance(event, AttemptEnded):
            self._attempt_ended(event)
        elif isinstance(event, RetryScheduled):
            self._retry(event)
        elif isinstance(event, GaveUp):
            self._gave_up(event)
        elif isinstance(event, ConcurrencyChanged):
            self._concurrency(event)

    def _request_ended(self, event: RequestEnded) -> None:
        log = self._requests
        if not log.isEnabledFor(logging.DEBUG):
            return
        outcome = (
            str(event.status)
            if event.error is None or event.status is not None
            else f"failed ({event.error_type})"
        )
        tries = f" ({event.attempts} attempts)" if event.attempts > 1 else ""
        log.debug(
            "%s %s %s in %.1f ms%s",
            event.method,
            _path(event.url),
            outcome,
            event.elapsed * 1000,
            tries,
            extra=_fields(
                event,
                attempt=event.attempts,
                reason=event.error_type,
                wait=None,
                elapsed=event.elapsed,
            ),
        )

    def _attempt_ended(self, event: AttemptEnded) -> None:
        log = self._attempts
        if not log.isEnabledFor(logging.DEBUG):
            return
        log.debug(
            "attempt %d: %s %s %s in %.1f ms",
            event.attempt,
            event.method,
            _path(event.url),
            event.status if event.error is None else _what(None, event.error),
            event.duration * 1000,
            extra=_fields(
                event,
                attempt=event.attempt,
                reason=event.error_type,
                wait=None,
                elapsed=event.duration,
            ),
        )

    def _retry(self, event: RetryScheduled) -> None:
        log = self.logger
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "Retrying %s %s in %.2fs (attempt %d of %d failed: %s)",
            event.method,
            _path(event.url),
            event.wait,
            event.attempt,
            event.attempts,
            _what(event.status, event.error),
            extra=_fields(
                event, attempt=event.attempt, reason=event.reason, wait=event.wait, elapsed=None
            ),
        )

    def _gave_up(self, event: GaveUp) -> None:
        self.logger.warning(
            "Giving up on %s %s after %d attempt(s) in %.2fs: %s",
            event.method,
            _path(event.url),
            event.attempts,
            event.elapsed,
            _what(event.status, event.error),
            extra=_fields(
                event, attempt=event.attempts, reason=event.reason, wait=None, elapsed=event.elapsed
            ),
        )

    def _concurrency(self, event: ConcurrencyChanged) -> None:
        previous, current = event.previous, event.current
        if previous and current and current < previous:
            level, verb = logging.INFO, "cut"
        else:
            level, verb = logging.DEBUG, "set"
        log = self.logger
        if log.isEnabledFor(level):
            log.log(level, "Bulk concurrency %s from %d to %d", verb, previous, current)


def _fields(
    event: RequestEnded | AttemptEnded | RetryScheduled | GaveUp,
    *,
    attempt: int,
    reason: str | None,
    wait: float | None,
    elapsed: float | None,
) -> dict[str, object]:
    return {
        "method": event.method,
        "url": event.url,
        "sid": event.sid,
        "attempt": attempt,
        "status": event.status,
        "reason": reason,
        "wait": wait,
        "elapsed": elapsed,
    }
