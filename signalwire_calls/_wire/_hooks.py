"""Strict structure hooks, one per field type of :class:`~signalwire_calls.Call`.

The default cattrs hooks coerce (``str(5) == "5"``), which would hide a malformed
body; each of these takes only what the API may send (API-NOTES §2.1, §7) and
raises ``TypeError``/``ValueError`` with a message meant for the user.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from signalwire_calls._models import CallDirection, CallStatus, SubresourceUris, UnknownValue
from signalwire_calls._wire._dates import parse_date
from signalwire_calls._wire._keys import DIRECTIONS, STATUSES

__all__ = [
    "date",
    "describe",
    "direction",
    "integer",
    "intern",
    "opt_code",
    "opt_date",
    "opt_decimal",
    "opt_number",
    "opt_str",
    "opt_subresources",
    "status",
    "string",
]


def describe(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a hostile body can nest deeper than repr() can go
        text = f"<{type(value).__name__} nested too deeply to show>"
    if len(text) > 60:  # noqa: PLR2004
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def string(value: Any, _: object = None) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {describe(value)}")


def opt_str(value: Any, _: object = None) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string or null, got {describe(value)}")


def date(value: Any, _: object = None) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an RFC 2822 date string, got {describe(value)}")
    return parse_date(value)


def opt_date(value: Any, _: object = None) -> datetime | None:
    return None if value is None else date(value)


def integer(value: Any, _: object = None) -> int:
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is float and value.is_integer():
        return int(value)
    if kind is str and value.strip().lstrip("-").isdigit():  # Twilio sends "22"
        return int(value)
    raise TypeError(f"expected an integer, got {describe(value)}")


def _number(value: Any) -> float:
    kind = type(value)
    if kind is int or kind is float:
        result = float(value)
    elif kind is str:  # the service sends MOS as "4.5" (API-NOTES §2.1 #28)
        try:
            result = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {describe(value)}") from None
    else:
        raise TypeError(f"expected a number, got {describe(value)}")
    if not math.isfinite(result):
        raise ValueError(f"expected a finite number, got {describe(value)}")
    return value if kind is int else result


def opt_number(value: Any, _: object = None) -> float | None:
    return None if value is None else _number(value)


def opt_decimal(value: Any, _: object = None) -> Decimal | None:
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is int or kind is str:
        _number(value)  # rejects bools, NaN and infinities with a clear message
        try:
            return Decimal(repr(value) if kind is float else value if kind is str else int(value))
        except InvalidOperation:
            raise ValueError(f"expected a price, got {describe(value)}") from None
    raise TypeError(f"expected a number, got {describe(value)}")


def opt_code(value: Any, _: object = None) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is int:  # the webhook sends "200"; some scripts compare with 500
        return str(value)
    raise TypeError(f"expected a string or null, got {describe(value)}")


def status(value: Any, _: object = None) -> CallStatus | UnknownValue:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {describe(value)}")
    # A status SignalWire adds later stays verbatim, typed as such.
    return STATUSES.get(value) or UnknownValue(value)


def direction(value: Any, _: object = None) -> CallDirection | UnknownValue:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {describe(value)}")
    return DIRECTIONS.get(value) or UnknownValue(value)


def intern(value: Any, _: object = None) -> str:
    # Project id, price unit and API version repeat on every call of a job.
    return sys.intern(string(value))


def opt_subresources(value: Any, _: object = None) -> SubresourceUris | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {describe(value)}")
    return SubresourceUris(
        recordings=opt_str(value.get("recordings")),
        notifications=opt_str(value.get("notifications")),
    )
