"""The List Calls query: check the filters and encode them (API-NOTES §4.1).

Also the argument checks that paging and time windows share.
"""

from __future__ import annotations

import email.utils
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from urllib.parse import quote, urlencode

from signalwire_calls._checks import check_sid
from signalwire_calls._models import CallStatus

__all__ = [
    "MAX_PAGE_SIZE",
    "as_utc",
    "build_list_query",
    "check_limit",
    "encode_query",
    "format_api_datetime",
    "is_control",
]

#: The largest ``PageSize`` the API accepts (larger gives error 54454).
MAX_PAGE_SIZE = 1000
_STATUSES = tuple(status.value for status in CallStatus)


def build_list_query(
    *,
    status: CallStatus | str | None = None,
    to: str | None = None,
    from_: str | None = None,
    parent_call_sid: str | uuid.UUID | None = None,
    started_after: datetime | date | None = None,
    started_before: datetime | date | None = None,
    ended_after: datetime | date | None = None,
    ended_before: datetime | date | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> list[tuple[str, str]]:
    """Check the List Calls filters and return them as the API's query pairs.

    Everything is validated here, before any request. Times go out as RFC 2822 in
    UTC (``Wed, 19 Sep 2018 20:00:00 +0000``), the format the API documents;
    sub-second parts are dropped because the API compares whole seconds. A
    :class:`~datetime.date` means midnight UTC. ``started_after`` maps to
    ``StartTime>`` and ``started_before`` to ``StartTime<``; the service may treat
    both bounds as inclusive (Twilio's ``StartTime>=`` means "on or after").

    Args:
        status: One of the :class:`~signalwire_calls.CallStatus` values.
        to: The called number or SIP address, exactly as the API stores it.
        from_: The calling number or SIP address.
        parent_call_sid: Only the child legs of this call.
        started_after: Only calls that started at or after this time.
        started_before: Only calls that started before (or at) this time.
        ended_after: Only calls that ended at or after this time.
        ended_before: Only calls that ended before (or at) this time.
        page_size: Calls per page, 1 to 1000.

    Returns:
        ``(name, value)`` pairs, unencoded; pass them to :func:`encode_query`.

    Raises:
        TypeError: A filter has the wrong type.
        ValueError: A filter has a bad value; the message names the argument.
    """
    pairs: list[tuple[str, str]] = []
    if to is not None:
        pairs.append(("To", _check_address("to", to)))
    if from_ is not None:
        pairs.append(("From", _check_address("from_", from_)))
    if status is not None:
        if not isinstance(status, str) or status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}; got {status!r}")
        pairs.append(("Status", str(status)))
    if parent_call_sid is not None:
        pairs.append(("ParentCallSid", check_sid(parent_call_sid, "parent_call_sid")))
    pairs += _range_pairs("StartTime", "started", started_after, started_before)
    pairs += _range_pairs("EndTime", "ended", ended_after, ended_before)
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, got {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    pairs.append(("PageSize", str(page_size)))
    return pairs


def _range_pairs(
    param: str, verb: str, after: datetime | date | None, before: datetime | date | None
) -> list[tuple[str, str]]:
    low = None if after is None else as_utc(f"{verb}_after", after)
    high = None if before is None else as_utc(f"{verb}_before", before)
    if low is not None and high is not None and low > high:
        raise ValueError(f"{verb}_after ({low}) is later than {verb}_before ({high})")
    pairs = [] if low is None else [(f"{param}>", format_api_datetime(low))]
    if high is not None:
        pairs.append((f"{param}<", format_api_datetime(high)))
    return pairs


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Percent-encode query pairs, names included (``StartTime>`` → ``StartTime%3E``).

    Nothing is left for a later layer to re-encode: ``+`` becomes ``%2B`` (a raw
    ``+`` would reach the server as a space) and spaces become ``%20``. Send the
    result with ``yarl.URL(url, encoded=True)``.
    """
    return urlencode(pairs, quote_via=quote, safe="")


def format_api_datetime(value: datetime | date) -> str:
    """Format a time as the API's RFC 2822 GMT form, e.g. ``Wed, 19 Sep 2018 20:00:00 +0000``.

    Raises:
        ValueError: ``value`` is a naive datetime.
    """
    moment = as_utc("value", value).replace(microsecond=0)
    return email.utils.format_datetime(moment)


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")


def as_utc(name: str, value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{name} is a naive datetime ({value.isoformat()}); attach a time zone, "
                "e.g. datetime(..., tzinfo=datetime.UTC), so it is not misread"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise TypeError(f"{name} must be an aware datetime or a date, got {value!r}")


def _check_address(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str such as '+15551234567', got {value!r}")
    if not value or value != value.strip():
        raise ValueError(f"{name} must be non-empty with no surrounding spaces, got {value!r}")
    if any(is_control(char) for char in value):
        raise ValueError(f"{name} must not contain control characters, got {value!r}")
    return value


def is_control(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}
