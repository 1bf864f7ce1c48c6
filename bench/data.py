"""The realistic Call bodies the benchmarks serve and build.

One shape, as the live service sends it (API-NOTES §2.1 / tests/samples/
call_real_2024.json): 29 keys, dash-formatted numbers, a string MOS, no ``.json``
on the URIs. :func:`distinct_calls` varies every value a real bulk job varies (SIDs,
numbers, times, durations, prices), with the repetition a real account has (a few
own numbers, one account, a handful of per-minute rates).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from server import PLACEHOLDER

ACCOUNT = "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40"
PROJECT_TOKEN = "PTbench-token-0123456789abcdef"  # noqa: S105 - a loopback dummy
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(dt: datetime) -> str:
    return (
        f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year} {dt:%H:%M:%S} +0000"
    )


def _dashed(number: str) -> str:
    return f"{number[2:5]}-{number[5:8]}-{number[8:]}"


def call_dict(sid: str, rng: random.Random | None = None) -> dict[str, Any]:
    """Return one realistic call object for ``sid`` (fixed values without ``rng``)."""
    if rng is None:
        rng = random.Random(0)
    own = ("+15125550143", "+15125550144", "+17375550100", "+17375550101", "+14155550123")
    other = f"+1{rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    inbound = rng.random() < 0.6
    to, from_ = (rng.choice(own), other) if inbound else (other, rng.choice(own))
    created = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 30 * 86400))
    start = created + timedelta(seconds=rng.randint(0, 3))
    duration = rng.choice((0, rng.randint(1, 60), rng.randint(60, 900)))
    end = start + timedelta(seconds=duration)
    minutes = -(-duration // 60)
    rate = rng.choice((0.0053, 0.0106, 0.013))
    uri = f"/api/laml/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}"
    return {
        "sid": sid,
        "date_created": _date(created),
        "date_updated": _date(end + timedelta(seconds=rng.randint(1, 5))),
        "parent_call_sid": None,
        "account_sid": ACCOUNT,
        "to": to,
        "formatted_to": _dashed(to),
        "to_formatted": _dashed(to),
        "from": from_,
        "formatted_from": _dashed(from_),
        "from_formatted": _dashed(from_),
        "phone_number_sid": (
            f"0c8b5e7a-91d2-4a6f-b3e4-2f7c8d9a1b5{own.index(to if inbound else from_)}"
        ),
        "status": "completed",
        "start_time": _date(start),
        "end_time": _date(end),
        "duration": duration,
        "price": round(minutes * rate, 4) if minutes else None,
        "price_unit": "USD",
        "direction": "inbound" if inbound else "outbound-api",
        "answered_by": None,
        "api_version": "2010-04-01",
        "forwarded_from": None,
        "caller_name": None,
        "uri": uri,
        "subresource_uris": {"notifications": None, "recordings": f"{uri}/Recordings"},
        "annotation": None,
        "group_sid": None,
        "audio_in_mos": f"{rng.randint(30, 45) / 10}",
        "sip_result_code": None,
    }


def template() -> bytes:
    """Return a served body: a fixed call with :data:`server.PLACEHOLDER` for its SID."""
    return templates(1)[0]


def templates(n: int = 20_000, seed: int = 4) -> list[bytes]:
    """Return ``n`` distinct bodies to serve in turn, each with a placeholder SID.

    Distinct (times, numbers, prices, MOS), as real records are: a round of up to
    ``n`` lookups never sees a body twice, so no value cache in a client can look
    better on the benchmark than it would on real traffic.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = json.dumps(call_dict("SIDSIDSID", rng), separators=(", ", ": ")).encode()
        out.append(body.replace(b"SIDSIDSID", PLACEHOLDER))
    return out


def sids(n: int, seed: int = 1) -> list[str]:
    """Return ``n`` distinct random call SIDs (UUIDs)."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def distinct_calls(n: int, seed: int = 2) -> list[bytes]:
    """Return ``n`` JSON bodies of distinct, realistically varied calls."""
    rng = random.Random(seed)
    return [json.dumps(call_dict(sid, rng)).encode() for sid in sids(n, seed)]
