"""The emulator in signalwire_calls.testing, observed from a plain aiohttp client."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import subprocess
import sys
import uuid
from collections import Counter
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from signalwire_calls import NotFoundError, RetryPolicy
from signalwire_calls.testing import FakeSignalWire, FaultProfile, _plugin
from signalwire_calls.testing._data import KEY_ORDER

pytest_plugins = ("pytester",)

# The plugin's fixture, also when this package is not installed (no entry point then).
signalwire_fake = _plugin.signalwire_fake

NEW_KEYS = ("audio_in_mos", "sip_result_code")


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=300, seed=7) as emulator:
        yield emulator


@pytest.fixture
async def http(fake):
    headers = {"Authorization": aiohttp.encode_basic_auth(fake.project_id, fake.api_token)}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


def calls_url(fake, sid=None, *, prefix=None, suffix=""):
    base = fake.base_url if prefix is None else fake.origin + prefix
    tail = f"/{sid}" if sid else ""
    return f"{base}/Accounts/{fake.project_id}/Calls{tail}{suffix}"


async def walk(fake, http, params):
    """Follow next_page_uri from the first page; return the pages' bodies."""
    pages = []
    async with http.get(calls_url(fake), params=params) as response:
        pages.append(await response.json())
    while pages[-1]["next_page_uri"]:
        async with http.get(fake.origin + pages[-1]["next_page_uri"]) as response:
            assert response.status == 200
            pages.append(await response.json())
    return pages


# -- data -------------------------------------------------------------------------------


def test_same_seed_gives_same_data():
    """Two emulators with one seed hold identical calls, ids and token."""
    one, two = FakeSignalWire(calls=200, seed=3), FakeSignalWire(calls=200, seed=3)
    assert (one.project_id, one.api_token) == (two.project_id, two.api_token)
    assert one.call_sids == two.call_sids
    assert json.dumps(one.calls) == json.dumps(two.calls)


def test_other_seed_gives_other_data():
    """A different seed changes the SIDs and the project id."""
    one, two = FakeSignalWire(calls=50, seed=3), FakeSignalWire(calls=50, seed=4)
    assert set(one.call_sids).isdisjoint(two.call_sids)
    assert one.project_id != two.project_id


def test_calls_are_realistic():
    """The mix and shapes follow the real service, not the docs' examples."""
    fake = FakeSignalWire(calls=2000, seed=1)
    calls = [fake.calls[sid] for sid in fake.call_sids]
    directions = Counter(call["direction"] for call in calls)
    assert {"inbound", "outbound-api", "outbound-dial"} == set(directions)
    assert directions["inbound"] > directions["outbound-api"] > 0
    statuses = Counter(call["status"] for call in calls)
    assert {"completed", "failed", "no-answer", "canceled", "busy", "initiated"} <= set(statuses)
    assert len({uuid.UUID(sid).version for sid in fake.call_sids}) == 1
    assert str(uuid.UUID(fake.call_sids[0])) == fake.call_sids[0]
    for call in calls:
        assert list(call)[:27] == list(KEY_ORDER[:27])
        assert (call["direction"] == "outbound-dial") == (call["parent_call_sid"] is not None)
        if call["parent_call_sid"]:
            assert fake.calls[call["parent_call_sid"]]["direction"] == "inbound"
        assert isinstance(call["duration"], int)
        assert call["formatted_to"] == call["to_formatted"]
        assert call["formatted_from"] == call["from_formatted"]
        assert ".json" not in call["uri"]
        assert call["subresource_uris"] == {
            "notifications": None,
            "recordings": call["uri"] + "/Recordings",
        }
        assert call["date_created"].endswith(" +0000")
        if call["status"] == "initiated":
            assert (call["start_time"], call["end_time"], call["duration"]) == (None, None, 0)
        if call["status"] != "completed":
            assert call["price"] is None
        elif call["price"] is not None:
            assert isinstance(call["price"], float)
            assert call["price"] > 0


