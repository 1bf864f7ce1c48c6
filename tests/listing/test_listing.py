# The house style puts the expected value first, which SIM300 calls a Yoda condition.
import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from signalwire_calls._errors import DecodeError
from signalwire_calls._listing import (
    build_list_query,
    encode_query,
    follow_pages,
    format_api_datetime,
    merge_windows,
    resolve_page_uri,
    split_windows,
)
from signalwire_calls._models import CallStatus

BASE = "https://example.signalwire.com/api/laml/2010-04-01/Accounts/a/Calls"
PARENT = "5a2f8e1c-6d3b-4e9a-a7c0-1b4d6e8f2c93"
T0 = datetime(2018, 9, 19, 20, 0, tzinfo=UTC)


def others():
    """Return the tasks other than the running test."""
    return asyncio.all_tasks() - {asyncio.current_task()}


async def collect(items):
    return [item async for item in items]


def test_query_maps_every_filter():
    """Each filter becomes the API's query name, with times in RFC 2822 GMT."""
    pairs = build_list_query(
        status=CallStatus.NO_ANSWER,
        to="+15125550143",
        from_="sip:alice@example.com",
        parent_call_sid=PARENT,
        started_after=T0,
        started_before=T0 + timedelta(hours=1),
        ended_after=date(2018, 9, 20),
        ended_before=datetime(2018, 9, 21, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        page_size=50,
    )

    assert [
        ("To", "+15125550143"),
        ("From", "sip:alice@example.com"),
        ("Status", "no-answer"),
        ("ParentCallSid", PARENT),
        ("StartTime>", "Wed, 19 Sep 2018 20:00:00 +0000"),
        ("StartTime<", "Wed, 19 Sep 2018 21:00:00 +0000"),
        ("EndTime>", "Thu, 20 Sep 2018 00:00:00 +0000"),
        ("EndTime<", "Thu, 20 Sep 2018 23:30:00 +0000"),
        ("PageSize", "50"),
    ] == pairs


def test_query_defaults_to_the_largest_page():
    """With no filters only PageSize=1000 is sent."""
    assert [("PageSize", "1000")] == build_list_query()


def test_encode_query_escapes_names_and_values():
    """Names with < and > and values with + and spaces are percent-encoded."""
    pairs = build_list_query(to="+15125550143", started_after=T0, started_before=T0, page_size=2)

    assert (
        "To=%2B15125550143"
        "&StartTime%3E=Wed%2C%2019%20Sep%202018%2020%3A00%3A00%20%2B0000"
        "&StartTime%3C=Wed%2C%2019%20Sep%202018%2020%3A00%3A00%20%2B0000"
        "&PageSize=2"
    ) == encode_query(pairs)


def test_datetime_format_drops_microseconds():
    """Sub-second parts are dropped because the API compares whole seconds."""
    assert "Wed, 19 Sep 2018 20:00:00 +0000" == format_api_datetime(T0.replace(microsecond=999_999))


def test_naive_datetime_is_refused():
    """A naive datetime is refused with advice to attach a time zone."""
    with pytest.raises(ValueError, match=r"started_after is a naive datetime.*attach a time zone"):
        build_list_query(started_after=datetime(2018, 9, 19))


@pytest.mark.parametrize(
    ("filters", "error", "match"),
    [
        ({"status": "done"}, ValueError, "status must be one of queued"),
        ({"status": "Completed"}, ValueError, "status"),
        ({"to": "+1555\r\nX-Evil: 1"}, ValueError, "to must not contain control"),
        ({"to": 15551234567}, TypeError, "to must be a str"),
        ({"from_": ""}, ValueError, "from_ must be non-empty"),
        ({"from_": "+15551234567 "}, ValueError, "from_ must be non-empty with no surrounding"),
        ({"parent_call_sid": "CA123"}, ValueError, "Invalid parent_call_sid"),
        ({"parent_call_sid": "{" + PARENT + "}"}, ValueError, "parent_call_sid"),
        ({"parent_call_sid": PARENT.replace("-", "")}, ValueError, "parent_call_sid"),
        ({"started_before": "2018-09-19"}, TypeError, "started_before must be an aware"),
        ({"ended_after": T0, "ended_before": T0 - timedelta(seconds=1)}, ValueError, "later"),
        ({"page_size": 0}, ValueError, "page_size must be between 1 and 1000"),
        ({"page_size": 1001}, ValueError, "page_size"),
        ({"page_size": True}, TypeError, "page_size"),
    ],
)
def test_bad_filters_are_refused(filters, error, match):
    """Every bad filter raises before any I/O, naming the argument."""
    with pytest.raises(error, match=match):
        build_list_query(**filters)


def test_sid_forms_are_normalised():
    """A uuid.UUID or an upper-case SID is sent in the API's lower-case form."""
    assert [("ParentCallSid", PARENT), ("PageSize", "1000")] == build_list_query(
        parent_call_sid=uuid.UUID(PARENT)
    )
    assert ("ParentCallSid", PARENT) == build_list_query(parent_call_sid=PARENT.upper())[0]


@pytest.mark.parametrize(
    ("base", "link", "expected"),
    [
        (
            BASE + "?PageSize=2",
            "/api/laml/2010-04-01/Accounts/a/Calls?Page=1&PageToken=PAx",
            "https://example.signalwire.com/api/laml/2010-04-01/Accounts/a/Calls?Page=1&PageToken=PAx",
        ),
        (
            "http://127.0.0.1:8080/api/laml/2010-04-01/Accounts/a/Calls",
            "/2010-04-01/Accounts/a/Calls?Page=1",
            "http://127.0.0.1:8080/2010-04-01/Accounts/a/Calls?Page=1",
        ),
        (
            "https://user:secret@example.signalwire.com/api/laml/x",
            "/api/laml/y?StartTime%3E=1",
            "https://example.signalwire.com/api/laml/y?StartTime%3E=1",
        ),
        (
            BASE,
            "https://EXAMPLE.signalwire.com:443/api/z",
            "https://EXAMPLE.signalwire.com:443/api/z",
        ),
        (BASE, "//example.signalwire.com/api/z", "https://example.signalwire.com/api/z"),
    ],
)
def test_links_resolve_against_the_origin(base, link, expected):
    """A next link is joined to the base's origin only, so its path prefix is never doubled."""
    assert expected == resolve_page_uri(base, link)


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/api/laml/x",
        "//evil.example/api/laml/x",
        "http://example.signalwire.com/api/laml/x",
        "https://example.signalwire.com:8443/api/laml/x",
        "https://example.signalwire.com:notaport/x",
        "https://user@example.signalwire.com/api/laml/x",
        "/\\evil.example/x",
        "/api/laml/x\r\nHost: evil",
        "Calls?Page=1",
        "javascript:alert(1)",
        "",
    ],
)
def test_links_off_the_origin_are_refused(link):
    """A link to another host, scheme or port, or a malformed one, is a DecodeError."""
    with pytest.raises(DecodeError, match="Refusing next_page_uri") as info:
        resolve_page_uri(BASE, link)
    assert "$.next_page_uri" == info.value.field


