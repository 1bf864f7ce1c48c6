"""The cattrs side of the wire form: :func:`make_converter` and :class:`CallWire`.

Where the published spec and the live service disagree (API-NOTES §7), this
accepts both: a string or numeric MOS, a string or integer SIP code, directions
and statuses the enums do not know yet, missing newer fields, unknown extra keys.
Whatever the typed fields cannot reproduce exactly (a string MOS such as
``"4.40"``, a date with a non-UTC offset, an unknown key) is kept aside, so that
``to_dict()`` gives back exactly what the API sent.

cattrs decides structuring: :func:`make_converter` registers a strict hook per
field type (``_hooks.py``) and generates the :class:`~signalwire_calls.Call`
structurer from them (``make_dict_structure_fn``), in a fast variant and a
detailed one that names the wrong fields. The form the service usually sends
takes the measured fast path (``_fastpath.py``) first; anything else, or
anything the fast path refuses, goes through the generated structurer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import transform_error

from signalwire_calls._errors import DecodeError
from signalwire_calls._models import (
    Call,
    CallDirection,
    CallStatus,
    SubresourceUris,
    UnknownValue,
)
from signalwire_calls._wire import _hooks
from signalwire_calls._wire._dates import format_date, parse_date_fast
from signalwire_calls._wire._fastpath import structure_common
from signalwire_calls._wire._keys import (
    ATTRIBUTE_OF,
    AUDIO_KEYS,
    DATE_KEYS,
    KNOWN_KEYS,
    SERVICE_KEYS,
    SUBRESOURCE_ORDER,
    WIRE_ORDER,
)

__all__ = ["CallWire", "make_converter", "shape"]

#: The hook for each field type of Call (the default cattrs hooks would coerce).
_HOOKS: Final[tuple[tuple[Any, Callable[[Any, Any], Any]], ...]] = (
    (str, _hooks.string),
    (str | None, _hooks.opt_str),
    (datetime, _hooks.date),
    (datetime | None, _hooks.opt_date),
    (int, _hooks.integer),
    (float | None, _hooks.opt_number),
    (Decimal | None, _hooks.opt_decimal),
    (CallStatus | UnknownValue, _hooks.status),
    (CallDirection | UnknownValue, _hooks.direction),
    (SubresourceUris | None, _hooks.opt_subresources),
)
#: Errors that mean "not this form" inside a structurer (never shown to a user).
_NOT_THIS_FORM: Final = (TypeError, ValueError, KeyError, AttributeError, OverflowError)

#: Interned key tuples (with their unknown keys): a bulk job's calls share one.
_Shape = tuple[tuple[str, ...], tuple[str, ...], bool]
_KEYS_CACHE: dict[tuple[str, ...], _Shape] = {}
_KEYS_CACHE_MAX: Final = 512
_AUDIO: Final = frozenset(AUDIO_KEYS)


def make_converter() -> cattrs.Converter:
    """Return a new cattrs converter that structures and unstructures :class:`Call`.

    ``converter.structure(data, Call)`` takes the fast path for the service's usual
    form and the generated structurer for any other, and raises
    :class:`~signalwire_calls.DecodeError` naming the wrong fields;
    ``converter.unstructure(call)`` gives back the received JSON exactly.
    """
    return CallWire().converter


class CallWire:
    """Calls from and to the API's JSON, through one converter of its own.

    This is the ``Call._wire`` the models call for ``from_dict``/``to_dict``/``extra``,
    and what the requester structures every response with.
    """

    __slots__ = ("_detailed", "_fast", "converter")

    def __init__(self) -> None:
        converter = cattrs.Converter(forbid_extra_keys=False)
        for type_, hook in _HOOKS:
            converter.register_structure_hook(type_, hook)
        self._fast = self._generate(converter, detailed=False)
        self._detailed = self._generate(converter, detailed=True)
        converter.register_structure_hook(Call, lambda data, _: self.structure(data))
        converter.register_unstructure_hook(Call, self.unstructure)
        self.converter: Final = converter

    @staticmethod
    def _generate(
        converter: cattrs.Converter, *, detailed: bool
    ) -> Callable[[Mapping[str, Any], Any], Call]:
        return make_dict_structure_fn(
            Call,
            converter,
            _cattrs_detailed_validation=detailed,
            from_=override(rename="from"),
            sip_result_code=override(struct_hook=_hooks.opt_code),
            account_sid=override(struct_hook=_hooks.intern),
            api_version=override(struct_hook=_hooks.intern),
            _keys=override(omit=True),
            _raw=override(omit=True),
        )

    def structure(self, data: Any) -> Call:
        """Build a :class:`Call` from a decoded JSON object.

        Raises:
            DecodeError: ``data`` is not an object, lacks a string ``sid``, lacks a
                required field, or has a known field of the wrong type.
        """
        if type(data) is not dict and not isinstance(data, Mapping):  # the ABC check is slower
            raise DecodeError(f"Expected a JSON object for a call, got {_hooks.describe(data)}")
        sid = data.get("sid")
        if type(sid) is not str:
            raise DecodeError(
                f"Invalid response: the call has no string 'sid' (got {_hooks.describe(sid)})",
                field="$.sid",
            )
        cached = _KEYS_CACHE.get(tuple(data))
        keys, unknown, has_audio = cached if cached is not None else shape(data)
        try:
            return structure_common(data, keys, unknown, has_audio)
        except _NOT_THIS_FORM:
            pass  # not the common form: the generated structurer decides, and explains
        return self.structure_general(data, sid, keys, unknown)

    def structure_general(
        self, data: Mapping[str, Any], sid: str, keys: tuple[str, ...], unknown: tuple[str, ...]
    ) -> Call:
        """Structure any form the API may send through cattrs; word the error if it fails.

        What :meth:`structure` does when the fast path refuses a body; the tests
        pin the two to the same results.
        """
        try:
            call = self._fast(data, Call)
        except _NOT_THIS_FORM:
            raise self._fail(data, sid) from None
        raw = _inexact(data, call)
        if unknown:
            raw = raw or {}
            for key in unknown:
                raw[key] = data[key]
        object.__setattr__(call, "_keys", keys)
        if raw:
            object.__setattr__(call, "_raw", raw)
        return call

    def structure_page(self, data: Any) -> tuple[list[Call], str | None]:
        """Return the calls of a List Calls page and its ``next_page_uri`` (API-NOTES §4.2).

        Raises:
            DecodeError: The page is not an object with a ``calls`` list, its
                ``next_page_uri`` is not a string or null, or a call is invalid
                (``field`` then starts with ``$.calls[i]``).
        """
        if not isinstance(data, dict) or not isinstance(data.get("calls"), list):
            raise DecodeError(
                "Invalid List Calls page: expected an object with a 'calls' list",
                field="$.calls",
            )
        next_uri = data.get("next_page_uri")
        if next_uri is not None and not isinstance(next_uri, str):
            raise DecodeError(
                f"Invalid List Calls page: next_page_uri is {type(next_uri).__name__}",
                field="$.next_page_uri",
            )
        calls = []
        structure = self.structure
        for index, item in enumerate(data["calls"]):
            try:
                calls.append(structure(item))
            except DecodeError as err:
                err.field = f"$.calls[{index}]{err.field[1:]}"
                raise
        return calls, next_uri

    def unstructure(self, call: Call) -> dict[str, Any]:
        """Return ``call`` in the API's JSON shape, with exactly the keys it was built from."""
        keys = call._keys if call._keys is not None else WIRE_ORDER  # noqa: SLF001
        raw = call._raw or {}  # noqa: SLF001
        return {key: raw[key] if key in raw else _render(call, key) for key in keys}

    def extra_keys(self, call: Call) -> Mapping[str, Any]:
        """Return the keys of ``call``'s response that this library does not model."""
        raw = call._raw or {}  # noqa: SLF001
        return {key: value for key, value in raw.items() if key not in KNOWN_KEYS}

    def _fail(self, data: Mapping[str, Any], sid: str | None) -> DecodeError:
        """Run the detailed structurer to name the fields that are wrong."""
        try:
            self._detailed(data, Call)
        except cattrs.ClassValidationError as err:
            messages = transform_error(err, path="$", format_exception=_format_exception)
        except (TypeError, ValueError) as err:  # pragma: no cover - defensive
            messages = [f"{err} @ $"]
        else:  # pragma: no cover - the fast variant failed on what the detailed one took
            messages = ["invalid call object @ $"]
        first = messages[0]
        field = first.rsplit(" @ ", 1)[-1].replace("$.from_", "$.from")
        text = "; ".join(m.replace("$.from_", "$.from") for m in messages)
        who = f"call {sid}" if sid else "a call"
        return DecodeError(f"Invalid response for {who}: {text}", field=field, sid=sid)


