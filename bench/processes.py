"""`fetch --processes N` against one process: throughput and CPU when the client is the limit.

The loopback server (bench/server.py: raw asyncio, pre-serialised bodies, its own
process) answers far faster than a client parses, so the client's CPU is the limit.
Each round runs the real command line, ``signalwire-calls fetch --input sids.txt
--output out.jsonl --processes N``, into a fresh output, and measures wall-clock
time and the CPU time of the command and all its worker processes (``RUSAGE_CHILDREN``).
Rounds alternate between the process counts, so that a change in the machine's load
hits both alike. The machine's load average is printed before and after, and so
is its *parallelism*: how many times one process's work N CPU-bound processes do
at once (a JSON-decoding stand-in). On a shared or SMT host two vCPUs are not
always two cores' worth (measured here: from 1.15x to 2.0x within an hour), and
the 1.6x target needs two cores' worth for the workers, plus a little for the
server and the parent.

    python bench/processes.py                      # 1 and 2 processes, 40,000 lookups, 3 rounds
    python bench/processes.py --processes 1 2 4 --lookups 100000
    nox -s bench -- --processes                    # the same, through nox
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import data
from server import Server


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="counts to compare")
    p.add_argument("--lookups", type=int, default=40_000, help="lookups per run (40000)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="pin the lookups in flight per process (default: the command's own, self-tuning)",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    return p.parse_args(argv)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"


def _reference_work(_: int) -> float:
    """A CPU-bound stand-in for a client (JSON decoding of Call bodies); its wall time."""
    import json  # noqa: PLC0415 - in the worker process

    bodies = data.templates(2000)
    started = time.perf_counter()
    for i in range(40_000):
        json.loads(bodies[i % len(bodies)])
    return time.perf_counter() - started


def machine_parallelism(processes: int) -> float:
    """How many times one process's work ``processes`` CPU-bound processes do here at once.

    On a shared or SMT host two vCPUs may not be two cores' worth: this is the
    ceiling any ``--processes`` speedup is measured against.
    """
    import multiprocessing  # noqa: PLC0415

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(_reference_work, range(processes))  # warm: start and import
        alone = min(pool.apply(_reference_work, (0,)) for _ in range(2))
        together = max(pool.map(_reference_work, range(processes)))
    return processes * alone / together


def server_cpu(pid: int) -> float:
    """The CPU time (user + system, seconds) the server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(
    url: str, sids: Path, processes: int, concurrency: int | None, server_pid: int
) -> dict[str, float]:
    out = sids.parent / f"out-{processes}-{time.monotonic_ns()}.jsonl"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")},
        "SIGNALWIRE_BASE_URL": f"{url}/api/laml/2010-04-01",
        "SIGNALWIRE_PROJECT_ID": data.ACCOUNT,
        "SIGNALWIRE_API_TOKEN": data.PROJECT_TOKEN,
    }
    command = [
        sys.executable, "-m", "signalwire_calls", "fetch", "--input", str(sids),
        "--output", str(out), "--processes", str(processes), "--no-progress",
    ]  # fmt: skip
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = server_cpu(server_pid)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = server_cpu(server_pid) - served
    if done.returncode != 0:
        raise RuntimeError(f"fetch exited {done.returncode}: {done.stderr.strip()}")
    lines = out.read_bytes().count(b"\n")
    out.unlink()
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    return {"wall": wall, "user": user, "sys": system, "server": served, "lines": lines}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    most = max(args.processes)
    print(f"load before: {load()}")
    ceiling_before = machine_parallelism(most) if most > 1 else 1.0
    print(f"machine: {most} CPU-bound processes do {ceiling_before:.2f}x one's work (before)")
    results: dict[int, list[dict[str, float]]] = {n: [] for n in args.processes}
    with tempfile.TemporaryDirectory() as tmp, Server(data.templates()) as server:
        sids = Path(tmp) / "sids.txt"
        sids.write_text("\n".join(data.sids(args.lookups)) + "\n")
        # Warm up the page cache and the imports.
        run_once(server.url, sids, 1, args.concurrency, server.pid)
        for number in range(args.rounds):
            ceiling = machine_parallelism(most) if most > 1 else 1.0
            walls = []
            for processes in args.processes:
                run = run_once(server.url, sids, processes, args.concurrency, server.pid)
                if run["lines"] != args.lookups:
                    raise RuntimeError(f"{run['lines']} lines, expected {args.lookups}")
                results[processes].append(run)
                walls.append(run["wall"])
            speedups = " ".join(f"{walls[0] / w:.2f}x" for w in walls[1:])
            print(f"round {number + 1}: machine {ceiling:.2f}x; speedup {speedups}", flush=True)
    print(f"load after:  {load()}")
    ceiling_after = machine_parallelism(most) if most > 1 else 1.0
    print(f"machine: {most} CPU-bound processes do {ceiling_after:.2f}x one's work (after)")
    print(f"{args.lookups:,} lookups per run, best of {args.rounds} (median in brackets)")
    print(f"{'processes':>9} {'wall s':>8} {'calls/s':>9} {'speedup':>8} {'user µs/call':>13} "
          f"{'CPU s (user+sys)':>17} {'server CPU s':>13}")  # fmt: skip
    summary: dict[str, Any] = {"machine_parallelism": [ceiling_before, ceiling_after]}
    base = min(r["wall"] for r in results[args.processes[0]])
    for processes, runs in results.items():
        best = min(runs, key=lambda r: r["wall"])
        median = statistics.median(r["wall"] for r in runs)
        rate = args.lookups / best["wall"]
        speedup = base / best["wall"]
        per_call = best["user"] / args.lookups * 1e6
        cpu = best["user"] + best["sys"]
        print(
            f"{processes:>9} {best['wall']:>8.2f} {rate:>9,.0f} {speedup:>7.2f}x "
            f"{per_call:>13.0f} {cpu:>17.2f} {best['server']:>13.2f}   [{median:.2f} s]"
        )
        summary[str(processes)] = {**best, "rate": rate, "speedup": speedup, "median": median}
    return summary


if __name__ == "__main__":
    main()
