"""List Calls over time windows: split a span, then page the windows concurrently.

Knows no HTTP: the client passes in an ``open_window`` that lists one window.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable, Sequence
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar

import attrs

from signalwire_calls._aio import cancel_and_wait
from signalwire_calls._listing._query import MAX_PAGE_SIZE, as_utc, check_limit

__all__ = ["merge_windows", "split_windows"]

V = TypeVar("V")

_SECOND = timedelta(seconds=1)


def split_windows(
    start: datetime | date, end: datetime | date, count: int
) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into up to ``count`` contiguous windows on whole seconds.

    The API compares times to the second, so edges fall on whole seconds and a
    span of ``s`` seconds gives at most ``s`` windows.

    Returns:
        ``(start, end)`` pairs in time order, in UTC, each ending where the next
        begins.

    Raises:
        ValueError: ``count`` < 1, a naive datetime, or ``start`` not before ``end``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"windows must be a positive integer, got {count!r}")
    low = as_utc("started_after", start).replace(microsecond=0)
    high = as_utc("started_before", end).replace(microsecond=0)
    if low >= high:
        raise ValueError(
            f"started_after ({low}) must be at least a second earlier than started_before ({high})"
        )
    span = int((high - low).total_seconds())
    count = min(count, span)
    edges = [low + timedelta(seconds=span * k // count) for k in range(count + 1)]
    return list(itertools.pairwise(edges))


def merge_windows(
    windows: Sequence[tuple[datetime, datetime]],
    open_window: Callable[[datetime, datetime], AsyncIterator[V]],
    *,
    key: Callable[[V], Hashable],
    timestamp: Callable[[V], datetime | None],
    concurrency: int | None = None,
    limit: int | None = None,
    buffer: int = MAX_PAGE_SIZE,
) -> AsyncGenerator[V, None]:
    """Page several time windows concurrently and yield each item exactly once.

    Whether the API's ``StartTime>``/``StartTime<`` are strict or inclusive is
    undocumented, so every inner window is opened one second early: then no item
    on an edge can fall between two windows, whichever it is. An item may then
    come from both windows at an edge; only items within a second of an inner
    edge (or without a timestamp) are remembered for de-duplication, so memory
    grows with the traffic at the edges, not with the whole listing.

    Args:
        windows: Contiguous windows, as from :func:`split_windows`.
        open_window: Starts listing ``(started_after, started_before)`` and returns
            the items, e.g. :func:`follow_pages` over :func:`build_list_query`.
        key: An item's identity (a call's ``sid``).
        timestamp: The time the API filters on (a call's ``start_time``).
        concurrency: Windows paged at once (default: all).
        limit: Stop after this many items.
        buffer: Items fetched but not yet consumed, at most.

    Returns:
        An async generator of items in no particular order. Closing it cancels
        every window still being paged; an error in any window is raised from it.

    Raises:
        ValueError: An option is out of range.
    """
    check_limit(limit)
    for name, value in (("concurrency", concurrency), ("buffer", buffer)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    merger = _Merger(windows, open_window, key, timestamp, buffer)
    return merger.run(min(concurrency or len(windows), len(windows)), limit)


@attrs.frozen
class _Failed:
    error: BaseException


@attrs.frozen
class _Ended:
    """One window task has paged all its windows."""


class _Merger(Generic[V]):
    """The state shared by one :func:`merge_windows` call's window tasks and consumer."""

    def __init__(
        self,
        windows: Sequence[tuple[datetime, datetime]],
        open_window: Callable[[datetime, datetime], AsyncIterator[V]],
        key: Callable[[V], Hashable],
        timestamp: Callable[[V], datetime | None],
        buffer: int,
    ) -> None:
        self._windows = list(windows)
        self._open = open_window
        self._key = key
        self._timestamp = timestamp
        self._edges = [start for start, _ in self._windows[1:]]
        self._next_window = iter(range(len(self._windows)))
        # Unbounded queue for control messages; the semaphore bounds the items.
        self._queue: asyncio.Queue[V | _Failed | _Ended] = asyncio.Queue()
        self._room = asyncio.Semaphore(buffer)
        self._closing = False

    async def run(self, tasks: int, limit: int | None) -> AsyncGenerator[V, None]:
        if limit == 0 or tasks == 0:
            return
        workers = [asyncio.create_task(self._page()) for _ in range(tasks)]
        for worker in workers:
            worker.add_done_callback(self._on_done)
        seen_at_edges: set[Hashable] = set()
        running = len(workers)
        yielded = 0
        try:
            while running:
                item = await self._queue.get()
                if isinstance(item, _Ended):
                    running -= 1
                    continue
                if isinstance(item, _Failed):
                    raise item.error
                self._room.release()
                if self._near_edge(item):
                    identity = self._key(item)
                    if identity in seen_at_edges:
                        continue
                    seen_at_edges.add(identity)
                yield item
                yielded += 1
                if yielded == limit:
                    return
        finally:
            self._closing = True
            await cancel_and_wait(workers)

    def _near_edge(self, item: V) -> bool:
        moment = self._timestamp(item)
        if moment is None or not self._edges:
            return moment is None
        index = bisect.bisect_left(self._edges, moment)
        near = self._edges[max(0, index - 1) : index + 1]
        return any(abs(moment - edge) <= _SECOND for edge in near)

    async def _page(self) -> None:
        for index in self._next_window:
            start, end = self._windows[index]
            # One second early, so a strict ">" cannot skip an item on the edge.
            items = self._open(start - _SECOND if index else start, end)
            try:
                async for item in items:
                    await self._room.acquire()
                    self._queue.put_nowait(item)
            finally:
                aclose = getattr(items, "aclose", None)
                if aclose is not None:
                    await aclose()
        self._queue.put_nowait(_Ended())

    def _on_done(self, task: asyncio.Task[None]) -> None:
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is not None and not self._closing:
            self._queue.put_nowait(_Failed(error))
