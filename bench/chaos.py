"""Soak the client against a hostile emulator and check that nothing is lost.

The emulator (:class:`signalwire_calls.testing.FakeSignalWire`) runs in its own
process with a fault profile: 5xx answers, 429 with ``Retry-After``, dropped
connections, bodies cut short, latency, and a few answers that hang past the
client's timeout. This process runs ``iter_call_results`` over every SID (plus SIDs that do
not exist, duplicates and malformed ones) and ``iter_calls`` over thousands of
calls, then asserts:

* every distinct SID has exactly one result, and every found call equals, byte for
  byte once serialised, what the emulator holds;
* no error other than the expected ones (404 for missing SIDs, ``ValueError`` for
  malformed ones);
* in-flight lookups never above the concurrency limit, and attempts per SID within
  the retry policy;
* after ``aclose()``: no task, no connection, no file descriptor left; memory flat
  across the run (resident set at 25% vs at the end);

and prints the figures (``--json`` for a machine-readable line).

Usage::

    python bench/chaos.py               # 50,000 lookups + 5,000 listed (nox -s chaos)
    python bench/chaos.py --short       # 10,000 lookups + 2,000 listed, ~20-40 s
    python bench/chaos.py --tune        # the self-tuning limit (ceiling: --concurrency)
    python bench/chaos.py --lookups 2000 --listed 1000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import multiprocessing
import os
import random
import resource
import sys
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import signalwire_calls as swc
from signalwire_calls.testing import FakeSignalWire, FaultProfile

#: The retry policy of the soak: quick waits so that a run stays bounded in time.
POLICY = swc.RetryPolicy(
    attempts=8, wait_initial=0.01, wait_max=0.2, wait_jitter=0.01, max_retry_after=5.0
)
#: A lookup that the service throttled past the policy is re-run by the bulk job at
#: most this many times (``signalwire_calls._bulk.MAX_THROTTLE_RETRIES``).
THROTTLE_RERUNS = 3
TIMEOUT = 1.0


@dataclass
class Config:
    lookups: int = 50_000
    listed: int = 5_000
    missing: int = 500
    malformed: int = 50
    duplicates: int = 2_000
    concurrency: int = 64
    tune: bool = False  # self-tuning up to ``concurrency`` instead of pinned at it
    seed: int = 1
    error_rate: float = 0.07
    rate_limit_rate: float = 0.04
    reset_rate: float = 0.025
    truncate_rate: float = 0.02
    hang_rate: float = 0.0015
    latency: float = 0.004
    deadline: float = 900.0


@dataclass
class Report:
    lookups: int = 0
    distinct: int = 0
    found: int = 0
    missing: int = 0
    malformed: int = 0
    listed: int = 0
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    faults_total: int = 0
    fault_share: float = 0.0
    retries: int = 0
    max_attempts_per_sid: int = 0
    concurrency: int = 0
    max_in_flight: int = 0
    server_max_in_flight: int = 0
    unexpected_errors: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    rss_quarter_mb: float = 0.0
    rss_lookups_done_mb: float = 0.0
    rss_end_mb: float = 0.0
    peak_rss_mb: float = 0.0
    fds_before: int = 0
    fds_after: int = 0
    tasks_after: int = 0
    resource_warnings: int = 0
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)


# ----------------------------------------------------------------- emulator side


def digest(call: dict[str, Any]) -> bytes:
    """A short fingerprint of a call's JSON, to compare both sides without shipping bodies."""
    return hashlib.blake2b(json.dumps(call).encode(), digest_size=12).digest()


def serve(conn: Connection, config: Config) -> None:
    """Run the emulator in this (child) process and answer the parent's questions."""

    async def main() -> None:
        faults = FaultProfile(
            error_rate=config.error_rate,
            rate_limit_rate=config.rate_limit_rate,
            reset_rate=config.reset_rate,
            truncate_rate=config.truncate_rate,
            hang_rate=config.hang_rate,
            hang_seconds=TIMEOUT * 2,
            latency=(0.0, config.latency),
            retry_after=0.05,
            seed=config.seed,
        )
        async with FakeSignalWire(
            calls=config.lookups, seed=config.seed, record_requests=False
        ) as fake:
            sids = fake.call_sids
            conn.send(
                {
                    "base_url": fake.base_url,
                    "project_id": fake.project_id,
                    "api_token": fake.api_token,
                    "sids": sids,
                    "digests": [digest(fake.calls[s]) for s in sids],
                    "completed": [s for s in sids if fake.calls[s]["status"] == "completed"],
                }
            )
            fake.faults = faults  # only now: the setup above is not part of the soak
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.poll, None)
            conn.recv()  # "stats"
            attempts = [fake.attempts(s) for s in sids]
            conn.send(
                {
                    "faults": dict(fake.faults_injected),
                    "max_in_flight": fake.max_in_flight,
                    "connections": fake.connections,
                    "max_attempts": max(attempts, default=0),
                    "requests": sum(attempts),
                }
            )

    asyncio.run(main())


