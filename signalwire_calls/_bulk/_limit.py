"""The concurrency limit of a bulk job: pinned (AIMD on 429s) or self-tuning (BBR-style)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from signalwire_calls._checks import check_count

__all__ = ["AdaptiveLimit", "LimitMemory"]

#: Startup doubles the limit while each round delivers this much more than the best before.
_STARTUP_GROWTH: Final = 1.25
#: Startup ends after this many rounds in a row that do not grow so; a rate then
#: at least ``_FLAT`` of the best is flat (else it fell).
_STALLS: Final = 2
_FLAT: Final = 0.9
#: The fewest answers that close a round.
_ROUND_MIN: Final = 16
#: How fast the no-load round trip may drift up per round, so a path that got
#: slower for good is learnt (0.1 % per round).
_BASE_DRIFT: Final = 1.001
#: The smallest and largest probe step (a probe tries ``target * (1 + step)`` or
#: ``target / (1 + step)``); the step doubles after each probe that wins.
_STEP_MIN: Final = 0.125
_STEP_MAX: Final = 1.0
#: A probe wins if the rate rose by this share of its step (up, down); it draws
#: if nothing was queued and the rate fell by less than ``_UP_LOSS`` of it (noise).
_UP_GAIN: Final = 1 / 2
_DOWN_GAIN: Final = 1 / 2
_UP_LOSS: Final = 1 / 2
#: A round whose quickest call took more than this times the least round trip
#: ever seen is *queued*.
_QUEUE_TOLERANCE: Final = 1.1
#: Rounds at the target between probes: from 2, doubled after each probe that
#: does not win, to 16.
_WAIT_MIN: Final = 2
_WAIT_MAX: Final = 32
#: Paced, the limit leaves room for this multiple of pace x least round trip
#: (BBR's congestion-window gain), so that the pace, not the window, binds.
_BDP_GAIN: Final = 2.0
#: After a 429, starts are paced. Per round without a 429 the pace grows by
#: ``_PACE_FAST``, but by ``_PACE_SLOW`` within ``_PACE_PLATEAU`` of the rate
#: refused (TCP CUBIC's shape: quickly back to just under the level refused,
#: slowly past it, quickly again far past it). The bucket holds one least round
#: trip of tokens (``_PACE_BURST`` seconds before one is known). Pacing ends
#: after ``_PACE_ROUNDS`` rounds without a 429.
_PACE_FAST: Final = 0.02
_PACE_SLOW: Final = 0.005
_PACE_PLATEAU: Final = 0.95
_PACE_BURST: Final = 0.05
_PACE_ROUNDS: Final = 64
_PACE_MIN: Final = 1.0
#: Below the plateau the pace closes this share of the gap to it per round.
_PACE_CLOSE: Final = 0.25
#: One burst of 429s leaves at least this share of the pace (before ``backoff``).
_PACE_FLOOR: Final = 0.75
#: The answers whose times are kept, and the window (in least round trips) over
#: which they measure the rate a 429 anchors the pace to.
_RECENT: Final = 2048
_RECENT_WINDOW: Final = 2.0

#: With a CPU clock: a round in which this process used less than this share of
#: one core is *idle* (its own CPU is not what slows the answers), and then a
#: round whose median round trip exceeds ``_LATENCY_TOLERANCE`` x the reference
#: (the least median of the idle rounds so far) by at least ``_QUEUE_MIN`` seconds
#: is *congested*: the limit goes to ``current * _LATENCY_TOLERANCE * ref / median``,
#: but to no less than ``_EASE_MIN`` x current in one round. The reference follows a
#: lasting rise by ``_REF_DRIFT`` of the gap a round.
_IDLE: Final = 0.8
_LATENCY_TOLERANCE: Final = 1.1
_QUEUE_MIN: Final = 0.001
_EASE_MIN: Final = 0.75
_REF_DRIFT: Final = 0.05

#: How long a :class:`LimitMemory` is trusted after its last settled round (seconds).
MEMORY_SECONDS: Final = 600.0

# The modes of a self-tuning limit.
_STARTUP: Final = 0
_CRUISE: Final = 1
_PROBE_UP: Final = 2
_PROBE_DOWN: Final = 3


class LimitMemory:
    """Where a client's self-tuning jobs leave what they settled on, for the next job.

    A job's limit writes here at the end of each round it is not in startup: its
    operating point (``target``) and, paced, its pace and the rate refused. The
    next job's limit starts from there, probing as usual, instead of from 32
    (as Linux keeps a destination's ssthresh and round trip in ``tcp_metrics``).
    A job that ends still in startup (a short one) leaves the limit of its best
    round so far, marked ``growing``: the next job goes on with the startup from
    there instead of doubling up from 32 again.
    Memory older than :data:`MEMORY_SECONDS` is forgotten; the least round trip
    is not kept (a new job measures its own, so a path that changed is not misread).
    """

    __slots__ = ("_clock", "growing", "pace", "refused", "target", "when")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.target = 0
        self.pace = 0.0
        self.refused = 0.0
        self.growing = False  # target is a startup's best limit so far, not settled
        self.when = -math.inf

    def __repr__(self) -> str:
        growing = " growing" if self.growing else ""
        return f"<LimitMemory target={self.target} pace={self.pace:.0f}{growing}>"

    def remember(self, target: int, pace: float, refused: float, *, growing: bool = False) -> None:
        """Keep a round's operating point (``growing``: a startup's, still doubling)."""
        self.target, self.pace, self.refused = target, pace, refused
        self.growing = growing
        self.when = self._clock()

    def recall(self) -> tuple[int, float, float] | None:
        """Return ``(target, pace, refused)`` if fresh enough, else ``None``."""
        if self.target < 1 or self._clock() - self.when > MEMORY_SECONDS:
            return None
        return self.target, self.pace, self.refused


class AdaptiveLimit:
    """Cap calls in flight; cut on throttling; with ``tune=True``, find the limit itself.

    **Pinned** (``tune=False``, the default here; ``concurrency=N`` in the client):
    the limit starts at ``maximum``, is multiplied by ``backoff`` on throttling and
    adds one after a run of successes (AIMD).

    **Self-tuning** (``tune=True``; the client's default) follows what the
    service *delivers*, as BBR does. Once per *round* (as many answers as the
    limit, at least 16; a 404 is an answer, a 429 is not) it measures::

        rate   = answers in the round / its duration        (the "now" of each answer)
        base   = the least round trip seen (drifting up 0.1 % a round)
        queued = the round's quickest round trip > 1.1 * base

    (in startup, the quickest of the calls that started in the round), then:

    * **startup** (from ``initial``): ``limit * 2`` while ``rate`` grows by at
      least 25 % a round (on the best round so far, ``best_rate`` at
      ``best_limit``). Then, after two rounds in a row that are *flat*
      (``rate >= 0.9 * best_rate``), ``target = limit``; after one that *fell*,
      ``target = max(best_limit, min(limit, ceil(1.25 * best_rate * base)))``;
    * **probing**: after a few rounds at ``target``, one round at
      ``target * (1 + step)`` if nothing is queued, else ``target / (1 + step)``
      (``step`` from 0.125; the round before it, which still holds calls of the
      old limit, is not judged). The probe *wins* if ``rate`` rose by ``step / 3``
      (up) or ``step / 2`` (down): it becomes the target, ``step`` doubles (to
      1) and the next probe follows at once. It is a *draw*, also kept but with
      the smallest step, if nothing was queued and ``rate`` fell by less than
      ``step / 2``. Otherwise the target stays. After a draw or a loss the wait
      before the next probe doubles, from 2 rounds to 16. A *busy* process (a
      CPU clock showing at least 0.8 of a core used in the round) queues its
      own answers, so *queued* says nothing of the service: its probes
      alternate up and down, and only a win moves it (kept draws walked a busy
      limit down, since fewer calls queue less in its own loop);
    * **latency, when idle** (with a ``cpu_clock``; the client passes
      :func:`time.process_time`): a round out of startup in which this process
      used less than 0.8 of a core, and whose *median* round trip exceeds
      ``1.1 * ref`` and ``ref + 1 ms``, is a queue that is not this process's
      own CPU (a service's capacity): ``target = current * max(0.75, 1.1 * ref
      / median)``, as TCP Vegas and Gradient2 would (above the old target too,
      after a probe up that went a little too far; clamped at 0.75, no higher
      than the old target). ``ref`` is the least
      median of the idle rounds so far, rising by 5 % of the gap a round (as
      Gradient2 compares a short average with a long one, not with the least
      sample: round trips vary on every path); the median, so that the
      handshakes of a probe's new connections do not count. A busy process's
      latency is its own queue and never lowers the limit: there only a probe
      down that delivers more with fewer calls does;
    * **a throttle** (HTTP 429, once per burst) multiplies the limit by
      ``backoff`` (0.9 in the client; 0.5 in startup, which overshoots by up to
      twice) and *paces* starts, as AWS's adaptive retry mode does, with a token
      bucket (one ``base`` of tokens deep, on the answers' clock) filled at
      ``pace = backoff * max(rate, recent)``, where ``recent`` is the answers
      of the last ``2 * base`` seconds divided by ``2 * base`` (a partial
      round's rate can overstate a cap several times over: answers come in
      clumps). Already paced, ``pace = backoff * min(pace, recent)``, but at
      least ``0.75 * backoff * pace`` (right after an overshoot, while refused
      calls wait out their retries, what gets through is no measure of the cap).
      A refused call's retry takes a token too (into debt if none is left), so
      a burst of them is retried at the pace. Each round without a 429 the pace
      closes a quarter of its gap to 95 % of the pace that was refused (at
      least 2 %), grows by 0.5 % within 5 % of it, and by 2 % past it (TCP
      CUBIC's shape: quickly back, slowly across, quickly again if the cap
      moved); and the limit is at least
      ``ceil(2 * pace * base)``, so the pace, not the window, holds the cap;
      after 64 rounds without a 429 pacing ends and probing resumes.

    So the limit grows while what is delivered grows, even when latency rises
    with it (a CPU-bound client), stops where more calls slow every reply (a
    service's capacity), and holds a rate cap with few 429s, always between
    ``minimum`` and ``maximum``. With a :class:`LimitMemory`, a new limit
    starts where the last one settled (its target and pace), out of startup;
    or, if the last one ended still in startup, at its best limit, in startup.

    A slot is granted only while ``in_flight < current`` (and, paced, when a
    token is left or nothing is in flight), so in-flight work never exceeds the
    current limit at the moment it starts, nor ``maximum`` ever. A decrease
    opens a new *generation*: signals from calls that started before it are
    ignored, so a burst of 429s from calls that were in flight together cuts the
    limit once, not down to ``minimum``. Pinned, successes count only in the
    current generation; after ``increase_after`` of them in a row (default: the
    current limit, i.e. one more slot per window of successes, but never more
    than ``increase_after_max``) the limit grows by one.

    Args:
        maximum: The largest limit (and the starting one unless ``initial`` is given).
        minimum: The smallest limit; ``minimum == maximum`` disables adaptation.
        initial: The starting limit (default: ``maximum``).
        tune: Find the limit from the delivery rate as described above.
        backoff: The factor a throttle multiplies the limit by (0 < backoff < 1).
        increase_after: Consecutive successes needed to add one slot (fixed).
        increase_after_max: With the default ``increase_after``, the most
            successes ever needed to add one slot: a large limit cut down by a few
            scattered 429s then wins its slots back within a few hundred calls,
            while a small one still grows one slot per window.
        cpu_clock: The process's CPU time (``time.process_time``), for the
            latency rule; without it latency never lowers the limit.
        memory: Where to start from and to write back what this limit settles on.

    Raises:
        ValueError: A bound is not a positive integer, ``initial`` is not between
            them, ``minimum > maximum``, or ``backoff`` is not between 0 and 1.
    """

    def __init__(  # noqa: PLR0915 - the state of both modes, set in one place
        self,
        maximum: int,
        *,
        minimum: int = 1,
        initial: int | None = None,
        tune: bool = False,
        backoff: float = 0.5,
        increase_after: int | None = None,
        increase_after_max: int | None = None,
        cpu_clock: Callable[[], float] | None = None,
        memory: LimitMemory | None = None,
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
        # Self-tuning state. A round: as many deliveries as the limit (at least 16).
        self._round_size = max(self._current, _ROUND_MIN)
        self._round_n = 0  # deliveries in this round
        self._round_rtt = 0.0  # the sum of its clean round trips
        self._round_rtt_n = 0
        self._round_rtts: list[float] = []  # its clean round trips (with a CPU clock)
        self._round_min = math.inf  # its least round trip
        self._round_fresh = math.inf  # the least of the calls that started in it
        self._round_start: float | None = None  # when it began (the job's clock)
        self._cpu_clock = cpu_clock
        self._round_cpu = cpu_clock() if cpu_clock is not None else 0.0  # CPU time then
        self._now: float | None = None  # the latest completion time reported
        self._transition = False  # this round began with calls of an older limit
        self._base = math.inf  # the least round trip (allowed to drift up)
        self._ref_rtt = 0.0  # the least median of the idle rounds (0: none yet)
        self._mode = _STARTUP if tune else _CRUISE
        self._rate = 0.0  # the last round's delivery rate, per second
        self._best_rate = 0.0  # startup: the best rate so far, and its limit
        self._best_limit = self._current
        self._stalls = 0  # startup rounds in a row that did not grow
        self._target = self._current  # the operating point probes start from
        self._ref = 0.0  # the delivery rate at the target
        self._step = _STEP_MIN
        self._wait = _WAIT_MIN  # rounds at the target before the next probe
        self._wait_max = _WAIT_MIN
        self._busy_up = False  # the direction of the last probe a busy round started
        # Pacing after a 429: starts per second (0: none), tokens, and when they
        # were last added (on the completion clock: a start follows a completion).
        self._pace = 0.0
        self._tokens = 0.0
        self._paced_at: float | None = None
        self._cut_at: float | None = None  # when the pace was last cut
        self._refused_rate = 0.0  # the pace (or delivery rate) at the last 429
        self._calm = 0  # rounds since the last 429
        self._recent: deque[float] = deque(maxlen=_RECENT)  # when the latest answers came
        self._in_flight = 0
        self._max_in_flight = 0
        self._generation = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._memory = memory = memory if tune else None
        learned = memory.recall() if memory is not None else None
        if memory is not None and learned is not None:
            self._resume(*learned, growing=memory.growing)
        self._needed = self._successes_needed()

    def _resume(self, target: int, pace: float, refused: float, *, growing: bool) -> None:
        """Start where an earlier job settled: at its target (and pace), probing, not in startup.

        ``growing``: the earlier job ended in startup; this one goes on with it
        from that job's best limit (its rate is measured afresh).
        """
        self._current = self._target = self._best_limit = max(
            self.minimum, min(self.maximum, target)
        )
        self._round_size = max(self._current, _ROUND_MIN)
        if growing:
            return
        self._mode = _CRUISE
        if pace > 0:
            self._pace, self._refused_rate = pace, refused
            self._tokens = max(1.0, _PACE_BURST * pace)  # a first burst, as a warm bucket

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

    @property
    def delivery_rate(self) -> float:
        """What a self-tuning limit saw delivered per second in its last round (0: none yet)."""
        return self._rate

    @property
    def pace(self) -> float | None:
        """The starts per second a self-tuning limit allows after a 429 (``None``: not paced)."""
        return self._pace or None

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
        if self._pace and in_flight and not self._token():
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
        if (
            not self._waiters
            and self._in_flight < self._current
            and (not self._pace or not self._in_flight or self._token())
        ):
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
        if self._pace and self._cut_at is not None and self._now is not None:
            base = self._base if self._base < math.inf else _PACE_BURST
            if self._now - self._cut_at < base:
                return False  # sent before the cut could slow anything: the same burst
        self._successes = 0
        backoff = self._backoff
        if self.tune:
            if self._mode == _STARTUP:
                backoff = 0.5  # startup overshoots by up to twice: halve, as in TCP
            self._mode = _CRUISE
            self._calm = 0
            # Pace starts below what was delivered when refused: the last full
            # round's rate, or the answers of the last two round trips if more
            # (not the round so far: answers come in clumps, and a part of a round
            # can overstate a cap several times over). Paced, below the pace, if
            # what got through was less; but one burst of 429s at most halves it:
            # while refused calls wait out their backoff, what gets through is no
            # measure of the cap.
            recent = self._recent_rate()
            if self._pace:
                pace = self._pace
                refused = max(min(pace, recent or pace), _PACE_FLOOR * pace)
            else:  # the last full round, or the last two round trips if more
                refused = max(self._rate, recent or self._partial_rate())
            if refused > 0:
                # Where the curve flattens next (CUBIC's W_max): the pace that was
                # refused; before pacing, the best estimate of the cap there is.
                self._refused_rate = self._pace or refused
                self._pace = max(_PACE_MIN, self._backoff * refused)
                self._tokens = 0.0
                self._paced_at = self._cut_at = self._now
        if self._current <= self.minimum:
            return False
        new = max(self.minimum, int(self._current * backoff))
        self._target = new
        return self._set(new, "throttled")

    def throttle_wait(self) -> float | None:
        """How long a throttled call should wait before its retry (``None``: its own backoff).

        Self-tuning, the pace already slows the job after a 429, so a refused call
        waits one to two least round trips (jittered), not a backoff of up to a
        second that would hold its slot and leave the job's last calls waiting.
        Paced, the retry also takes a pacing token (into debt if none is left)
        and waits, in addition, until that token accrues: a burst of refused calls
        is retried at the pace. A service's Retry-After still wins (the
        middleware honours it first).
        """
        if not self.tune or self._base == math.inf:
            return None
        jitter = self._base * (1.0 + random.random())  # noqa: S311 - jitter, not a secret
        if not self._pace:
            return jitter
        # Paced, a retry is a start like any other: it takes a token now, into
        # debt if none is left, and waits until that token would have accrued.
        # So a burst of 429s is retried at the pace, not all at once, and new
        # starts wait until the debt is repaid.
        self._accrue()
        self._tokens -= 1
        return jitter + max(0.0, -self._tokens) / self._pace

    def _recent_rate(self) -> float:
        """The answers per second over the last two least round trips (0: too few to tell)."""
        times = self._recent
        if len(times) < _ROUND_MIN:
            return 0.0
        newest = times[-1]
        base = self._base if self._base < math.inf else _PACE_BURST
        since = newest - _RECENT_WINDOW * base
        if times[0] > since:  # less history than the window: what there is
            span = newest - times[0]
            return (len(times) - 1) / span if span > 0 else 0.0
        count = 0
        for t in reversed(times):
            if t <= since:
                break
            count += 1
        return count / (_RECENT_WINDOW * base)

    def _partial_rate(self) -> float:
        """The delivery rate of the round so far (0: too few answers to tell)."""
        n, start, now = self._round_n, self._round_start, self._now
        if n < _ROUND_MIN or start is None or now is None or now <= start:
            return 0.0
        return n / (now - start)

    def succeeded(
        self, generation: int, rtt: float | None = None, now: float | None = None
    ) -> bool:
        """Report a call the service answered (anything but a throttle).

        Args:
            generation: The generation of the call's slot.
            rtt: How long the call took, in seconds, if it is a clean sample (no
                throttle or retry inside it); a self-tuning limit learns from it.
            now: When it ended, on the clock ``rtt`` was measured with; a
                self-tuning limit measures its delivery rate from these.

        Returns:
            Whether the limit changed.
        """
        if self.tune:
            return self._delivered(rtt if generation >= self._generation else None, now)
        if generation < self._generation:
            return False
        self._successes += 1
        if self._successes < self._needed:
            return False
        self._successes = 0
        if self._current >= self.maximum:
            return False
        return self._set(self._current + 1, "successes")

    def _delivered(self, rtt: float | None, now: float | None) -> bool:
        """Count a delivery into the round; close the round when it is full."""
        if now is not None:
            self._recent.append(now)
            if self._round_start is None:
                self._round_start = now if rtt is None else now - rtt
            if self._now is None or now > self._now:
                self._now = now
        if rtt is not None:
            self._round_rtt += rtt
            self._round_rtt_n += 1
            if self._cpu_clock is not None:
                self._round_rtts.append(rtt)
            if rtt < self._round_min:  # noqa: PLR1730 - per answer: min() is a call, slower
                self._round_min = rtt
            start = self._round_start
            if (
                rtt < self._round_fresh
                and now is not None
                and start is not None
                and now - rtt >= start
            ):
                self._round_fresh = rtt
        self._round_n += 1
        if self._round_n < self._round_size:
            return False
        return self._end_round()

    def _end_round(self) -> bool:
        """Close a round: measure what it delivered and move the limit (the rule above)."""
        n, transition = self._round_n, self._transition
        rtt = self._round_rtt / self._round_rtt_n if self._round_rtt_n else 0.0
        # In startup a round also holds calls of the previous, smaller limit: judge
        # it by the calls that started in it (after a probe the transition round
        # has already let the old calls out).
        fresh = self._round_min
        if self._mode == _STARTUP and self._round_fresh < math.inf:
            fresh = self._round_fresh
        if self._round_min < math.inf:
            self._base = min(self._base * _BASE_DRIFT, self._round_min)
        # Queued: even the quickest call that started in this round was slower than
        # the path allows, so calls wait somewhere (the service, or this process).
        queued = fresh < math.inf and fresh > _QUEUE_TOLERANCE * self._base
        start, now = self._round_start, self._now
        idle = self._idle(start, now)
        busy = self._cpu_clock is not None and not idle
        rtts = self._round_rtts
        self._round_rtts = []
        self._round_n = self._round_rtt_n = 0
        self._round_rtt = 0.0
        self._round_min = self._round_fresh = math.inf
        self._round_start = now
        self._transition = False
        if start is not None and now is not None and now > start:
            rate = n / (now - start)
        elif rtt > 0:
            rate = self._current / rtt  # no clock given: Little's law at a full window
        else:
            return False
        self._rate = rate
        changed = self._decide(
            rate, transition=transition, queued=queued, rtts=rtts, idle=idle, busy=busy
        )
        # After the round's verdict, including the one that ends startup (a job
        # whose startup ended in its last round left nothing, and the next one
        # doubled on from the round before).
        memory = self._memory
        if memory is not None:
            if self._mode == _STARTUP:  # a short job: the next goes on here
                memory.remember(self._best_limit, 0.0, 0.0, growing=True)
            else:
                memory.remember(self._target, self._pace, self._refused_rate)
        return changed

    def _decide(
        self,
        rate: float,
        *,
        transition: bool,
        queued: bool,
        rtts: list[float],
        idle: bool,
        busy: bool,
    ) -> bool:
        """Move the limit after a round, by the mode it is in (the rule above)."""
        current = self._current
        if self._pace:
            return self._paced_round(current)
        if self._mode == _STARTUP:
            return self._startup_round(rate, current)
        if transition:
            return False  # mixed: calls of the old limit and the new
        ease = self._congestion(rtts) if idle else 0.0
        if ease:
            return self._ease(ease, current)
        if self._mode == _CRUISE:
            return self._cruise_round(rate, current, queued=queued, busy=busy)
        return self._probe_round(rate, current, queued=queued, busy=busy)

    def _startup_round(self, rate: float, current: int) -> bool:
        """Double while the rate grows by 25 % a round; then fall back to what fills the path."""
        if rate >= _STARTUP_GROWTH * self._best_rate:
            self._best_rate, self._best_limit = rate, current
            self._stalls = 0
            return self._set(2 * current, "startup")
        # As in BBR, one flat round is not enough to stop (a noisy machine); a
        # fallen one is (each round past a service's capacity is costly).
        flat = rate >= _FLAT * self._best_rate
        self._stalls += 1
        if flat and self._stalls < _STALLS:
            return False
        # The rate stopped growing. Flat (a CPU-bound client, a rate cap): keep
        # this limit, whose spare calls in flight ride out pauses of this process;
        # probes below it will tell if fewer do as well. Fallen (past a capacity):
        # back to 1.25 x the best rate x the least round trip (what fills the path,
        # with room), but not below the best round's limit.
        self._mode = _CRUISE
        if flat:
            self._target = current
        else:
            bdp = _STARTUP_GROWTH * self._best_rate * self._base
            self._target = max(self._best_limit, min(current, math.ceil(bdp)))
        self._ref = 0.0
        return self._set(self._target, "startup")

    def _congestion(self, rtts: list[float]) -> float:
        """How far an idle round's latency says to ease the limit (a factor < 1), else 0.

        The round's median round trip against a reference: the least median of
        the idle rounds so far, which follows a lasting rise by 5 % of the gap a
        round. Not against the least single round trip: on any real path round
        trips vary by more than 10 %, so the median of every round exceeded 1.1 x
        the least one and each idle round cut the limit again, down to 1 (a model
        server with a jitter of 0.3 x its delay took a limit of 1,000 to 3). A
        queue must also be at least 1 ms: a smaller excess is noise, or this
        process's own event loop. The median, not the mean: the calls that
        opened a connection (a probe's new slots) take a handshake longer.
        """
        if not rtts:
            return 0.0
        median = sorted(rtts)[len(rtts) // 2]
        ref = self._ref_rtt
        if ref == 0.0 or median <= ref:
            self._ref_rtt = median
            return 0.0
        self._ref_rtt = ref + _REF_DRIFT * (median - ref)
        if median <= _LATENCY_TOLERANCE * ref or median - ref < _QUEUE_MIN:
            return 0.0
        return max(_EASE_MIN, _LATENCY_TOLERANCE * ref / median)

    def _idle(self, start: float | None, now: float | None) -> bool:
        """Whether this process used less than ``_IDLE`` of a core over the round just ended."""
        clock = self._cpu_clock
        if clock is None:
            return False
        cpu = clock()
        used, self._round_cpu = cpu - self._round_cpu, cpu
        if start is None or now is None or now <= start:
            return False
        return used < _IDLE * (now - start)

    def _ease(self, factor: float, current: int) -> bool:
        """Take the limit down by ``factor`` (what the reference round trip allows)."""
        new = max(self.minimum, int(current * factor))
        # Unclamped, the estimate holds even above the target (a probe up that
        # went a little too far: keep what the latency allows, not the old
        # target); clamped, it is only a bound.
        self._target = new if factor > _EASE_MIN else min(new, self._target)
        self._ref, self._step = 0.0, _STEP_MIN
        self._wait = self._wait_max = min(_WAIT_MAX, 2 * self._wait_max)
        self._mode = _CRUISE
        return self._set(self._target, "latency")

    def _cruise_round(self, rate: float, current: int, *, queued: bool, busy: bool) -> bool:
        """Hold the target, and start a probe when it is time.

        Idle (or with no CPU clock), a probe goes up unless the round was queued.
        Busy, every round is queued by this process's own event loop, so that
        says nothing of the service: probes alternate, up then down.
        """
        self._ref = rate if self._ref == 0.0 else (self._ref + rate) / 2
        self._wait -= 1
        if self._wait > 0:
            return False
        if busy:
            self._busy_up = up = not self._busy_up
        else:
            up = not queued
        return self._probe(current, up=up)

    def _probe_round(self, rate: float, current: int, *, queued: bool, busy: bool) -> bool:
        """Judge a probe's round: keep its limit if the rate answered it, else go back.

        Busy, a draw goes back: fewer calls queue less in this process's own
        loop, so a probe down never looked queued, and draws kept within the
        noise of a round walked the limit down to a few calls in flight (on a
        fast path, where that costs throughput: a model at 0.5 ms went from 128
        to 8 and lost 9 %). Only a win moves a busy limit, in either direction.
        """
        ref, step = self._ref, self._step
        won = rate >= ref * (1 + (_UP_GAIN if self._mode == _PROBE_UP else _DOWN_GAIN) * step)
        if won or (not busy and not queued and rate >= ref * (1 - _UP_LOSS * step)):
            self._target = current
            self._ref = rate
            # A clear win doubles the step and probes again at once (growth); a
            # draw is kept, but tells nothing new: the smallest step, a longer wait.
            self._step = min(_STEP_MAX, 2 * step) if won else _STEP_MIN
            self._wait = self._wait_max = 1 if won else min(_WAIT_MAX, 2 * self._wait_max)
        else:
            self._step = _STEP_MIN
            self._wait = self._wait_max = min(_WAIT_MAX, 2 * self._wait_max)
        self._mode = _CRUISE
        return self._set(self._target, "probe")

    def _probe(self, current: int, *, up: bool) -> bool:
        """Start a probe round above the target (nothing queued) or below it."""
        if up:
            new = min(self.maximum, math.ceil(self._target * (1 + self._step)))
        else:
            new = max(self.minimum, int(self._target / (1 + self._step)))
        if new == current:
            self._wait = self._wait_max  # nowhere to go: the ceiling or the floor
            return False
        self._mode = _PROBE_UP if up else _PROBE_DOWN
        return self._set(new, "probe")

    def _paced_round(self, current: int) -> bool:
        """Close a round while paced: grow the pace, CUBIC-like; size the window to it."""
        self._calm += 1
        if self._calm >= _PACE_ROUNDS:
            # No 429 for a long while: the cap has gone or is far; probe again.
            self._pace = 0.0
            self._target, self._ref = current, 0.0
            self._step, self._wait = _STEP_MIN, _WAIT_MIN
            return False
        # Concave up to the rate refused, flat around it, convex past it (the cap
        # moved): TCP CUBIC's shape.
        refused = self._refused_rate
        pace, below = self._pace, _PACE_PLATEAU * refused
        if pace < below:  # far below: close a quarter of the gap a round (at least 2 %)
            self._pace = pace + max(pace * _PACE_FAST, (below - pace) * _PACE_CLOSE)
        else:
            near = pace <= refused / _PACE_PLATEAU
            self._pace = pace * (1 + (_PACE_SLOW if near else _PACE_FAST))
        # Room for the pace (BBR's window: twice rate x least round trip); never
        # shrunk here, as a decrease would open a generation and make the next
        # 429 stale.
        window = math.ceil(_BDP_GAIN * self._pace * self._base)
        self._target = max(current, min(self.maximum, window))
        return self._set(self._target, "paced")

    def _token(self) -> bool:
        """Take a pacing token if one has accrued (on the answers' clock)."""
        self._accrue()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _accrue(self) -> None:
        """Add the tokens accrued since the last answer (a debt of retries is repaid first)."""
        now = self._now
        if now is not None:
            last = self._paced_at
            if last is None:
                self._paced_at = now
            elif now > last:
                # A round trip's worth: answers, hence starts, come in clumps.
                base = self._base if self._base < math.inf else _PACE_BURST
                burst = max(1.0, base * self._pace)
                self._tokens = min(burst, self._tokens + (now - last) * self._pace)
                self._paced_at = now

    def _set(self, new: int, reason: str) -> bool:  # noqa: ARG002 - for an observer's hook
        """Change the limit: the one place its value changes.

        A decrease opens a new generation (signals from older slots are then
        stale); an increase wakes waiters. For a self-tuning limit the next round
        is a transition: it begins with calls started under the old limit.
        """
        new = max(self.minimum, min(self.maximum, new))
        old = self._current
        if new == old:
            return False
        self._current = new
        self._needed = self._successes_needed()
        if self.tune:
            self._transition = self._mode != _STARTUP
            # A transition round lets every call of the old limit come back.
            self._round_size = max(new, _ROUND_MIN, self._in_flight if self._transition else 0)
        if new < old:
            self._generation += 1
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
        waiters = self._waiters
        while waiters and self._in_flight < self._current:
            waiter = waiters[0]
            if waiter.done():  # cancelled while queued
                waiters.popleft()
                continue
            if self._pace and self._in_flight and not self._token():
                return  # the next answer brings the next token
            waiters.popleft()
            self._take()
            waiter.set_result(None)
