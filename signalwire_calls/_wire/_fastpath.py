"""The fast path: structure a call in the form the service sends, in one flat pass.

The service sends one form of every field (API-NOTES §2.1): canonical dates, an
int duration, a float price, a string MOS. For that form, one hand-written pass
gives exactly what the cattrs structurer plus the ``inexact`` check give, in a
fraction of the time (docs/performance.md); any other form raises and takes
the general path (``_converter.py``), which also words the errors. Values that
repeat across a job's calls (the project id, own numbers, per-minute prices)
share one object; every sharing table is bounded, so a hostile server cannot
grow it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from signalwire_calls._models import (
    Call,
    CallDirection,
    UnknownValue,
    build_call,
    build_subresource_uris,
)
from signalwire_calls._wire._dates import parse_date_fast
from signalwire_calls._wire._keys import AUDIO_KEYS, DIRECTIONS, SERVICE_KEYS, STATUSES

__all__ = ["structure_common"]

_SHARED_MAX: Final = 4096
_SHARED: dict[Any, Any] = {}
_PRICES: dict[float, Decimal] = {}
_MOS: dict[str, float] = {}
#: "Tue, 29 Jan 2019" -> that midnight (UTC); " 14:09" and ":27 +0000" -> timedeltas.
_DAY_CACHE: dict[str, datetime] = {}
_HM_CACHE: dict[str, timedelta] = {}
_SECOND_CACHE: dict[str, timedelta] = {}
#: The service's keys in its order, from a dict that has them in another.
_service_values: Final = operator.itemgetter(*SERVICE_KEYS)
_INBOUND: Final = CallDirection.INBOUND
_NO_AUDIO: Final[tuple[float | None, ...]] = (None,) * len(AUDIO_KEYS)


def _common_date(value: Any) -> datetime:
    """Parse a canonical date (``"Tue, 29 Jan 2019 14:09:27 +0000"``), else raise.

    The three parts ("Tue, 29 Jan 2019", " 14:09", ":27 +0000") come from small
    caches of parts already validated by :func:`parse_date_fast`, as that day's
    midnight (UTC) and two timedeltas: three lookups and two additions, a third
    faster than building the datetime from cached numbers.
    """
    day = _DAY_CACHE.get(value[:16])  # TypeError for a non-string: the general path
    hm = _HM_CACHE.get(value[16:22])
    second = _SECOND_CACHE.get(value[22:])
    if day is None or hm is None or second is None:
        return _learn_date(value)
    return day + hm + second


def _learn_date(value: str) -> datetime:
    dt = parse_date_fast(value)
    if dt is None:
        raise ValueError(value)
    if value[17:19].isdigit() and value[20:22].isdigit() and value[23:25].isdigit():
        if len(_DAY_CACHE) >= _SHARED_MAX:
            _DAY_CACHE.clear()
        _DAY_CACHE[value[:16]] = dt.replace(hour=0, minute=0, second=0)
        _HM_CACHE[value[16:22]] = timedelta(hours=dt.hour, minutes=dt.minute)  # <= 24 * 60
        _SECOND_CACHE[value[22:]] = timedelta(seconds=dt.second)  # at most 60 entries
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
    audio = tuple(get(key) for key in AUDIO_KEYS)
    # Numbers: an int or a finite float (x - x is NaN for an infinity or a NaN).
    for number in audio:
        if number is not None and not (
            (type(number) is float or type(number) is int) and number - number == 0
        ):
            raise TypeError
    return audio


def structure_common(  # noqa: C901, PLR0912 - one flat pass is the point
    o: Mapping[str, Any], keys: tuple[str, ...], unknown: tuple[str, ...], has_audio: bool
) -> Call:
    """Structure a call in the form the service sends.

    Written flat, with the type checks inline rather than one helper per field:
    in the request loop every Python call costs about twice what it costs in
    isolation (docs/performance.md).

    Raises:
        TypeError, ValueError, KeyError: Not the common form (never shown to a user).
    """
    # Every key the service sends today, in one step: straight from the dict when
    # it has exactly those keys in the service's order, else by key (an older
    # record without one raises KeyError and takes the general path, which allows it).
    (
        sid, created, updated, parent_call_sid, account_sid, to, formatted_to, to_formatted,
        from_, formatted_from, from_formatted, phone_number_sid, status, start, end, duration,
        price, price_unit, direction, answered_by, api_version, forwarded_from, caller_name,
        uri, subresources, annotation, group_sid, mos, sip_result_code,
    ) = o.values() if keys is SERVICE_KEYS else _service_values(o)  # fmt: skip
    # Unrolled on purpose: one map(type, ...) with issuperset() measured 8,000
    # instructions against 5,100 for these (docs/performance.md).
    if not (
        type(account_sid) is type(to) is type(from_) is type(uri) is str
        and type(status) is type(direction) is type(api_version) is str
        and type(duration) is int
        and (price_unit is None or type(price_unit) is str)
        and (parent_call_sid is None or type(parent_call_sid) is str)
        and (formatted_to is None or type(formatted_to) is str)
        and (to_formatted is None or type(to_formatted) is str)
        and (formatted_from is None or type(formatted_from) is str)
        and (from_formatted is None or type(from_formatted) is str)
        and (phone_number_sid is None or type(phone_number_sid) is str)
        and (answered_by is None or type(answered_by) is str)
        and (forwarded_from is None or type(forwarded_from) is str)
        and (caller_name is None or type(caller_name) is str)
        and (annotation is None or type(annotation) is str)
        and (group_sid is None or type(group_sid) is str)
        and (sip_result_code is None or type(sip_result_code) is str)
    ):
        raise TypeError
    # The audio_rtt_*/audio_out_* keys: never seen so far (API-NOTES §2.1).
    rtt_avg, rtt_min, rtt_max, jitter_min, jitter_max, jitter_avg, lost = (
        _audio(o) if has_audio else _NO_AUDIO
    )
    # Dates: the same string gives the same (shared) datetime.
    date_created = _common_date(created)
    date_updated = date_created if updated == created else _common_date(updated)
    if start is not None:
        start = date_created if start == created else _common_date(start)
    if end is not None:
        end = date_updated if end == updated else _common_date(end)
    if price is not None:
        if type(price) is not float:  # a string or int price is kept raw: general path
            raise TypeError
        price = _PRICES.get(price) or _new_price(price)
    if mos is not None:
        mos = _MOS.get(mos) or _new_mos(mos)  # TypeError for a list: general path
    if subresources is not None:
        if type(subresources) is not dict:
            raise TypeError
        (first, notifications), (second, recordings) = subresources.items()
        if (
            first != "notifications"
            or second != "recordings"
            or not (notifications is None or type(notifications) is str)
            or not (recordings is None or type(recordings) is str)
        ):
            raise TypeError
        subresources = build_subresource_uris(recordings, notifications)
    if len(_SHARED) >= _SHARED_MAX:  # a hostile server can't grow it
        _SHARED.clear()
    share = _SHARED.setdefault
    # Shared: what every call of a project repeats, and the project's own number
    # (the "to" of an inbound call, the "from" of an outbound one); the other
    # party's number is usually new, and sharing it would only fill the table.
    direction = DIRECTIONS.get(direction) or UnknownValue(direction)
    if direction is _INBOUND:
        to = share(to, to)
        formatted_to = share(formatted_to, formatted_to)
    else:
        from_ = share(from_, from_)
        formatted_from = share(formatted_from, formatted_from)
    if answered_by is not None:
        answered_by = share(answered_by, answered_by)
    return build_call(  # Call(...), positionally, about four times faster
        sid,
        share(account_sid, account_sid),
        date_created,
        date_updated,
        to,
        from_,
        STATUSES.get(status) or UnknownValue(status),
        direction,
        duration,
        uri,
        share(api_version, api_version),
        share(price_unit, price_unit),
        parent_call_sid,
        formatted_to,
        formatted_to if to_formatted == formatted_to else to_formatted,
        formatted_from,
        formatted_from if from_formatted == formatted_from else from_formatted,
        share(phone_number_sid, phone_number_sid),
        start,
        end,
        price,
        answered_by,
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
