"""parse_status_callback and CallStatusCallback, on the real samples of API-NOTES §10.3."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
from signalwire_calls import CallDirection, CallStatus, DecodeError
from signalwire_calls.webhooks import CallStatusCallback, parse_status_callback

from conftest import sample

#: The real signed status callbacks of API-NOTES §10.3 (V1, V2), shared by the webhook tests.
VECTORS = sample("status_callbacks_real.json")
V1_PARAMS = VECTORS["V1"]["params"]
V2_PARAMS = VECTORS["V2"]["params"]
#: A completed, answered call with every optional parameter (values invented).
FULL = {
    **V2_PARAMS,
    "CallStatus": "completed",
    "SequenceNumber": "3",
    "CallDuration": "42",
    "ParentCallSid": "11111111-2222-4333-8444-555555555555",
    "SipInviteResultPhrase": "OK",
    "ForwardedFrom": "+15125550100",
    "CallerName": "ACME",
    "RecordingUrl": "https://example.signalwire.com/rec/1",
    "RecordingSid": "66666666-7777-4888-8999-000000000000",
    "RecordingDuration": "40",
    "AudioInMos": "4.3",
    "AudioInAveragePtime": "20",
    "AudioInDtmfPacketCount": "1",
    "AudioInFlushPacketCount": "2",
    "AudioInJitterMaxVariance": "7",
    "AudioInJitterMinVariance": "-1",
    "AudioInLargestJbSize": "5",
    "AudioInMediaPacketCount": "2100",
    "AudioInSkipPacketCount": "4",
    "AudioOutDtmfPacketCount": "6",
    "AudioOutMediaPacketCount": "2090",
    "StirVerstat": "TN-Validation-Passed-A",
}


def test_v1_parses_into_typed_values():
    """The real busy callback (V1) gives every field its typed value."""
    callback = parse_status_callback(V1_PARAMS)
    assert "0703574f-b151-465d-aedb-28972eb513c7" == callback.call_sid
    assert "6bfbbe86-a901-4197-8759-2a0de1fa319d" == callback.account_sid
    assert CallStatus.BUSY is callback.status
    assert CallDirection.OUTBOUND_API is callback.direction
    assert "sip:+17063958228@sip.swire.io" == callback.from_
    assert "sip:jpsantos@joaosantos-2a0de1fa319d.sip.swire.io" == callback.to
    assert datetime(2023, 11, 9, 17, 5, 4, tzinfo=UTC) == callback.timestamp
    assert UTC is callback.timestamp.tzinfo
    assert "2010-04-01" == callback.api_version
    assert "call-progress-events" == callback.callback_source
    assert "486" == callback.sip_result_code
    assert "sip:jpsantos@joaosantos-2a0de1fa319d.sip.swire.io" == callback.hangup_by
    assert "inbound" == callback.hangup_direction
    assert None is callback.sequence_number
    assert None is callback.duration
    assert None is callback.audio_in_mos
    assert {} == dict(callback.extra)
    assert True is callback.is_final


def test_v2_parses_into_typed_values():
    """The real no-answer callback (V2) gives every field its typed value."""
    callback = parse_status_callback(V2_PARAMS)
    assert "a97d4e8a-6047-4e2b-be48-fb96b33b5642" == callback.call_sid
    assert CallStatus.NO_ANSWER is callback.status
    assert CallDirection.OUTBOUND_API is callback.direction
    assert datetime(2023, 11, 9, 14, 40, 55, tzinfo=UTC) == callback.timestamp
    assert "487" == callback.sip_result_code
    assert "sip:+17063958228@sip.swire.io" == callback.hangup_by
    assert "outbound" == callback.hangup_direction
    assert "sip:+17063958228@sip.swire.io" == callback.from_
    assert None is callback.parent_call_sid
    assert True is callback.is_final


def test_every_optional_parameter_is_typed():
    """Each optional parameter lands in its field with its type; unknown ones in extra."""
    callback = parse_status_callback(FULL)
    expected = {
        "status": CallStatus.COMPLETED,
        "sequence_number": 3,
        "duration": 42,
        "parent_call_sid": "11111111-2222-4333-8444-555555555555",
        "sip_invite_result_phrase": "OK",
        "forwarded_from": "+15125550100",
        "caller_name": "ACME",
        "recording_url": "https://example.signalwire.com/rec/1",
        "recording_sid": "66666666-7777-4888-8999-000000000000",
        "recording_duration": 40,
        "audio_in_mos": 4.3,
        "audio_in_average_ptime": 20,
        "audio_in_dtmf_packet_count": 1,
        "audio_in_flush_packet_count": 2,
        "audio_in_jitter_max_variance": 7,
        "audio_in_jitter_min_variance": -1,
        "audio_in_largest_jb_size": 5,
        "audio_in_media_packet_count": 2100,
        "audio_in_skip_packet_count": 4,
        "audio_out_dtmf_packet_count": 6,
        "audio_out_media_packet_count": 2090,
    }
    assert expected == {name: getattr(callback, name) for name in expected}
    assert {"StirVerstat": "TN-Validation-Passed-A"} == dict(callback.extra)


def test_every_field_is_documented():
    """The class docstring's Attributes section describes every field."""
    doc = CallStatusCallback.__doc__ or ""
    missing = [
        field.name for field in attrs.fields(CallStatusCallback) if f"    {field.name}: " not in doc
    ]
    assert [] == missing


