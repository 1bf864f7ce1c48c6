"""Bounded concurrent fan-out, generic over key and value; knows no HTTP.

:func:`fan_out` runs ``work(key)`` once for every distinct key of a stream that may
be huge or asynchronous, with a small pool of worker tasks (never one task per
key), and yields an :class:`Outcome` per distinct key as the work completes.

The number of calls in flight is capped by an :class:`AdaptiveLimit` (AIMD): it
halves when the service says "too many requests" and creeps back up after a run of
successes, so a bulk job slows itself down instead of burning its retries.

Memory is bounded by ``window`` (keys read from the input but not yet yielded) plus
the de-duplication set, which keeps every distinct key it has seen: about 110 bytes
per 36-character SID string, so some 1.1 GB for ten million SIDs. Pass
``dedupe=False`` for input known to be unique.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Sized,
)
from typing import Any, Generic, NamedTuple, TypeVar

import attrs

from signalwire_calls._errors import RateLimitedError

__all__ = [
    "AdaptiveLimit",
    "BulkProgress",
    "Outcome",
    "cancel_and_wait",
    "fan_out",
    "signal_throttle",
]

K = TypeVar("K")
V = TypeVar("V")

logger = logging.getLogger(__name__)

#: The limit and generation of the request running in the current task, so that code
#: deep inside ``work`` (the retry middleware) can report a 429 without a handle.
_TICKET: contextvars.ContextVar[tuple[AdaptiveLimit, int] | None] = contextvars.ContextVar(
    "signalwire_calls_bulk_ticket", default=None
)
#: How many keys a synchronous iterable may yield before the intake gives the event
#: loop a turn: a run of duplicates never awaits anything otherwise.
_YIELD_EVERY = 256


class AdaptiveLimit:
    """Cap calls in flight, halving on throttling and adding one after a run of successes.

    A slot is granted only while ``in_flight < current``, so in-flight work never
    exceeds the current limit at the moment it starts, nor ``maximum`` ever. A
    decrease opens a new *generation*: signals from calls that started before it
    are ignored, so a burst of 429s from calls that were in flight together halves
    the limit once, not down to ``minimum``. Successes count only in the current
    generation; after ``increase_after`` of them in a row (default: the current
    limit, i.e. one more slot per window of successes) the limit grows by one.

    Args:
        maximum: The starting and largest limit.
        minimum: The smallest limit; ``minimum == maximum`` disables adaptation.
        increase_after: Consecutive successes needed to add one slot.

    Raises:
        ValueError: A bound is not a positive integer, or ``minimum > maximum``.
    """

    def __init__(
        self, maximum: int, *, minimum: int = 1, increase_after: int | None = None
    ) -> None:
        _check_positive("maximum", maximum)
        _check_positive("minimum", minimum)
        if increase_after is not None:
            _check_positive("increase_after", increase_after)
        if minimum > maximum:
            raise ValueError(f"minimum ({minimum}) must not exceed maximum ({maximum})")
        self.maximum = maximum
        self.minimum = minimum
        self._increase_after = increase_after
        self._current = maximum
        self._in_flight = 0
        self._max_in_flight = 0
        self._generation = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

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
        self._wake()

    def throttled(self, generation: int | None = None) -> bool:
        """Report that the service refused a call for being too many (HTTP 429).

        Args:
            generation: The generation of the refused call's slot. ``None`` looks it
                up from the running task (set by :func:`fan_out` around ``work``) and
                falls back to the current generation.

        Returns:
            Whether the limit decreased (a stale signal changes nothing).
        """
        if generation is None:
            generation = self._ticket_generation()
        if generation < self._generation:
            return False
        self._successes = 0
        if self._current <= self.minimum:
            return False
        self._current = max(self.minimum, self._current // 2)
        self._generation += 1
        return True

    def succeeded(self, generation: int | None = None) -> bool:
        """Report a call the service answered normally (anything but a throttle).

        Args:
            generation: As for :meth:`throttled`.

        Returns:
            Whether the limit increased.
        """
        if generation is None:
            generation = self._ticket_generation()
        if generation < self._generation:
            return False
        self._successes += 1
        if self._successes < (self._increase_after or self._current):
            return False
        self._successes = 0
        if self._current >= self.maximum:
            return False
        self._current += 1
        self._wake()
        return True

    def _ticket_generation(self) -> int:
        ticket = _TICKET.get()
        if ticket is not None and ticket[0] is self:
            return ticket[1]
        return self._generation

    def _take(self) -> None:
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._current:
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while queued
                continue
            self._take()
            waiter.set_result(None)


def signal_throttle() -> bool:
    """Tell the fan-out running the current request that the service answered 429.

    Meant for the HTTP retry middleware: call it on every 429, including those it
    goes on to retry. It finds the limit through a context variable that
    :func:`fan_out` sets around each ``work`` call, so it is a no-op outside a bulk
    job.

    Returns:
        Whether a limit decreased.
    """
    ticket = _TICKET.get()
    if ticket is None:
        return False
    limit, generation = ticket
    return limit.throttled(generation)


class Outcome(NamedTuple, Generic[K, V]):
    """The result for one distinct key: ``value`` or ``error``, never both."""

    key: K
    value: V | None
    error: Exception | None


@attrs.frozen
class BulkProgress:
    """A snapshot of a running :func:`fan_out` job, for a progress bar.

    Attributes:
        done: Distinct keys with a final outcome (found, failed or invalid).
        failed: Of ``done``, the outcomes that carry an error.
        duplicates: Keys skipped because they had been seen before.
        retried: Calls repeated because the service throttled them.
        total: ``len()`` of the input if it has one (duplicates included), else ``None``.
        in_flight: Calls running now.
        limit: The current concurrency limit.
        elapsed: Seconds since the job started (event-loop clock).
    """

    done: int
    failed: int
    duplicates: int
    retried: int
    total: int | None
    in_flight: int
    limit: int
    elapsed: float

    @property
    def processed(self) -> int:
        """Input keys dealt with, duplicates included; the count to draw against ``total``."""
        return self.done + self.duplicates

    @property
    def rate(self) -> float:
        """Outcomes per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = False,
    window: int | None = None,
    validate: Callable[[K], object] | None = None,
    is_throttle: Callable[[Exception], bool] | None = None,
    max_throttle_retries: int = 3,
    on_progress: Callable[[BulkProgress], None] | None = None,
    dedupe: bool = True,
    throttle_hook: contextvars.ContextVar[Callable[[], None] | None] | None = None,
) -> AsyncGenerator[Outcome[K, V], None]:
    """Run ``work`` for each distinct key with bounded, adaptive concurrency.

    The input is read lazily: at most ``window`` distinct keys are ever between
    being read and being yielded, which bounds both the read-ahead and, with
    ``ordered=True``, the reorder buffer (a slow head-of-line key stalls intake
    instead of letting results pile up). An exception from ``work`` becomes the
    key's outcome; ``asyncio.CancelledError`` always propagates. A key whose work
    raised a throttle error is tried again under the (now smaller) limit, at most
    ``max_throttle_retries`` times, then reported with that error.

    Closing the iterator (``aclose()``, ``break`` followed by garbage collection,
    or cancelling the consumer) cancels and awaits every worker, and closes the
    input if it is an async generator. Wrap it in :func:`contextlib.aclosing` for
    cleanup that does not wait for garbage collection.

    Args:
        keys: Hashable keys; an iterable or async iterable, possibly endless.
        work: The call to make for a key.
        concurrency: The largest number of calls in flight, or an
            :class:`AdaptiveLimit` to use (and inspect) instead of a fresh one.
        ordered: Yield outcomes in input order rather than as they complete.
        window: Keys allowed between intake and yield (default: 4 x concurrency).
        validate: Raises (typically ``ValueError``) for a key that must not be worked
            on; the error becomes that key's outcome and costs no call. Its return
            value is ignored, so a checker such as ``check_sid`` fits as it is.
        is_throttle: Whether an error from ``work`` means "slow down" (default: a
            :class:`~signalwire_calls.RateLimitedError`).
        max_throttle_retries: Extra attempts for a throttled key.
        on_progress: Called synchronously with a :class:`BulkProgress` at the start,
            after each outcome, duplicate and throttle retry. If it raises, the error
            is logged once and the hook is not called again: a broken progress bar
            must not break the job.
        dedupe: Skip keys seen before (see the module docstring for the memory cost).
        throttle_hook: A context variable that code inside ``work`` (the HTTP retry
            middleware) calls on every 429 it sees; it is set around each call to a
            function that reports the throttle to this job's limit.

    Returns:
        An async generator of :class:`Outcome`, one per distinct key.

    Raises:
        TypeError: ``keys`` is a single string.
        ValueError: A numeric option is out of range.
    """
    if isinstance(keys, str | bytes):
        raise TypeError("keys must be an iterable of keys, not a single string")
    limit = concurrency if isinstance(concurrency, AdaptiveLimit) else AdaptiveLimit(concurrency)
    if window is None:
        window = 4 * limit.maximum
    _check_positive("window", window)
    if isinstance(max_throttle_retries, bool) or max_throttle_retries < 0:
        raise ValueError(f"max_throttle_retries must be >= 0, got {max_throttle_retries!r}")
    job = _Job(
        keys,
        work,
        limit,
        ordered=ordered,
        window=window,
        validate=validate,
        is_throttle=is_throttle or _is_rate_limited,
        max_throttle_retries=max_throttle_retries,
        on_progress=on_progress,
        dedupe=dedupe,
        throttle_hook=throttle_hook,
    )
    return job.run()


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until every one has finished."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


