"""List Calls without HTTP: the query, paging by the returned cursor, time windows.

Knows the API's query names (API-NOTES §4.1) and its paging rules (§4.3), but not
aiohttp: the client passes in the coroutine that fetches a page.
"""

from __future__ import annotations

from signalwire_calls._listing._paging import MAX_EMPTY_PAGES, follow_pages, resolve_page_uri
from signalwire_calls._listing._query import (
    MAX_PAGE_SIZE,
    build_list_query,
    encode_query,
    format_api_datetime,
)
from signalwire_calls._listing._windows import merge_windows, split_windows

__all__ = [
    "MAX_EMPTY_PAGES",
    "MAX_PAGE_SIZE",
    "build_list_query",
    "encode_query",
    "follow_pages",
    "format_api_datetime",
    "merge_windows",
    "resolve_page_uri",
    "split_windows",
]
