"""Structuring API JSON into Call and back, as the real service sends it."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest
import signalwire_calls as swc
from signalwire_calls._models import build_call, build_call_result, build_subresource_uris
from signalwire_calls._wire import format_date, parse_date

from conftest import sample


def test_real_2024_shape_types():
    """A real-shaped call (dash numbers, string MOS, no .json) structures with typed fields."""
    data = sample("call_real_2024.json")
    call = swc.Call.from_dict(data)
    assert call.sid == data["sid"]
    assert datetime(2026, 10, 12, 14, 3, 11, tzinfo=UTC) == call.date_created
    assert call.date_created.tzinfo is UTC
    assert call.duration == data["duration"]
    assert isinstance(call.duration, int)
    assert Decimal(str(data["price"])) == call.price
    assert float(data["audio_in_mos"]) == call.audio_in_mos
    assert call.status is swc.CallStatus.COMPLETED
    assert call.status == "completed"
    assert call.from_ == data["from"]
    assert call.formatted_to == data["formatted_to"] == call.to_formatted
    assert call.formatted_from == data["formatted_from"] == call.from_formatted
    assert not call.uri.endswith(".json")
    assert call.subresource_uris is not None
    assert call.subresource_uris.notifications is None
    assert call.subresource_uris.recordings == data["subresource_uris"]["recordings"]
    assert call.audio_rtt_avg is None  # absent from real responses so far


@pytest.mark.parametrize("name", ["call_real_2024.json", "call_spec_2026.json"])
def test_round_trip_is_exact(name):
    """to_dict() gives back exactly what was received: keys, order, values and JSON text."""
    data = sample(name)
    call = swc.Call.from_dict(data)
    out = call.to_dict()
    assert data == out
    assert list(data) == list(out)
    assert json.dumps(data) == json.dumps(out)


def test_list_page_calls_round_trip():
    """Every call of a real-shaped list page round-trips, including outbound-dial legs."""
    page = sample("list_page_real.json")
    calls = [swc.Call.from_dict(c) for c in page["calls"]]
    assert [c.to_dict() for c in calls] == page["calls"]
    dial = next(c for c in calls if c.direction == "outbound-dial")
    assert dial.direction is swc.CallDirection.OUTBOUND_DIAL
    assert dial.parent_call_sid is not None
    assert dial.price is None


def test_unknown_enum_values_kept_verbatim():
    """A status or direction SignalWire adds later is kept verbatim, as an UnknownValue."""
    data = dict(sample("call_real_2024.json"), status="transferring", direction="outbound-sip")
    call = swc.Call.from_dict(data)
    assert (call.status, call.direction) == ("transferring", "outbound-sip")
    assert type(call.status) is swc.UnknownValue
    assert type(call.direction) is swc.UnknownValue
    assert "UnknownValue('transferring')" == repr(call.status)
    assert call.to_dict()["status"] == "transferring"
    assert json.dumps(data) == json.dumps(call.to_dict())


def test_initiated_status_and_null_times():
    """The undocumented 'initiated' status is a known member; null times read as None."""
    data = dict(sample("call_real_2024.json"), status="initiated", start_time=None, end_time=None)
    call = swc.Call.from_dict(data)
    assert call.status is swc.CallStatus.INITIATED
    assert (call.start_time, call.end_time) == (None, None)


def test_missing_newer_fields_stay_absent():
    """A 2019-style call without the audio/SIP keys reads None and exports without them."""
    data = sample("call_real_2024.json")
    del data["audio_in_mos"], data["sip_result_code"]
    call = swc.Call.from_dict(data)
    assert (call.audio_in_mos, call.sip_result_code) == (None, None)
    out = call.to_dict()
    assert "audio_in_mos" not in out
    assert data == out


def test_unknown_keys_kept():
    """Keys this version does not model are kept, exposed as .extra and exported."""
    data = dict(sample("call_real_2024.json"), queue_time="0", trunk_sid=None, new={"a": 1})
    call = swc.Call.from_dict(data)
    assert dict(call.extra) == {"queue_time": "0", "trunk_sid": None, "new": {"a": 1}}
    assert data == call.to_dict()


@pytest.mark.parametrize(
    ("field", "value", "attr", "expected"),
    [
        ("audio_in_mos", 4.4, "audio_in_mos", 4.4),
        ("audio_in_mos", "4.40", "audio_in_mos", 4.4),
        ("sip_result_code", 200, "sip_result_code", "200"),
        ("sip_result_code", "487", "sip_result_code", "487"),
        ("duration", "22", "duration", 22),
        ("price", "-0.00500", "price", Decimal("-0.00500")),
        ("price", 0, "price", Decimal(0)),
        ("audio_rtt_avg", 42, "audio_rtt_avg", 42),
        ("audio_out_jitter_avg", "4.5", "audio_out_jitter_avg", 4.5),
        ("date_created", "Tue, 29 Jan 2019 09:09:27 -0500", "date_created",
         datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
        ("date_created", "29 Jan 2019 14:09:27 -0000", "date_created",
         datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_alternative_wire_forms_type_and_round_trip(field, value, attr, expected):
    """Both the spec's and the service's forms of a field type correctly and export verbatim."""
    data = dict(sample("call_real_2024.json"), **{field: value})
    call = swc.Call.from_dict(data)
    assert expected == getattr(call, attr)
    assert value == call.to_dict()[field]
    assert type(value) is type(call.to_dict()[field])


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("duration", "abc", "expected an integer"),
        ("duration", None, "expected an integer"),
        ("duration", True, "expected an integer"),
        ("price", "free", "expected a number"),
        ("price", float("nan"), "finite"),
        ("audio_in_mos", [4], "expected a number"),
        ("date_created", "yesterday", "not an RFC 2822 date"),
        ("date_updated", 1700000000, "RFC 2822 date string"),
        ("to", 14045551234, "expected a string"),
        ("status", None, "expected a string"),
        ("subresource_uris", "x", "expected an object"),
        ("parent_call_sid", 5, "string or null"),
    ],
)
def test_wrong_type_names_field_and_sid(field, value, reason):
    """A known field of the wrong type is a DecodeError naming the field, the SID and why."""
    data = dict(sample("call_real_2024.json"), **{field: value})
    with pytest.raises(swc.DecodeError) as info:
        swc.Call.from_dict(data)
    assert f"$.{field}" == info.value.field
    assert reason in str(info.value)
    assert data["sid"] in str(info.value)
    assert info.value.sid == data["sid"]


def test_missing_required_field():
    """A missing required field is named."""
    data = sample("call_real_2024.json")
    del data["from"]
    with pytest.raises(swc.DecodeError, match=r"required field missing @ \$\.from") as info:
        swc.Call.from_dict(data)
    assert info.value.field == "$.from"


@pytest.mark.parametrize("body", [None, [], "call", 5, {"sid": 5}, {"status": "completed"}])
def test_not_a_call(body):
    """Non-objects and objects without a string sid are DecodeErrors, not other exceptions."""
    with pytest.raises(swc.DecodeError):
        swc.Call.from_dict(body)


def test_call_is_frozen_and_hashable():
    """Calls are immutable values: equal when built from equal data, usable as dict keys."""
    data = sample("call_real_2024.json")
    a, b = swc.Call.from_dict(data), swc.Call.from_dict(copy.deepcopy(data))
    assert a == b
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.duration = 5  # type: ignore[misc]
    assert not hasattr(a, "__dict__")


def test_build_call_gives_the_same_call_as_its_constructor():
    """build_call (slots filled, then the class retagged) makes a real, frozen, equal Call."""
    call = swc.Call.from_dict(sample("call_real_2024.json"))
    values = [getattr(call, field.name) for field in attrs.fields(swc.Call)]

    built, constructed = build_call(*values), swc.Call(*values)

    assert type(built) is swc.Call
    assert constructed == built
    assert (hash(constructed), repr(constructed)) == (hash(built), repr(built))
    assert (constructed._keys, constructed._raw) == (built._keys, built._raw)
    assert constructed.to_dict() == built.to_dict()
    assert constructed == pickle.loads(pickle.dumps(built))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.sid = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "cls", "values"),
    [
        (build_subresource_uris, swc.SubresourceUris, ("/x/Recordings", None)),
        (
            lambda sid, error: build_call_result(sid, None, error),
            swc.FailedLookup,
            ("sid", ValueError("bad")),
        ),
        (
            lambda sid, call: build_call_result(sid, call, None),
            swc.CallFound,
            ("sid", swc.Call.from_dict(sample("call_real_2024.json"))),
        ),
    ],
)
def test_the_other_builders_give_the_same_values(build, cls, values):
    """The SubresourceUris and CallResult builders make real, frozen, equal instances."""
    built = build(*values)

    assert type(built) is cls
    assert [getattr(built, field.name) for field in attrs.fields(cls)] == list(values)
    assert cls(*values) == built
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.sid = "other"  # type: ignore[attr-defined]


def test_call_built_in_code_exports_all_fields():
    """A Call built in code exports every field in wire order."""
    call = swc.Call(
        sid="82e7850d-054e-4067-8c4f-6568acd96575",
        account_sid="3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
        date_created=datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC),
        date_updated=datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC),
        to="+15125550143",
        from_="+17375550188",
        status=swc.CallStatus.COMPLETED,
        direction=swc.CallDirection.INBOUND,
        duration=3,
        uri="/x",
        price=Decimal("0.0051"),
    )
    out = call.to_dict()
    assert len(out) == 36
    assert list(out)[:3] == ["sid", "date_created", "date_updated"]
    assert out["date_created"] == "Tue, 29 Jan 2019 14:09:27 +0000"
    assert out["price"] == 0.0051
    assert out["from"] == "+17375550188"
    assert swc.Call.from_dict(out) == call


def test_repr_is_short():
    """The repr shows the identifying fields, not all 36."""
    call = swc.Call.from_dict(sample("call_real_2024.json"))
    assert repr(call).startswith(f"Call(sid={call.sid!r}, status='completed'")
    assert "subresource_uris" not in repr(call)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 29 Jan 2019 14:09:27 +0000", datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
        ("Tue, 29 Jan 2019 14:09:27 -0000", datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
        ("Wed, 30 Jan 2019 01:09:27 +1100", datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
        ("29 Jan 2019 14:09:27 GMT", datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
        ("Tue, 29 Jan 2019 14:09 +0000", datetime(2019, 1, 29, 14, 9, tzinfo=UTC)),
        ("2019-01-29T14:09:27Z", datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
        ("Mon, 29 Jan 2019 14:09:27 +0000", datetime(2019, 1, 29, 14, 9, 27, tzinfo=UTC)),
    ],
)
def test_parse_date_forms(text, expected):
    """Every RFC 2822 form (offsets, -0000, no weekday, zone names) gives aware UTC."""
    parsed = parse_date(text)
    assert expected == parsed
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", ["", "garbage", "Tue, 32 Jan 2019 14:09:27 +0000", "1/2/2019"])
def test_parse_date_rejects_garbage(text):
    """Garbage is a ValueError (a DecodeError once inside a call)."""
    with pytest.raises(ValueError, match="date"):
        parse_date(text)


def test_format_date_is_the_api_form():
    """Dates are written as the API writes them, converted to UTC."""
    assert format_date(parse_date("Wed, 30 Jan 2019 01:09:27 +1100")) == (
        "Tue, 29 Jan 2019 14:09:27 +0000"
    )
