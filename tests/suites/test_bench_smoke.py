"""The benchmark's server and measuring code work (behaviour only, never speed)."""

from __future__ import annotations

import asyncio
import json
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
