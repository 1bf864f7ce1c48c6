"""twilio-python, the base of SignalWire's official SDKs, reads the emulator as the real service.

The SDKs point twilio's client at ``https://{space}`` and request
``/2010-04-01/Accounts/{a}/Calls/{sid}.json`` (API-NOTES §1); so does this test.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest
from signalwire_calls.testing import FakeSignalWire

pytest.importorskip("twilio", reason="compares with twilio-python, a test peer")
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

pytestmark = [
    # twilio 9.13 still passes aiohttp.BasicAuth, which aiohttp 3.14 deprecates.
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=120, seed=11) as emulator:
        yield emulator


@pytest.fixture
async def twilio(fake):
    http_client = AsyncTwilioHttpClient()  # opens its aiohttp session: needs the running loop
    client = Client(fake.project_id, fake.api_token, http_client=http_client)
    client.api.base_url = fake.origin  # what compatibility-api-js does with the space URL
    yield client
    await http_client.close()


def assert_same_call(expected, call):
    """Check that twilio's CallInstance holds the emulator's values."""
    assert expected["sid"] == call.sid
    assert parsedate_to_datetime(expected["date_created"]) == call.date_created
    assert expected["status"] == call.status
    assert expected["direction"] == call.direction
    assert expected["to"] == call.to
    assert expected["from"] == call._from
    assert expected["to_formatted"] == call.to_formatted
    assert expected["parent_call_sid"] == call.parent_call_sid
    assert expected["duration"] == call.duration
    assert expected["price"] == call.price
    assert expected["uri"].replace("/api/laml", "") == call.uri


@pytest.mark.parametrize("index", [0, 1, 7, 119])
async def test_twilio_fetches_a_call(fake, twilio, index):
    """fetch_async() gets a call via the SDK's path, with the emulator's values."""
    sid = fake.call_sids[index]
    call = await twilio.calls(sid).fetch_async()
    assert_same_call(fake.calls[sid], call)
    expected_path = f"/2010-04-01/Accounts/{fake.project_id}/Calls/{sid}.json"
    assert expected_path == fake.requests[-1].path


async def test_twilio_reads_the_first_page(fake, twilio):
    """page_async() parses the envelope and its calls."""
    page = await twilio.calls.page_async(page_size=5)
    calls = list(page)
    assert fake.call_sids[:5] == [call.sid for call in calls]
    for call in calls:
        assert_same_call(fake.calls[call.sid], call)
    expected_next = f"{fake.origin}/2010-04-01/Accounts/{fake.project_id}/Calls?Page=1"
    assert page.next_page_url.startswith(expected_next)


async def test_twilio_lists_across_pages_with_a_filter(fake, twilio):
    """list_async() follows next_page_uri across pages and keeps the filter."""
    calls = await twilio.calls.list_async(status="completed", page_size=20, limit=60)
    expected = [s for s in fake.call_sids if fake.calls[s]["status"] == "completed"][:60]
    assert expected == [call.sid for call in calls]
    assert len({record.query.get("PageToken") for record in fake.requests}) > 1
