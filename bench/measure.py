"""The contenders, each written the fastest honest way, and the measuring loops.

Every runner takes the server URL, the SIDs to look up and a concurrency, builds
its client inside the running loop, warms the connection pool up (untimed), then
times the lookups and returns the elapsed seconds. (a) and (c) use a bounded pool
of ``concurrency`` workers pulling from one iterator, not a task per SID.
"""

# ruff: noqa: PLC0415 - the contenders and plotting are optional extras, imported when used

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import aiohttp
import signalwire_calls as swc
from data import ACCOUNT, PROJECT_TOKEN

API_ROOT = "/api/laml/2010-04-01"

#: CPU seconds (user, system) of this process in the timed part of the last run.
#: Wall-clock throughput on a shared 2-core VM is noisy, and the kernel's share of
#: each request flips between two levels (whether the server must be woken up);
#: user CPU per lookup is the steadiest measure of what a client costs.
LAST_CPU: dict[str, float] = {"user": 0.0, "sys": 0.0}


@contextlib.contextmanager
def _cpu_clock() -> Iterator[None]:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix: no CPU figures
        yield
        return
    before = resource.getrusage(resource.RUSAGE_SELF)
    yield
    after = resource.getrusage(resource.RUSAGE_SELF)
    LAST_CPU["user"] = after.ru_utime - before.ru_utime
    LAST_CPU["sys"] = after.ru_stime - before.ru_stime


def _basic_auth() -> str:
    encode = getattr(aiohttp, "encode_basic_auth", None)  # aiohttp >= 3.14
    if encode is not None:
        return str(encode(ACCOUNT, PROJECT_TOKEN))
    return aiohttp.BasicAuth(ACCOUNT, PROJECT_TOKEN).encode()


async def _pool(sids: Iterable[str], concurrency: int, one: Callable[[str], Awaitable[Any]]) -> int:
    """Run ``one(sid)`` for every SID with ``concurrency`` workers; return how many ran."""
    it = iter(sids)
    done = 0

    async def worker() -> None:
        nonlocal done
        for sid in it:
            await one(sid)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def _warm(sids: Sequence[str], concurrency: int) -> Sequence[str]:
    return sids[: max(2 * concurrency, 200)]


async def _timed(
    sids: Sequence[str], concurrency: int, lookups: Callable[[Sequence[str]], Awaitable[int]]
) -> float:
    """Warm the pool up (untimed), then time ``lookups(sids)``; return the elapsed seconds.

    Also records the CPU time of the timed part in :data:`LAST_CPU`, and checks that
    every SID was looked up.
    """
    await lookups(_warm(sids, concurrency))
    gc.collect()
    with _cpu_clock():
        start = time.perf_counter()
        n = await lookups(sids)
        elapsed = time.perf_counter() - start
    assert n == len(sids)
    return elapsed


# ------------------------------------------------------------------ (a) raw aiohttp


async def raw_aiohttp(url: str, sids: Sequence[str], concurrency: int) -> float:
    """(a) The ceiling: one session, GET + read, nothing parsed."""
    base = f"{url}{API_ROOT}/Accounts/{ACCOUNT}/Calls/"
    auth = _basic_auth()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": auth, "Accept": "application/json"}
    ) as session:

        async def one(sid: str) -> None:
            async with session.get(base + sid) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(response.status)

        return await _timed(sids, concurrency, lambda keys: _pool(keys, concurrency, one))


# ----------------------------------------------------------------- (b) this library


def make_client(url: str, concurrency: int = 100) -> swc.CallsClient:
    return swc.CallsClient(
        ACCOUNT, PROJECT_TOKEN, base_url=f"{url}{API_ROOT}", max_connections=max(concurrency, 1)
    )


def has_get_calls() -> bool:
    return hasattr(swc.CallsClient, "iter_call_results")


async def _ours_lookups(client: swc.CallsClient, sids: Sequence[str], concurrency: int) -> int:
    if has_get_calls():
        n = 0
        async for result in client.iter_call_results(sids, concurrency=concurrency):
            if result.call is None:
                raise RuntimeError(f"lookup failed: {result.error!r}")
            n += 1
        return n
    # Until iter_call_results lands: the same bounded pool over get_call.
    return await _pool(sids, concurrency, client.get_call)


async def ours(url: str, sids: Sequence[str], concurrency: int) -> float:
    """(b) ``iter_call_results`` (a bounded pool over ``get_call`` before it existed)."""
    async with make_client(url, concurrency) as client:
        return await _timed(
            sids, concurrency, lambda keys: _ours_lookups(client, keys, concurrency)
        )


async def ours_default(
    url: str, sids: Sequence[str], _concurrency: int, on_timed: Callable[[], None] | None = None
) -> float:
    """``iter_call_results`` with its defaults: the self-tuning limit, as users run it.

    ``on_timed`` is called when the timed part begins (after the warm-up).
    """
    async with make_client(url) as client:
        calls = 0

        async def lookups(keys: Sequence[str]) -> int:
            nonlocal calls
            calls += 1
            if calls == 2 and on_timed is not None:
                on_timed()
            n = 0
            async for result in client.iter_call_results(keys):
                if result.call is None:
                    raise RuntimeError(f"lookup failed: {result.error!r}")
                n += 1
            return n

        return await _timed(sids, 0, lookups)


# -------------------------------------------------------------------- (c) twilio


def make_twilio(url: str) -> Any:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    client = Client(ACCOUNT, PROJECT_TOKEN, http_client=AsyncTwilioHttpClient())
    client.api.base_url = url + "/api/laml"  # its paths start at /2010-04-01/Accounts/...
    return client


async def twilio(url: str, sids: Sequence[str], concurrency: int) -> float:
    """(c) twilio-python's ``AsyncTwilioHttpClient`` with ``calls(sid).fetch_async()``."""
    client = make_twilio(url)
    try:

        async def one(sid: str) -> None:
            call = await client.calls(sid).fetch_async()
            if call.sid != sid:
                raise RuntimeError(call.sid)

        return await _timed(sids, concurrency, lambda keys: _pool(keys, concurrency, one))
    finally:
        await client.http_client.close()


RUNNERS: dict[str, Callable[[str, Sequence[str], int], Awaitable[float]]] = {
    "a": raw_aiohttp,
    "b": ours,
    "c": twilio,
    "d": ours,  # run under uvloop
}

# ------------------------------------------------------------------------ latency


async def latency(url: str, sids: Sequence[str]) -> dict[str, list[float]]:
    """Time single lookups on an idle client, one at a time: ours vs a raw GET (µs)."""
    base = f"{url}{API_ROOT}/Accounts/{ACCOUNT}/Calls/"
    auth = _basic_auth()
    out: dict[str, list[float]] = {"raw": [], "ours": []}
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as session,
        make_client(url, 1) as client,
    ):
        for i, sid in enumerate(sids):
            # alternate so that drift hits both alike
            t0 = time.perf_counter_ns()
            async with session.get(base + sid) as response:
                await response.read()
            t1 = time.perf_counter_ns()
            await client.get_call(sid)
            t2 = time.perf_counter_ns()
            if i >= 50:  # the first ones open connections
                out["raw"].append((t1 - t0) / 1000)
                out["ours"].append((t2 - t1) / 1000)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
