"""Bytes of de-duplication state per distinct SID over a stream: ``python bench/dedupe_memory.py``.

Each mode runs in its own process: a bulk job (``fan_out``, the engine behind
``iter_call_results``, with a no-op lookup so that no HTTP is involved) over a
generated stream of N distinct SIDs, and the growth of the resident set size
(what the process really holds, allocator overhead included) divided by N.
Modes: ``compact`` (the default of ``iter_call_results``), ``set`` (a plain set
of SID strings, as before) and ``distinct`` (``distinct=True``: no state).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import uuid

from signalwire_calls._bulk import fan_out
from signalwire_calls._checks import check_sid, sid_bytes


def _rss() -> int:
    with open("/proc/self/statm") as f:  # noqa: PTH123 - Linux only, as the bench
        return int(f.read().split()[1]) * 4096


def _child(mode: str, n: int) -> None:
    def stream():
        for i in range(n):
            yield str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % (1 << 128)))

    async def work(_sid: str) -> None:
        return None

    async def main() -> int:
        jobs = fan_out(
            stream(),
            work,
            concurrency=64,
            validate=check_sid,
            distinct=mode == "distinct",
            compact=sid_bytes if mode == "compact" else None,
        )
        before = _rss()
        peak = before
        count = 0
        async for _ in jobs:
            count += 1
            if count % 50_000 == 0:
                peak = max(peak, _rss())
        peak = max(peak, _rss())
        assert count == n
        return peak - before

    grown = asyncio.run(main())
    print(grown / n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sids", type=int, default=1_000_000)
    p.add_argument("--modes", default="compact,set,distinct")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    for mode in args.modes.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(args.sids)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        per = float(out.stdout.strip())
        goal = (
            "  (goal <= 80: " + ("met)" if per <= 80 else "NOT met)") if mode == "compact" else ""
        )
        print(f"{mode:9} {per:7.1f} bytes per distinct SID over {args.sids:,} SIDs{goal}")


if __name__ == "__main__":
    main()
