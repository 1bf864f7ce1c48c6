"""A call's wire form: its keys in order, and a strict structure hook per field type.

The keys are those of real responses (API-NOTES §2.1). The hooks are the ones the
private cattrs converter (:mod:`signalwire_calls._converter`) is built from; the
status and direction tables are shared with the fast path.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from signalwire_calls._dates import parse_date
from signalwire_calls._models import CallDirection, CallStatus, SubresourceUris

__all__ = ["SERVICE_KEYS", "WIRE_ORDER"]

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
#: The keys the service sends today, in its order (the rest are the audio keys).
SERVICE_KEYS: Final = WIRE_ORDER[:29]
_KNOWN: Final = frozenset(WIRE_ORDER)
_ATTR: Final = {key: ("from_" if key == "from" else key) for key in WIRE_ORDER}
_DATE_KEYS: Final = ("date_created", "date_updated", "start_time", "end_time")
_NUMBER_KEYS: Final = (
    "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max", "audio_out_jitter_min",
    "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip
_SUBRESOURCE_ORDER: Final = ["notifications", "recordings"]


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
