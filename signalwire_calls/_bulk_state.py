"""The bookkeeping of a bulk job, shared by its workers and its consumer.

``_JobState`` holds what one :func:`~signalwire_calls._bulk.fan_out` call's tasks
share: the read-ahead window, the outcomes not yet yielded, the consumer's wake-up,
the counters behind :class:`BulkProgress`, and the shutdown. The tasks themselves
(the consumer generator and the workers) are ``_Job``'s, in
:mod:`signalwire_calls._bulk_job`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sized,
)
from typing import Any, Generic, TypeVar

import attrs

from signalwire_calls._limit import AdaptiveLimit

__all__ = ["BulkProgress", "cancel_and_wait"]

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

# Named for the module this code was split from, so that log filters keep working.
logger = logging.getLogger("signalwire_calls._bulk")


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


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until every one has finished."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


class _JobState(Generic[K, V, R]):
    """What one :func:`fan_out` job's workers and consumer share (the base of ``_Job``).

    Set up once by ``__init__``; the methods here only update it: window slots,
    outcomes, wake-ups, progress reports and the shutdown.
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
        wrap: Callable[[K, V | None, Exception | None], R],
    ) -> None:
        self._keys = keys
        self._work = work
        self._limit = limit
        self._ordered = ordered
        self._validate = validate
        self._is_throttle = is_throttle
        self._max_throttle_retries = max_throttle_retries
        self._on_progress = on_progress
        self._seen: set[K] | None = set() if dedupe else None
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
        self._window_free = window
        self._window_waiters: deque[asyncio.Future[None]] = deque()
        # Outcomes not yet yielded, and the consumer's wake-up while it waits.
        self._results: deque[R] = deque()
        self._buffer: dict[int, R] = {}
        self._head = 0  # ordered: the position to yield next
        self._wakeup: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._workers = 0
        self._idle = 0  # workers not holding a key
        self._closing = False
        self._started = 0.0
        self._done = self._failed = self._duplicates = self._retried = 0

    async def _shutdown(self) -> None:
        self._closing = True
        await cancel_and_wait(self._tasks)
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
        if self._on_progress is not None:
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
