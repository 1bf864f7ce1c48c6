"""The benchmark's server and measuring code work (behaviour only, never speed)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import data
import measure
import memory
import signalwire_calls as swc
from server import Server

SIDS = data.sids(40)


@pytest.fixture(scope="module")
def server():
    with Server(data.templates(8)) as running:
        yield running


async def test_server_splices_the_requested_sid(server):
    """The server answers every GET, on one kept-alive connection, with the SID it was asked for."""
    created = []
    tracing = aiohttp.TraceConfig()  # public: counts the connections aiohttp opens

    async def on_create(_session, _context, _params):
        created.append(1)

    tracing.on_connection_create_end.append(on_create)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:
        for sid in SIDS[:3]:
            async with session.get(f"{server.url}/x/Calls/{sid}.json?a=1") as response:
                body = json.loads(await response.read())
        assert SIDS[2] == body["sid"]
        async with session.get(f"{server.url}/x/Calls/{SIDS[2]}") as response:
            assert body != json.loads(await response.read())  # the next template
        assert body["uri"].endswith(f"/Calls/{SIDS[2]}")
        assert swc.Call.from_dict(body).subresource_uris.recordings.endswith("/Recordings")
    assert 1 == len(created)  # one connection, kept alive for every request


# twilio-python still uses aiohttp.BasicAuth, deprecated in aiohttp 3.14
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
@pytest.mark.parametrize("key", ["a", "b", "c"])
async def test_each_contender_looks_every_sid_up(server, key):
    """Each contender completes every lookup and reports a positive elapsed time."""
    if key == "c":
        pytest.importorskip("twilio", reason="contender (c) is twilio-python, a test peer")
    elapsed = await measure.RUNNERS[key](server.url, SIDS, 4)
    assert elapsed > 0


async def test_latency_samples_both_sides(server):
    """The latency probe returns one sample per timed lookup for ours and for raw aiohttp."""
    samples = await measure.latency(server.url, data.sids(55))
    assert (len(samples["raw"]), len(samples["ours"])) == (5, 5)
    assert measure.percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_memory_counts_held_objects():
    """Holding calls costs a positive number of bytes each, and a dict more than a bare int."""
    bodies = data.distinct_calls(50)
    assert len({json.loads(b)["sid"] for b in bodies}) == 50
    per_call = memory.held_per_object(bodies, lambda b: swc.Call.from_dict(json.loads(b)))
    per_int = memory.held_per_object(bodies, len)
    assert per_call > 200
    assert per_int < per_call


def test_run_parses_quick_defaults():
    """--quick shrinks the run and writes nothing; the default is the issue's configuration."""
    import run

    quick = run.parse_args(["--quick"])
    full = run.parse_args([])
    assert (quick.out, quick.rounds) == (None, 1)
    assert (full.lookups, full.concurrency, full.rounds) == (20_000, 100, 3)
    assert asyncio.iscoroutinefunction(measure.RUNNERS["b"])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs the valgrind command")
@pytest.mark.parametrize("simulate", [False, True])
def test_instructions_reads_valgrinds_own_summary(simulate):
    """The counts are read from a real cachegrind run's summary, simulated or not."""
    import instructions

    flags = ["--cache-sim=yes", "--branch-sim=yes"] if simulate else ["--cache-sim=no"]
    valgrind, true = shutil.which("valgrind"), shutil.which("true")
    assert valgrind is not None
    assert true is not None
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [valgrind, "--tool=cachegrind", "--cachegrind-out-file=/dev/null", *flags, true],
        capture_output=True,
        text=True,
        check=True,
    )
    counts = instructions.parse_summary(done.stderr, simulate=simulate)
    expected = ["instructions", "I1 misses", "D1 misses", "mispredicts"]
    assert list(counts) == (expected if simulate else expected[:1])
    assert all(value > 0 for value in counts.values())
    with pytest.raises(RuntimeError, match="no instructions count"):
        instructions.parse_summary("valgrind: no summary", simulate=simulate)


def test_cycles_estimate_weighs_stalls_as_documented():
    import instructions

    counts = {"instructions": 400.0, "I1 misses": 2.0, "D1 misses": 3.0, "mispredicts": 4.0}
    assert instructions.cycles(counts) == 400 / 4 + 12 * 5 + 15 * 4
    assert "12 * (I1 + D1 misses) + 15 * mispredicts" in (instructions.__doc__ or "")
