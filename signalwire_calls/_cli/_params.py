"""Click callbacks that parse and check flag values, with one-line errors (exit 2)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, date, datetime, time

import click

from signalwire_calls._checks import check_sid
from signalwire_calls._cli._common import CliError
from signalwire_calls._cli._output import FIELDS

__all__ = ["bad_value", "fields_option", "sid_option", "when_option", "whole_option"]


def bad_value(param: click.Parameter, message: str) -> CliError:
    """Return a bad flag value's error: one line and exit 2 (click's own take four lines)."""
    return CliError(f"{max(param.opts, key=len)}: {message}")


def when_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Parse an ISO 8601 date or time; no offset means UTC, a date means its midnight UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:  # noqa: PLR2004 - YYYY-MM-DD
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise bad_value(param, f"{value!r}: expected 2026-10-01 or 2026-10-01T14:30:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def whole_option(
    low: int, high: int | None = None
) -> Callable[[click.Context, click.Parameter, str | None], int | None]:
    """Return a callback that parses a whole number from ``low`` to ``high``."""

    def convert(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        with contextlib.suppress(ValueError):
            number = int(value)
            if number >= low and (high is None or number <= high):
                return number
        span = f"at least {low}" if high is None else f"from {low} to {high}"
        raise bad_value(param, f"expected a whole number {span}, got {value!r}")

    return convert


def sid_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check a call SID flag."""
    if value is None:
        return None
    try:
        return check_sid(value.strip())
    except ValueError:
        raise bad_value(param, f"{value!r} is not a call SID (expected a UUID)") from None


def fields_option(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...]:
    """Parse ``--fields sid,status,...``: the API's keys, checked, in the order given."""
    if not value:
        return ()
    fields = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in fields if name not in FIELDS]
    if unknown:
        raise bad_value(
            param,
            f"unknown field {', '.join(map(repr, unknown))}; the fields are {', '.join(FIELDS)}",
        )
    return fields
