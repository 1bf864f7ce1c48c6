"""The private cattrs converter: API JSON objects to :class:`Call` and back.

Where the published spec and the live service disagree (API-NOTES §7), this
accepts both: a string or numeric MOS, a string or integer SIP code, directions
and statuses the enums do not know yet, missing newer fields, unknown extra keys.
Whatever the typed fields cannot reproduce exactly (a string MOS such as
``"4.40"``, a date with a non-UTC offset, an unknown key) is kept aside, so that
``to_dict()`` gives back exactly what the API sent.

Structuring is built by cattrs (``make_dict_structure_fn``) from strict per-type
hooks. The fast variant runs without detailed validation; only when it fails is
the body run again through a detailed one, to say which field is wrong.
"""

from __future__ import annotations

import email.utils
import math
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import transform_error

from signalwire_calls._errors import DecodeError
from signalwire_calls._models import Call, CallDirection, CallStatus, SubresourceUris

__all__ = [
    "converter",
    "extra_keys",
    "format_date",
    "parse_date",
    "structure_call",
    "unstructure_call",
]

# --------------------------------------------------------------------------- dates

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_MONTHS: Final = {name: i for i, name in enumerate(_MONTH_NAMES, 1)}
_CANONICAL_DATE_LEN: Final = 31  # len("Tue, 29 Jan 2019 14:09:27 +0000")


