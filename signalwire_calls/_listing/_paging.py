"""Paging List Calls: follow each returned ``next_page_uri``, safely (API-NOTES §4.3).

Knows no HTTP: the client passes in a ``fetch_page`` coroutine.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from signalwire_calls._errors import DecodeError
from signalwire_calls._listing._query import check_limit, is_control

__all__ = ["MAX_EMPTY_PAGES", "follow_pages", "resolve_page_uri"]

V = TypeVar("V")

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Empty pages in a row, each with a new next link, after which paging stops: the real
#: service ends a listing with ``next_page_uri: null`` (API-NOTES §4.3), so a run of
#: empty pages that never ends is a broken or hostile server, not a long listing.
MAX_EMPTY_PAGES = 10


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
    if any(char.isspace() or char == "\\" or is_control(char) for char in next_page_uri):
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
        ``next_page_uri``; an empty page with a next link is skipped over, but
        after :data:`MAX_EMPTY_PAGES` of them in a row it raises
        :class:`~signalwire_calls.DecodeError`, as it does if a link repeats (a
        cycle) or leaves the origin.

    Raises:
        ValueError: ``limit`` is negative.
    """
    check_limit(limit)
    return _follow(first_url, fetch_page, limit)


async def _follow(
    first_url: str,
    fetch_page: Callable[[str], Awaitable[tuple[Sequence[V], str | None]]],
    limit: int | None,
) -> AsyncGenerator[V, None]:
    remaining = limit
    url = first_url
    visited = {first_url}
    empty = 0
    while remaining != 0:
        items, next_uri = await fetch_page(url)
        empty = 0 if items else empty + 1
        if empty >= MAX_EMPTY_PAGES and next_uri:
            raise DecodeError(
                f"The API sent {empty} empty pages in a row, each with a new next_page_uri "
                f"(the last: {next_uri!r}); stopping, as a listing that never ends is not "
                "one the service sends",
                field="$.next_page_uri",
            )
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


def _host_port(parts: SplitResult, scheme: str) -> tuple[str, int]:
    # .port raises ValueError for a port that is not a number in range.
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def _origin(base: SplitResult) -> str:
    # Userinfo is dropped: credentials never travel in the URL.
    return f"{base.scheme}://{base.netloc.rpartition('@')[2]}"


def _bad_link(link: object, why: str) -> DecodeError:
    return DecodeError(f"Refusing next_page_uri {link!r}: {why}", field="$.next_page_uri")
