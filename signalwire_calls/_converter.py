"""The private cattrs converter: API JSON objects to :class:`Call` and back.

Where the published spec and the live service disagree (API-NOTES §7), this
accepts both: a string or numeric MOS, a string or integer SIP code, directions
and statuses the enums do not know yet, missing newer fields, unknown extra keys.
Whatever the typed fields cannot reproduce exactly (a string MOS such as
``"4.40"``, a date with a non-UTC offset, an unknown key) is kept aside, so that
``to_dict()`` gives back exactly what the API sent.

Structuring is built by cattrs (``make_dict_structure_fn``) from strict per-type
hooks (:mod:`signalwire_calls._wire`). The fast variant runs without detailed
validation; only when it fails is the body run again through a detailed one, to
say which field is wrong. The form the service usually sends skips cattrs
altogether (:mod:`signalwire_calls._fastpath`); dates are
:mod:`signalwire_calls._dates`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import transform_error

from signalwire_calls._dates import _parse_date_fast, format_date, parse_date
from signalwire_calls._errors import DecodeError
from signalwire_calls._fastpath import _structure_common
from signalwire_calls._models import Call, CallDirection, CallStatus, SubresourceUris
from signalwire_calls._wire import (
    _ATTR,
    _DATE_KEYS,
    _KNOWN,
    _NUMBER_KEYS,
    _SUBRESOURCE_ORDER,
    SERVICE_KEYS,
    WIRE_ORDER,
    _date,
    _describe,
    _direction,
    _int,
    _intern,
    _opt_code,
    _opt_date,
    _opt_decimal,
    _opt_number,
    _opt_str,
    _opt_subresources,
    _status,
    _str,
)

__all__ = [
    "converter",
    "extra_keys",
    "format_date",
    "parse_date",
    "structure_call",
    "unstructure_call",
]

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

#: Interned key tuples (with their unknown keys): a bulk job's calls share one.
_Shape = tuple[tuple[str, ...], tuple[str, ...], bool]
_KEYS_CACHE: dict[tuple[str, ...], _Shape] = {}
_KEYS_CACHE_MAX: Final = 512
_AUDIO_KEYS: Final = frozenset(_NUMBER_KEYS)


def _shape(data: Mapping[str, Any]) -> _Shape:
    """Return the body's keys, the unknown ones, and whether it has any audio key."""
    keys = tuple(data)
    cached = _KEYS_CACHE.get(keys)
    if cached is None:
        unknown = tuple(k for k in keys if k not in _KNOWN)
        # The fast pass tells the service's own shape by identity. The cache stays
        # keyed by the body's own key strings: the decoder hands out the same
        # objects again, so a lookup compares them by identity, not by content.
        shape_keys = SERVICE_KEYS if keys == SERVICE_KEYS else keys
        cached = (shape_keys, unknown, not _AUDIO_KEYS.isdisjoint(keys))
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
