"""Property-based tests (hypothesis) of the converter, the date parser and Retry-After.

Calls are generated from the published Call schema (``tests/samples/call_schema.json``,
a vendored copy of ``components/schemas/Call`` of the shared OpenAPI subset), with
valid RFC 2822 dates where the schema describes one. Set ``SWC_HYPOTHESIS_EXAMPLES``
to run more examples than the CI default.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import signalwire_calls as swc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signalwire_calls._retry import parse_retry_after
from signalwire_calls._wire import WIRE, _converter, _fastpath, _keys, format_date, parse_date

from conftest import SAMPLES

VENDORED_SCHEMA = SAMPLES / "call_schema.json"
#: The spec's Call schema and what it references, copied unmodified (see its header).
SPEC_SCHEMAS = SAMPLES / "spec_call_schemas.yaml"

EXAMPLES = int(os.environ.get("SWC_HYPOTHESIS_EXAMPLES", "150"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the machine is shared and noisy
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Fields whose schema description promises an RFC 2822 date.
DATE_FIELDS = ("date_created", "date_updated", "start_time", "end_time")


def inline_call_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the spec's Call schema with every ``$ref`` inlined and examples dropped."""
    schemas = spec["components"]["schemas"]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(schemas[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items() if k != "examples"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schemas["Call"])


def load_call_schema() -> dict[str, Any]:
    """Load the vendored Call schema (preferred: no dependency on ../shared)."""
    schema = json.loads(VENDORED_SCHEMA.read_text())
    schema.pop("$comment", None)
    return schema


CALL_SCHEMA = load_call_schema()


def test_vendored_schema_matches_the_spec():
    """The vendored Call schema equals the spec's, its references inlined (both in tests/samples)."""
    import yaml

    spec = yaml.safe_load(SPEC_SCHEMAS.read_text())
    assert inline_call_schema(spec) == load_call_schema()


# ------------------------------------------------------------------ strategies

OFFSET_MINUTES = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)
OBSOLETE_ZONES = {
    "UT": 0, "GMT": 0, "UTC": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@st.composite
def rfc2822_dates(draw: st.DrawFn) -> tuple[str, datetime]:
    """Draw ``(text, instant)``: an RFC 2822 date in any of its forms and what it means."""
    earliest, latest = datetime(1900, 1, 2), datetime(9998, 12, 30)
    naive = draw(st.datetimes(min_value=earliest, max_value=latest)).replace(microsecond=0)
    with_seconds = draw(st.booleans())
    if not with_seconds:
        naive = naive.replace(second=0)
    zone_kind = draw(st.sampled_from(["numeric", "minus-zero", "obsolete"]))
    if zone_kind == "numeric":
        minutes = draw(OFFSET_MINUTES)
        sign = "-" if minutes < 0 else "+"
        zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    elif zone_kind == "minus-zero":
        minutes, zone = 0, "-0000"  # "UTC, but nothing is claimed about local time"
    else:
        zone = draw(st.sampled_from(sorted(OBSOLETE_ZONES)))
        minutes = OBSOLETE_ZONES[zone] * 60
    instant = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    day = f"{naive.day:02d}" if draw(st.booleans()) else str(naive.day)
    clock = f"{naive.hour:02d}:{naive.minute:02d}" + (
        f":{naive.second:02d}" if with_seconds else ""
    )
    text = f"{day} {MONTHS[naive.month - 1]} {naive.year} {clock} {zone}"
    if draw(st.booleans()):
        text = f"{DAYS[naive.weekday()]}, {text}"
    return text, instant


def from_schema(node: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:  # noqa: C901, PLR0911
    """Return a strategy of JSON values that the (inlined) JSON Schema ``node`` allows."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "allOf" in node:
        (only,) = node["allOf"]  # the spec uses allOf only to attach a description
        return from_schema(only, name)
    if "anyOf" in node:
        return st.one_of([from_schema(option, name) for option in node["anyOf"]])
    kind = node.get("type")
    if kind == "null":
        return st.none()
    if kind == "string":
        if node.get("format") == "uuid":
            return st.uuids().map(str)
        if name in DATE_FIELDS or "RFC 2822" in node.get("description", ""):
            return rfc2822_dates().map(lambda pair: pair[0])
        return st.text(max_size=40)
    if kind == "integer":
        bits = 31 if node.get("format") == "int32" else 53
        return st.integers(min_value=-(2**bits), max_value=2**bits - 1)
    if kind == "number":
        width = 32 if node.get("format") == "float" else 64
        return st.floats(allow_nan=False, allow_infinity=False, width=width) | st.integers(
            -(2**31), 2**31 - 1
        )
    if kind == "object":
        props = node["properties"]
        return st.fixed_dictionaries(
            {key: from_schema(props[key], key) for key in node.get("required", props)}
        )
    raise AssertionError(f"schema construct not handled by this generator: {node}")


SPEC_CALLS = from_schema(CALL_SCHEMA)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)

NEWER_KEYS = (
    "audio_in_mos", "sip_result_code", "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max",
    "audio_out_jitter_min", "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip


@st.composite
def real_world_calls(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a call as the live service sends it: the spec's shape, widened (API-NOTES §7)."""
    data = draw(SPEC_CALLS)
    data["direction"] = draw(
        st.sampled_from(["inbound", "outbound-api", "outbound-dial", "outbound"])
        | st.text(min_size=1, max_size=12)
    )
    data["status"] = draw(st.sampled_from(["initiated", "completed"]) | st.text(max_size=12))
    if draw(st.booleans()):  # the service sends MOS as a string
        mos = draw(st.floats(min_value=1, max_value=5))
        data["audio_in_mos"] = draw(st.sampled_from([repr(mos), f"{mos:.2f}", f"{mos:.1f}"]))
    if draw(st.booleans()):
        data["sip_result_code"] = draw(st.integers(100, 699) | st.sampled_from(["200", "486"]))
    for key in draw(st.lists(st.sampled_from(NEWER_KEYS), unique=True)):
        del data[key]  # older records lack the newest keys
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=10), JSON_VALUES, max_size=3))
    data.update({k: v for k, v in extra.items() if k not in data})
    if draw(st.booleans()):  # real responses put account_sid after parent_call_sid
        keys = draw(st.permutations(list(data)))
        data = {key: data[key] for key in keys}
    return data