def test_numbers_are_dash_formatted_for_nanp_only():
    """NANP numbers read 512-555-0143; other countries keep their E.164 form."""
    calls = FakeSignalWire(calls=2000, seed=1).calls.values()
    nanp = [c for c in calls if c["to"].startswith("+1")]
    foreign = [c for c in calls if not c["to"].startswith("+1")]
    assert nanp
    assert foreign
    to = nanp[0]["to"]
    assert f"{to[2:5]}-{to[5:8]}-{to[8:]}" == nanp[0]["formatted_to"]
    assert all(c["formatted_to"] == c["to"] for c in foreign)


def test_mos_is_a_string_and_older_calls_lack_the_new_keys():
    """Newer records carry audio_in_mos as a string; the oldest have neither new key."""
    fake = FakeSignalWire(calls=100, seed=1)
    newest, oldest = fake.calls[fake.call_sids[0]], fake.calls[fake.call_sids[-1]]
    assert all(key in newest for key in NEW_KEYS)
    assert not any(key in oldest for key in NEW_KEYS)
    moses = [c["audio_in_mos"] for c in fake.calls.values() if c.get("audio_in_mos")]
    assert all(isinstance(mos, str) for mos in moses)
    assert 3.0 <= float(moses[0]) <= 5.0


def test_list_order_is_newest_first():
    """call_sids lists calls by date_created, newest first, the newest at `now`."""
    fake = FakeSignalWire(calls=100, seed=2)
    created = [parsedate_to_datetime(fake.calls[s]["date_created"]) for s in fake.call_sids]
    assert sorted(created, reverse=True) == created
    assert fake.calls[fake.call_sids[0]]["date_created"] == "Mon, 12 Oct 2026 18:00:00 +0000"


def test_add_call_fills_the_rest_and_lists_it_first():
    """add_call keeps given fields, derives the formatted ones and lists the call newest."""
    fake = FakeSignalWire(calls=10, seed=1)
    call = fake.add_call(to="+442071838750", status="busy", omit=("sip_result_code",), x=1)
    assert fake.call_sids[0] == call["sid"]
    assert fake.calls[call["sid"]] is call
    assert call["formatted_to"] == "+442071838750"
    assert call["status"] == "busy"
    assert call["price"] is None
    assert "sip_result_code" not in call
    assert list(call)[-1] == "x"


# -- single calls -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/laml/2010-04-01", "/2010-04-01"])
@pytest.mark.parametrize("suffix", ["", ".json"])
async def test_retrieve_a_call_on_both_prefixes(fake, http, prefix, suffix):
    """A call is served on either prefix, with or without .json; links follow the prefix."""
    sid = fake.call_sids[5]
    async with http.get(calls_url(fake, sid, prefix=prefix, suffix=suffix)) as response:
        raw = await response.read()
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.status == 200
    body = json.loads(raw)
    expected = json.loads(json.dumps(fake.calls[sid]).replace("/api/laml/2010-04-01", prefix))
    assert expected == body
    assert list(fake.calls[sid]) == list(body)
    assert body["uri"] == f"{prefix}/Accounts/{fake.project_id}/Calls/{sid}"


async def test_bad_token_gets_the_compat_401_body(fake):
    """A wrong token is refused with code 20003."""
    headers = {"Authorization": aiohttp.encode_basic_auth(fake.project_id, "PTwrong")}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(calls_url(fake, fake.call_sids[0])) as response,
    ):
        assert response.status == 401
        assert await response.json() == {
            "code": 20003,
            "message": "Authentication failed",
            "more_info": "https://signalwire.com/docs/compatibility-api/rest/error-codes",
            "status": 401,
        }


async def test_unknown_call_and_other_project(fake, http):
    """An unknown SID is 404 code 20404; another project's path is 401."""
    async with http.get(calls_url(fake, str(uuid.UUID(int=1, version=4)))) as response:
        assert response.status == 404
        assert (await response.json())["code"] == 20404
    async with http.get(f"{fake.base_url}/Accounts/{uuid.UUID(int=2)}/Calls") as response:
        assert response.status == 401


async def test_writes_are_refused(fake, http):
    """A POST is answered 405 with a compat body, since the emulator is read-only."""
    async with http.post(calls_url(fake)) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
        assert (await response.json())["status"] == 405