def test_pairs_and_mappings_parse_alike():
    """Pairs in any order give the same callback as the mapping."""
    assert parse_status_callback(V1_PARAMS) == parse_status_callback(sorted(V1_PARAMS.items()))


def test_unknown_status_and_direction_are_kept_as_strings():
    """A status or direction this version does not know is kept as the raw string."""
    callback = parse_status_callback(
        {**V1_PARAMS, "CallStatus": "ringing_queued", "Direction": "sideways"}
    )
    assert "ringing_queued" == callback.status
    assert not isinstance(callback.status, CallStatus)
    assert "sideways" == callback.direction
    assert False is callback.is_final


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("queued", False),
        ("initiated", False),
        ("ringing", False),
        ("in-progress", False),
        ("completed", True),
        ("busy", True),
        ("failed", True),
        ("no-answer", True),
        ("canceled", True),
    ],
)
def test_is_final(status, final):
    """Only completed, busy, failed, no-answer and canceled are final."""
    assert final is parse_status_callback({**V1_PARAMS, "CallStatus": status}).is_final


@pytest.mark.parametrize(
    "name",
    [
        "CallSid",
        "AccountSid",
        "CallStatus",
        "Direction",
        "From",
        "To",
        "Timestamp",
        "ApiVersion",
        "CallbackSource",
    ],
)
def test_missing_required_parameter_is_named(name):
    """A missing required parameter raises a DecodeError naming it and the call."""
    params = {key: value for key, value in V1_PARAMS.items() if key != name}
    with pytest.raises(DecodeError) as raised:
        parse_status_callback(params)
    assert name == raised.value.field
    assert name in str(raised.value)
    if name != "CallSid":
        assert "0703574f-b151-465d-aedb-28972eb513c7" == raised.value.sid
        assert "for call 0703574f-b151-465d-aedb-28972eb513c7" in str(raised.value)
    else:
        assert None is raised.value.sid
        assert "for an unknown call" in str(raised.value)


def test_absent_optional_parameters_are_none():
    """With only the required parameters, every optional field is None and extra is empty."""
    required = [
        "CallSid",
        "AccountSid",
        "CallStatus",
        "Direction",
        "From",
        "To",
        "Timestamp",
        "ApiVersion",
        "CallbackSource",
    ]
    callback = parse_status_callback({name: V1_PARAMS[name] for name in required})
    assert {} == dict(callback.extra)
    optional = [field.name for field in attrs.fields(CallStatusCallback) if field.default is None]
    assert 23 == len(optional)
    assert dict.fromkeys(optional) == {name: getattr(callback, name) for name in optional}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CallDuration", "abc"),
        ("CallDuration", "-5"),
        ("CallDuration", "4.5"),
        ("CallDuration", " 42"),
        ("CallDuration", "1_000"),
        ("CallDuration", "٤٢"),
        ("SequenceNumber", "x"),
        ("RecordingDuration", "1e3"),
        ("AudioInMos", "good"),
        ("AudioInMos", "nan"),
        ("AudioInMos", "inf"),
        ("AudioInJitterMinVariance", "--1"),
        ("AudioOutMediaPacketCount", "12a"),
        ("Timestamp", "yesterday"),
        ("Timestamp", "2023-11-09T17:05:04Z"),
    ],
)
def test_bad_value_is_named(name, value):
    """A value that does not parse raises a DecodeError naming the parameter, the value and the call."""
    with pytest.raises(DecodeError) as raised:
        parse_status_callback({**V1_PARAMS, name: value})
    assert name == raised.value.field
    assert "0703574f-b151-465d-aedb-28972eb513c7" == raised.value.sid
    message = str(raised.value)
    assert name in message
    assert repr(value) in message
    assert "0703574f-b151-465d-aedb-28972eb513c7" in message


