"""Deterministic, realistic call records for the emulator in :mod:`signalwire_calls.testing`.

Everything here is shaped after what the real service sends (``API-NOTES.md`` §2, §6.2),
not after the documentation's idealised examples: dash-formatted NANP numbers, ``uri``
without ``.json``, directions ``inbound``/``outbound-api``/``outbound-dial``, ``duration``
as an int that includes ring time, ``price`` as a JSON number or null, ``audio_in_mos``
as a string, and older records that lack the newest keys entirely. The mix of
directions, statuses and prices follows the one real recorded page (2019, 50 calls).

Nothing reads the wall clock: the newest call is dated ``now`` (a fixed default), and
every value comes from a :class:`random.Random` seeded by the caller.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "DEFAULT_NOW",
    "EXAMPLE_CALL",
    "EXAMPLE_SID",
    "KEY_ORDER",
    "MISSING_SID",
    "CallFactory",
    "dump_json",
    "format_number",
    "identity",
    "parse_when",
    "rfc2822",
]

#: The date of the newest generated call unless the caller gives ``now``.
DEFAULT_NOW = datetime(2026, 10, 12, 18, 0, 0, tzinfo=UTC)
#: The documented path prefix; the official SDKs use ``/2010-04-01`` alone (API-NOTES §1).
LAML_PREFIX = "/api/laml/2010-04-01"
#: The SID of the call the documentation retrieves (``FakeSignalWire.add_example_call``).
EXAMPLE_SID = "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21"
#: A well-formed SID that no emulator holds: the docs' example of a missing call.
MISSING_SID = "00000000-0000-4000-8000-000000000000"
#: The documented call, as the real service shapes one (``audio_in_mos`` a string).
EXAMPLE_CALL: dict[str, object] = {
    "sid": EXAMPLE_SID,
    "status": "completed",
    "direction": "inbound",
    "to": "+15125550143",
    "from_": "+17375550188",
    "date_created": datetime(2026, 10, 12, 14, 3, 11, tzinfo=UTC),
    "date_updated": datetime(2026, 10, 12, 14, 5, 2, tzinfo=UTC),
    "start_time": datetime(2026, 10, 12, 14, 3, 12, tzinfo=UTC),
    "end_time": datetime(2026, 10, 12, 14, 4, 58, tzinfo=UTC),
    "duration": 106,
    "price": 0.0106,
    "audio_in_mos": "4.4",
}

#: Wire order of a real call body (API-NOTES §2.1): ``account_sid`` after ``parent_call_sid``.
KEY_ORDER = (
    "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to",
    "formatted_to", "to_formatted", "from", "formatted_from", "from_formatted",
    "phone_number_sid", "status", "start_time", "end_time", "duration", "price",
    "price_unit", "direction", "answered_by", "api_version", "forwarded_from",
    "caller_name", "uri", "subresource_uris", "annotation", "group_sid",
    "audio_in_mos", "sip_result_code",
)  # fmt: skip
#: Keys that older responses lack entirely (API-NOTES §7.4).
NEW_KEYS = ("audio_in_mos", "sip_result_code")

_NPAS = ("512", "737", "404", "470", "610", "212", "646", "415", "312", "206", "303", "617")
# Fictional-but-valid ranges: NANP 555-01xx, Ofcom drama numbers, and the like.
_FOREIGN = ("+44207946", "+525557", "+4930901", "+61291", "+3314")
#: Per started minute, in USD: inbound and outbound rates seen in the 2019 page.
_RATE = {"inbound": 0.00255, "outbound-api": 0.00464, "outbound-dial": 0.00464}
_CUMULATIVE = tuple[tuple[str, float], ...]
_INBOUND: _CUMULATIVE = (("completed", 0.86), ("no-answer", 0.91), ("canceled", 0.96),
                         ("busy", 0.98), ("failed", 1.0))  # fmt: skip
_OUTBOUND_API: _CUMULATIVE = (("completed", 0.45), ("failed", 0.74), ("no-answer", 0.84),
                              ("busy", 0.89), ("canceled", 0.93), ("initiated", 1.0))  # fmt: skip
_DIAL_LEG: _CUMULATIVE = (("completed", 0.6), ("no-answer", 0.88), ("busy", 0.94),
                          ("canceled", 1.0))  # fmt: skip
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Keys :meth:`CallFactory.make` derives from ``to``/``from`` when they are overridden.
_DERIVED = {"to": ("formatted_to", "to_formatted"), "from": ("formatted_from", "from_formatted")}


def rfc2822(when: datetime) -> str:
    """Format an aware datetime as the service does: ``Mon, 12 Oct 2026 14:03:11 +0000``."""
    # Hand-built: email.utils.format_datetime dominated the time to generate 50,000 calls.
    t = when.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000"
    )


def format_number(number: str) -> str:
    """Format a number as ``formatted_to`` shows it: ``512-555-0143`` for NANP, else as is."""
    if len(number) == 12 and number.startswith("+1") and number[1:].isdigit():  # noqa: PLR2004
        return f"{number[2:5]}-{number[5:8]}-{number[8:]}"
    return number


def dump_json(value: object) -> bytes:
    r"""Serialise compactly, escaping ``&``, ``<`` and ``>`` as the service does (``\u0026``)."""
    text = json.dumps(value, separators=(",", ":"))
    # These characters can only occur inside JSON strings, so a global replace is safe.
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").encode()


def parse_when(text: str) -> tuple[datetime, bool]:
    """Parse a list filter's date: RFC 2822, ISO 8601 or ``YYYY-MM-DD``.

    Returns:
        The instant (UTC) and whether only a date was given.

    Raises:
        ValueError: The text is none of the accepted forms.
    """
    text = text.strip()
    if len(text) == 10:  # noqa: PLR2004 - YYYY-MM-DD
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC), True
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as err:
            raise ValueError(f"not a date: {text!r}") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC), False


def identity(seed: int) -> tuple[str, str]:
    """Return a deterministic ``(project_id, api_token)`` pair for a seed."""
    rng = random.Random(f"signalwire-fake-identity:{seed}")  # noqa: S311 - test data
    project = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return project, "PT" + f"{rng.getrandbits(192):048x}"


def _pick(rng: random.Random, table: _CUMULATIVE) -> str:
    roll = rng.random()
    return next((value for value, bound in table if roll < bound), table[-1][0])


class CallFactory:
    """Generate a project's call records, newest first, from one seeded RNG.

    Args:
        account_sid: The project id every record belongs to.
        seed: Seeds every random choice; equal seeds give byte-equal records.
        now: ``date_created`` of the newest call (aware datetime).
    """

    def __init__(self, account_sid: str, seed: int, now: datetime = DEFAULT_NOW) -> None:
        self.account_sid = account_sid
        self.now = now
        self.rng = random.Random(f"signalwire-fake-calls:{seed}")  # noqa: S311 - test data
        # The project's own numbers (each with a phone_number_sid) and the outside world.
        self.own = [(self._nanp(), self.uuid()) for _ in range(5)]
        self.agents = [self._nanp() for _ in range(8)]

    def uuid(self) -> str:
        """Return a valid, deterministic UUIDv4 string."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _nanp(self) -> str:
        return f"+1{self.rng.choice(_NPAS)}5550{self.rng.randrange(100, 200)}"

    def _external(self) -> str:
        if self.rng.random() < 0.08:  # noqa: PLR2004 - share of non-NANP callers
            prefix = self.rng.choice(_FOREIGN)
            return prefix + "".join(str(self.rng.randrange(10)) for _ in range(13 - len(prefix)))
        return self._nanp()

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Return ``count`` calls, newest first; the oldest fifth use the pre-2024 key set.

        A ``<Dial>`` leg is dated one second after its parent, as in the recorded
        page, so it lists just before it.
        """
        when = self.now
        legacy_from = count - count // 5
        made: list[dict[str, Any]] = []
        while len(made) < count:
            legacy = len(made) >= legacy_from
            roll = self.rng.random()
            if roll < 0.2:  # noqa: PLR2004 - a REST-created call
                made.append(self.make(when, "outbound-api", legacy=legacy))
            elif roll > 0.82 and len(made) + 2 <= count:  # noqa: PLR2004 - forwarded by <Dial>
                parent = self.make(
                    when - timedelta(seconds=1), "inbound", legacy=legacy, forced="completed"
                )
                leg = self.make(when, "outbound-dial", legacy=legacy, parent=parent)
                made += (leg, parent)
                when -= timedelta(seconds=1)
            else:
                made.append(self.make(when, "inbound", legacy=legacy))
            when -= timedelta(seconds=max(1, round(self.rng.expovariate(1 / 150))))
        return made

    def make(  # noqa: C901 - one branch per status, kept together for readability
        self,
        when: datetime,
        direction: str,
        *,
        legacy: bool = False,
        parent: dict[str, Any] | None = None,
        forced: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build one call record in wire order; ``overrides`` win over generated values."""
        rng = self.rng
        overrides = dict(overrides or {})
        direction = str(overrides.get("direction", direction))
        own, number_sid = rng.choice(self.own)
        if direction == "inbound":
            to, from_ = own, self._external()
            table = _INBOUND
        elif direction == "outbound-dial":
            to, from_ = rng.choice(self.agents), parent["from"] if parent else self._external()
            table = _DIAL_LEG
        else:
            to, from_ = self._external(), own
            table = _OUTBOUND_API
        status = str(overrides.get("status") or forced or _pick(rng, table))
        created = when
        began = created + timedelta(seconds=rng.choice((0, 1, 1, 2)))
        start: datetime | None = began
        end: datetime | None = began
        duration = 0
        if status in {"initiated", "queued", "ringing"}:
            start = end = None
        elif status == "completed":
            talk = min(7200, int(rng.lognormvariate(math.log(70), 1.0)))
            end = began + timedelta(seconds=talk)
            duration = talk + rng.choice((0, 1))  # rounded up, like the service
        elif status in {"no-answer", "canceled"}:
            # duration counts ring time on unanswered calls (API-NOTES §2.1, #16).
            duration = rng.randrange(20, 61) if status == "no-answer" else rng.randrange(3, 30)
            end = began + timedelta(seconds=duration)
        elif status == "in-progress":
            end = None
        billed = status == "completed" and rng.random() > 0.03  # noqa: PLR2004 - not yet billed
        price = round(_RATE.get(direction, 0.00464) * max(1, math.ceil(duration / 60)), 5)
        latest = end or start or created
        uri = f"{LAML_PREFIX}/Accounts/{self.account_sid}/Calls/"
        sid = str(overrides.get("sid") or self.uuid())
        call: dict[str, Any] = {
            "sid": sid,
            "date_created": rfc2822(created),
            "date_updated": rfc2822(latest + timedelta(seconds=rng.randrange(0, 10))),
            "parent_call_sid": parent["sid"] if parent else None,
            "account_sid": self.account_sid,
            "to": to,
            "formatted_to": format_number(to),
            "to_formatted": format_number(to),
            "from": from_,
            "formatted_from": format_number(from_),
            "from_formatted": format_number(from_),
            "phone_number_sid": number_sid,
            "status": status,
            "start_time": rfc2822(start) if start else None,
            "end_time": rfc2822(end) if end else None,
            "duration": duration,
            "price": price if billed else None,
            "price_unit": "USD",
            "direction": direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "caller_name": None,
            "uri": uri + sid,
            "subresource_uris": {"notifications": None, "recordings": f"{uri}{sid}/Recordings"},
            "annotation": None,
            "group_sid": None,
            "audio_in_mos": f"{rng.randrange(35, 46) / 10:.1f}" if status == "completed" else None,
            "sip_result_code": None,
        }
        if legacy:
            for key in NEW_KEYS:
                del call[key]
        for key, value in overrides.items():
            call[key] = rfc2822(value) if isinstance(value, datetime) else value
            for derived in _DERIVED.get(key, ()):
                if derived not in overrides:
                    call[derived] = format_number(str(value))
        return call
