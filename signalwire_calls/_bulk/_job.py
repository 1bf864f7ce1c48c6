"""Bounded concurrent fan-out, generic over key and value; knows no HTTP and no Call.

:func:`fan_out` runs ``work(key)`` once for every distinct key of a stream that may
be huge or asynchronous, with a small pool of worker tasks (never one task per
key), and yields one outcome per distinct key as the work completes.

The number of calls in flight is capped by an :class:`AdaptiveLimit`: pinned (it
is cut when the service says "too many requests" and creeps back up after a run of
successes) or self-tuning (it also follows the round trip of each call), so a bulk
job slows itself down instead of burning its retries.

Memory is bounded by the read-ahead window (four times the largest concurrency:
keys read from the input but not yet yielded) plus the de-duplication state,
:class:`SeenKeys`: exact, and with a ``compact`` key form about 25 bytes per
distinct key; with ``distinct=True`` there is none.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sized,
)
from typing import Any, Final, Generic, NamedTuple, TypeVar, overload

import attrs

from signalwire_calls._aio import cancel_and_wait
from signalwire_calls._bulk._limit import AdaptiveLimit
from signalwire_calls._bulk._seen import SeenKeys
from signalwire_calls._errors import APIError, RateLimitedError

__all__ = ["BulkProgress", "Outcome", "fan_out"]

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

logger = logging.getLogger("signalwire_calls._bulk")

#: How many keys a synchronous iterable may yield before the intake gives the event
#: loop a turn: a run of duplicates never awaits anything otherwise.
_YIELD_EVERY: Final = 256
#: Keys read ahead of the consumer, per slot of the maximum concurrency.
_WINDOW_PER_SLOT: Final = 4
#: Extra attempts for a key the service throttled (HTTP 429) even after the
#: retry middleware's own retries.
MAX_THROTTLE_RETRIES: Final = 3


class Outcome(NamedTuple, Generic[K, V]):
    """The result for one distinct key: ``value`` or ``error``, never both."""

    key: K
    value: V | None
    error: Exception | None


@attrs.frozen
class BulkProgress:
    """A snapshot of a running bulk job (``on_progress``), for a progress bar.

    Attributes:
        done: Distinct keys with a final outcome (found, failed or invalid).
        failed: Of ``done``, the outcomes that carry an error.
        duplicates: Keys skipped because they had been seen before.
        retried: Calls repeated because the service throttled them.
        total: ``len()`` of the input if it has one (duplicates included), else ``None``.
        in_flight: Calls running now.
        limit: The current concurrency limit.
        elapsed: Seconds since the job started (event-loop clock).
        retries: Attempts the calls' own retries made (after a 429, a 5xx, a timeout...).
        throttled: Answers of HTTP 429 the calls got, retried or not.
    """

    done: int
    failed: int
    duplicates: int
    retried: int
    total: int | None
    in_flight: int
    limit: int
    elapsed: float
    retries: int = 0
    throttled: int = 0

    @property
    def processed(self) -> int:
        """Input keys dealt with, duplicates included; the count to draw against ``total``."""
        return self.done + self.duplicates

    @property
    def rate(self) -> float:
        """Outcomes per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@overload
def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = ...,
    validate: Callable[[K], K] | None = ...,
    on_progress: Callable[[BulkProgress], None] | None = ...,
    throttle_hook: contextvars.ContextVar[Callable[[], float | None] | None] | None = ...,
    distinct: bool = ...,
    compact: Callable[[K], bytes] | None = ...,
    abort: Callable[[Exception, int | None], BaseException | None] | None = ...,
    clock: Callable[[], float] = ...,
    retry_hook: contextvars.ContextVar[Callable[[], None] | None] | None = ...,
    on_limit_change: Callable[[int, int], None] | None = ...,
    on_start: Callable[[], object] | None = ...,
    wrap: None = ...,
) -> AsyncGenerator[Outcome[K, V], None]: ...