# -- lists ------------------------------------------------------------------------------


async def test_list_pages_follow_the_cursor_to_the_end(fake, http):
    """Following next_page_uri visits every call once, in order, and ends on null."""
    pages = await walk(fake, http, {"PageSize": "40"})
    assert fake.call_sids == [call["sid"] for page in pages for call in page["calls"]]
    expected = list(range(8))
    assert expected == [page["page"] for page in pages]
    assert pages[-1]["next_page_uri"] is None
    assert pages[0]["previous_page_uri"] is None
    last_of_first = pages[0]["calls"][-1]["sid"]
    assert pages[0]["next_page_uri"].endswith(f"Page=1&PageSize=40&PageToken=PA{last_of_first}")
    envelope = ["uri", "first_page_uri", "next_page_uri", "previous_page_uri", "page"]
    assert [*envelope, "page_size", "calls"] == list(pages[1])


async def test_list_filters_are_carried_in_next_page_uri(fake, http):
    """A filtered walk returns exactly the matching calls, the filter in every link."""
    pages = await walk(fake, http, {"Status": "completed", "PageSize": "25"})
    expected = [s for s in fake.call_sids if fake.calls[s]["status"] == "completed"]
    assert expected == [call["sid"] for page in pages for call in page["calls"]]
    assert len(pages) > 2
    assert all("Status=completed" in page["uri"] for page in pages)


async def test_list_raw_bytes_escape_ampersands(fake, http):
    r"""The raw body writes '&' in links as \u0026, like the real service."""
    async with http.get(calls_url(fake, suffix=".json"), params={"PageSize": "2"}) as response:
        raw = await response.read()
    assert b"\\u0026PageSize=2" in raw
    assert b"&" not in raw


async def test_to_and_parent_filters(fake, http):
    """To and ParentCallSid select exactly the matching calls."""
    leg = next(fake.calls[s] for s in fake.call_sids if fake.calls[s]["parent_call_sid"])
    params = {"ParentCallSid": leg["parent_call_sid"]}
    async with http.get(calls_url(fake), params=params) as response:
        assert [leg["sid"]] == [c["sid"] for c in (await response.json())["calls"]]
    params = {"To": leg["to"], "PageSize": "1000"}
    async with http.get(calls_url(fake), params=params) as response:
        expected = [s for s in fake.call_sids if fake.calls[s]["to"] == leg["to"]]
        assert expected == [c["sid"] for c in (await response.json())["calls"]]


@pytest.mark.parametrize("form", ["rfc2822", "iso"])
async def test_time_bounds_are_inclusive(fake, http, form):
    """StartTime< and StartTime> include a call that starts exactly on the bound."""
    call = next(fake.calls[s] for s in fake.call_sids[50:] if fake.calls[s]["start_time"])
    bound = call["start_time"]
    if form == "iso":
        bound = parsedate_to_datetime(bound).isoformat()
    for name in ("StartTime<", "StartTime>"):
        async with http.get(calls_url(fake), params={name: bound, "PageSize": "1000"}) as resp:
            assert resp.status == 200
            assert call["sid"] in [c["sid"] for c in (await resp.json())["calls"]]


async def test_bare_date_matches_that_utc_day(fake, http):
    """StartTime=YYYY-MM-DD returns exactly the calls that started on that UTC day."""
    day = parsedate_to_datetime(fake.calls[fake.call_sids[0]]["date_created"]).date()
    expected = [
        s
        for s in fake.call_sids
        if fake.calls[s]["start_time"]
        and parsedate_to_datetime(fake.calls[s]["start_time"]).date() == day
    ]
    params = {"StartTime": day.isoformat(), "PageSize": "1000"}
    async with http.get(calls_url(fake), params=params) as response:
        assert expected == [c["sid"] for c in (await response.json())["calls"]]
    assert expected


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Page": "1"}, 54453),
        ({"Page": "1", "PageToken": "PAnot-a-call"}, 21481),
        ({"PageSize": "0"}, 54454),
        ({"PageSize": "1001"}, 54454),
        ({"PageSize": "ten"}, 54454),
        ({"StartTime>": "yesterday"}, 10000),
        ({"Status": "done"}, 10000),
    ],
)
async def test_bad_list_requests_get_400(fake, http, params, code):
    """Bad paging or filter values are 400 with SignalWire's code."""
    async with http.get(calls_url(fake), params=params) as response:
        assert response.status == 400
        body = await response.json()
    assert (code, 400) == (body["code"], body["status"])


