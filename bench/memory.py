"""Bytes held per record: ours, twilio's ``CallInstance`` and plain dicts."""

# ruff: noqa: PLC0415 - the contenders and plotting are optional extras, imported when used

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import signalwire_calls as swc

try:
    import orjson
except ImportError:  # pragma: no cover
    orjson = None


def held_per_object(bodies: Sequence[bytes], build: Callable[[bytes], Any]) -> float:
    """Build one object per body, keep them all, and return the bytes held per object.

    Counted with :mod:`tracemalloc` (what Python allocated and still holds), with the
    list that keeps them subtracted, after a full collection; the JSON bodies
    themselves were allocated before and are not counted.
    """
    build(bodies[0])  # import-time and first-call caches are not the objects' cost
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [build(body) for body in bodies]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    total = after - before - sys.getsizeof(held)
    del held
    return total / len(bodies)


def builders() -> dict[str, Callable[[bytes], Any]]:
    from data import ACCOUNT, PROJECT_TOKEN
    from twilio.http.async_http_client import AsyncTwilioHttpClient  # noqa: F401 - as in use
    from twilio.rest import Client
    from twilio.rest.api.v2010.account.call import CallInstance

    version = Client(ACCOUNT, PROJECT_TOKEN).api.v2010
    loads = orjson.loads if orjson is not None else json.loads

    def twilio(body: bytes) -> Any:
        # what fetch() builds: Response.text -> json.loads -> CallInstance
        payload = json.loads(body.decode())
        return CallInstance(
            version, payload, account_sid=payload["account_sid"], sid=payload["sid"]
        )

    out: dict[str, Callable[[bytes], Any]] = {
        "ours": lambda body: swc.Call.from_dict(loads(body)),
        "twilio": twilio,
        "dict_json": json.loads,
    }
    if orjson is not None:
        out["dict_orjson"] = orjson.loads
    return out


def measure(bodies: Sequence[bytes]) -> dict[str, float]:
    return {name: held_per_object(bodies, build) for name, build in builders().items()}


if __name__ == "__main__":
    import data

    for name, value in measure(
        data.distinct_calls(int(sys.argv[1]) if sys.argv[1:] else 20000)
    ).items():
        print(f"{name:12} {value:8.0f} B")