@overload
def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = ...,
    validate: Callable[[K], K] | None = ...,
    on_progress: Callable[[BulkProgress], None] | None = ...,
    throttle_hook: contextvars.ContextVar[Callable[[], float | None] | None] | None = ...,
    distinct: bool = ...,
    compact: Callable[[K], bytes] | None = ...,
    abort: Callable[[Exception, int | None], BaseException | None] | None = ...,
    clock: Callable[[], float] = ...,
    retry_hook: contextvars.ContextVar[Callable[[], None] | None] | None = ...,
    on_limit_change: Callable[[int, int], None] | None = ...,
    on_start: Callable[[], object] | None = ...,
    wrap: Callable[[K, V | None, Exception | None], R],
) -> AsyncGenerator[R, None]: ...


def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = False,
    validate: Callable[[K], K] | None = None,
    on_progress: Callable[[BulkProgress], None] | None = None,
    throttle_hook: contextvars.ContextVar[Callable[[], float | None] | None] | None = None,
    distinct: bool = False,
    compact: Callable[[K], bytes] | None = None,
    abort: Callable[[Exception, int | None], BaseException | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    retry_hook: contextvars.ContextVar[Callable[[], None] | None] | None = None,
    on_limit_change: Callable[[int, int], None] | None = None,
    on_start: Callable[[], object] | None = None,
    wrap: Callable[[K, V | None, Exception | None], Any] | None = None,
) -> AsyncGenerator[Any, None]:
    """Run ``work`` for each distinct key with bounded, adaptive concurrency.

    The input is read lazily: at most four keys per slot of the maximum concurrency
    are ever between being read and being yielded, which bounds both the read-ahead
    and, with ``ordered=True``, the reorder buffer (a slow head-of-line key stalls
    intake instead of letting results pile up). An exception from ``work`` becomes
    the key's outcome; ``asyncio.CancelledError`` always propagates. A key whose
    work raised :class:`~signalwire_calls.RateLimitedError` is tried again under the
    (now smaller) limit, at most three more times, then reported with that error.

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
        validate: Returns the key to work on (a checker such as ``check_sid``, which
            also normalises), or raises (typically ``ValueError``) for a key that
            must not be worked on: the error becomes that key's outcome and costs
            no call.
        on_progress: Called synchronously with a :class:`BulkProgress` at the start,
            after each outcome, duplicate and throttle retry. If it raises, the error
            is logged once and the hook is not called again: a broken progress bar
            must not break the job.
        throttle_hook: A context variable that code inside ``work`` (the HTTP retry
            middleware) calls on every 429 it sees; each worker sets it, once, to a
            function that reports the throttle to this job's limit and returns how
            long to wait before trying again (``None``: the caller's own backoff).
        distinct: The caller vouches that no key repeats: nothing is kept to
            de-duplicate, so memory is proportional to the concurrency only (a
            repeated key is then worked on again).
        compact: A short unique ``bytes`` form of a key (a UUID's 16 bytes): the
            de-duplication state then holds about 25 bytes per distinct key
            instead of the key itself (see :class:`SeenKeys`).
        abort: Called with a key's error while no key of the job has been
            answered yet (a value, or an error ``abort`` lets pass), and with how
            many distinct keys have no outcome yet (``None`` if the input has no
            ``len()``). If it returns an exception, the job stops: that exception
            is raised from the iterator, and no further key is tried.
        clock: Seconds, for the round trips a self-tuning limit learns from.
        retry_hook: Likewise, a context variable that code inside ``work`` calls on
            each retry it makes, counted in :attr:`BulkProgress.retries`.
        on_limit_change: Called with ``(previous, current)`` whenever the job's
            concurrency limit changes, from 0 when the job starts and to 0 when it ends.
        on_start: Called once when iteration begins, in the event loop that runs
            the job, before any key is read; an exception from it is raised from the
            iterator (a check that ``work`` then need not repeat for every key).
        wrap: Builds what is yielded for a key from ``(key, value, error)``
            (default: :class:`Outcome`), so a caller that wants its own result type
            needs no second generator to convert outcomes.

    Returns:
        An async generator of :class:`Outcome` (or of what ``wrap`` returns), one
        per distinct key.

    Raises:
        TypeError: ``keys`` is a single string.
        ValueError: ``concurrency`` is not a positive integer.
    """
    if isinstance(keys, str | bytes):
        raise TypeError("keys must be an iterable of keys, not a single string")
    limit = concurrency if isinstance(concurrency, AdaptiveLimit) else AdaptiveLimit(concurrency)
    job = _Job(
        keys,
        work,
        limit,
        seen=None if distinct else SeenKeys(compact),
        abort=abort,
        clock=clock,
        ordered=ordered,
        validate=validate,
        on_progress=on_progress,
        throttle_hook=throttle_hook,
        retry_hook=retry_hook,
        on_limit_change=on_limit_change,
        on_start=on_start,
        wrap=wrap or Outcome,
    )
    return job.run()


