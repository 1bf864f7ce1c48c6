"""The tasks of a bulk job: the consumer generator and the workers, with their hot path.

``_Job`` adds them to the shared bookkeeping of ``_JobState``
(:mod:`signalwire_calls._bulk_state`); :func:`~signalwire_calls._bulk.fan_out`
checks the options and starts one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from typing import TypeVar

from signalwire_calls._bulk_state import _JobState
from signalwire_calls._limit import TICKET, Ticket

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

#: How many keys a synchronous iterable may yield before the intake gives the event
#: loop a turn: a run of duplicates never awaits anything otherwise.
_YIELD_EVERY = 256


class _Job(_JobState[K, V, R]):
    """The state one :func:`fan_out` call shares between its workers and consumer.

    There is no intake task: each worker takes a window slot, reads the next
    distinct key itself (a synchronous input directly, an asynchronous one under a
    lock), and works on it, so a key costs no queue hand-off and no task switch.
    Outcomes go to a deque (unordered) or a dict keyed by input position (ordered)
    that the consumer drains, waking it only when it is waiting.

    Nothing here refers to the generator returned by :meth:`run`, so dropping that
    generator lets the event loop finalize it (and so shut the job down).
    """

    async def run(self) -> AsyncGenerator[R, None]:
        """Start a worker, yield outcomes until every key has one, then shut down."""
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
        self._spawn_worker()

    def _spawn_worker(self) -> None:
        self._workers += 1
        self._idle += 1
        task = asyncio.create_task(self._worker())
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        # Retrieve the exception even while closing, so none is reported as lost.
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is not None and not self._closing:
            self._fail(error)

    async def _worker(self) -> None:  # noqa: C901, PLR0912, PLR0915 - the per-key hot path, in one frame
        limit = self._limit
        work = self._work
        seen = self._seen
        validate = self._validate
        ticket = Ticket(limit)
        # Set once: the worker's context is its own, and the ticket follows its slots.
        TICKET.set(ticket)
        if self._throttle_hook is not None:
            self._throttle_hook.set(ticket.signal)
        while True:
            # A window slot is taken before reading, so read-ahead is bounded.
            if self._window_free > 0:
                self._window_free -= 1
            else:
                await self._wait_window()
            iterator = self._iterator
            if iterator is not None:
                try:
                    while True:
                        if self._exhausted:
                            return
                        key = next(iterator)
                        if seen is None or key not in seen:
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
                key = read[0]
            if seen is not None:
                seen.add(key)
            seq = self._count
            self._count += 1
            if validate is not None:
                try:
                    validate(key)
                except Exception as exc:  # noqa: BLE001 - the validator's verdict, whatever its type
                    self._emit(seq, key, None, exc)
                    await self._pause_in_streak()
                    continue
            self._streak = 0
            self._idle -= 1
            if self._idle == 0 and self._workers < limit.maximum and not self._closing:
                self._spawn_worker()  # nobody is left to read the next key
            # The first attempt, inline; a throttled key goes on in _retry.
            generation = limit.try_acquire()
            if generation is None:
                generation = await limit.acquire()
            ticket.generation = generation
            try:
                value = await work(key)
            except Exception as exc:  # noqa: BLE001 - every error is the key's outcome
                limit.release()
                await self._settle(ticket, seq, key, exc, generation)
            except BaseException:
                limit.release()
                raise
            else:
                limit.succeeded(generation)
                limit.release()
                self._emit(seq, key, value, None)
            self._idle += 1

    async def _read_async(self) -> tuple[K] | None:
        """Read the next distinct key from an async input; ``None`` when there is none."""
        assert self._source is not None  # noqa: S101 - run() sets it for async input
        # An async generator cannot be advanced by two tasks at once.
        async with self._read_lock:
            while not self._exhausted:
                try:
                    key = await anext(self._source)
                except StopAsyncIteration:
                    self._end_intake()
                except Exception as exc:  # noqa: BLE001 - the consumer re-raises it
                    self._fail(exc)
                else:
                    if self._seen is None or key not in self._seen:
                        return (key,)
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

    async def _settle(
        self, ticket: Ticket, seq: int, key: K, error: Exception, generation: int
    ) -> None:
        """Report a failed attempt, retrying a throttled key under the shrunk limit."""
        limit = self._limit
        retries = 0
        while True:
            if not self._is_throttle(error):
                # The service answered (a 404 is an answer): it is not overloaded.
                limit.succeeded(generation)
                self._emit(seq, key, None, error)
                return
            limit.throttled(generation)
            if retries >= self._max_throttle_retries:
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
            limit.succeeded(generation)
            limit.release()
            self._emit(seq, key, value, None)
            return