def test_relative_base_is_refused():
    """A base URL without scheme and host is a programming error."""
    with pytest.raises(ValueError, match="base_url"):
        resolve_page_uri("/api/laml", "/x")


def test_json_escaped_ampersands_are_the_decoders_job():
    """The API's escaped ampersands in raw JSON come out of the decoder as plain ones."""
    raw = (
        b'{"next_page_uri": "/api/laml/2010-04-01/Accounts/a/Calls?Page=1'
        b'\\u0026PageSize=2\\u0026PageToken=PA9e4b7c1d"}'
    )
    link = json.loads(raw)["next_page_uri"]

    assert (
        "https://example.signalwire.com/api/laml/2010-04-01/Accounts/a/Calls"
        "?Page=1&PageSize=2&PageToken=PA9e4b7c1d"
    ) == resolve_page_uri(BASE, link)


def pager(pages):
    """Return a fetch_page over ``{url: (items, next)}`` and the list of URLs it fetched."""
    fetched = []

    async def fetch_page(url):
        fetched.append(url)
        await asyncio.sleep(0)
        return pages[url]

    return fetch_page, fetched


ORIGIN = "https://example.signalwire.com"
FIRST = BASE + "?To=%2B1&PageSize=2"


async def test_follow_pages_uses_links_as_returned():
    """Pages are followed through their links untouched, past an empty page, until null."""
    fetch, fetched = pager(
        {
            FIRST: ([1, 2], "/api/laml/p?Page=1&PageToken=PA2"),
            ORIGIN + "/api/laml/p?Page=1&PageToken=PA2": ([], "/api/laml/p?Page=2&PageToken=PA3"),
            ORIGIN + "/api/laml/p?Page=2&PageToken=PA3": ([3], None),
        }
    )

    assert [1, 2, 3] == await collect(follow_pages(FIRST, fetch))
    assert [
        FIRST,
        ORIGIN + "/api/laml/p?Page=1&PageToken=PA2",
        ORIGIN + "/api/laml/p?Page=2&PageToken=PA3",
    ] == fetched