# ------------------------------------------------------------------- client side


def rss_mb() -> float:
    """The resident set now (not the peak), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def soak(config: Config, info: dict[str, Any], report: Report) -> None:  # noqa: PLR0912
    rng = random.Random(config.seed)
    sids: list[str] = info["sids"]
    index = {sid: i for i, sid in enumerate(sids)}
    digests: list[bytes] = info["digests"]
    missing = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(config.missing)]
    malformed = [f"CA{rng.getrandbits(64):016x}" for _ in range(config.malformed)]
    distinct = sids + missing + malformed
    stream = distinct + rng.choices(sids, k=config.duplicates)
    rng.shuffle(stream)
    missing_set, malformed_set = set(missing), set(malformed)
    report.lookups = len(stream)
    report.distinct = len(distinct)
    seen = bytearray(len(sids))
    extra_seen: dict[str, int] = {}
    unexpected: list[str] = []
    quarter = len(distinct) // 4

    client = swc.CallsClient(
        info["project_id"],
        info["api_token"],
        base_url=info["base_url"],
        retry=POLICY,
        timeout=TIMEOUT,
        max_connections=config.concurrency,
    )
    done = 0

    def progress(p: swc.BulkProgress) -> None:
        nonlocal done
        done = p.done
        report.max_in_flight = max(report.max_in_flight, p.in_flight)

    async with client:
        bound = (
            {"max_concurrency": config.concurrency}
            if config.tune
            else {"concurrency": config.concurrency}
        )
        async for result in client.iter_call_results(stream, on_progress=progress, **bound):
            sid = result.sid
            if sid in index:
                seen[index[sid]] += 1
                if result.call is None:
                    unexpected.append(f"{sid}: {result.error!r}")
                elif digest(result.call.to_dict()) != digests[index[sid]]:
                    report.mismatched += 1
                else:
                    report.found += 1
            else:
                extra_seen[sid] = extra_seen.get(sid, 0) + 1
                if sid in missing_set and isinstance(result.error, swc.NotFoundError):
                    report.missing += 1
                elif sid in malformed_set and isinstance(result.error, ValueError):
                    report.malformed += 1
                else:
                    unexpected.append(f"{sid}: {result.error!r}")
            if not report.rss_quarter_mb and done >= quarter:
                gc.collect()
                report.rss_quarter_mb = rss_mb()

        gc.collect()
        report.rss_lookups_done_mb = rss_mb()

        # Listing under the same faults: newest first, then filtered with smaller pages.
        listed = [c async for c in client.iter_calls(page_size=500, limit=config.listed)]
        if [c.sid for c in listed] != sids[: config.listed]:
            report.failures.append("iter_calls: the listed SIDs are not the newest, in order")
        completed = info["completed"][: config.listed // 2]
        filtered = [
            c
            async for c in client.iter_calls(
                status="completed", page_size=200, limit=config.listed // 2
            )
        ]
        if [c.sid for c in filtered] != completed:
            report.failures.append("iter_calls(status=completed): wrong SIDs or order")
        for call in (*listed, *filtered):
            if digest(call.to_dict()) != digests[index[call.sid]]:
                report.mismatched += 1
        report.listed = len(listed) + len(filtered)
        report.retries = client._requester.middleware.retries  # noqa: SLF001 - the soak's figures
        del listed, filtered

    gc.collect()
    report.rss_end_mb = rss_mb()
    report.lost = seen.count(0) + sum(1 for s in (*missing, *malformed) if s not in extra_seen)
    report.duplicated = sum(1 for n in seen if n > 1) + sum(1 for n in extra_seen.values() if n > 1)
    report.unexpected_errors = len(unexpected)
    if unexpected:
        report.failures.append(f"unexpected errors, e.g. {unexpected[:3]}")


async def settle(condition: Any, seconds: float = 2.0) -> bool:
    """Give aiohttp's transports the loop turns they need to close."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - polling /proc
        await asyncio.sleep(0.01)
    return bool(condition())


async def run_client(config: Config, conn: Connection, report: Report) -> dict[str, Any]:
    info = conn.recv()
    gc.collect()
    report.fds_before = open_fds()
    tasks_before = other_tasks()
    async with asyncio.timeout(config.deadline):
        await soak(config, info, report)
    await settle(lambda: open_fds() <= report.fds_before and other_tasks() <= tasks_before)
    report.fds_after = open_fds()
    report.tasks_after = len(other_tasks() - tasks_before)
    conn.send("stats")
    stats: dict[str, Any] = conn.recv()
    return stats


