"""When to retry and how long to wait: :class:`RetryPolicy` and ``Retry-After`` parsing.

Pure: nothing here does I/O or knows aiohttp. The retry middleware
(``signalwire_calls._http``) applies these rules to each attempt.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from datetime import UTC

import attrs

from signalwire_calls._errors import ConfigError

__all__ = ["RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

#: Statuses worth another attempt (API-NOTES §5.2-5.3; the same set as
#: SignalWire's own 2026 SDK plus 408).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _check_non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"RetryPolicy.{attribute.name} must be a number >= 0, got {value!r}")


def _check_attempts(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"RetryPolicy.{attribute.name} must be an integer >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed attempts are retried.

    The wait before attempt ``n + 1`` (``n`` starting at 1) is::

        min(wait_max, wait_initial * wait_exp_base ** (n - 1)) + uniform(0, wait_jitter)

    unless the server sent ``Retry-After``, whose value (seconds or an HTTP date)
    is then waited instead. A ``Retry-After`` longer than ``max_retry_after`` is
    not waited at all: the request fails at once with the server's error, whose
    ``retry_after`` says how long the server asked for.

    Only idempotent ``GET`` requests are retried, and only after a connection
    error, a timeout, a body that broke off, or a status of 408, 429, 500, 502,
    503 or 504.

    Attributes:
        attempts: Attempts in total, including the first (1 disables retries).
        wait_initial: The first backoff, in seconds.
        wait_max: The cap on the exponential part of a backoff, in seconds.
        wait_jitter: The most random seconds added to each backoff.
        wait_exp_base: The growth factor of the backoff.
        max_retry_after: The longest ``Retry-After`` that is honoured, in seconds.
    """

    attempts: int = attrs.field(default=5, validator=_check_attempts)
    wait_initial: float = attrs.field(default=0.1, validator=_check_non_negative)
    wait_max: float = attrs.field(default=10.0, validator=_check_non_negative)
    wait_jitter: float = attrs.field(default=1.0, validator=_check_non_negative)
    wait_exp_base: float = attrs.field(default=2.0, validator=_check_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_check_non_negative)

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """Return a policy that makes exactly one attempt."""
        return cls(attempts=1)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the wait in seconds after failed attempt number ``attempt`` (from 1)."""
        try:
            exp = self.wait_initial * self.wait_exp_base ** (attempt - 1)
        except OverflowError:
            exp = self.wait_max
        jitter = (rng or random).uniform(0, self.wait_jitter) if self.wait_jitter else 0.0
        return min(self.wait_max, exp) + jitter


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds, or ``None``.

    Both forms of RFC 9110 are understood: delay-seconds (``"120"``, leniently
    ``"1.5"``) and an HTTP date. Never raises and never returns a negative wait:
    a date in the past means "now" (0.0); garbage means no hint (``None``).
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    try:
        return max(0.0, when.timestamp() - current)
    except (OverflowError, ValueError, OSError):  # pragma: no cover - absurd years
        return None