async def test_follow_pages_stops_on_an_empty_next_link():
    """An empty-string next link ends the listing like null does."""
    fetch, fetched = pager({FIRST: ([], "")})

    assert [] == await collect(follow_pages(FIRST, fetch))
    assert [FIRST] == fetched


async def test_limit_stops_without_fetching_more():
    """A limit reached within a page stops the listing before the next page is fetched."""
    fetch, fetched = pager(
        {FIRST: ([1, 2], "/p2"), ORIGIN + "/p2": ([3, 4], "/p3"), ORIGIN + "/p3": ([5], None)}
    )

    assert [1, 2, 3] == await collect(follow_pages(FIRST, fetch, limit=3))
    assert [FIRST, ORIGIN + "/p2"] == fetched


async def test_limit_zero_fetches_nothing():
    """limit=0 yields nothing and sends no request."""
    fetch, fetched = pager({})

    assert [] == await collect(follow_pages(FIRST, fetch, limit=0))
    assert [] == fetched


def test_negative_limit_is_refused():
    """A negative limit raises at once."""
    with pytest.raises(ValueError, match="limit"):
        follow_pages(FIRST, pager({})[0], limit=-1)


async def test_cycle_is_an_error():
    """A next link seen before stops the listing with a DecodeError instead of looping."""
    fetch, _ = pager({FIRST: ([1], "/p2"), ORIGIN + "/p2": ([2], "/p2")})
    items = follow_pages(FIRST, fetch)

    assert [1, 2] == [await anext(items), await anext(items)]
    with pytest.raises(DecodeError, match="a second time"):
        await anext(items)


def test_split_windows_on_whole_seconds():
    """Windows are contiguous, cover the range, and start on whole seconds."""
    windows = split_windows(T0 + timedelta(microseconds=5), T0 + timedelta(seconds=10), 3)

    assert [
        (T0, T0 + timedelta(seconds=3)),
        (T0 + timedelta(seconds=3), T0 + timedelta(seconds=6)),
        (T0 + timedelta(seconds=6), T0 + timedelta(seconds=10)),
    ] == windows


def test_split_windows_never_below_a_second():
    """A span of s seconds gives at most s windows."""
    assert 2 == len(split_windows(T0, T0 + timedelta(seconds=2), 50))


@pytest.mark.parametrize(
    ("start", "end", "count", "match"),
    [
        (T0, T0 + timedelta(seconds=9), 0, "windows must be a positive"),
        (T0, T0, 2, "at least a second earlier"),
        (T0, T0 + timedelta(microseconds=10), 2, "at least a second earlier"),
        (datetime(2018, 1, 1), T0, 2, "naive"),
    ],
)
def test_split_windows_refuses_bad_ranges(start, end, count, match):
    """Bad window arguments raise ValueError."""
    with pytest.raises(ValueError, match=match):
        split_windows(start, end, count)


def calls_every_second(seconds):
    """Return ``(sid, start_time)`` items, three per second of ``seconds``."""
    return [(f"{s}-{n}", T0 + timedelta(seconds=s)) for s in range(seconds) for n in range(3)]


def server(items, *, inclusive, opened=None):
    """Return an open_window that lists ``items`` as a server with those bound semantics."""

    async def open_window(after, before):
        if opened is not None:
            opened.append((after, before))
        for item in items:
            moment = item[1]
            inside = after <= moment <= before if inclusive else after < moment < before
            if inside:
                await asyncio.sleep(0)
                yield item

    return open_window


