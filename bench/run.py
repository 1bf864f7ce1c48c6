"""Benchmarks, side by side: ``nox -s bench`` (or ``python bench/run.py --help``).

One loopback server process serves realistic Call JSON (20,000 distinct
bodies in turn, SID spliced in); this process
runs interleaved rounds of (a) raw aiohttp GET + read, (b) this library's
``iter_call_results``, (c) twilio-python's ``AsyncTwilioHttpClient`` + ``fetch_async`` and
(d) (b) under uvloop, then a concurrency sweep of (a), (b), (c), the memory held
per record and the latency of one lookup on an idle client. The server and the
client are pinned to different cores when there are two. Results go to
``docs/bench/`` (JSON, CSV and a plot) unless ``--quick``.
"""

# ruff: noqa: PLC0415 - uvloop and matplotlib are optional extras, imported when used

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import data
import measure
import memory
from server import Server

ROOT = Path(__file__).resolve().parent.parent
NAMES = {
    "a": "raw aiohttp GET + read",
    "b": "signalwire-calls iter_call_results",
    "c": "twilio AsyncTwilioHttpClient",
    "d": "signalwire-calls + uvloop",
}


def _run(coro_fn: Callable[[], Awaitable[float]], *, uvloop: bool = False) -> Any:
    factory = None
    if uvloop:
        import uvloop as _uvloop

        factory = _uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_fn())  # type: ignore[arg-type]


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lookups", type=int, default=20_000, help="lookups per round (20000)")
    p.add_argument("--concurrency", type=int, default=100, help="lookups in flight (100)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument(
        "--sweep",
        default="1,5,10,25,50,100,150,200",
        help="concurrency levels for the plot, comma-separated ('' to skip)",
    )
    p.add_argument("--sweep-lookups", type=int, default=5_000, help="lookups per sweep point")
    p.add_argument("--sweep-rounds", type=int, default=3, help="runs per sweep point (3)")
    p.add_argument("--memory", type=int, default=100_000, help="distinct calls to hold (0 skips)")
    p.add_argument("--latency", type=int, default=2_000, help="sequential lookups timed (0 skips)")
    p.add_argument("--no-uvloop", action="store_true", help="skip contender (d)")
    p.add_argument(
        "--quick", action="store_true", help="a fast sanity run (small sizes, writes nothing)"
    )
    p.add_argument("--out", type=Path, default=None, help="where to write (docs/bench/)")
    args = p.parse_args(argv)
    if args.quick:
        args.lookups = min(args.lookups, 2_000)
        args.rounds = 1
        args.sweep = "1,50,100"
        args.sweep_lookups = 1_000
        args.memory = min(args.memory, 5_000)
        args.latency = min(args.latency, 300)
    if args.out is None and not args.quick:
        args.out = ROOT / "docs" / "bench"
    return args