class _Ticket:
    """A worker's limit and the generation of the slot it holds now.

    The worker sets ``throttle_hook`` to :meth:`signal` once, and updates
    ``generation`` when it takes a slot: cheaper than setting a context variable
    around every call. Tasks that ``work`` starts inherit it, so a 429 seen by one
    that outlives its call counts against the worker's current slot.
    """

    __slots__ = ("generation", "limit", "seen", "throttled")

    def __init__(self, limit: AdaptiveLimit, seen: Callable[[], None]) -> None:
        self.limit = limit
        self.generation = limit.generation
        #: A throttle was seen since the worker last looked: its call's round
        #: trip includes a backoff, so it is no latency sample.
        self.throttled = False
        self.seen = seen

    def signal(self) -> float | None:
        """Report a throttle for the slot held now (the ``throttle_hook`` callback).

        Returns:
            The wait the limit suggests before the call is tried again.
        """
        self.throttled = True
        self.limit.throttled(self.generation)
        self.seen()
        return self.limit.throttle_wait()


class _Job(Generic[K, V, R]):
    """What one :func:`fan_out` call's workers and consumer share, and their tasks.

    There is no intake task: each worker takes a window slot, reads the next
    distinct key itself (a synchronous input directly, an asynchronous one under a
    lock), and works on it, so a key costs no queue hand-off and no task switch.
    Outcomes go to a deque (unordered) or a dict keyed by input position (ordered)
    that the consumer drains, waking it only when it is waiting.

    Nothing here refers to the generator returned by :meth:`run`, so dropping that
    generator lets the event loop finalize it (and so shut the job down).
    """

    def __init__(
        self,
        keys: Iterable[K] | AsyncIterable[K],
        work: Callable[[K], Awaitable[V]],
        limit: AdaptiveLimit,
        *,
        seen: SeenKeys[K] | None,
        abort: Callable[[Exception, int | None], BaseException | None] | None,
        clock: Callable[[], float],
        ordered: bool,
        validate: Callable[[K], K] | None,
        on_progress: Callable[[BulkProgress], None] | None,
        throttle_hook: contextvars.ContextVar[Callable[[], float | None] | None] | None,
        wrap: Callable[[K, V | None, Exception | None], R],
        retry_hook: contextvars.ContextVar[Callable[[], None] | None] | None = None,
        on_limit_change: Callable[[int, int], None] | None = None,
        on_start: Callable[[], object] | None = None,
    ) -> None:
        self._keys = keys
        self._work = work
        self._limit = limit
        self._ordered = ordered
        self._validate = validate
        self._on_progress = on_progress
        self._seen = seen
        self._abort = abort
        self._clock = clock
        self._answered = False  # a key got a value or an answer (not an abort)
        self._throttle_hook = throttle_hook
        self._wrap = wrap
        self._total = len(keys) if isinstance(keys, Sized) else None
        # Input: exactly one of these is set when the job starts.
        self._iterator: Iterator[K] | None = None
        self._source: AsyncIterator[K] | None = None
        self._read_lock = asyncio.Lock()
        self._count = 0  # distinct keys read; the next key's position
        self._exhausted = False  # no key will be read any more
        self._streak = 0  # keys read in a row without awaiting (duplicates, invalid)
        # Read-ahead: free window slots, and workers waiting for one.
        self._window_free = _WINDOW_PER_SLOT * limit.maximum
        self._window_waiters: deque[asyncio.Future[None]] = deque()
        # Outcomes not yet yielded, and the consumer's wake-up while it waits.
        self._results: deque[R] = deque()
        self._buffer: dict[int, R] = {}
        self._head = 0  # ordered: the position to yield next
        self._wakeup: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # the live workers' tasks
        self._workers = 0
        self._idle = 0  # workers not holding a key
        self._closing = False
        self._started = 0.0
        self._done = self._failed = self._duplicates = self._retried = 0
        self._retries = self._throttled = 0
        self._retry_hook = retry_hook
        self._on_limit_change = on_limit_change
        self._shown_limit = 0  # the limit on_limit_change was last told of
        self._on_start = on_start

    # ---------------------------------------------------------------- the tasks

    async def run(self) -> AsyncGenerator[R, None]:
        """Start a worker, yield outcomes until every key has one, then shut down."""
        if self._on_start is not None:
            self._on_start()  # before the try: nothing has started that needs shutting down
        self._start()
        try:
            self._report()
            results = self._results
            buffer = self._buffer
            yielded = 0
            while True:
                if self._ordered:
                    while self._head in buffer:
                        outcome = buffer.pop(self._head)
                        self._head += 1
                        yielded += 1
                        self._release_window()
                        yield outcome
                else:
                    while results:
                        outcome = results.popleft()
                        yielded += 1
                        if self._window_waiters:
                            self._release_window()
                        else:
                            self._window_free += 1
                        yield outcome
                if self._error is not None:
                    raise self._error
                if self._exhausted and yielded == self._count:
                    return
                waiter = self._wakeup = asyncio.get_running_loop().create_future()
                try:
                    await waiter
                finally:
                    self._wakeup = None
        finally:
            await self._shutdown()

    def _start(self) -> None:
        self._started = asyncio.get_running_loop().time()
        keys = self._keys
        if isinstance(keys, AsyncIterable):
            self._source = aiter(keys)
        else:
            self._iterator = iter(keys)
        self._watch_limit()
        self._spawn_worker()

    def _spawn_worker(self) -> None:
        self._workers += 1
        self._idle += 1
        task = asyncio.create_task(self._worker())
        task.add_done_callback(self._on_task_done)
        self._tasks.add(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # Retrieve the exception even while closing, so none is reported as lost.
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is not None and not self._closing:
            self._fail(error)

    async def _worker(self) -> None:  # noqa: C901, PLR0912, PLR0915 - the per-key hot path, in one frame
        limit = self._limit
        work = self._work
        seen = self._seen
        validate = self._validate
        clock = self._clock
        ticket = _Ticket(limit, self._throttle_seen)
        # Set once: the worker's context is its own, and the ticket follows its slots.
        if self._throttle_hook is not None:
            self._throttle_hook.set(ticket.signal)
        if self._retry_hook is not None:
            self._retry_hook.set(self._retry_seen)
        while True:
            # As many workers as the limit allows calls: a worker more would only
            # wait for a slot, and a wait costs a future and a task switch per key
            # (about a fifth of a lookup's CPU). So after a cut the extra workers
            # retire; a raised limit spawns them again below, when every worker
            # is busy.
            if self._workers > limit._current:  # noqa: SLF001 - not the property: twice per key
                self._workers -= 1
                self._idle -= 1
                return
            # A window slot is taken before reading, so read-ahead is bounded.
            if self._window_free > 0:
                self._window_free -= 1
            else:
                await self._wait_window()
            iterator = self._iterator
            invalid: Exception | None = None
            if iterator is not None:
                try:
                    while True:
                        if self._exhausted:
                            return
                        key = next(iterator)
                        if validate is not None:
                            # Before de-duplication: a key is known by its checked form.
                            try:
                                key = validate(key)
                            except Exception as exc:  # noqa: BLE001 - the verdict, whatever its type
                                invalid = exc
                            else:
                                invalid = None
                        if seen is None or seen.first(key):
                            break
                        await self._skip_duplicate()
                except StopIteration:
                    self._end_intake()
                    return
                except Exception as exc:  # noqa: BLE001 - the consumer re-raises it
                    self._fail(exc)
                    return
            else:
                read = await self._read_async()
                if read is None:
                    return
                key, invalid = read
            seq = self._count
            self._count += 1
            if invalid is not None:
                self._emit(seq, key, None, invalid)
                await self._pause_in_streak()
                continue
            self._streak = 0
            self._idle -= 1
            if self._idle == 0 and not self._closing:
                # Nobody is left to read the next key: start more workers, as many as
                # are running (up to the limit). One at a time, the pool would grow by
                # one per turn of the event loop (a new worker counts as idle until it
                # runs), and a turn that handles hundreds of answers takes tens of
                # milliseconds: a limit of 512 was still at 109 calls after 2,000 keys.
                missing = limit._current - self._workers  # noqa: SLF001 - as above
                for _ in range(min(missing, self._workers)):
                    self._spawn_worker()
            # The first attempt, inline; a throttled key goes on in _retry.
            generation = limit.try_acquire()
            if generation is None:
                generation = await limit.acquire()
            ticket.generation = generation
            ticket.throttled = False
            start = clock()
            try:
                value = await work(key)
            except Exception as exc:  # noqa: BLE001 - every error is the key's outcome
                limit.release()
                await self._settle(ticket, seq, key, exc, generation, clock() - start)
            except BaseException:
                limit.release()
                raise
            else:
                end = clock()
                limit.succeeded(generation, None if ticket.throttled else end - start, end)
                limit.release()
                self._answered = True
                self._emit(seq, key, value, None)
            self._idle += 1

    async def _read_async(self) -> tuple[K, Exception | None] | None:
        """Read the next distinct key from an async input, checked; ``None`` when there is none.

        Returns:
            The key (in its checked form) and the validator's error for it, if any.
        """
        assert self._source is not None  # noqa: S101 - run() sets it for async input
        validate = self._validate
        # An async generator cannot be advanced by two tasks at once.
        async with self._read_lock:
            while not self._exhausted:
                try:
                    key = await anext(self._source)
                except StopAsyncIteration:
                    self._end_intake()
                    continue
                except Exception as exc:  # noqa: BLE001 - the consumer re-raises it
                    self._fail(exc)
                    continue
                invalid = None
                if validate is not None:
                    try:
                        key = validate(key)
                    except Exception as exc:  # noqa: BLE001 - the verdict, whatever its type
                        invalid = exc
                if self._seen is None or self._seen.first(key):
                    return key, invalid
                await self._skip_duplicate()
        return None

    async def _skip_duplicate(self) -> None:
        self._duplicates += 1
        self._report()
        await self._pause_in_streak()

    async def _pause_in_streak(self) -> None:
        # A run of duplicates or invalid keys awaits nothing: give the loop a turn.
        self._streak += 1
        if self._streak >= _YIELD_EVERY:
            self._streak = 0
            await asyncio.sleep(0)

    async def _settle(  # noqa: PLR0917 - one key's state, handed on
        self, ticket: _Ticket, seq: int, key: K, error: Exception, generation: int, rtt: float
    ) -> None:
        """Report a failed attempt, retrying a throttled key under the shrunk limit."""
        limit = self._limit
        retries = 0
        while True:
            if not isinstance(error, RateLimitedError):
                if not self._answered and self._abort is not None:
                    fatal = self._abort(error, self._without_outcome())
                    if fatal is not None:
                        self._fail(fatal)  # nothing answered yet: stop the whole job
                        return
                self._answered = True
                # The service answered (a 404 is an answer): it is not overloaded,
                # and an answer's round trip is a latency sample like any other.
                clean = isinstance(error, APIError) and not ticket.throttled and retries == 0
                limit.succeeded(generation, rtt if clean else None, self._clock())
                self._emit(seq, key, None, error)
                return
            limit.throttled(generation)
            if retries >= MAX_THROTTLE_RETRIES:
                self._emit(seq, key, None, error)
                return
            retries += 1
            self._retried += 1
            self._report()
            generation = await limit.acquire()
            ticket.generation = generation
            try:
                value = await self._work(key)
            except Exception as exc:  # noqa: BLE001 - every error is the key's outcome
                limit.release()
                error = exc
                continue
            except BaseException:
                limit.release()
                raise
            limit.succeeded(generation, None, self._clock())
            limit.release()
            self._emit(seq, key, value, None)
            return

    # ------------------------------------------------------------ shared state

    def _without_outcome(self) -> int | None:
        """Distinct keys of a sized input with no outcome yet (unread duplicates included)."""
        if self._total is None:
            return None
        return self._total - self._duplicates - self._done

    async def _shutdown(self) -> None:
        self._closing = True
        await cancel_and_wait(self._tasks)
        self._watch_limit(ended=True)
        if self._seen is not None:
            self._seen.close()
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            # Closing cuts the input short, so its cleanup may fail; that must not
            # replace whatever ended the job (as when the intake was a task).
            try:
                await aclose()
            except Exception:
                logger.exception("closing the input of a bulk job failed")

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _release_window(self) -> None:
        waiters = self._window_waiters
        if not waiters:
            self._window_free += 1
            return
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # hand the slot straight on
                waiter.set_result(None)
                return
        self._window_free += 1

    async def _wait_window(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._window_waiters.append(waiter)
        await waiter

    def _end_intake(self) -> None:
        self._exhausted = True
        while self._window_waiters:  # let waiting workers see the end and stop
            waiter = self._window_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._end_intake()

    def _emit(self, seq: int, key: K, value: V | None, error: Exception | None) -> None:
        self._done += 1
        if error is not None:
            self._failed += 1
        outcome = self._wrap(key, value, error)
        if self._ordered:
            self._buffer[seq] = outcome
            wake = seq == self._head  # the consumer waits for the head only
        else:
            self._results.append(outcome)
            wake = True
        waiter = self._wakeup
        if wake and waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._on_limit_change is not None and self._limit._current != self._shown_limit:  # noqa: SLF001
            self._watch_limit()
        if self._on_progress is not None:
            self._report()

    def _retry_seen(self) -> None:
        self._retries += 1

    def _throttle_seen(self) -> None:
        self._throttled += 1
        self._watch_limit()

    def _watch_limit(self, *, ended: bool = False) -> None:
        """Tell ``on_limit_change`` of a change of the limit: the one place that does."""
        notify = self._on_limit_change
        if notify is None:
            return
        current = 0 if ended else self._limit.current
        previous = self._shown_limit
        if current != previous:
            self._shown_limit = current
            try:
                notify(previous, current)
            except Exception:
                logger.exception("on_limit_change failed; it will not be called again in this job")
                self._on_limit_change = None

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
            retries=self._retries,
            throttled=self._throttled,
        )
        try:
            hook(progress)
        except Exception:
            logger.exception("on_progress hook failed; it will not be called again in this job")
            self._on_progress = None
