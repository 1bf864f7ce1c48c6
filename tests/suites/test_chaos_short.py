"""A small run of the chaos soak (bench/chaos.py) with the same invariants as the full one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHAOS = Path(__file__).parents[2] / "bench" / "chaos.py"


def test_short_chaos_soak_loses_nothing():
    """2,000 lookups and 1,000 listed calls under >= 15% faults: every SID once, nothing left open."""
    proc = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(CHAOS), "--lookups", "2000", "--listed", "1000", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [] == report["failures"], proc.stderr[-2000:]
    assert 0 == proc.returncode
    assert 2_000 == report["found"]
    assert 0 == report["lost"] == report["duplicated"] == report["mismatched"]
    assert 0 == report["unexpected_errors"]
    assert report["fault_share"] >= 0.15
    assert report["retries"] > 0
    assert report["max_in_flight"] <= report["concurrency"]
    assert report["fds_after"] <= report["fds_before"]
    assert 0 == report["tasks_after"]
    assert 1_500 == report["listed"]