def pin() -> tuple[int | None, int | None]:
    """Return (server core, client core), or Nones when there are not two cores."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    contenders = ["a", "b", "c"] + ([] if args.no_uvloop or not _have_uvloop() else ["d"])
    server_cpu, client_cpu = pin()
    results: dict[str, Any] = {
        "config": {
            "lookups": args.lookups,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "body_bytes": len(data.template()),
            "distinct_bodies": len(data.templates()),
            "iter_call_results": measure.has_get_calls(),
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "versions": {
                name: _version(name)
                for name in ("signalwire-calls", "aiohttp", "twilio", "orjson", "uvloop", "cattrs")
            },
        },
    }
    print(
        f"{args.lookups} lookups x concurrency {args.concurrency} x {args.rounds} rounds; "
        f"server on cpu {server_cpu}, client on cpu {client_cpu}; "
        "(b) uses "
        + ("iter_call_results" if measure.has_get_calls() else "a worker pool over get_call")
    )
    with Server(data.templates(), cpu=server_cpu) as server:
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        url = server.url
        sids = data.sids(args.lookups)

        # ---- interleaved rounds
        rounds: dict[str, list[float]] = {k: [] for k in contenders}
        cpu: dict[str, dict[str, list[float]]] = {k: {"user": [], "sys": []} for k in contenders}
        for r in range(args.rounds):
            for key in contenders:
                runner = measure.RUNNERS[key]
                elapsed = _run(
                    lambda runner=runner: runner(url, sids, args.concurrency), uvloop=key == "d"
                )
                rate = args.lookups / elapsed
                rounds[key].append(rate)
                user, system = (measure.LAST_CPU[k] / args.lookups * 1e6 for k in ("user", "sys"))
                cpu[key]["user"].append(user)
                cpu[key]["sys"].append(system)
                print(
                    f"  round {r + 1} ({key}) {NAMES[key]:30} {rate:9,.0f} lookups/s"
                    f"   cpu {user:5.1f} user + {system:4.1f} sys µs/lookup",
                    flush=True,
                )
        med = {k: statistics.median(v) for k, v in rounds.items()}
        ratios = {"b/a": med["b"] / med["a"], "b/c": med["b"] / med["c"]}
        if "d" in med:
            ratios["d/b"] = med["d"] / med["b"]
            ratios["d/c"] = med["d"] / med["c"]
        cpu_med = {
            k: {part: statistics.median(v) for part, v in parts.items()} for k, parts in cpu.items()
        }
        results["throughput"] = {"rounds": rounds, "median": med, "ratios": ratios}
        results["cpu_us_per_lookup"] = {"rounds": cpu, "median": cpu_med}

        # ---- latency on an idle client
        if args.latency:
            lat = _run(lambda: measure.latency(url, data.sids(args.latency + 50, seed=3)))
            results["latency_us"] = {
                k: {"p50": measure.percentile(v, 50), "p99": measure.percentile(v, 99)}
                for k, v in lat.items()
            }

        # ---- concurrency sweep
        levels = [int(x) for x in args.sweep.split(",") if x.strip()]
        sweep: dict[str, dict[int, float]] = {k: {} for k in ("a", "b", "c")}
        sweep_runs: dict[str, dict[int, list[float]]] = {k: {} for k in ("a", "b", "c")}
        for level in levels:
            n = args.sweep_lookups if level >= 5 else max(1_000, args.sweep_lookups // 3)
            sweep_sids = sids[:n] if n <= len(sids) else data.sids(n)
            for _ in range(args.sweep_rounds):  # interleaved, for min / median / max
                for key in ("a", "b", "c"):
                    runner = measure.RUNNERS[key]
                    elapsed = _run(lambda runner=runner, s=sweep_sids, c=level: runner(url, s, c))
                    sweep_runs[key].setdefault(level, []).append(n / elapsed)
            for key in ("a", "b", "c"):
                sweep[key][level] = statistics.median(sweep_runs[key][level])
            line = "  ".join(f"{k}={sweep[k][level]:,.0f}" for k in ("a", "b", "c"))
            ratio = [
                b / a for a, b in zip(sweep_runs["a"][level], sweep_runs["b"][level], strict=True)
            ]
            print(
                f"  sweep concurrency {level:3}: {line}  b/a min/median/max "
                f"{min(ratio):.2f}/{statistics.median(ratio):.2f}/{max(ratio):.2f}",
                flush=True,
            )
        results["sweep"] = sweep
        results["sweep_runs"] = sweep_runs

    # ---- memory (no server needed)
    if args.memory:
        print(f"  memory: holding {args.memory:,} distinct calls of each kind ...", flush=True)
        results["memory_bytes_per_record"] = memory.measure(data.distinct_calls(args.memory))

    print_table(results)
    if args.out is not None:
        write(results, args.out)
    return results


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def print_table(results: dict[str, Any]) -> None:
    tp = results["throughput"]
    print()
    print(f"{'':4}{'contender':32}{'median lookups/s':>18}{'rounds':>28}")
    for key, rate in tp["median"].items():
        each = " ".join(f"{x:,.0f}" for x in tp["rounds"][key])
        print(f"({key}) {NAMES[key]:32}{rate:>16,.0f}  {each:>26}")
    goals = {"b/a": 0.80, "b/c": 1.5}
    print()
    for name, value in tp["ratios"].items():
        goal = goals.get(name)
        verdict = (
            "" if goal is None else f"  (goal >= {goal}: {'met' if value >= goal else 'NOT met'})"
        )
        print(f"    {name:5} {value:5.2f}{verdict}")
    if "cpu_us_per_lookup" in results:
        print()
        med = results["cpu_us_per_lookup"]["median"]
        for key, parts in med.items():
            print(
                f"    cpu ({key}) {parts['user']:5.1f} user + {parts['sys']:4.1f} sys µs per lookup"
            )
        a_b = med["a"]["user"] / med["b"]["user"]
        c_b = med["c"]["user"] / med["b"]["user"]
        print(f"    user-CPU ratios (the steadier view): a/b {a_b:.2f}  c/b {c_b:.2f}")
    if "latency_us" in results:
        print()
        for key, q in results["latency_us"].items():
            print(f"    latency {key:5} p50 {q['p50']:7.0f} µs   p99 {q['p99']:7.0f} µs")
    if "memory_bytes_per_record" in results:
        print()
        for key, value in results["memory_bytes_per_record"].items():
            mark = (
                "  (goal <= 1600: " + ("met)" if value <= 1600 else "NOT met)")
                if key == "ours"
                else ""
            )
            print(f"    memory {key:12} {value:7,.0f} bytes per record{mark}")
    print()


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = dict(results, written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section", "contender", "concurrency", "value", "unit"])
        conc = results["config"]["concurrency"]
        for key, rate in results["throughput"]["median"].items():
            w.writerow(["throughput_median", key, conc, f"{rate:.1f}", "lookups/s"])
        for key, parts in results.get("cpu_us_per_lookup", {}).get("median", {}).items():
            for part, value in parts.items():
                w.writerow([f"cpu_{part}_median", key, conc, f"{value:.2f}", "us/lookup"])
        for key, rates in results.get("sweep", {}).items():
            for level, rate in rates.items():
                w.writerow(["sweep", key, level, f"{rate:.1f}", "lookups/s"])
        for key, value in results.get("memory_bytes_per_record", {}).items():
            w.writerow(["memory", key, "", f"{value:.0f}", "bytes/record"])
        for key, q in results.get("latency_us", {}).items():
            for p, value in q.items():
                w.writerow([f"latency_{p}", key, 1, f"{value:.1f}", "us"])
    if results.get("sweep"):
        plot(results, out / "throughput.png")
    print(f"wrote {out}")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    runs = results.get("sweep_runs", {})
    for key, style in (("a", "k--"), ("b", "C0-o"), ("c", "C3-s")):
        points = sorted((int(c), r) for c, r in results["sweep"][key].items())
        levels = [c for c, _ in points]
        medians = [r for _, r in points]
        spread = [
            runs.get(key, {}).get(c) or runs.get(key, {}).get(str(c)) or [r] for c, r in points
        ]
        ax.errorbar(
            levels,
            medians,
            yerr=[
                [m - min(v) for m, v in zip(medians, spread, strict=True)],
                [max(v) - m for m, v in zip(medians, spread, strict=True)],
            ],
            fmt=style,
            capsize=2,
            label=f"({key}) {NAMES[key]} (median, min-max)",
            ms=4,
        )
    ax.set_xlabel("concurrency (lookups in flight)")
    ax.set_ylabel("lookups per second")
    ax.set_title("Call lookups against one loopback server (2 cores, pinned)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
