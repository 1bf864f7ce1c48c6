"""The emulator's call store: pre-serialised bodies, list filters and cursor paging.

Paging follows the real service (API-NOTES §4): newest first, ``PageToken=PA{sid of
the last call of the previous page}`` (``PB`` for backwards), filters and
``PageSize`` carried inside ``next_page_uri``, ``next_page_uri`` null on the last page.
The ``StartTime<``/``>`` bounds are treated as **inclusive**: the service does not
document them, and a client must cope with inclusive bounds.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from signalwire_calls.testing._data import LAML_PREFIX, dump_json, parse_when

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Listing", "ListingError"]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_STATUSES = frozenset(
    (
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "canceled",
        "completed",
        "busy",
        "failed",
        "no-answer",
    )
)
#: Filters in the order they are echoed in the returned uris.
_EXACT = ("To", "From", "Status", "ParentCallSid")
_EXACT_KEYS = {"To": "to", "From": "from", "Status": "status", "ParentCallSid": "parent_call_sid"}
_TIMES = ("StartTime", "StartTime<", "StartTime>", "EndTime", "EndTime<", "EndTime>")
_MAX_PAGE_SIZE = 1000
_DAY = 86_400


class ListingError(ValueError):
    """A list request the service would refuse with 400; ``code`` is SignalWire's."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def timestamp(text: str | None) -> int | None:
    """Return the POSIX seconds of an RFC 2822 date of the service's exact form, fast."""
    if not text:
        return None
    try:
        _, day, month, year, clock, _zone = text.split(" ")
        hour, minute, second = clock.split(":")
        return calendar.timegm(
            (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
        )
    except (ValueError, KeyError):
        return int(parsedate_to_datetime(text).timestamp())


def _time_filter(name: str, value: str) -> Callable[[int | None], bool]:
    try:
        when, date_only = parse_when(value)
    except ValueError as err:
        raise ListingError(10000, f"Invalid value for {name}: {value!r}") from err
    low = int(when.timestamp())
    high = low + (_DAY - 1 if date_only else 0)
    if name.endswith("<"):
        return lambda ts: ts is not None and ts <= high
    if name.endswith(">"):
        return lambda ts: ts is not None and ts >= low
    return lambda ts: ts is not None and low <= ts <= high


class Listing:
    """All calls of the emulated project, newest first, with their wire bytes."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self._keys: list[int] = []  # -date_created, ascending: the list order
        self._times: dict[str, tuple[int | None, int | None]] = {}
        self._bytes: dict[str, dict[str, bytes]] = {LAML_PREFIX: {}}
        self._index: dict[str, int] | None = None
        for call in calls:
            self._store(call)
            self.order.append(call["sid"])
            self._keys.append(-(timestamp(call["date_created"]) or 0))

    def _store(self, call: dict[str, Any]) -> None:
        sid = call["sid"]
        self.calls[sid] = call
        self._times[sid] = (timestamp(call.get("start_time")), timestamp(call.get("end_time")))
        for cache in self._bytes.values():
            cache.pop(sid, None)
        self._bytes[LAML_PREFIX][sid] = dump_json(call)

    def add(self, call: dict[str, Any]) -> None:
        """Add (or replace) a call, listed by its ``date_created``."""
        sid = call["sid"]
        if sid in self.calls:
            position = self.order.index(sid)
            del self.order[position], self._keys[position]
        self._store(call)
        key = -(timestamp(call["date_created"]) or 0)
        position = bisect.bisect_left(self._keys, key)
        self.order.insert(position, sid)
        self._keys.insert(position, key)
        self._index = None

    def newest_created(self, default: datetime) -> datetime:
        """Return one second after the newest call's ``date_created`` (or ``default``)."""
        if not self._keys:
            return default
        return datetime.fromtimestamp(-self._keys[0], UTC) + timedelta(seconds=1)

    def body(self, sid: str, prefix: str) -> bytes | None:
        """Return the call's JSON bytes with links on ``prefix``, or ``None`` if unknown."""
        cache = self._bytes.get(prefix)
        if cache is None:
            cache = self._bytes[prefix] = {}
        body = cache.get(sid)
        if body is None:
            laml = self._bytes[LAML_PREFIX].get(sid)
            if laml is None:
                return None
            # Links follow the prefix the request used (API-NOTES §1, Ruby SDK cassette).
            body = cache[sid] = laml.replace(b'"' + LAML_PREFIX.encode(), b'"' + prefix.encode())
        return body

    def _position(self, sid: str) -> int | None:
        if self._index is None:
            self._index = {s: i for i, s in enumerate(self.order)}
        return self._index.get(sid)

    def page(self, prefix: str, account: str, query: Mapping[str, str]) -> bytes:
        """Return the JSON bytes of one list page for ``query``.

        Raises:
            ListingError: A bad ``PageSize`` (54454), ``Page`` > 0 without a token
                (54453), an unknown token (21481) or a bad filter value (10000).
        """
        size, number, token = self._paging(query)
        tests: list[Callable[[str], bool]] = []
        echo: list[tuple[str, str]] = []
        for name in _EXACT:
            if name in query:
                value, key = query[name], _EXACT_KEYS[name]
                if name == "Status" and value not in _STATUSES:
                    raise ListingError(10000, f"Invalid value for Status: {value!r}")
                tests.append(self._equals(key, value))
                echo.append((name, value))
        for name in _TIMES:
            if name in query:
                tests.append(self._within(name, query[name]))
                echo.append((name, query[name]))

        def matches(sid: str) -> bool:
            return all(test(sid) for test in tests)

        sids, more = self._select(token, size, matches)
        base = f"{prefix}/Accounts/{account}/Calls?" + "".join(
            f"{quote(k, safe='')}={quote(v, safe='')}&" for k, v in echo
        )

        def link(page: int, cursor: str | None = None) -> str:
            tail = f"&PageToken={quote(cursor, safe='')}" if cursor else ""
            return f"{base}Page={page}&PageSize={size}{tail}"

        next_uri = link(number + 1, "PA" + sids[-1]) if more and sids else None
        previous = link(number - 1, "PB" + sids[0]) if number > 0 and sids else None
        head = dump_json(
            {
                "uri": link(number, token),
                "first_page_uri": link(0),
                "next_page_uri": next_uri,
                "previous_page_uri": previous,
                "page": number,
                "page_size": size,
            }
        )
        calls = b",".join(self.body(sid, prefix) or b"" for sid in sids)
        return head[:-1] + b',"calls":[' + calls + b"]}"

    def _equals(self, key: str, value: str) -> Callable[[str], bool]:
        calls = self.calls
        return lambda sid: calls[sid].get(key) == value

    def _within(self, name: str, value: str) -> Callable[[str], bool]:
        check, which, times = _time_filter(name, value), int(name.startswith("End")), self._times
        return lambda sid: check(times[sid][which])

    @staticmethod
    def _paging(query: Mapping[str, str]) -> tuple[int, int, str | None]:
        try:
            size = int(query.get("PageSize", "50"))
        except ValueError:
            size = 0
        if not 1 <= size <= _MAX_PAGE_SIZE:
            raise ListingError(54454, "PageSize must be an integer between 1 and 1000")
        try:
            number = int(query.get("Page", "0"))
        except ValueError:
            number = -1
        if number < 0:
            raise ListingError(10000, "Page must be a non-negative integer")
        token = query.get("PageToken") or None
        if number > 0 and token is None:
            raise ListingError(
                54453, "A PageToken must be included if your Page value is larger than 0"
            )
        return size, number, token

    def _select(
        self, token: str | None, size: int, matches: Callable[[str], bool]
    ) -> tuple[list[str], bool]:
        """Return the page's SIDs and whether more matching calls follow it."""
        order = self.order
        start, backwards = 0, False
        if token is not None:
            position = self._position(token[2:]) if token[:2] in {"PA", "PB"} else None
            if position is None:
                raise ListingError(21481, f"Invalid PageToken: {token!r}")
            backwards = token[:2] == "PB"
            start = position if backwards else position + 1
        if backwards:
            found = [sid for sid in reversed(order[:start]) if matches(sid)][:size]
            found.reverse()
            return found, True
        found = []
        for sid in itertools.islice(order, start, None):
            if matches(sid):
                if len(found) == size:
                    return found, True
                found.append(sid)
        return found, False
