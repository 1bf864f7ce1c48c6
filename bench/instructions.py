"""Instructions per lookup, counted by valgrind: a measure that does not drift.

``python bench/instructions.py [--contenders abc]`` (``nox -s instructions``).
Wall-clock and CPU time on a shared machine move by 10 % between runs; the number
of instructions a process executes does not (two runs agree to about 0.05 %). So
each contender runs its lookups against the benchmark server inside valgrind's
cachegrind tool, once with 500 lookups and once with 2,500 (each after the same
warm-up of 300), and the difference divided by 2,000 is what one lookup costs,
start-up and imports excluded. Only user-space instructions are counted: the
kernel's share of a request (the same for every contender) is not. Instructions
are not time (a cache miss costs more than an add), so read them as a way to
compare versions of the same code, next to the wall-clock runs of ``run.py``.

The self-tuning contender ``t`` is not a per-lookup cost in the same sense: under
valgrind the client is some fifty times slower, so its limit takes another path
(the 500-lookup run ends in startup, the 2,500 one probes), and the difference
between the two runs moves with that path (540,000 to 610,000 for the same code).
Compare ``a``, ``b`` and ``c``; read ``t`` only against itself, run to run.

``--cycles`` also simulates the caches and the branch predictor (cachegrind's
``--cache-sim=yes --branch-sim=yes``, about three times slower) and prints, per
lookup, the first-level instruction and data cache misses, the mispredicted
branches, and an *estimate* of the cycles they add up to::

    cycles ~ instructions / 4 + 12 * (I1 + D1 misses) + 15 * mispredicts

(four instructions a cycle when nothing stalls, an L1 miss served by L2, a
mispredict's pipeline flush: round figures for a current x86 core, not measured
here; the virtual machines this project runs on have no hardware counters, so
``perf stat -e cycles`` says "not supported"). Interpreted Python stalls far more
than it computes (an indirect branch per bytecode), so this ranks contenders
closer to their CPU time than instructions do. It is a model: read its ratios
beside the wall-clock ones, not instead of them.

Needs the ``valgrind`` command (Debian: ``apt install valgrind``); takes about a
minute per contender (three with ``--cycles``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import data
import measure
from server import Server

NAMES = {
    "a": "raw aiohttp GET + read",
    "b": "signalwire-calls iter_call_results",
    "c": "twilio",
    "t": "signalwire-calls, self-tuning",
}
WARM = 300
SMALL, LARGE = 500, 2_500


def _child(kind: str, lookups: int, url: str) -> None:
    """Run ``lookups`` lookups of contender ``kind`` after a warm-up (inside valgrind)."""
    warnings.simplefilter("ignore")  # twilio's DeprecationWarnings, as in run.py
    sids = data.sids(lookups)

    async def main() -> None:
        measure._warm = lambda s, _c: s[:WARM]  # noqa: SLF001 - the same warm-up for both sizes
        await {**measure.RUNNERS, "t": measure.ours_default}[kind](url, sids, 100)

    asyncio.run(main())


#: What ``--cycles`` reads from cachegrind's summary: (label, regular expression).
_SIMULATED = (
    ("instructions", r"I\s+refs:\s+([\d,]+)"),
    ("I1 misses", r"I1\s+misses:\s+([\d,]+)"),
    ("D1 misses", r"D1\s+misses:\s+([\d,]+)"),
    ("mispredicts", r"Mispredicts:\s+([\d,]+)"),
)


def _count(kind: str, lookups: int, url: str, *, simulate: bool = False) -> dict[str, int]:
    """What a child process running ``lookups`` lookups executes (and, simulated, misses)."""
    command = [
        "valgrind", "--tool=cachegrind", "--cachegrind-out-file=/dev/null",
        *(["--cache-sim=yes", "--branch-sim=yes"] if simulate else ["--cache-sim=no"]),
        sys.executable, __file__, "--child", kind, str(lookups), url,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return parse_summary(done.stderr, simulate=simulate)


def parse_summary(stderr: str, *, simulate: bool) -> dict[str, int]:
    """Read the counts of ``--cycles`` (with ``simulate``) or the instructions alone."""
    counts = {}
    for label, pattern in _SIMULATED if simulate else _SIMULATED[:1]:
        match = re.search(pattern, stderr)
        if match is None:
            raise RuntimeError(f"no {label} count in valgrind's output:\n{stderr[-2000:]}")
        counts[label] = int(match[1].replace(",", ""))
    return counts


def cycles(counts: dict[str, float]) -> float:
    """The estimate of ``--cycles`` (see the module's docstring) from per-lookup counts."""
    misses = counts["I1 misses"] + counts["D1 misses"]
    return counts["instructions"] / 4 + 12 * misses + 15 * counts["mispredicts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--contenders", default="abc", help="any of a, b, c, t (self-tuning; default: abc)"
    )
    parser.add_argument(
        "--cycles",
        action="store_true",
        help="also simulate caches and branches and estimate cycles (slower)",
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, lookups, url = args.child
        _child(kind, int(lookups), url)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt install valgrind)")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[0] if len(cpus) > 1 else None
    per_lookup: dict[str, dict[str, float]] = {}
    with Server(data.templates(), cpu=server_cpu) as server:
        if server_cpu is not None:
            os.sched_setaffinity(0, set(cpus[1:]))  # the children inherit it
        for kind in args.contenders:
            small = _count(kind, SMALL, server.url, simulate=args.cycles)
            large = _count(kind, LARGE, server.url, simulate=args.cycles)
            counts = {label: (large[label] - small[label]) / (LARGE - SMALL) for label in small}
            line = f"({kind}) {NAMES.get(kind, kind):30} {counts['instructions']:10,.0f} per lookup"
            if args.cycles:
                counts["cycles"] = cycles(counts)
                line += "".join(
                    f"  {label} {counts[label]:,.0f}"
                    for label in ("I1 misses", "D1 misses", "mispredicts", "cycles")
                )
            per_lookup[kind] = counts
            print(line, flush=True)
    if "b" in per_lookup:
        for name in ("instructions", "cycles") if args.cycles else ("instructions",):
            for other in "ac":
                if other in per_lookup:
                    ratio = per_lookup[other][name] / per_lookup["b"][name]
                    print(f"    {other}/b  {ratio:.3f}  ({name})")


if __name__ == "__main__":
    main()
