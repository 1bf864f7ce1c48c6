"""Where the time goes: raw aiohttp, then one layer of ``get_call`` added at a time.

``python bench/ablation.py [--lookups N] [--rounds R]``. Each variant is a bounded
pool of 100 workers against the benchmark server; rounds are interleaved and the
median is printed with the cost per lookup relative to the raw GET.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import aiohttp
import data
import measure
import orjson
from server import Server
from signalwire_calls import RetryPolicy
from signalwire_calls._config import make_settings
from signalwire_calls._http import Requester
from signalwire_calls._wire import WIRE
from yarl import URL

Variant = Callable[[aiohttp.ClientSession, str], Awaitable[Any]]


def _variants(base: str, headers: dict[str, str]) -> dict[str, tuple[str, Variant]]:
    async def raw(session: aiohttp.ClientSession, sid: str) -> Any:
        async with session.get(base + sid) as response:
            return await response.read()

    async def loads(session: aiohttp.ClientSession, sid: str) -> Any:
        async with session.get(base + sid) as response:
            return orjson.loads(await response.read())

    async def structure(session: aiohttp.ClientSession, sid: str) -> Any:
        async with session.get(base + sid) as response:
            return WIRE.structure(orjson.loads(await response.read()))

    async def as_get(session: aiohttp.ClientSession, sid: str) -> Any:
        # the request exactly as CallsClient._get makes it
        async with session.get(
            URL(base + sid, encoded=True),
            headers=headers,
            allow_redirects=False,
            ssl=True,
            middlewares=None,
        ) as response:
            body = await response.read()
        return WIRE.structure(orjson.loads(body))

    return {
        "raw": ("plain", raw),
        "+orjson": ("plain", loads),
        "+structure": ("plain", structure),
        "+middleware": ("middleware", structure),
        "+_get kwargs": ("middleware", as_get),
    }


async def _one_variant(url: str, sids: list[str], kind: str, fn: Variant | None) -> float:
    if fn is None:  # the real client
        return await measure.ours(url, sids, 100)
    headers = {
        "Authorization": measure._basic_auth(),  # noqa: SLF001
        "Accept": "application/json",
        "User-Agent": "bench",
    }
    if kind == "plain":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), headers=headers)
    else:
        # The session exactly as CallsClient builds it (middleware, headers, pool).
        settings = make_settings(
            project_id=data.ACCOUNT,
            api_token=data.PROJECT_TOKEN,
            space_url=None,
            base_url=url.split("/Accounts/", maxsplit=1)[0],
        )
        session = Requester(
            settings,
            retry=RetryPolicy(),
            timeout=30.0,
            max_connections=100,
            session=None,
            rate_limit=None,
            max_body_size=1 << 20,
            ssl=None,
        ).ensure_session()
    async with session:
        await measure._pool(sids[:300], 100, lambda s: fn(session, s))  # noqa: SLF001
        gc.collect()
        start = time.perf_counter()
        await measure._pool(sids, 100, lambda s: fn(session, s))  # noqa: SLF001
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lookups", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    with Server(data.templates(), cpu=cpus[0] if len(cpus) > 1 else None) as server:
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[1]})
        base = f"{server.url}{measure.API_ROOT}/Accounts/{data.ACCOUNT}/Calls/"
        headers = {"Authorization": measure._basic_auth(), "Accept": "application/json"}  # noqa: SLF001
        variants: dict[str, tuple[str, Variant | None]] = dict(_variants(base, headers))
        variants["get_call/iter_call_results"] = ("client", None)
        sids = data.sids(args.lookups)
        times: dict[str, list[float]] = {name: [] for name in variants}
        factory = None
        if args.uvloop:
            import uvloop  # noqa: PLC0415

            factory = uvloop.new_event_loop
        for _ in range(args.rounds):
            for name, (kind, fn) in variants.items():
                with asyncio.Runner(loop_factory=factory) as runner:
                    times[name].append(runner.run(_one_variant(server.url, sids, kind, fn)))
    base_us = statistics.median(times["raw"]) / args.lookups * 1e6
    print(f"{'variant':22}{'lookups/s':>11}{'µs/lookup':>11}{'vs raw':>9}")
    for name, ts in times.items():
        us = statistics.median(ts) / args.lookups * 1e6
        print(f"{name:22}{1e6 / us:>11,.0f}{us:>11.1f}{us - base_us:>+9.1f}")


if __name__ == "__main__":
    main()