@pytest.mark.parametrize("name", ["CallSid", "AccountSid", "CallStatus", "Timestamp"])
def test_empty_required_value_is_refused(name):
    """A required parameter sent empty is refused like a missing one."""
    with pytest.raises(DecodeError, match=f"empty {name}") as raised:
        parse_status_callback({**V1_PARAMS, name: ""})
    assert name == raised.value.field


def test_empty_from_and_to_are_kept():
    """From and To are kept as given, even empty (an anonymous caller)."""
    callback = parse_status_callback({**V1_PARAMS, "From": "", "To": "anonymous"})
    assert ("", "anonymous") == (callback.from_, callback.to)


def test_empty_optional_values_are_none():
    """An optional parameter sent empty is None: form encoding has no other null."""
    callback = parse_status_callback(
        {**V1_PARAMS, "CallDuration": "", "AudioInMos": "", "ParentCallSid": ""}
    )
    assert (None, None, None) == (
        callback.duration,
        callback.audio_in_mos,
        callback.parent_call_sid,
    )


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("Thu, 09 Nov 2023 19:05:04 +0200", datetime(2023, 11, 9, 17, 5, 4, tzinfo=UTC)),
        ("Thu, 09 Nov 2023 17:05:04 -0000", datetime(2023, 11, 9, 17, 5, 4, tzinfo=UTC)),
        ("Thu, 09 Nov 2023 17:05:04 GMT", datetime(2023, 11, 9, 17, 5, 4, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(timestamp, expected):
    """Every RFC 2822 offset becomes the same instant in UTC."""
    parsed = parse_status_callback({**V1_PARAMS, "Timestamp": timestamp}).timestamp
    assert expected == parsed
    assert UTC is parsed.tzinfo


def test_repeated_name_with_the_same_value_is_accepted():
    """A parameter sent twice with one value is read once."""
    callback = parse_status_callback(
        [*V1_PARAMS.items(), ("CallStatus", "busy"), ("X-Extra", "a"), ("X-Extra", "a")]
    )
    assert CallStatus.BUSY is callback.status
    assert {"X-Extra": "a"} == dict(callback.extra)


@pytest.mark.parametrize("name", ["CallStatus", "X-Extra"])
def test_repeated_name_with_different_values_is_refused(name):
    """A parameter sent twice with different values is ambiguous: a DecodeError names it."""
    params = [*V1_PARAMS.items(), (name, "first"), (name, "second")]
    with pytest.raises(DecodeError, match="more than once") as raised:
        parse_status_callback(params)
    assert name == raised.value.field


def test_extra_is_read_only_and_a_copy():
    """Extra cannot be changed through the callback, nor by changing the input."""
    params = {**V1_PARAMS, "Custom": "1"}
    callback = parse_status_callback(params)
    params["Custom"] = "2"
    assert "1" == callback.extra["Custom"]
    with pytest.raises(TypeError):
        callback.extra["Custom"] = "3"  # type: ignore[index]


def test_callback_is_frozen_hashable_and_comparable():
    """A callback cannot be changed, hashes, and equals one parsed from the same params."""
    first, second = parse_status_callback(V1_PARAMS), parse_status_callback(dict(V1_PARAMS))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        first.call_sid = "other"  # type: ignore[misc]
    assert first == second
    assert hash(first) == hash(second)
    assert first != parse_status_callback(V2_PARAMS)


def test_repr_shows_what_identifies_the_event():
    """The repr shows the call, status, parties, time, sequence and extra names."""
    callback = parse_status_callback({**V1_PARAMS, "Custom": "secret-value"})
    assert (
        "CallStatusCallback(call_sid='0703574f-b151-465d-aedb-28972eb513c7', status='busy', "
        "direction='outbound-api', from_='sip:+17063958228@sip.swire.io', "
        "to='sip:jpsantos@joaosantos-2a0de1fa319d.sip.swire.io', "
        "timestamp='2023-11-09T17:05:04+00:00', sequence_number=None, duration=None, "
        "sip_result_code='486', extra=['Custom'])"
    ) == repr(callback)


@pytest.mark.parametrize("params", ["CallSid=abc", b"CallSid=abc", {"CallSid": 1}, None])
def test_wrong_params_type_raises_type_error(params):
    """A raw string, bytes, non-string values or None raise a TypeError."""
    with pytest.raises(TypeError, match="params"):
        parse_status_callback(params)
