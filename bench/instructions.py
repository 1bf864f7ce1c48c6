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

Needs the ``valgrind`` command (Debian: ``apt install valgrind``); takes about a
minute per contender.
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


def _count(kind: str, lookups: int, url: str) -> int:
    """Instructions executed by a child process running ``lookups`` lookups."""
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, __file__, "--child", kind, str(lookups), url,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(match[1].replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--contenders", default="abc", help="any of a, b, c, t (self-tuning; default: abc)"
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
    with Server(data.templates(), cpu=server_cpu) as server:
        if server_cpu is not None:
            os.sched_setaffinity(0, set(cpus[1:]))  # the children inherit it
        counts = {}
        for kind in args.contenders:
            small = _count(kind, SMALL, server.url)
            large = _count(kind, LARGE, server.url)
            counts[kind] = (large - small) / (LARGE - SMALL)
            print(f"({kind}) {NAMES.get(kind, kind):30} {counts[kind]:10,.0f} per lookup")
    if "b" in counts:
        for other in "ac":
            if other in counts:
                print(f"    {other}/b  {counts[other] / counts['b']:.3f}")


if __name__ == "__main__":
    main()
