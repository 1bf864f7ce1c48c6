"""API dates: RFC 2822 in any of its forms to an aware UTC datetime, and back.

The service always sends one form, ``Tue, 29 Jan 2019 14:09:27 +0000``: that one
is parsed by slicing (:func:`parse_date_fast`), anything else through
:func:`email.utils.parsedate_to_datetime` and, leniently, ISO 8601.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Final

__all__ = ["format_date", "parse_date", "parse_date_fast"]

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_MONTHS: Final = {name: i for i, name in enumerate(_MONTH_NAMES, 1)}
_CANONICAL_DATE_LEN: Final = 31  # len("Tue, 29 Jan 2019 14:09:27 +0000")


def parse_date_fast(value: str) -> datetime | None:
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
    dt = parse_date_fast(value)
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