def check(config: Config, report: Report, stats: dict[str, Any]) -> None:
    report.faults = stats["faults"]
    report.faults_total = sum(stats["faults"].values())
    report.requests = stats["requests"]
    report.fault_share = report.faults_total / max(1, report.requests)
    report.max_attempts_per_sid = stats["max_attempts"]
    report.server_max_in_flight = stats["max_in_flight"]
    expected_found = report.distinct - config.missing - config.malformed
    rules = [
        (report.lost == 0, f"{report.lost} SID(s) without a result"),
        (report.duplicated == 0, f"{report.duplicated} SID(s) with more than one result"),
        (report.mismatched == 0, f"{report.mismatched} call(s) differ from the server's"),
        (report.found == expected_found, f"found {report.found}, expected {expected_found}"),
        (report.missing == config.missing, f"{report.missing} of {config.missing} missing SIDs"),
        (report.malformed == config.malformed, f"{report.malformed} malformed SIDs refused"),
        (report.max_in_flight <= config.concurrency, f"in flight {report.max_in_flight}"),
        (
            report.server_max_in_flight <= config.concurrency,
            f"the emulator saw {report.server_max_in_flight} requests at once",
        ),
        (
            report.max_attempts_per_sid <= POLICY.attempts * (1 + THROTTLE_RERUNS),
            f"{report.max_attempts_per_sid} attempts for one SID",
        ),
        (report.fault_share >= 0.15 or config.error_rate < 0.07, "fewer than 15% faults"),
        (report.fds_after <= report.fds_before, f"fds {report.fds_before} -> {report.fds_after}"),
        (report.tasks_after == 0, f"{report.tasks_after} task(s) left"),
        (report.resource_warnings == 0, f"{report.resource_warnings} ResourceWarning(s)"),
        (
            report.rss_lookups_done_mb - report.rss_quarter_mb < 24,
            f"memory grew {report.rss_lookups_done_mb - report.rss_quarter_mb:.1f} MiB after 25%",
        ),
    ]
    report.failures += [message for ok, message in rules if not ok]


def run(config: Config) -> Report:
    """Run one soak; the emulator lives in a child process so the figures are the client's."""
    report = Report(concurrency=config.concurrency)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child, config), daemon=True)
    server.start()
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            stats = asyncio.run(run_client(config, parent, report))
            gc.collect()
        report.resource_warnings = sum(issubclass(w.category, ResourceWarning) for w in caught)
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.kill()
    report.elapsed = time.perf_counter() - started
    report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    check(config, report, stats)
    return report


def describe(report: Report) -> str:
    r = report
    faults = ", ".join(f"{k} {v:,}" for k, v in sorted(r.faults.items()))
    verdict = "OK" if not r.failures else "FAILED: " + "; ".join(r.failures)
    rows = [
        ("lookups", f"{r.lookups:,} ({r.distinct:,} distinct: {r.found:,} found, "),
        ("", f"{r.missing:,} missing, {r.malformed:,} malformed)"),
        ("listed", f"{r.listed:,} calls (iter_calls, two runs)"),
        ("requests", f"{r.requests:,} lookups received by the emulator"),
        ("faults injected", f"{r.faults_total:,} (~{r.fault_share:.1%} of requests)"),
        ("", faults),
        ("retries", f"{r.retries:,} (max {r.max_attempts_per_sid} attempts for one SID)"),
        ("max in flight", f"{r.max_in_flight} lookups (limit {r.concurrency}; "),
        ("", f"the emulator saw {r.server_max_in_flight} requests at once)"),
        ("lost / duplicated", f"{r.lost} / {r.duplicated}; mismatched calls {r.mismatched}"),
        ("unexpected errors", f"{r.unexpected_errors}"),
        ("memory (RSS)", f"{r.rss_quarter_mb:.1f} MiB at 25% of lookups, "),
        ("", f"{r.rss_lookups_done_mb:.1f} MiB at 100%, {r.rss_end_mb:.1f} MiB after listing"),
        ("peak RSS", f"{r.peak_rss_mb:.1f} MiB"),
        ("after close", f"fds {r.fds_before} -> {r.fds_after}, tasks left {r.tasks_after}, "),
        ("", f"ResourceWarnings {r.resource_warnings}"),
        ("elapsed", f"{r.elapsed:.1f} s"),
        ("RESULT", verdict),
    ]
    return "\n".join(f"{label:<18} {value}" for label, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="10,000 lookups, 2,000 listed")
    parser.add_argument("--lookups", type=int, help="calls held by the emulator and looked up")
    parser.add_argument("--listed", type=int, help="calls to list with iter_calls")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--tune", action="store_true", help="self-tuning, with --concurrency as its ceiling"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line of figures")
    args = parser.parse_args(argv)
    config = Config(concurrency=args.concurrency, tune=args.tune, seed=args.seed)
    if args.short:
        config.lookups, config.listed, config.missing, config.duplicates = 10_000, 2_000, 100, 400
    if args.lookups is not None:
        config.lookups = args.lookups
        config.missing = max(10, args.lookups // 100)
        config.duplicates = args.lookups // 25
        config.malformed = min(config.malformed, max(5, args.lookups // 200))
    if args.listed is not None:
        config.listed = args.listed
    report = run(config)
    print(json.dumps(asdict(report)) if args.json else describe(report))
    return 0 if not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
