"""One timer for the per-attempt timeouts of every request of a client."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Watchdog"]


class Watchdog:
    """Cancel attempts that outlive the timeout, with one timer for all of them.

    ``asyncio.timeout()`` schedules and cancels a timer handle for every request,
    which measured as a tenth of a lookup's cost at high concurrency. Here an
    attempt only records its task and the current *epoch* (a counter one timer
    advances every quarter of the timeout while attempts run), and the timer
    cancels the tasks whose attempt began five epochs ago: so an attempt is cut
    off between ``timeout`` and ``1.25 * timeout`` after it starts, without a
    clock read or an object per attempt. Cancellation is turned into
    ``TimeoutError`` by the attempt, as ``asyncio.timeout()`` does (the task's
    ``uncancel()`` tells ours from a caller's).
    """

    __slots__ = ("_active", "_epoch", "_expired", "_handle", "_loop", "_tick", "timeout")

    #: Epochs (quarters of the timeout) an attempt may span before it is cut off.
    _SPAN = 5

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tick = timeout / 4
        self._active: dict[asyncio.Task[Any], int] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._epoch = 0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def enter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any]:
        """Start watching the running task's attempt; pass the task to :meth:`leave`."""
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - aiohttp always runs requests in a task
            raise RuntimeError("an attempt must run inside a task")
        if self._handle is None or self._loop is not loop:
            # The timer is idle: a new epoch starts now, so that the first one is whole.
            self._loop = loop
            self._epoch += 1
            self._handle = loop.call_later(self._tick, self._check)
        self._active[task] = self._epoch
        return task

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the watchdog cancelled ``task``'s attempt (call before :meth:`leave`)."""
        return task in self._expired

    def leave(self, task: asyncio.Task[Any]) -> None:
        """Stop watching ``task``'s attempt."""
        del self._active[task]
        if self._expired:
            self._expired.discard(task)

    def _check(self) -> None:
        self._epoch += 1
        if not self._active:  # idle: stop ticking until the next attempt
            self._handle = None
            return
        stale = self._epoch - self._SPAN
        for task, epoch in self._active.items():
            if epoch <= stale and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by enter() before any tick
        self._handle = loop.call_later(self._tick, self._check)