@pytest.mark.parametrize("inclusive", [True, False])
async def test_windows_yield_each_item_exactly_once(inclusive):
    """Whether the server's bounds are inclusive or strict, no edge item is lost or repeated."""
    items = calls_every_second(20)
    windows = split_windows(T0, T0 + timedelta(seconds=19), 4)
    single = [
        i
        for i in items
        if (T0 <= i[1] <= windows[-1][1] if inclusive else T0 < i[1] < windows[-1][1])
    ]

    merged = await collect(
        merge_windows(
            windows,
            server(items, inclusive=inclusive),
            key=lambda i: i[0],
            timestamp=lambda i: i[1],
        )
    )

    assert sorted(single) == sorted(merged)
    assert len(merged) == len(set(merged))


async def test_inner_windows_open_a_second_early():
    """Only inner windows are opened a second before their start; outer bounds are as given."""
    opened = []
    windows = split_windows(T0, T0 + timedelta(seconds=9), 3)

    await collect(
        merge_windows(
            windows, server([], inclusive=True, opened=opened), key=str, timestamp=lambda _: None
        )
    )

    second = timedelta(seconds=1)
    assert [
        (T0, T0 + 3 * second),
        (T0 + 2 * second, T0 + 6 * second),
        (T0 + 5 * second, T0 + 9 * second),
    ] == sorted(opened)


async def test_only_edge_items_are_remembered():
    """The de-duplication only looks at items within a second of an inner edge."""
    keyed = []

    def key(item):
        keyed.append(item[1])
        return item[0]

    items = calls_every_second(10)
    windows = split_windows(T0, T0 + timedelta(seconds=10), 2)  # one inner edge at +5 s
    await collect(
        merge_windows(windows, server(items, inclusive=True), key=key, timestamp=lambda i: i[1])
    )

    assert {T0 + timedelta(seconds=s) for s in (4, 5, 6)} == set(keyed)


async def test_windows_are_paged_with_bounded_concurrency():
    """No more than ``concurrency`` windows are open at a time."""
    open_now = 0
    peak = 0

    async def open_window(after, before):
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            for n in range(3):
                await asyncio.sleep(0)
                yield (after, before, n)
        finally:
            open_now -= 1

    windows = split_windows(T0, T0 + timedelta(seconds=8), 8)
    merged = await collect(
        merge_windows(
            windows, open_window, key=lambda i: i, timestamp=lambda _: None, concurrency=3
        )
    )

    assert 3 == peak
    assert 24 == len(set(merged))


async def test_window_limit_stops_and_cleans_up():
    """A limit stops the merge after that many items and cancels the windows still paging."""
    windows = split_windows(T0, T0 + timedelta(seconds=100), 10)
    items = calls_every_second(100)

    merged = await collect(
        merge_windows(
            windows,
            server(items, inclusive=False),
            key=lambda i: i[0],
            timestamp=lambda i: i[1],
            limit=7,
        )
    )

    assert 7 == len(merged)
    assert set() == others()


async def test_window_error_propagates_and_cancels_the_rest():
    """An error in one window is raised from the merge and the other windows are cancelled."""
    cancelled = []

    async def open_window(after, before):
        if before == T0 + timedelta(seconds=1):
            raise DecodeError("bad page")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(after)
            raise
        yield None  # pragma: no cover - makes this an async generator

    windows = split_windows(T0, T0 + timedelta(seconds=3), 3)
    with pytest.raises(DecodeError, match="bad page"):
        await collect(merge_windows(windows, open_window, key=id, timestamp=lambda _: None))

    assert 2 == len(cancelled)
    assert set() == others()


def test_bad_merge_options_are_refused():
    """A non-positive concurrency or negative limit raises at once."""
    windows = split_windows(T0, T0 + timedelta(seconds=2), 2)
    with pytest.raises(ValueError, match="concurrency"):
        merge_windows(windows, server([], inclusive=True), key=id, timestamp=id, concurrency=0)
    with pytest.raises(ValueError, match="limit"):
        merge_windows(windows, server([], inclusive=True), key=id, timestamp=id, limit=-1)