# -------------------------------------------------------------------- the Call


@PROPS
@given(SPEC_CALLS)
def test_every_spec_call_structures_and_round_trips(data):
    """Any call the published schema allows structures, and to_dict() gives back the same JSON."""
    call = swc.Call.from_dict(data)
    out = call.to_dict()
    assert data == out
    assert list(data) == list(out)
    assert json.dumps(data) == json.dumps(out)
    assert call.date_created == parse_date(data["date_created"])
    assert call.date_created.tzinfo is UTC


@PROPS
@given(real_world_calls())
def test_every_real_world_call_round_trips(data):
    """Calls widened as the live service sends them (new enums, string MOS, missing and extra keys) round-trip."""
    call = swc.Call.from_dict(json.loads(json.dumps(data)))
    assert json.dumps(data) == json.dumps(call.to_dict())
    assert {k: v for k, v in data.items() if k not in CALL_SCHEMA["properties"]} == dict(call.extra)
    assert str(call.status) == data["status"]
    assert str(call.direction) == data["direction"]


@st.composite
def corrupted_calls(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid call with one field replaced by any JSON value, or removed."""
    data = draw(SPEC_CALLS)
    key = draw(st.sampled_from(sorted(data)))
    if draw(st.integers(0, 4)) == 0:
        del data[key]
    elif key == "subresource_uris" and draw(st.booleans()):
        data[key] = {
            **data[key],
            draw(st.sampled_from(["recordings", "notifications", "x"])): draw(JSON_VALUES),
        }
    else:
        data[key] = draw(
            JSON_VALUES | st.text() | st.binary(max_size=8).map(lambda b: b.decode("latin-1"))
        )
    return data


@PROPS
@given(corrupted_calls())
def test_any_corrupted_field_gives_a_call_or_a_decode_error(data):
    """Any single corrupted or missing field gives a Call (that still round-trips) or a DecodeError."""
    try:
        call = swc.Call.from_dict(data)
    except swc.DecodeError as err:
        error: swc.DecodeError | None = err
    else:
        error = None
        assert data == call.to_dict()
    assert error is None or (error.field.startswith("$") and str(error))


def _both_paths(data: dict[str, Any]) -> tuple[Any, Any]:
    """Structure ``data`` as structure_call does, and through the general (cattrs) path only."""

    def outcome(build: Any) -> Any:
        try:
            call = build()
        except swc.DecodeError as err:
            return ("error", str(err), err.field)
        return ("call", call, call._keys, call._raw, json.dumps(call.to_dict()))

    keys, unknown, _ = _converter.shape(data)
    fast = outcome(lambda: WIRE.structure(data))
    general = outcome(lambda: WIRE.structure_general(data, data["sid"], keys, unknown))
    return fast, general


REAL_2024 = json.loads((SAMPLES / "call_real_2024.json").read_text())
OPT_STR = st.none() | st.text(max_size=12)
WIRE_DATES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(format_date)


def _change_one_thing(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """Leave ``data`` as it is, or replace, remove, add or move one key of it."""
    change = draw(st.sampled_from(["none", "none", "replace", "remove", "extra", "reorder"]))
    if change == "reorder":  # every key, in another order: taken by key, not by position
        order = list(data)
        i, j = draw(st.lists(st.integers(0, len(order) - 1), min_size=2, max_size=2, unique=True))
        order[i], order[j] = order[j], order[i]  # two keys, often of the same type
        data = {key: data[key] for key in order}
    elif change == "replace":
        data[draw(st.sampled_from(sorted(data)))] = draw(JSON_VALUES | st.text(max_size=31))
    elif change == "remove":
        del data[draw(st.sampled_from(sorted(data)))]
    elif change == "extra":
        data[draw(st.text(min_size=1, max_size=8))] = draw(JSON_VALUES)
    return data


@st.composite
def service_calls(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a body in the form the service sends, then maybe break or widen one thing in it."""
    data = dict(REAL_2024)
    for key in ("date_created", "date_updated"):
        data[key] = draw(WIRE_DATES)
    for key in ("start_time", "end_time"):
        data[key] = draw(st.none() | st.just(data["date_created"]) | WIRE_DATES)
    data["duration"] = draw(st.integers(0, 10**6))
    data["price"] = draw(st.none() | st.floats(-1, 1, allow_nan=False) | st.just(0.0106))
    mos = draw(st.floats(1, 5, allow_nan=False))
    data["audio_in_mos"] = draw(st.none() | st.just(repr(mos)) | st.just(f"{mos:.2f}"))
    data["status"] = draw(st.sampled_from(["completed", "initiated", "busy", "x-new"]))
    data["direction"] = draw(st.sampled_from(["inbound", "outbound-api", "outbound-dial"]))
    for key in ("parent_call_sid", "answered_by", "caller_name", "annotation", "sip_result_code"):
        data[key] = draw(OPT_STR)
    data["to_formatted"] = draw(st.just(data["formatted_to"]) | OPT_STR)
    if draw(st.booleans()):
        data["subresource_uris"] = {"notifications": draw(OPT_STR), "recordings": draw(OPT_STR)}
    if draw(st.booleans()):  # the keys no one has seen yet
        for key in draw(st.lists(st.sampled_from(_keys.AUDIO_KEYS), unique=True)):
            data[key] = draw(st.none() | st.integers() | st.floats() | st.text(max_size=4))
    return _change_one_thing(draw, data)


@PROPS
@given(
    service_calls().filter(lambda d: type(d.get("sid")) is str)
    | real_world_calls()
    | corrupted_calls().filter(lambda d: type(d.get("sid")) is str)
)
def test_fast_path_equals_the_general_path(data):
    """The hand-written pass for the usual form gives exactly what the cattrs path gives."""
    fast, general = _both_paths(data)
    assert general == fast


def test_fast_path_is_taken_for_the_real_shape():
    """The real 2024 body takes the fast pass (no cattrs), and equals the general path."""
    data = json.loads((SAMPLES / "call_real_2024.json").read_text())
    keys, unknown, has_audio = _converter.shape(data)
    assert (keys, unknown, has_audio) == (_keys.SERVICE_KEYS, (), False)
    assert keys is _keys.SERVICE_KEYS  # the values are taken in one step, by position
    fast = _fastpath.structure_common(data, keys, unknown, has_audio)
    assert _both_paths(data)[1][1:] == (fast, fast._keys, fast._raw, json.dumps(fast.to_dict()))


def test_keys_in_another_order_are_taken_by_key():
    """Swapping any two keys of the real body changes nothing but the key order."""
    data = json.loads((SAMPLES / "call_real_2024.json").read_text())
    expected = WIRE.structure(data)
    order = list(data)
    for i, j in itertools.combinations(range(len(order)), 2):
        swapped = order.copy()
        swapped[i], swapped[j] = swapped[j], swapped[i]
        call = WIRE.structure({key: data[key] for key in swapped})
        assert call == expected, (order[i], order[j])
        assert list(call.to_dict()) == swapped


@PROPS
@given(JSON_VALUES)
def test_any_json_value_gives_a_call_or_a_decode_error(value):
    """A body that is any JSON value at all gives a DecodeError, never another exception."""
    with pytest.raises(swc.DecodeError):
        swc.Call.from_dict(value)


@PROPS
@given(
    SPEC_CALLS,
    st.sampled_from(DATE_FIELDS),
    st.text(alphabet=string.ascii_letters + " ,:+-", max_size=40),
)
def test_garbage_date_in_a_call_is_a_decode_error(data, field, garbage):
    """A date field holding text with no digits makes Call.from_dict raise a DecodeError naming it."""
    data[field] = garbage
    with pytest.raises(swc.DecodeError) as caught:
        swc.Call.from_dict(data)
    assert f"$.{field}" == caught.value.field


# ------------------------------------------------------------------- the dates


@PROPS
@given(rfc2822_dates())
def test_parse_date_accepts_every_rfc2822_form(pair):
    """Every RFC 2822 form (any offset, -0000, obsolete zones, no weekday, no seconds) parses to its instant in UTC."""
    text, instant = pair
    parsed = parse_date(text)
    assert instant == parsed
    assert parsed.tzinfo is UTC
    assert parsed == parse_date(format_date(parsed))


@PROPS
@given(st.text(alphabet=string.ascii_letters + string.punctuation + " \t", max_size=60))
def test_parse_date_rejects_garbage_with_value_error(text):
    """Text without a single digit is never a date: parse_date raises ValueError."""
    with pytest.raises(ValueError, match="date"):
        parse_date(text)


@PROPS
@given(
    st.text(max_size=60)
    | st.from_regex(r"\A[A-Za-z]{0,4},? ?\d{1,3} [A-Za-z]{3} \d{1,6} [\d:]{0,9} ?[+-]?\d{0,5}\Z")
)
def test_parse_date_never_raises_anything_but_value_error(text):
    """On any text, parse_date returns an aware UTC datetime or raises ValueError, nothing else."""
    try:
        parsed = parse_date(text)
    except ValueError:
        return
    assert parsed.tzinfo is UTC


# ------------------------------------------------------------- Retry-After


@PROPS
@given(
    st.none()
    | st.text(max_size=40)
    | st.from_regex(r"\A\s*-?\d{0,30}(\.\d{0,5})?([eE][+-]?\d{1,4})?\s*\Z"),
    st.none() | st.floats(min_value=0, max_value=4e9),
)
def test_parse_retry_after_never_raises_nor_goes_negative(value, now):
    """Any header value gives None or a finite wait of at least zero, and never raises."""
    wait = parse_retry_after(value, now=now)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


@PROPS
@given(rfc2822_dates(), st.floats(min_value=-1e10, max_value=1e10))
def test_parse_retry_after_http_dates_are_clamped_at_zero(pair, shift):
    """An HTTP date gives the seconds until it, or 0.0 when it has passed."""
    text, instant = pair
    now = instant.timestamp() + shift
    assert max(0.0, -shift) == pytest.approx(parse_retry_after(text, now=now), abs=1e-3)


@PROPS
@given(st.integers(min_value=-(10**6), max_value=10**12))
def test_parse_retry_after_seconds(seconds):
    """Delay-seconds are returned as given, negative ones as 0.0."""
    assert float(max(0, seconds)) == parse_retry_after(f" {seconds} ")
