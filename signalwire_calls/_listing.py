"""List Calls without HTTP: the query, next-page links, paging and time windows.

This module knows the API's query names (API-NOTES §4.1) and its paging rules
(§4.3), but not aiohttp: the client passes in a ``fetch_page`` coroutine.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import email.utils
import itertools
import unicodedata
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Generic, TypeVar
from urllib.parse import SplitResult, quote, urlencode, urlsplit

import attrs

from signalwire_calls._bulk import cancel_and_wait
from signalwire_calls._errors import DecodeError
from signalwire_calls._models import CallStatus

__all__ = [
    "build_list_query",
    "encode_query",
    "follow_pages",
    "format_api_datetime",
    "merge_windows",
    "resolve_page_uri",
    "split_windows",
]

V = TypeVar("V")

#: The largest ``PageSize`` the API accepts (larger gives error 54454).
MAX_PAGE_SIZE = 1000
_STATUSES = tuple(status.value for status in CallStatus)
_SECOND = timedelta(seconds=1)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def build_list_query(
    *,
    status: CallStatus | str | None = None,
    to: str | None = None,
    from_: str | None = None,
    parent_call_sid: str | uuid.UUID | None = None,
    started_after: datetime | date | None = None,
    started_before: datetime | date | None = None,
    ended_after: datetime | date | None = None,
    ended_before: datetime | date | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> list[tuple[str, str]]:
    """Check the List Calls filters and return them as the API's query pairs.

    Everything is validated here, before any request. Times go out as RFC 2822 in
    UTC (``Wed, 19 Sep 2018 20:00:00 +0000``), the format the API documents;
    sub-second parts are dropped because the API compares whole seconds. A
    :class:`~datetime.date` means midnight UTC. ``started_after`` maps to
    ``StartTime>`` and ``started_before`` to ``StartTime<``; the service may treat
    both bounds as inclusive (Twilio's ``StartTime>=`` means "on or after").

    Args:
        status: One of the :class:`~signalwire_calls.CallStatus` values.
        to: The called number or SIP address, exactly as the API stores it.
        from_: The calling number or SIP address.
        parent_call_sid: Only the child legs of this call.
        started_after: Only calls that started at or after this time.
        started_before: Only calls that started before (or at) this time.
        ended_after: Only calls that ended at or after this time.
        ended_before: Only calls that ended before (or at) this time.
        page_size: Calls per page, 1 to 1000.

    Returns:
        ``(name, value)`` pairs, unencoded; pass them to :func:`encode_query`.

    Raises:
        TypeError: A filter has the wrong type.
        ValueError: A filter has a bad value; the message names the argument.
    """
    pairs: list[tuple[str, str]] = []
    if to is not None:
        pairs.append(("To", _check_address("to", to)))
    if from_ is not None:
        pairs.append(("From", _check_address("from_", from_)))
    if status is not None:
        if not isinstance(status, str) or status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}; got {status!r}")
        pairs.append(("Status", str(status)))
    if parent_call_sid is not None:
        pairs.append(("ParentCallSid", _check_uuid("parent_call_sid", parent_call_sid)))
    pairs += _range_pairs("StartTime", "started", started_after, started_before)
    pairs += _range_pairs("EndTime", "ended", ended_after, ended_before)
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, got {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    pairs.append(("PageSize", str(page_size)))
    return pairs


def _range_pairs(
    param: str, verb: str, after: datetime | date | None, before: datetime | date | None
) -> list[tuple[str, str]]:
    low = None if after is None else _as_utc(f"{verb}_after", after)
    high = None if before is None else _as_utc(f"{verb}_before", before)
    if low is not None and high is not None and low > high:
        raise ValueError(f"{verb}_after ({low}) is later than {verb}_before ({high})")
    pairs = [] if low is None else [(f"{param}>", format_api_datetime(low))]
    if high is not None:
        pairs.append((f"{param}<", format_api_datetime(high)))
    return pairs


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Percent-encode query pairs, names included (``StartTime>`` → ``StartTime%3E``).

    Nothing is left for a later layer to re-encode: ``+`` becomes ``%2B`` (a raw
    ``+`` would reach the server as a space) and spaces become ``%20``. Send the
    result with ``yarl.URL(url, encoded=True)``.
    """
    return urlencode(pairs, quote_via=quote, safe="")


def format_api_datetime(value: datetime | date) -> str:
    """Format a time as the API's RFC 2822 GMT form, e.g. ``Wed, 19 Sep 2018 20:00:00 +0000``.

    Raises:
        ValueError: ``value`` is a naive datetime.
    """
    moment = _as_utc("value", value).replace(microsecond=0)
    return email.utils.format_datetime(moment)


def resolve_page_uri(base_url: str, next_page_uri: str) -> str:
    """Turn a returned ``next_page_uri`` into the URL to fetch.

    A path is joined to the *origin* (scheme, host and port) of ``base_url``, never
    to its path, so the ``/api/laml/2010-04-01`` prefix is not doubled (API-NOTES
    §1). An absolute URL is accepted only on that same origin: the server must not
    be able to send our credentials to another host or over plain HTTP.

    Args:
        base_url: The URL the first page was fetched from (or the client's base URL).
        next_page_uri: The link exactly as the API returned it, JSON-decoded (the
            decoder turns the API's escaped ampersands back into ``&``).

    Returns:
        An absolute URL, with the returned path and query untouched.

    Raises:
        ValueError: ``base_url`` is not an absolute http(s) URL.
        DecodeError: The link is not a path on the same origin.
    """
    base = urlsplit(base_url)
    if base.scheme not in _DEFAULT_PORTS or not base.hostname:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if not isinstance(next_page_uri, str) or not next_page_uri:
        raise _bad_link(next_page_uri, "it is not a non-empty string")
    if any(char.isspace() or char == "\\" or _is_control(char) for char in next_page_uri):
        raise _bad_link(next_page_uri, "it contains whitespace, a backslash or a control character")
    target = urlsplit(next_page_uri)
    if target.scheme or target.netloc:
        try:
            same = (target.scheme or base.scheme).lower() == base.scheme and _host_port(
                target, target.scheme or base.scheme
            ) == _host_port(base, base.scheme)
        except ValueError:  # an unparsable port
            same = False
        if not same or target.username is not None:
            raise _bad_link(next_page_uri, f"it leaves the origin of {_origin(base)}")
        return next_page_uri if target.scheme else f"{base.scheme}:{next_page_uri}"
    if not next_page_uri.startswith("/"):
        raise _bad_link(next_page_uri, "it is not an absolute path")
    return _origin(base) + next_page_uri


def follow_pages(
    first_url: str,
    fetch_page: Callable[[str], Awaitable[tuple[Sequence[V], str | None]]],
    *,
    limit: int | None = None,
) -> AsyncGenerator[V, None]:
    """Yield the items of every page, following ``next_page_uri`` as returned.

    Pages are fetched one after another (the API's cursors allow nothing else,
    API-NOTES §4.3) and only when the consumer has used up the previous one. The
    filters travel inside the returned links and are never added again.

    Args:
        first_url: The absolute, encoded URL of the first page; the origin that
            every next link is resolved against.
        fetch_page: Fetches a URL and returns ``(items, next_page_uri)``.
        limit: Stop after this many items (no further page is fetched).

    Returns:
        An async generator of items. It stops on a null or empty
        ``next_page_uri``; an empty page with a next link is skipped over. It
        raises :class:`~signalwire_calls.DecodeError` if a link repeats (a cycle)
        or leaves the origin.

    Raises:
        ValueError: ``limit`` is negative.
    """
    _check_limit(limit)
    return _follow(first_url, fetch_page, limit)


async def _follow(
    first_url: str,
    fetch_page: Callable[[str], Awaitable[tuple[Sequence[V], str | None]]],
    limit: int | None,
) -> AsyncGenerator[V, None]:
    remaining = limit
    url = first_url
    visited = {first_url}
    while remaining != 0:
        items, next_uri = await fetch_page(url)
        for item in items[:remaining]:
            yield item
        if remaining is not None:
            remaining -= min(remaining, len(items))
        if not next_uri or remaining == 0:
            return
        url = resolve_page_uri(first_url, next_uri)
        if url in visited:
            raise DecodeError(
                f"The API sent next_page_uri {next_uri!r} a second time; stopping to avoid a loop",
                field="$.next_page_uri",
            )
        visited.add(url)


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
    low = _as_utc("started_after", start).replace(microsecond=0)
    high = _as_utc("started_before", end).replace(microsecond=0)
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
    _check_limit(limit)
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


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")


def _as_utc(name: str, value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{name} is a naive datetime ({value.isoformat()}); attach a time zone, "
                "e.g. datetime(..., tzinfo=datetime.UTC), so it is not misread"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise TypeError(f"{name} must be an aware datetime or a date, got {value!r}")


def _check_address(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str such as '+15551234567', got {value!r}")
    if not value or value != value.strip():
        raise ValueError(f"{name} must be non-empty with no surrounding spaces, got {value!r}")
    if any(_is_control(char) for char in value):
        raise ValueError(f"{name} must not contain control characters, got {value!r}")
    return value


def _check_uuid(name: str, value: str | uuid.UUID) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = uuid.UUID(value)
            # uuid.UUID also takes braces, "urn:uuid:" and bare hex; the API does not.
            if str(parsed) == value.lower():
                return str(parsed)
    raise ValueError(f"{name} must be a call SID (a UUID), got {value!r}")


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}


def _host_port(parts: SplitResult, scheme: str) -> tuple[str, int]:
    # .port raises ValueError for a port that is not a number in range.
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def _origin(base: SplitResult) -> str:
    # Userinfo is dropped: credentials never travel in the URL.
    return f"{base.scheme}://{base.netloc.rpartition('@')[2]}"


def _bad_link(link: object, why: str) -> DecodeError:
    return DecodeError(f"Refusing next_page_uri {link!r}: {why}", field="$.next_page_uri")