# -- faults -----------------------------------------------------------------------------


async def test_scripted_status_fault_then_success(fake, http):
    """fail(sid, 503, times=2) fails exactly two GETs of that SID."""
    sid = fake.call_sids[0]
    fake.fail(sid, status=503, times=2)
    statuses = []
    for _ in range(3):
        async with http.get(calls_url(fake, sid)) as response:
            statuses.append(response.status)
    expected = [503, 503, 200]
    assert expected == statuses
    assert fake.attempts(sid) == 3
    assert fake.faults_injected["503"] == 2


async def test_rate_limit_sends_retry_after(fake, http):
    """A scripted 429 carries Retry-After and code 20429."""
    fake.fail("*", status=429, times=1, retry_after=7)
    async with http.get(calls_url(fake, fake.call_sids[0])) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
        assert (await response.json())["code"] == 20429


async def test_reset_drops_the_connection(fake, http):
    """A reset fault closes the connection without an answer (aiohttp retries once)."""
    sid = fake.call_sids[0]
    fake.fail(sid, kind="reset", times=2)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(calls_url(fake, sid)) as response:
            await response.read()
    assert fake.attempts(sid) == 2
    expected = [None, None]  # no status: nothing was answered
    assert expected == [record.status for record in fake.requests]


async def test_truncate_cuts_the_body(fake, http):
    """A truncate fault sends the full Content-Length and half the body."""
    fake.fail(None, kind="truncate", times=1)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(calls_url(fake, fake.call_sids[0])) as response:
            await response.read()


async def test_hang_outlasts_a_client_timeout(fake, http):
    """A hang fault holds the answer longer than a short client timeout."""
    fake.faults = FaultProfile(hang_rate=1.0, hang_seconds=30)
    with pytest.raises(TimeoutError):
        async with http.get(
            calls_url(fake, fake.call_sids[0]), timeout=aiohttp.ClientTimeout(total=0.1)
        ):
            pass
    assert fake.faults_injected["hang"] == 1


async def test_close_wakes_a_hanging_handler():
    """Closing the emulator ends a hanging request instead of waiting hang_seconds."""
    fake = FakeSignalWire(calls=5, faults=FaultProfile(hang_rate=1.0, hang_seconds=300))
    await fake.start()
    headers = {"Authorization": aiohttp.encode_basic_auth(fake.project_id, fake.api_token)}
    async with aiohttp.ClientSession(headers=headers) as session:
        request = asyncio.ensure_future(session.get(calls_url(fake, fake.call_sids[0])))
        while not fake.in_flight:  # noqa: ASYNC110 - the server offers no event to wait on
            await asyncio.sleep(0.001)
        await fake.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await request
    await fake.close()


async def test_random_faults_are_seeded(http, fake):
    """A FaultProfile with a seed injects the same faults for the same requests."""
    runs = []
    for _ in range(2):
        fake.faults = FaultProfile(error_rate=0.3, rate_limit_rate=0.2, seed=5)
        statuses = []
        for sid in fake.call_sids[:30]:
            async with http.get(calls_url(fake, sid)) as response:
                statuses.append(response.status)
        runs.append(statuses)
    assert runs[0] == runs[1]
    assert {200, 429} <= set(runs[0])
    assert set(runs[0]) - {200, 429} <= {500, 502, 503, 504}


# -- observation ------------------------------------------------------------------------


async def test_request_log_and_connections(fake, http):
    """The log records each request; keep-alive reuses one connection."""
    sid = fake.call_sids[1]
    for _ in range(3):
        async with http.get(calls_url(fake, sid)) as response:
            await response.read()
    async with http.get(calls_url(fake), params={"PageSize": "5"}) as response:
        await response.read()
    assert fake.connections == 1
    expected = [sid, sid, sid, None]
    assert expected == [record.sid for record in fake.requests]
    assert fake.requests[-1].query == {"PageSize": "5"}
    assert (fake.requests[0].method, fake.requests[0].status) == ("GET", 200)


