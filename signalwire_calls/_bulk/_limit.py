"""The concurrency limit of a bulk job: pinned (AIMD on 429s) or self-tuning (Vegas-style)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import Final

from signalwire_calls._checks import check_count

__all__ = ["AdaptiveLimit"]

#: A self-tuning limit aims to keep between ``alpha`` and ``beta`` calls queued
#: (beyond what the round trip alone explains): fractions of the limit, with floors.
_ALPHA: Final = 0.03
_BETA: Final = 0.08
_ALPHA_MIN: Final = 2.0
_BETA_MIN: Final = 4.0
#: How far one round moves the limit toward its target (1 would jump there).
_SMOOTHING: Final = 0.5
#: The fewest latency samples that close a round.
_ROUND_MIN: Final = 16
#: How fast the no-load round trip may drift up per round, so a path that got
#: slower for good is learnt (0.02 % per round).
_BASE_DRIFT: Final = 1.0002
#: Rounds after a 429 during which a self-tuning limit grows by one per round.
_CAREFUL_ROUNDS: Final = 30


class AdaptiveLimit:
    """Cap calls in flight; cut on throttling; with ``tune=True``, follow the latency too.

    **Pinned** (``tune=False``, the default here; ``concurrency=N`` in the client):
    the limit starts at ``maximum``, is multiplied by ``backoff`` on throttling and
    adds one after a run of successes (AIMD).

    **Self-tuning** (``tune=True``; the client's default): the limit starts at
    ``initial`` and is recomputed once per *round*, i.e. once per
    ``max(current, 16)`` successful calls, from the mean round trip of the round
    ``rtt`` and the no-load round trip ``base`` (the smallest round mean seen,
    allowed to drift up by 0.02 % a round); ``rtt`` is averaged with the previous
    round's value after slow start, so one noisy round moves the limit less. As
    in TCP Vegas, the calls that are
    queued somewhere (in the service, the network or this process's event loop)
    rather than being served are estimated as::

        queue = current * (1 - base / rtt)
        alpha = max(2, 0.03 * current);  beta = max(4, 0.08 * current)

    * while no queue has been seen yet (*slow start*), ``queue <= 2 * beta``
      doubles the limit each round (the first round trips also pay for new
      connections, hence the slack);
    * then ``queue < alpha`` adds ``max(sqrt(current), (alpha + beta) / 2)``,
      ``queue > beta`` moves the limit halfway down to
      ``target = current * base / rtt + (alpha + beta) / 2`` (the limit that
      would leave ``(alpha + beta) / 2`` queued), and in between it holds;
    * a throttle (HTTP 429) multiplies it by ``backoff`` (0.9 in the client, a
      gentle cut as in TCP CUBIC and AWS's adaptive retry; 0.5 if it comes in
      slow start, which overshoots by up to twice) and, for the next 30 rounds,
      growth is at most one slot per round, so a rate cap is probed slowly.

    So the limit grows while latency holds, stops where extra calls only queue
    (the service's capacity, or this process's CPU), and backs off when latency
    rises or 429s arrive, always between ``minimum`` and ``maximum``.

    A slot is granted only while ``in_flight < current``, so in-flight work never
    exceeds the current limit at the moment it starts, nor ``maximum`` ever. A
    decrease opens a new *generation*: signals from calls that started before it
    are ignored, so a burst of 429s from calls that were in flight together halves
    the limit once, not down to ``minimum``. Successes count only in the current
    generation; after ``increase_after`` of them in a row (default: the current
    limit, i.e. one more slot per window of successes, but never more than
    ``increase_after_max``) the limit grows by one.

    Args:
        maximum: The largest limit (and the starting one unless ``initial`` is given).
        minimum: The smallest limit; ``minimum == maximum`` disables adaptation.
        initial: The starting limit (default: ``maximum``).
        tune: Follow the round-trip latency as described above.
        backoff: The factor a throttle multiplies the limit by (0 < backoff < 1).
        increase_after: Consecutive successes needed to add one slot (fixed).
        increase_after_max: With the default ``increase_after``, the most
            successes ever needed to add one slot: a large limit cut down by a few
            scattered 429s then wins its slots back within a few hundred calls,
            while a small one still grows one slot per window.

    Raises:
        ValueError: A bound is not a positive integer, ``initial`` is not between
            them, ``minimum > maximum``, or ``backoff`` is not between 0 and 1.
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        initial: int | None = None,
        tune: bool = False,
        backoff: float = 0.5,
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
        if initial is not None:
            check_count("initial", initial, minimum=minimum)
            if initial > maximum:
                raise ValueError(f"initial ({initial}) must not exceed maximum ({maximum})")
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not 0 < backoff < 1:
            raise ValueError(f"backoff must be a number between 0 and 1, got {backoff!r}")
        self.maximum = maximum
        self.minimum = minimum
        self.tune = tune
        self._backoff = backoff
        self._increase_after = increase_after
        self._increase_after_max = increase_after_max or maximum
        self._current = maximum if initial is None else initial
        # Self-tuning state: this round's samples, the no-load round trip.
        self._rtt_sum = 0.0
        self._rtt_count = 0
        self._round_size = max(self._current, _ROUND_MIN)
        self._base = math.inf
        self._rtt = 0.0
        self._slow_start = True
        self._careful = 0  # rounds left of one-slot growth after a throttle
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

    @property
    def base_rtt(self) -> float | None:
        """The no-load round trip a self-tuning limit measured, in seconds (``None``: not yet)."""
        return None if self._base == math.inf else self._base

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
        # Slow start overshoots by up to twice: its first cut halves, as in TCP.
        backoff = 0.5 if self.tune and self._slow_start else self._backoff
        self._slow_start = False
        self._careful = _CAREFUL_ROUNDS
        if self._current <= self.minimum:
            return False
        return self._set(int(self._current * backoff), "throttled")

    def succeeded(self, generation: int, rtt: float | None = None) -> bool:  # noqa: PLR0911
        """Report a call the service answered normally (anything but a throttle).

        Args:
            generation: The generation of the call's slot.
            rtt: How long the call took, in seconds, if it is a clean sample (no
                throttle or retry inside it); a self-tuning limit learns from it.

        Returns:
            Whether the limit changed.
        """
        if generation < self._generation:
            return False
        if self.tune:
            if rtt is None:
                return False
            self._rtt_sum += rtt
            self._rtt_count += 1
            if self._rtt_count < self._round_size:
                return False
            return self._end_round()
        self._successes += 1
        if self._successes < self._needed:
            return False
        self._successes = 0
        if self._current >= self.maximum:
            return False
        return self._set(self._current + 1, "successes")

    def _end_round(self) -> bool:
        """Close a self-tuning round: compare its mean round trip with the no-load one."""
        sample = self._rtt_sum / self._rtt_count
        self._rtt_sum = 0.0
        self._rtt_count = 0
        base = self._base = min(self._base * _BASE_DRIFT, sample)
        # Smoothed over two rounds or so: one noisy round (a busy machine) moves less.
        smoothed = self._rtt = sample if self._rtt == 0.0 else (self._rtt + sample) / 2
        rtt = sample if self._slow_start else smoothed  # slow start must stop at once
        current = self._current
        careful = self._careful
        if careful:
            self._careful = careful - 1
        queue = current * (1.0 - base / rtt) if rtt > 0 else 0.0
        alpha = max(_ALPHA_MIN, _ALPHA * current)
        beta = max(_BETA_MIN, _BETA * current)
        if self._slow_start and queue <= 2 * beta:
            new = 2 * current
        else:
            self._slow_start = False
            if alpha <= queue <= beta:
                new = current
            elif queue < alpha:
                new = current + round(max(math.sqrt(current), (alpha + beta) / 2))
            else:
                target = current * base / rtt + (alpha + beta) / 2
                new = min(current - 1, round(current + _SMOOTHING * (target - current)))
        if careful and new > current:
            new = current + 1
        new = max(self.minimum, min(self.maximum, new))
        return self._set(new, "latency")

    def _set(self, new: int, reason: str) -> bool:  # noqa: ARG002 - for an observer's hook
        """Change the limit: the one place its value changes.

        A decrease opens a new generation (signals from older slots are then
        stale); an increase wakes waiters.
        """
        new = max(self.minimum, min(self.maximum, new))
        old = self._current
        if new == old:
            return False
        self._current = new
        self._needed = self._successes_needed()
        self._round_size = max(new, _ROUND_MIN)
        if new < old:
            self._generation += 1
            self._rtt_sum = 0.0
            self._rtt_count = 0
        else:
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
