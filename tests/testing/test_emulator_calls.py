"""The emulator's calls that progress on its clock, and its signed status callbacks."""

from __future__ import annotations

import pytest
from aiohttp import web
from signalwire_calls.testing import FakeSignalWire
from signalwire_calls.testing._callbacks import sign
from signalwire_calls.webhooks import parse_status_callback, verify_signature

ALL_EVENTS = "initiated ringing answered completed"


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=3, seed=2) as emulator:
        yield emulator


@pytest.fixture
async def receiver():
    """A loopback webhook receiver that keeps (url, method, params, signature) of each hit."""
    hits: list[tuple[str, str, list[tuple[str, str]], str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else {}
        pairs = [(k, str(v)) for k, v in form.items()]
        hits.append(
            (str(request.url), request.method, pairs, request.headers.get("X-SignalWire-Signature"))
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/status", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/status"
    yield url, hits
    await runner.cleanup()


def test_signing_matches_a_published_scheme_b_vector():
    """The emulator signs as Twilio's scheme does (API-NOTES §10.3, V10)."""
    assert "TR9Skm9jiF4WVRJznU5glK5I83k=" == sign(
        "qwerty", "https://example.com/test", {"foo": "bar"}
    )


def test_the_signing_key_has_the_real_form():
    """The default Signing Key is PSK_ and 24 alphanumerics, the same for the same seed."""
    key = FakeSignalWire(seed=4).signing_key
    assert (28, "PSK_") == (len(key), key[:4])
    assert key[4:].isalnum()
    assert key == FakeSignalWire(seed=4).signing_key


async def test_a_placed_call_moves_through_every_status(fake):
    """queued, initiated, ringing, in-progress, completed, then priced, as the clock moves."""
    sid = fake.place_call(queue=2, ring=10, talk=60, price_delay=7)
    seen = []
    async with fake.client() as client:
        for step in (0, 2, 1, 10, 60, 6, 1):
            await fake.advance(step)
            call = await client.get_call(sid)
            seen.append((str(call.status), call.price is not None))
    assert [
        ("queued", False),
        ("initiated", False),
        ("ringing", False),
        ("in-progress", False),
        ("completed", False),
        ("completed", False),
        ("completed", True),
    ] == seen


async def test_a_progressed_call_is_shaped_like_a_real_one(fake):
    """Once final, the body has the real keys, times, ring-inclusive duration and a number price."""
    sid = fake.place_call(ring=8, talk=100)
    await fake.advance(200)
    body = fake.calls[sid]
    assert ("completed", 108, "USD") == (body["status"], body["duration"], body["price_unit"])
    assert isinstance(body["price"], float)
    assert body["start_time"] is not None
    assert body["end_time"] is not None
    assert isinstance(body["audio_in_mos"], str)
    assert "outbound-api" == body["direction"]
    async with fake.client() as client:
        listed = [call.sid async for call in client.iter_calls(status="completed")]
    assert sid in listed


@pytest.mark.parametrize(
    ("outcome", "duration"), [("busy", 0), ("failed", 0), ("no-answer", 5), ("canceled", 5)]
)
async def test_unanswered_outcomes_are_never_priced(fake, outcome, duration):
    """busy/failed end without ringing, no-answer/canceled after it; none gets a price."""
    sid = fake.place_call(outcome=outcome, ring=5)
    await fake.advance(3_600)
    body = fake.calls[sid]
    assert (outcome, duration, None) == (body["status"], body["duration"], body["price"])


async def test_a_call_with_no_outcome_never_ends(fake):
    """outcome=None answers the call and keeps it in progress."""
    sid = fake.place_call(outcome=None)
    await fake.advance(86_400)
    assert ("in-progress", None) == (fake.calls[sid]["status"], fake.calls[sid]["end_time"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outcome": "answered"},
        {"status_callback_event": "hangup"},
        {"ring": -1},
        {"price_delay": -5},
        {"status_callback_method": "PUT"},
    ],
)
def test_bad_placements_are_refused(kwargs):
    """An unknown outcome, event or method, or a negative duration, is a ValueError."""
    with pytest.raises(ValueError):
        FakeSignalWire().place_call(**kwargs)


async def test_callbacks_verify_and_parse_with_the_webhooks_module(fake, receiver):
    """Every event is POSTed, signed so verify_signature accepts it, and parses in order."""
    url, hits = receiver
    sid = fake.place_call(status_callback=url, status_callback_event=ALL_EVENTS, talk=42, ring=3)
    sent = await fake.advance(120)
    assert [204] * 4 == [delivery.status for delivery in sent]
    assert sent == fake.callbacks
    assert 4 == len(hits)
    parsed = []
    for hit_url, method, pairs, signature in hits:
        assert "POST" == method
        assert verify_signature(
            signing_key=fake.signing_key, url=hit_url, signature=signature, params=pairs
        )
        assert not verify_signature(
            signing_key="PSK_wrong", url=hit_url, signature=signature, params=pairs
        )
        parsed.append(parse_status_callback(pairs))
    assert ["initiated", "ringing", "in-progress", "completed"] == [c.status for c in parsed]
    assert [0, 1, 2, 3] == [c.sequence_number for c in parsed]
    assert {sid} == {c.call_sid for c in parsed}
    assert [None, None, None, 45] == [c.duration for c in parsed]
    assert parsed[-1].is_final


async def test_only_the_subscribed_events_are_sent(fake, receiver):
    """By default only 'completed' is sent, and it reports an unanswered outcome as is."""
    url, hits = receiver
    fake.place_call(status_callback=url, outcome="no-answer", ring=30)
    await fake.advance(60)
    assert 1 == len(hits)
    callback = parse_status_callback(hits[0][2])
    assert ("no-answer", None, "487") == (
        callback.status,
        callback.duration,
        callback.sip_result_code,
    )


async def test_callbacks_come_when_the_clock_reaches_them(fake, receiver):
    """An event is sent by the advance that reaches it, not before."""
    url, hits = receiver
    fake.place_call(status_callback=url, status_callback_event=ALL_EVENTS, queue=1, ring=10)
    assert [] == await fake.advance(0.5)
    assert ["initiated", "ringing"] == [d.params["CallStatus"] for d in await fake.advance(1.5)]
    assert 2 == len(hits)


async def test_get_callbacks_sign_the_url_with_its_query(fake, receiver):
    """With status_callback_method='GET', the params are in the signed query string."""
    url, hits = receiver
    fake.place_call(status_callback=url + "?bot=1", status_callback_method="GET", outcome="busy")
    await fake.advance(10)
    hit_url, method, _pairs, signature = hits[0]
    assert "GET" == method
    assert verify_signature(signing_key=fake.signing_key, url=hit_url, signature=signature)
    assert "CallStatus=busy" in hit_url


async def test_an_unreachable_receiver_is_recorded_not_raised(fake):
    """A callback nobody answers is kept with its error; the emulator goes on."""
    fake.place_call(status_callback="http://127.0.0.1:9/status", outcome="failed")
    sent = await fake.advance(10)
    assert 1 == len(sent)
    assert (None, True) == (sent[0].status, sent[0].error is not None)