async def test_max_in_flight_counts_concurrent_requests(fake, http):
    """Concurrent requests raise max_in_flight; none remain in flight afterwards."""
    fake.faults = FaultProfile(latency=(0.1, 0.1))

    async def get(sid):
        async with http.get(calls_url(fake, sid)) as response:
            return response.status

    statuses = await asyncio.gather(*(get(sid) for sid in fake.call_sids[:8]))
    expected = [200] * 8
    assert expected == statuses
    assert fake.max_in_flight == 8
    assert fake.in_flight == 0
    assert fake.connections == 8


# -- entry points -----------------------------------------------------------------------


async def test_signalwire_fake_fixture(signalwire_fake):
    """The plugin's fixture yields a started 100-call emulator with seed 1."""
    assert len(signalwire_fake.call_sids) == 100
    assert signalwire_fake.call_sids == FakeSignalWire(calls=100, seed=1).call_sids
    assert signalwire_fake.port > 0


def test_plugin_in_a_users_suite(pytester):
    """A user's suite gets the fixture from the plugin without a conftest."""
    pytester.makepyfile(
        """
        import aiohttp

        async def test_uses_fake(signalwire_fake):
            auth = aiohttp.encode_basic_auth(signalwire_fake.project_id, signalwire_fake.api_token)
            async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
                url = signalwire_fake.base_url + "/Accounts/" + signalwire_fake.project_id + "/Calls"
                async with session.get(url) as response:
                    assert response.status == 200
        """
    )
    registered = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    plugin = [] if "signalwire_calls" in registered else ["-p", "signalwire_calls._pytest_plugin"]
    result = pytester.runpytest(
        *plugin, "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=1)


def test_command_line_serves_until_stopped(tmp_path):
    """`python -m signalwire_calls.testing` is `signalwire-calls serve`: same lines, same calls."""
    pytest.importorskip("click", reason="the emulator's command line needs the cli extra")
    process = subprocess.Popen(
        [sys.executable, "-m", "signalwire_calls.testing", "--port", "0", "--calls", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        base = lines[1].split("=")[-1].strip()
        project, token = lines[2].split("=")[-1].strip(), lines[3].split("=")[-1].strip()
        assert lines[0].startswith("signalwire-calls emulator: 21 calls (seed 1")
        expected = FakeSignalWire(seed=1)
        assert (expected.project_id, expected.api_token) == (project, token)

        async def fetch():
            headers = {"Authorization": aiohttp.encode_basic_auth(project, token)}
            async with (
                aiohttp.ClientSession(headers=headers) as session,
                session.get(f"{base}/Accounts/{project}/Calls") as response,
            ):
                return response.status, len((await response.json())["calls"])

        expected = (200, 21)  # the generated calls and the docs' example call
        assert expected == asyncio.run(fetch())
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


# -- with the library's own client ------------------------------------------------------

NO_WAIT = {"attempts": 3, "wait_initial": 0, "wait_max": 0, "wait_jitter": 0}


async def test_fake_client_reads_calls_as_served(fake):
    """fake.client() is a CallsClient on the emulator; its calls round-trip to the wire dict."""
    sid = fake.call_sids[3]
    async with fake.client() as client:
        call = await client.get_call(sid)
    assert fake.calls[sid] == call.to_dict()


async def test_fake_client_retries_scripted_faults(fake):
    """The client rides out two scripted 503s; the emulator saw three attempts."""
    sid = fake.call_sids[0]
    fake.fail(sid, status=503, times=2)
    async with fake.client(retry=RetryPolicy(**NO_WAIT)) as client:
        call = await client.get_call(sid)
        with pytest.raises(NotFoundError):
            await client.get_call(str(uuid.UUID(int=3, version=4)))
    assert sid == call.sid
    assert fake.attempts(sid) == 3
