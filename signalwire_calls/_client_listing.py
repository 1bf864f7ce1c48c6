"""``CallsClient.iter_calls``: List Calls, page by page or in concurrent time windows.

The query building, paging and window merging are :mod:`signalwire_calls._listing`'s;
this mixin only ties them to the client's requests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from signalwire_calls._client_requests import _Requests
from signalwire_calls._converter import structure_call
from signalwire_calls._errors import DecodeError
from signalwire_calls._listing import (
    MAX_PAGE_SIZE,
    build_list_query,
    encode_query,
    follow_pages,
    merge_windows,
    split_windows,
)

if TYPE_CHECKING:
    from signalwire_calls._models import Call, CallStatus


class _Listing(_Requests):
    """The listing methods of :class:`~signalwire_calls.CallsClient` (a base class)."""

    _calls_url: str  # set by CallsClient.__init__

    def iter_calls(
        self,
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
        limit: int | None = None,
        windows: int = 1,
    ) -> AsyncIterator[Call]:
        """List calls, newest first, following the API's page cursor.

        Filters map to the API's query parameters (``Status``, ``To``, ``From``,
        ``ParentCallSid``, ``StartTime>``, ``StartTime<``, ``EndTime>``,
        ``EndTime<``); datetimes must be timezone-aware and are sent as RFC 2822.
        Every value is checked here, before any request. Pages are fetched as
        the iteration needs them, by following ``next_page_uri`` exactly as
        returned.

        With ``windows=N`` (N > 1), ``[started_after, started_before)`` is split
        into N time windows that are paged concurrently; each call is still
        yielded exactly once, but not in date order. ``started_after`` is then
        required; ``started_before`` defaults to now.

        Args:
            status: Only calls with this status.
            to: Only calls to this number or SIP address.
            from_: Only calls from this number or SIP address.
            parent_call_sid: Only the legs of this parent call.
            started_after: Only calls that started at or after this time.
            started_before: Only calls that started before this time.
            ended_after: Only calls that ended at or after this time.
            ended_before: Only calls that ended before this time.
            page_size: Calls per page, 1 to 1000.
            limit: Stop after this many calls.
            windows: Time windows to page concurrently.

        Returns:
            An async iterator of calls.

        Raises:
            ValueError: A filter is invalid (raised here, before any request).
        """
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise ValueError(f"windows must be a positive integer, got {windows!r}")
        size = page_size if limit is None else max(1, min(page_size, limit))
        filters: dict[str, Any] = {
            "status": status,
            "to": to,
            "from_": from_,
            "parent_call_sid": parent_call_sid,
            "ended_after": ended_after,
            "ended_before": ended_before,
            "page_size": size,
        }
        query = build_list_query(
            started_after=started_after, started_before=started_before, **filters
        )
        if windows == 1:
            return follow_pages(self._list_url(query), self._fetch_page, limit=limit)
        if started_after is None:
            raise ValueError("windows > 1 needs started_after (the start of the range to split)")
        end = started_before if started_before is not None else datetime.now(UTC)

        def open_window(after: datetime, before: datetime) -> AsyncIterator[Call]:
            window_query = build_list_query(started_after=after, started_before=before, **filters)
            return follow_pages(self._list_url(window_query), self._fetch_page)

        return merge_windows(
            split_windows(started_after, end, windows),
            open_window,
            key=lambda call: call.sid,
            timestamp=lambda call: call.start_time,
            concurrency=min(windows, self._max_connections),
            limit=limit,
        )

    def _list_url(self, query: Sequence[tuple[str, str]]) -> str:
        return f"{self._calls_url}?{encode_query(query)}"

    async def _fetch_page(self, url: str) -> tuple[list[Call], str | None]:
        """Fetch one page of List Calls; return its calls and ``next_page_uri``."""
        self._ensure_session()
        data = await self._get(url)
        if not isinstance(data, dict) or not isinstance(data.get("calls"), list):
            raise DecodeError(
                "Invalid List Calls page: expected an object with a 'calls' list",
                field="$.calls",
            )
        next_uri = data.get("next_page_uri")
        if next_uri is not None and not isinstance(next_uri, str):
            raise DecodeError(
                f"Invalid List Calls page: next_page_uri is {type(next_uri).__name__}",
                field="$.next_page_uri",
            )
        calls = []
        for index, item in enumerate(data["calls"]):
            try:
                calls.append(structure_call(item))
            except DecodeError as err:
                err = self._scrubbed(err)
                err.field = f"$.calls[{index}]{err.field[1:]}"
                raise err from None
        return calls, next_uri