def shape(data: Mapping[str, Any]) -> _Shape:
    """Return the body's keys, the unknown ones, and whether it has any audio key."""
    keys = tuple(data)
    cached = _KEYS_CACHE.get(keys)
    if cached is None:
        unknown = tuple(k for k in keys if k not in KNOWN_KEYS)
        # The fast pass tells the service's own shape by identity. The cache stays
        # keyed by the body's own key strings: the decoder hands out the same
        # objects again, so a lookup compares them by identity, not by content.
        shape_keys = SERVICE_KEYS if keys == SERVICE_KEYS else keys
        cached = (shape_keys, unknown, not _AUDIO.isdisjoint(keys))
        if len(_KEYS_CACHE) < _KEYS_CACHE_MAX:  # bounded: a hostile server can't grow it
            _KEYS_CACHE[keys] = cached
    return cached


def _inexact(data: Mapping[str, Any], call: Call) -> dict[str, Any] | None:
    """Return the received values that the typed fields would not write back identically."""
    raw: dict[str, Any] | None = None
    for key in DATE_KEYS:
        value = data.get(key)
        if value is not None and parse_date_fast(value) is None:
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
    for key in AUDIO_KEYS:
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
    return list(value) != SUBRESOURCE_ORDER


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and exc.args:
        return str(exc.args[0])
    return cattrs.v.format_exception(exc, type_)


def _render(call: Call, key: str) -> Any:  # noqa: PLR0911 - one return per wire form
    value = getattr(call, ATTRIBUTE_OF[key])
    if value is None:
        return None
    if key in DATE_KEYS:
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