def _parse_date_fast(value: str) -> datetime | None:
    """Parse the form the service always sends, or return ``None``.

    ``"Tue, 29 Jan 2019 14:09:27 +0000"``: fixed positions, so slicing beats
    :func:`email.utils.parsedate_to_datetime` by about ten times. Only a string
    that :func:`format_date` would write back identically takes this path.
    """
    if len(value) != _CANONICAL_DATE_LEN or value[25:] != " +0000" or value[3:5] != ", ":
        return None
    month = _MONTHS.get(value[8:11])
    if month is None:
        return None
    try:
        dt = datetime(
            int(value[12:16]),
            month,
            int(value[5:7]),
            int(value[17:19]),
            int(value[20:22]),
            int(value[23:25]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if _DAYS[dt.weekday()] != value[:3] or value[7] != " " or value[11] != " " or value[16] != " ":
        return None
    return dt


def parse_date(value: str) -> datetime:
    """Parse an API date into an aware UTC datetime.

    Takes RFC 2822 in any of its forms (any offset, ``-0000``, no weekday, obsolete
    zone names) and, leniently, ISO 8601.

    Raises:
        ValueError: ``value`` is not a date.
    """
    dt = _parse_date_fast(value)
    if dt is not None:
        return dt
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an RFC 2822 date: {value[:60]!r}") from None
    if parsed.tzinfo is None:  # "-0000" means UTC with no claim about local time
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date out of range: {value[:60]!r}") from None


def format_date(dt: datetime) -> str:
    """Write a datetime the way the API does: ``Tue, 29 Jan 2019 14:09:27 +0000``."""
    if dt.tzinfo is not None and dt.utcoffset():
        dt = dt.astimezone(UTC)
    return (
        f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTH_NAMES[dt.month - 1]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} +0000"
    )


# --------------------------------------------------------------------------- hooks
# Strict: the default cattrs hooks coerce (str(5) == "5"), which would hide a
# malformed body. Each raises TypeError/ValueError with a message for the user.


def _describe(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a hostile body can nest deeper than repr() can go
        text = f"<{type(value).__name__} nested too deeply to show>"
    if len(text) > 60:  # noqa: PLR2004
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _str(value: Any, _: object = None) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {_describe(value)}")


def _opt_str(value: Any, _: object = None) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string or null, got {_describe(value)}")


def _date(value: Any, _: object = None) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an RFC 2822 date string, got {_describe(value)}")
    return parse_date(value)


def _opt_date(value: Any, _: object = None) -> datetime | None:
    return None if value is None else _date(value)


def _int(value: Any, _: object = None) -> int:
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is float and value.is_integer():
        return int(value)
    if kind is str and value.strip().lstrip("-").isdigit():  # Twilio sends "22"
        return int(value)
    raise TypeError(f"expected an integer, got {_describe(value)}")


def _number(value: Any) -> float:
    kind = type(value)
    if kind is int or kind is float:
        result = float(value)
    elif kind is str:  # the service sends MOS as "4.5" (API-NOTES §2.1 #28)
        try:
            result = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {_describe(value)}") from None
    else:
        raise TypeError(f"expected a number, got {_describe(value)}")
    if not math.isfinite(result):
        raise ValueError(f"expected a finite number, got {_describe(value)}")
    return value if kind is int else result


def _opt_number(value: Any, _: object = None) -> float | None:
    return None if value is None else _number(value)


def _opt_decimal(value: Any, _: object = None) -> Decimal | None:
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is int or kind is str:
        _number(value)  # rejects bools, NaN and infinities with a clear message
        try:
            return Decimal(repr(value) if kind is float else value if kind is str else int(value))
        except InvalidOperation:
            raise ValueError(f"expected a price, got {_describe(value)}") from None
    raise TypeError(f"expected a number, got {_describe(value)}")


def _opt_code(value: Any, _: object = None) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is int:  # the webhook sends "200"; some scripts compare with 500
        return str(value)
    raise TypeError(f"expected a string or null, got {_describe(value)}")


_STATUSES: Final[dict[str, CallStatus]] = {m.value: m for m in CallStatus}
_DIRECTIONS: Final[dict[str, CallDirection]] = {m.value: m for m in CallDirection}


def _status(value: Any, _: object = None) -> CallStatus | str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {_describe(value)}")
    return _STATUSES.get(value) or value  # a status SignalWire adds later stays verbatim


def _direction(value: Any, _: object = None) -> CallDirection | str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {_describe(value)}")
    return _DIRECTIONS.get(value) or value


def _intern(value: Any, _: object = None) -> str:
    # Project id, price unit and API version repeat on every call of a job.
    return sys.intern(_str(value))


def _opt_subresources(value: Any, _: object = None) -> SubresourceUris | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {_describe(value)}")
    return SubresourceUris(
        recordings=_opt_str(value.get("recordings")),
        notifications=_opt_str(value.get("notifications")),
    )


# ----------------------------------------------------------------------- converter

converter: Final = cattrs.Converter(forbid_extra_keys=False)
for _type, _hook in (
    (str, _str),
    (str | None, _opt_str),
    (datetime, _date),
    (datetime | None, _opt_date),
    (int, _int),
    (float | None, _opt_number),
    (Decimal | None, _opt_decimal),
    (CallStatus | str, _status),
    (CallDirection | str, _direction),
    (SubresourceUris | None, _opt_subresources),
):
    converter.register_structure_hook(_type, _hook)


def _make_call_structurer(*, detailed: bool) -> Callable[[Mapping[str, Any], Any], Call]:
    return make_dict_structure_fn(
        Call,
        converter,
        _cattrs_detailed_validation=detailed,
        from_=override(rename="from"),
        sip_result_code=override(struct_hook=_opt_code),
        account_sid=override(struct_hook=_intern),
        api_version=override(struct_hook=_intern),
        _keys=override(omit=True),
        _raw=override(omit=True),
    )


_structure_fast: Final = _make_call_structurer(detailed=False)
_structure_detailed: Final = _make_call_structurer(detailed=True)

#: Wire order of the keys in real responses (API-NOTES §2.1), for calls built in code.
WIRE_ORDER: Final = (
    "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to",
    "formatted_to", "to_formatted", "from", "formatted_from", "from_formatted",
    "phone_number_sid", "status", "start_time", "end_time", "duration", "price",
    "price_unit", "direction", "answered_by", "api_version", "forwarded_from",
    "caller_name", "uri", "subresource_uris", "annotation", "group_sid", "audio_in_mos",
    "sip_result_code", "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max",
    "audio_out_jitter_min", "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip
_KNOWN: Final = frozenset(WIRE_ORDER)
_ATTR: Final = {key: ("from_" if key == "from" else key) for key in WIRE_ORDER}
_DATE_KEYS: Final = ("date_created", "date_updated", "start_time", "end_time")
_NUMBER_KEYS: Final = (
    "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max", "audio_out_jitter_min",
    "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip
_SUBRESOURCE_ORDER: Final = ["notifications", "recordings"]

#: Interned key tuples (with their unknown keys): a bulk job's calls share one.
_Shape = tuple[tuple[str, ...], tuple[str, ...], bool]
_KEYS_CACHE: dict[tuple[str, ...], _Shape] = {}
_KEYS_CACHE_MAX: Final = 512
_AUDIO_KEYS: Final = frozenset(_NUMBER_KEYS)
_NO_AUDIO: Final[tuple[float | None, ...]] = (None,) * len(_NUMBER_KEYS)


def _shape(data: Mapping[str, Any]) -> _Shape:
    """Return the body's keys, the unknown ones, and whether it has any audio key."""
    keys = tuple(data)
    cached = _KEYS_CACHE.get(keys)
    if cached is None:
        unknown = tuple(k for k in keys if k not in _KNOWN)
        cached = (keys, unknown, not _AUDIO_KEYS.isdisjoint(keys))
        if len(_KEYS_CACHE) < _KEYS_CACHE_MAX:  # bounded: a hostile server can't grow it
            _KEYS_CACHE[keys] = cached
    return cached


def _inexact(data: Mapping[str, Any], call: Call) -> dict[str, Any] | None:
    """Return the received values that the typed fields would not write back identically."""
    raw: dict[str, Any] | None = None
    for key in _DATE_KEYS:
        value = data.get(key)
        if value is not None and _parse_date_fast(value) is None:
            raw = raw or {}
            raw[key] = value
    checks = (
        ("duration", type(data.get("duration")) is not int),
        (
            "price",
            "price" in data and data["price"] is not None and type(data["price"]) is not float,
        ),
        ("audio_in_mos", _mos_inexact(data.get("audio_in_mos"), call.audio_in_mos)),
        ("sip_result_code", type(data.get("sip_result_code", "")) is int),
        ("subresource_uris", _subresources_inexact(data.get("subresource_uris"))),
    )
    for key, differs in checks:
        if differs and key in data:
            raw = raw or {}
            raw[key] = data[key]
    for key in _NUMBER_KEYS:
        if type(data.get(key)) is str:
            raw = raw or {}
            raw[key] = data[key]
    return raw


def _mos_inexact(value: Any, typed: float | None) -> bool:
    # The service sends a string ("4.5"): that form is the one written back.
    return value is not None and (type(value) is not str or repr(typed) != value)


def _subresources_inexact(value: Any) -> bool:
    if value is None:
        return False
    return list(value) != _SUBRESOURCE_ORDER


# ----------------------------------------------------------------------- fast path
# The service sends one form of every field (API-NOTES §2.1): canonical dates, an
# int duration, a float price, a string MOS. For that form, one hand-written pass
# gives exactly what the cattrs structurer plus the _inexact check give, in a
# fraction of the time (docs/performance.md); any other form raises and takes
# the general path, which also words the errors. Values that repeat across a
# job's calls (the project id, own numbers, per-minute prices) share one object.

_SHARED_MAX: Final = 4096
_SHARED: dict[Any, Any] = {}
_PRICES: dict[float, Decimal] = {}
_MOS: dict[str, float] = {}
_DAY_CACHE: dict[str, tuple[int, int, int]] = {}
_HM_CACHE: dict[str, tuple[int, int]] = {}
_SECOND_CACHE: dict[str, int] = {}
_STR_OR_NONE: Final = frozenset({str, type(None)})


def _common_date(value: Any) -> datetime:
    """Parse a canonical date (``"Tue, 29 Jan 2019 14:09:27 +0000"``), else raise.

    The three parts ("Tue, 29 Jan 2019", " 14:09", ":27 +0000") come from small
    caches of parts already validated by :func:`_parse_date_fast`: three lookups
    and one constructor instead of six ``int()`` calls and a weekday check.
    """
    day = _DAY_CACHE.get(value[:16])  # TypeError for a non-string: the general path
    hm = _HM_CACHE.get(value[16:22])
    second = _SECOND_CACHE.get(value[22:])
    if day is None or hm is None or second is None:
        return _learn_date(value)
    return datetime(day[0], day[1], day[2], hm[0], hm[1], second, 0, UTC)


def _learn_date(value: str) -> datetime:
    dt = _parse_date_fast(value)
    if dt is None:
        raise ValueError(value)
    if value[17:19].isdigit() and value[20:22].isdigit() and value[23:25].isdigit():
        if len(_DAY_CACHE) >= _SHARED_MAX:
            _DAY_CACHE.clear()
        _DAY_CACHE[value[:16]] = (dt.year, dt.month, dt.day)
        _HM_CACHE[value[16:22]] = (dt.hour, dt.minute)  # at most 24 * 60 entries
        _SECOND_CACHE[value[22:]] = dt.second  # at most 60 entries
    return dt


def _new_price(value: float) -> Decimal:
    if not math.isfinite(value):
        raise ValueError
    price = Decimal(repr(value))
    if value:  # 0.0 == -0.0: zeros are never shared
        if len(_PRICES) >= _SHARED_MAX:
            _PRICES.clear()
        _PRICES[value] = price
    return price


def _new_mos(value: Any) -> float:
    if type(value) is not str:
        raise TypeError
    number = float(value)
    if not math.isfinite(number) or repr(number) != value:  # kept raw: general path
        raise ValueError
    if len(_MOS) >= _SHARED_MAX:
        _MOS.clear()
    _MOS[value] = number
    return number


def _audio(o: Mapping[str, Any]) -> tuple[float | None, ...]:
    get = o.get
    audio = tuple(get(key) for key in _NUMBER_KEYS)
    # Numbers: an int or a finite float (x - x is NaN for an infinity or a NaN).
    for number in audio:
        if number is not None and not (
            (type(number) is float or type(number) is int) and number - number == 0
        ):
            raise TypeError
    return audio


def _structure_common(  # noqa: C901 - one flat pass is the point
    o: Mapping[str, Any], keys: tuple[str, ...], unknown: tuple[str, ...], has_audio: bool
) -> Call:
    """Structure a call in the form the service sends.

    Written flat, with the type checks inline rather than one helper per field:
    in the request loop every Python call costs about twice what it costs in
    isolation (docs/performance.md).

    Raises:
        TypeError, ValueError, KeyError: Not the common form (never shown to a user).
    """
    # Every key the service sends today is looked up directly (an older record
    # without one raises KeyError and takes the general path, which allows it).
    account_sid, to, from_, uri = o["account_sid"], o["to"], o["from"], o["uri"]
    status, direction, duration = o["status"], o["direction"], o["duration"]
    api_version, price_unit = o["api_version"], o["price_unit"]
    parent_call_sid = o["parent_call_sid"]
    formatted_to, to_formatted = o["formatted_to"], o["to_formatted"]
    formatted_from, from_formatted = o["formatted_from"], o["from_formatted"]
    phone_number_sid, answered_by = o["phone_number_sid"], o["answered_by"]
    forwarded_from, caller_name = o["forwarded_from"], o["caller_name"]
    annotation, group_sid = o["annotation"], o["group_sid"]
    sip_result_code = o["sip_result_code"]
    if not (
        type(account_sid) is type(to) is type(from_) is type(uri) is str
        and type(status) is type(direction) is type(api_version) is str
        and type(duration) is int
        and {
            type(price_unit),
            type(parent_call_sid),
            type(formatted_to),
            type(to_formatted),
            type(formatted_from),
            type(from_formatted),
            type(phone_number_sid),
            type(answered_by),
            type(forwarded_from),
            type(caller_name),
            type(annotation),
            type(group_sid),
            type(sip_result_code),
        }
        <= _STR_OR_NONE
    ):
        raise TypeError
    # The audio_rtt_*/audio_out_* keys: never seen so far (API-NOTES §2.1).
    rtt_avg, rtt_min, rtt_max, jitter_min, jitter_max, jitter_avg, lost = (
        _audio(o) if has_audio else _NO_AUDIO
    )
    # Dates: the same string gives the same (shared) datetime.
    created, updated = o["date_created"], o["date_updated"]
    start, end = o["start_time"], o["end_time"]
    date_created = _common_date(created)
    date_updated = date_created if updated == created else _common_date(updated)
    if start is not None:
        start = date_created if start == created else _common_date(start)
    if end is not None:
        end = date_updated if end == updated else _common_date(end)
    price = o["price"]
    if price is not None:
        if type(price) is not float:  # a string or int price is kept raw: general path
            raise TypeError
        price = _PRICES.get(price) or _new_price(price)
    mos = o["audio_in_mos"]
    if mos is not None:
        mos = _MOS.get(mos) or _new_mos(mos)  # TypeError for a list: general path
    subresources = o["subresource_uris"]
    if subresources is not None:
        if type(subresources) is not dict or list(subresources) != _SUBRESOURCE_ORDER:
            raise TypeError
        recordings, notifications = subresources["recordings"], subresources["notifications"]
        if not {type(recordings), type(notifications)} <= _STR_OR_NONE:
            raise TypeError
        subresources = SubresourceUris(recordings, notifications)
    if len(_SHARED) >= _SHARED_MAX:  # a hostile server can't grow it
        _SHARED.clear()
    share = _SHARED.setdefault
    return Call(
        o["sid"],
        share(account_sid, account_sid),
        date_created,
        date_updated,
        share(to, to),
        share(from_, from_),
        _STATUSES.get(status) or status,
        _DIRECTIONS.get(direction) or direction,
        duration,
        uri,
        share(api_version, api_version),
        share(price_unit, price_unit),
        parent_call_sid,
        share(formatted_to, formatted_to),
        formatted_to if to_formatted == formatted_to else share(to_formatted, to_formatted),
        share(formatted_from, formatted_from),
        formatted_from
        if from_formatted == formatted_from
        else share(from_formatted, from_formatted),
        share(phone_number_sid, phone_number_sid),
        start,
        end,
        price,
        share(answered_by, answered_by),
        forwarded_from,
        caller_name,
        subresources,
        annotation,
        group_sid,
        mos,
        sip_result_code,
        rtt_avg,
        rtt_min,
        rtt_max,
        jitter_min,
        jitter_max,
        jitter_avg,
        lost,
        keys,
        {key: o[key] for key in unknown} if unknown else None,
    )


def _fail(data: Mapping[str, Any], sid: str | None) -> DecodeError:
    """Run the detailed structurer to name the fields that are wrong."""
    try:
        _structure_detailed(data, Call)
    except cattrs.ClassValidationError as err:
        messages = transform_error(err, path="$", format_exception=_format_exception)
    except (TypeError, ValueError) as err:  # pragma: no cover - defensive
        messages = [f"{err} @ $"]
    else:  # pragma: no cover - the fast path failed on something the detailed one accepted
        messages = ["invalid call object @ $"]
    first = messages[0]
    field = first.rsplit(" @ ", 1)[-1].replace("$.from_", "$.from")
    text = "; ".join(m.replace("$.from_", "$.from") for m in messages)
    who = f"call {sid}" if sid else "a call"
    return DecodeError(f"Invalid response for {who}: {text}", field=field, sid=sid)


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and exc.args:
        return str(exc.args[0])
    return cattrs.v.format_exception(exc, type_)


def structure_call(data: Any) -> Call:
    """Build a :class:`Call` from a decoded JSON object.

    Raises:
        DecodeError: ``data`` is not an object, lacks a string ``sid``, lacks a
            required field, or has a known field of the wrong type.
    """
    if type(data) is not dict and not isinstance(data, Mapping):  # the ABC check is slower
        raise DecodeError(f"Expected a JSON object for a call, got {_describe(data)}")
    sid = data.get("sid")
    if type(sid) is not str:
        raise DecodeError(
            f"Invalid response: the call has no string 'sid' (got {_describe(sid)})",
            field="$.sid",
        )
    shape = _KEYS_CACHE.get(tuple(data))
    keys, unknown, has_audio = shape if shape is not None else _shape(data)
    try:
        return _structure_common(data, keys, unknown, has_audio)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        pass  # not the common form: the general path decides, and explains
    return _structure_general(data, sid, keys, unknown)


def _structure_general(
    data: Mapping[str, Any], sid: str, keys: tuple[str, ...], unknown: tuple[str, ...]
) -> Call:
    """Structure any form the API may send, through cattrs; word the error if it fails."""
    try:
        call = _structure_fast(data, Call)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        raise _fail(data, sid) from None
    raw = _inexact(data, call)
    if unknown:
        raw = raw or {}
        for key in unknown:
            raw[key] = data[key]
    object.__setattr__(call, "_keys", keys)
    if raw:
        object.__setattr__(call, "_raw", raw)
    return call


def _render(call: Call, key: str) -> Any:  # noqa: PLR0911 - one return per wire form
    value = getattr(call, _ATTR[key])
    if value is None:
        return None
    if key in _DATE_KEYS:
        return format_date(value)
    if key == "price":
        return float(value)
    if key == "audio_in_mos":
        return repr(value)
    if key == "subresource_uris":
        return {"notifications": value.notifications, "recordings": value.recordings}
    if key in ("status", "direction"):
        return str(value)
    return value


def unstructure_call(call: Call) -> dict[str, Any]:
    """Return ``call`` in the API's JSON shape, with exactly the keys it was built from."""
    keys = call._keys if call._keys is not None else WIRE_ORDER  # noqa: SLF001
    raw = call._raw or {}  # noqa: SLF001
    return {key: raw[key] if key in raw else _render(call, key) for key in keys}


def extra_keys(call: Call) -> Mapping[str, Any]:
    """Return the keys of ``call``'s response that this library does not model."""
    raw = call._raw or {}  # noqa: SLF001
    return {key: value for key, value in raw.items() if key not in _KNOWN}


converter.register_structure_hook(Call, lambda data, _: structure_call(data))
converter.register_unstructure_hook(Call, unstructure_call)
