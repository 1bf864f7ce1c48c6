"""The adaptive concurrency limit of a bulk job (AIMD)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from signalwire_calls._checks import check_count

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """Cap calls in flight, halving on throttling and adding one after a run of successes.

    A slot is granted only while ``in_flight < current``, so in-flight work never
    exceeds the current limit at the moment it starts, nor ``maximum`` ever. A
    decrease opens a new *generation*: signals from calls that started before it
    are ignored, so a burst of 429s from calls that were in flight together halves
    the limit once, not down to ``minimum``. Successes count only in the current
    generation; after ``increase_after`` of them in a row (default: the current
    limit, i.e. one more slot per window of successes, but never more than
    ``increase_after_max``) the limit grows by one.

    Args:
        maximum: The starting and largest limit.
        minimum: The smallest limit; ``minimum == maximum`` disables adaptation.
        increase_after: Consecutive successes needed to add one slot (fixed).
        increase_after_max: With the default ``increase_after``, the most
            successes ever needed to add one slot: a large limit cut down by a few
            scattered 429s then wins its slots back within a few hundred calls,
            while a small one still grows one slot per window.

    Raises:
        ValueError: A bound is not a positive integer, or ``minimum > maximum``.
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        increase_after: int | None = None,
        increase_after_max: int | None = None,
    ) -> None:
        check_count("maximum", maximum)
        check_count("minimum", minimum)
        if increase_after is not None:
            check_count("increase_after", increase_after)
        if increase_after_max is not None:
            check_count("increase_after_max", increase_after_max)
        if minimum > maximum:
            raise ValueError(f"minimum ({minimum}) must not exceed maximum ({maximum})")
        self.maximum = maximum
        self.minimum = minimum
        self._increase_after = increase_after
        self._increase_after_max = increase_after_max or maximum
        self._current = maximum
        self._in_flight = 0
        self._max_in_flight = 0
        self._generation = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._needed = self._successes_needed()

    @property
    def current(self) -> int:
        """The limit in force now."""
        return self._current

    @property
    def in_flight(self) -> int:
        """Slots granted and not yet released."""
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most slots ever held at once."""
        return self._max_in_flight

    @property
    def generation(self) -> int:
        """How many times the limit has been decreased."""
        return self._generation

    def __repr__(self) -> str:
        return (
            f"<AdaptiveLimit current={self._current} max={self.maximum} "
            f"in_flight={self._in_flight} waiting={len(self._waiters)}>"
        )

    def try_acquire(self) -> int | None:
        """Take a slot if one is free now and nobody is queued for one.

        Returns:
            The generation, as from :meth:`acquire`, or ``None`` if the caller must
            ``await acquire()`` instead.
        """
        in_flight = self._in_flight
        if in_flight >= self._current or self._waiters:
            return None
        # Spelled out rather than _take(): this runs twice per lookup, and a call
        # (or max()) costs more than the rest of it.
        self._in_flight = in_flight = in_flight + 1
        if in_flight > self._max_in_flight:  # noqa: PLR1730 - max() is a call, slower here
            self._max_in_flight = in_flight
        return self._generation

    async def acquire(self) -> int:
        """Wait for a slot (first come, first served) and take it.

        Returns:
            The generation the slot was granted in; pass it to :meth:`throttled`
            and :meth:`succeeded`.
        """
        if not self._waiters and self._in_flight < self._current:
            self._take()
            return self._generation
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, but the caller is gone: hand it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        return self._generation

    def release(self) -> None:
        """Give a slot back and wake waiters while the limit allows."""
        self._in_flight -= 1
        if self._waiters:
            self._wake()

    def throttled(self, generation: int) -> bool:
        """Report that the service refused a call for being too many (HTTP 429).

        Args:
            generation: The generation of the refused call's slot.

        Returns:
            Whether the limit decreased (a stale signal changes nothing).
        """
        if generation < self._generation:
            return False
        self._successes = 0
        if self._current <= self.minimum:
            return False
        self._current = max(self.minimum, self._current // 2)
        self._needed = self._successes_needed()
        self._generation += 1
        return True

    def succeeded(self, generation: int) -> bool:
        """Report a call the service answered normally (anything but a throttle).

        Args:
            generation: The generation of the call's slot.

        Returns:
            Whether the limit increased.
        """
        if generation < self._generation:
            return False
        self._successes += 1
        if self._successes < self._needed:
            return False
        self._successes = 0
        if self._current >= self.maximum:
            return False
        self._current += 1
        self._needed = self._successes_needed()
        self._wake()
        return True

    def _successes_needed(self) -> int:
        return self._increase_after or min(self._current, self._increase_after_max)

    def _take(self) -> None:
        self._in_flight += 1
        if self._in_flight > self._max_in_flight:  # noqa: PLR1730 - as in try_acquire
            self._max_in_flight = self._in_flight

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._current:
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while queued
                continue
            self._take()
            waiter.set_result(None)