def _throttle_signal(limit: AdaptiveLimit, generation: int) -> Callable[[], None]:
    def signal() -> None:
        limit.throttled(generation)

    return signal


def _is_rate_limited(error: Exception) -> bool:
    return isinstance(error, RateLimitedError)


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@attrs.frozen
class _End:
    """Intake is over; ``count`` distinct keys were taken in."""

    count: int


@attrs.frozen
class _Crash:
    """A background task died; the consumer re-raises ``error``."""

    error: BaseException


class _Job(Generic[K, V]):
    """The state one :func:`fan_out` call shares between its intake, workers and consumer.

    Nothing here refers to the generator returned by :meth:`run`, so dropping that
    generator lets the event loop finalize it (and so shut the job down).
    """

    def __init__(
        self,
        keys: Iterable[K] | AsyncIterable[K],
        work: Callable[[K], Awaitable[V]],
        limit: AdaptiveLimit,
        *,
        ordered: bool,
        window: int,
        validate: Callable[[K], object] | None,
        is_throttle: Callable[[Exception], bool],
        max_throttle_retries: int,
        on_progress: Callable[[BulkProgress], None] | None,
        dedupe: bool,
        throttle_hook: contextvars.ContextVar[Callable[[], None] | None] | None,
    ) -> None:
        self._keys = keys
        self._work = work
        self._limit = limit
        self._ordered = ordered
        self._window = asyncio.Semaphore(window)
        self._validate = validate
        self._is_throttle = is_throttle
        self._max_throttle_retries = max_throttle_retries
        self._on_progress = on_progress
        self._dedupe = dedupe
        self._throttle_hook = throttle_hook
        self._total = len(keys) if isinstance(keys, Sized) else None
        # Bounded so the intake waits for the workers rather than reading ahead.
        self._todo: asyncio.Queue[tuple[int, K]] = asyncio.Queue(maxsize=limit.maximum)
        self._results: asyncio.Queue[tuple[int, Outcome[K, V]] | _End | _Crash] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._workers = 0
        self._idle = 0
        self._closing = False
        self._started = 0.0
        self._done = self._failed = self._duplicates = self._retried = 0

    async def run(self) -> AsyncGenerator[Outcome[K, V], None]:
        """Start the intake, yield outcomes until every key has one, then shut down."""
        self._started = asyncio.get_running_loop().time()
        self._spawn(self._intake())
        try:
            self._report()
            expected: int | None = None
            yielded = 0
            buffer: dict[int, Outcome[K, V]] = {}
            while expected is None or yielded < expected:
                item = await self._results.get()
                if isinstance(item, _End):
                    expected = item.count
                    continue
                if isinstance(item, _Crash):
                    raise item.error
                seq, outcome = item
                buffer[seq] = outcome
                # Unordered: yield whatever arrived. Ordered: drain the head run.
                ready = [seq] if not self._ordered else []
                while self._ordered and yielded + len(ready) in buffer:
                    ready.append(yielded + len(ready))
                for index in ready:
                    self._window.release()
                    yielded += 1
                    yield buffer.pop(index)
        finally:
            self._closing = True
            await cancel_and_wait(self._tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        # Retrieve the exception even while closing, so none is reported as lost.
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is not None and not self._closing:
            self._results.put_nowait(_Crash(error))

    async def _intake(self) -> None:
        seen: set[K] = set()
        count = 0
        async with contextlib.aclosing(_iterate(self._keys)) as source:
            while True:
                # A window slot is taken before reading, so read-ahead is bounded.
                await self._window.acquire()
                try:
                    key = await anext(source)
                    while self._dedupe and key in seen:
                        self._duplicates += 1
                        self._report()
                        key = await anext(source)
                except StopAsyncIteration:
                    self._window.release()
                    break
                if self._dedupe:
                    seen.add(key)
                error = self._check(key)
                if error is not None:
                    self._emit(count, key, None, error)
                else:
                    await self._todo.put((count, key))
                    if self._todo.qsize() > self._idle and self._workers < self._limit.maximum:
                        self._workers += 1
                        self._spawn(self._worker())
                count += 1
        self._results.put_nowait(_End(count))

    def _check(self, key: K) -> Exception | None:
        if self._validate is None:
            return None
        try:
            self._validate(key)
        except Exception as exc:  # noqa: BLE001 - the validator's verdict, whatever its type
            return exc
        return None

    async def _worker(self) -> None:
        while True:
            self._idle += 1
            try:
                seq, key = await self._todo.get()
            finally:
                self._idle -= 1
            value, error = await self._attempt(key)
            self._emit(seq, key, value, error)

    async def _attempt(self, key: K) -> tuple[V | None, Exception | None]:
        retries = 0
        while True:
            generation = await self._limit.acquire()
            token = _TICKET.set((self._limit, generation))
            hook_token = (
                None
                if self._throttle_hook is None
                else self._throttle_hook.set(_throttle_signal(self._limit, generation))
            )
            try:
                value = await self._work(key)
            except Exception as exc:  # noqa: BLE001 - every error is the key's outcome
                error: Exception = exc
            else:
                self._limit.succeeded(generation)
                return value, None
            finally:
                _TICKET.reset(token)
                if hook_token is not None and self._throttle_hook is not None:
                    self._throttle_hook.reset(hook_token)
                self._limit.release()
            if not self._is_throttle(error):
                # The service answered (a 404 is an answer): it is not overloaded.
                self._limit.succeeded(generation)
                return None, error
            self._limit.throttled(generation)
            if retries >= self._max_throttle_retries:
                return None, error
            retries += 1
            self._retried += 1
            self._report()

    def _emit(self, seq: int, key: K, value: V | None, error: Exception | None) -> None:
        self._done += 1
        if error is not None:
            self._failed += 1
        self._results.put_nowait((seq, Outcome(key, value, error)))
        self._report()

    def _report(self) -> None:
        hook = self._on_progress
        if hook is None:
            return
        progress = BulkProgress(
            done=self._done,
            failed=self._failed,
            duplicates=self._duplicates,
            retried=self._retried,
            total=self._total,
            in_flight=self._limit.in_flight,
            limit=self._limit.current,
            elapsed=asyncio.get_running_loop().time() - self._started,
        )
        try:
            hook(progress)
        except Exception:
            logger.exception("on_progress hook failed; it will not be called again in this job")
            self._on_progress = None


async def _iterate(keys: Iterable[K] | AsyncIterable[K]) -> AsyncGenerator[K, None]:
    """Iterate sync or async input alike, closing async input when done."""
    if isinstance(keys, AsyncIterable):
        source = aiter(keys)
        try:
            async for key in source:
                yield key
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    for index, key in enumerate(keys, 1):
        yield key
        if index % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
