"""Argument checks shared across the package: one SID rule, one rule for counts."""

from __future__ import annotations

import re
import uuid
from typing import Final

__all__ = ["check_count", "check_sid", "sid_bytes"]

_SID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_EXAMPLE: Final = "82e7850d-054e-4067-8c4f-6568acd96575"


def check_sid(sid: object, what: str = "call SID") -> str:
    """Return ``sid`` in the API's form (lower-case hyphenated) if it is a SID, else raise.

    A SID is a UUID: a :class:`uuid.UUID`, or its canonical hyphenated text in
    either case (SignalWire SIDs have no ``CA`` prefix, unlike Twilio's). The one
    rule for every SID the package takes: lookups, bulk jobs (so SIDs that differ
    only in case are fetched once) and the ``parent_call_sid`` filter. Checking
    before any I/O also means that nothing a caller passes can change a request's
    path or query.

    Args:
        sid: The value to check.
        what: What the value is, for the message (``"parent_call_sid"``).

    Raises:
        ValueError: ``sid`` is not a UUID; the message shows it and an example.
    """
    if type(sid) is str and _SID(sid):  # the hot path of a bulk job: no isinstance()
        return sid.lower()
    if isinstance(sid, str) and _SID(sid):
        return str(sid).lower()
    if isinstance(sid, uuid.UUID):
        return str(sid)
    shown = repr(sid)
    if len(shown) > 60:  # noqa: PLR2004
        shown = shown[:57] + "..."
    raise ValueError(
        f"Invalid {what} {shown}: expected a UUID such as '{_EXAMPLE}' "
        "(SignalWire SIDs have no 'CA' prefix)"
    )


def sid_bytes(sid: str) -> bytes:
    """Return the 16 bytes of a SID that :func:`check_sid` returned (a compact, exact key)."""
    return bytes.fromhex(sid.replace("-", ""))


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer of at least ``minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
