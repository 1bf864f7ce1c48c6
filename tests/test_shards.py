"""Shards: planning (each SID, each call of a range exactly once), pickling without secrets, running."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import signalwire_calls as swc
from signalwire_calls._listing import split_windows

from background_fake import BackgroundFake

A = "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21"
B = "82e7850d-054e-4067-8c4f-6568acd96575"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def served():
    with BackgroundFake(calls=300, seed=11, record_requests=False) as background:
        yield background


@pytest.fixture
def env(served, monkeypatch):
    """Point run_shard's default client (the worker's environment) at the emulator."""
    for name, value in served.env().items():
        monkeypatch.setenv(name, value)
    return served


def listing_range(fake) -> tuple[datetime, datetime]:
    created = [parsedate_to_datetime(c["date_created"]) for c in fake.calls.values()]
    return min(created), max(created) + timedelta(seconds=10)


# ---------------------------------------------------------------------- planning


def test_plan_sid_shards_puts_each_distinct_sid_in_exactly_one_shard():
    """Duplicates (in any case) are dropped and the chunks cover every distinct SID once."""
    sids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(25)]

    shards = swc.plan_sid_shards([*sids, sids[3].upper(), sids[7]], size=10)

    assert [10, 10, 5] == [len(shard.sids) for shard in shards]
    assert sids == [sid for shard in shards for sid in shard.sids]
    assert [0, 1, 2] == [shard.index for shard in shards]


def test_plan_sid_shards_rejects_a_bad_sid_and_a_bad_size():
    """A SID that is not a UUID, or a size below 1, is a clear ValueError before any work."""
    with pytest.raises(ValueError, match="CA123"):
        swc.plan_sid_shards([A, "CA123"])
    with pytest.raises(ValueError, match="size must be a positive integer"):
        swc.plan_sid_shards([A], size=0)


def test_plan_window_shards_uses_the_windows_of_iter_calls():
    """The shards' spans are split_windows' spans; only the outer edges are first/last."""
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)

    shards = swc.plan_window_shards(start, end, 4, status="completed")

    assert split_windows(start, end, 4) == [(s.started_after, s.started_before) for s in shards]
    assert [True, False, False, False] == [s.first for s in shards]
    assert [False, False, False, True] == [s.last for s in shards]
    assert {(("status", "completed"),)} == {s.filters for s in shards}


def test_plan_window_shards_rejects_an_unknown_filter_and_naive_times():
    """A misspelt filter and a naive datetime are refused, naming the problem."""
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown List Calls filter"):
        swc.plan_window_shards(start, end, 2, statuss="completed")
    with pytest.raises(ValueError, match="naive datetime"):
        swc.plan_window_shards(datetime(2026, 1, 1), end, 2)


# ------------------------------------------------------------------------ secrets


def test_shards_and_options_pickle_without_any_credential(env):
    """A shard and its options pickle and repr without the token (there is no field for it)."""
    token = env.fake.api_token
    shard = swc.plan_sid_shards([A, B])[0]
    window = swc.plan_window_shards(*listing_range(env.fake), 3)[1]
    options = swc.ShardOptions(base_url=env.fake.base_url, project_id=env.fake.project_id)

    blobs = [pickle.dumps(x) for x in (shard, window, options)]

    assert shard == pickle.loads(blobs[0])
    assert window == pickle.loads(blobs[1])
    assert all(token.encode() not in blob for blob in blobs)
    assert all(token not in repr(x) for x in (shard, window, options))
    with pytest.raises(TypeError):
        swc.ShardOptions(api_token=token)  # type: ignore[call-arg]


def test_importing_the_package_imports_no_optional_engine():
    """`import signalwire_calls` (and the CLI's modules) never imports dask, pandas or pyarrow."""
    code = (
        "import sys, signalwire_calls\n"
        "try:\n    import signalwire_calls._cli._app\nexcept ImportError:\n    pass\n"
        "print(sorted(m for m in ('dask', 'distributed', 'pandas', 'pyarrow') if m in sys.modules))"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603

    assert "[]" == done.stdout.strip()


# ------------------------------------------------------------------------ running


def test_run_shard_returns_one_result_per_sid_in_shard_order(env):
    """A SID shard gives one CallResult per SID, in order, a missing one included."""
    sids = env.fake.call_sids[:40]
    shard = swc.plan_sid_shards([*sids, MISSING])[0]

    results = swc.run_shard(shard)

    assert [*sids, MISSING] == [result.sid for result in results]
    assert [env.fake.calls[sid] for sid in sids] == [r.call.to_dict() for r in results[:-1]]
    assert "missing" == results[-1].outcome


def test_run_shard_reads_credentials_where_it_runs(served, monkeypatch):
    """Without credentials in the worker's environment, the shard fails with a ConfigError."""
    for name in list(os.environ):
        if name.startswith("SIGNALWIRE_"):
            monkeypatch.delenv(name)
    shard = swc.plan_sid_shards([A])[0]

    with pytest.raises(swc.ConfigError, match="SIGNALWIRE_API_TOKEN"):
        swc.run_shard(shard, swc.ShardOptions(base_url=served.fake.base_url, project_id="p"))


@pytest.mark.parametrize("windows", [2, 7, 40])
def test_window_shards_together_list_each_call_of_the_range_exactly_once(env, windows):
    """The union of the window shards equals one listing of the range, with no call twice."""
    start, end = listing_range(env.fake)

    async def single() -> list[str]:
        async with swc.CallsClient.from_env() as client:
            return [c.sid async for c in client.iter_calls(started_after=start, started_before=end)]

    expected = asyncio.run(single())
    got = [
        call.sid
        for shard in swc.plan_window_shards(start, end, windows)
        for call in swc.run_shard(shard)
    ]

    assert len(got) == len(set(got))
    assert sorted(expected) == sorted(got)


def test_a_call_on_an_inner_edge_belongs_to_the_later_window_only(env):
    """A call starting exactly on the edge of two windows is listed by one of them."""
    start, end = listing_range(env.fake)
    on_edge = next(c for c in env.fake.calls.values() if c["start_time"])
    edge = parsedate_to_datetime(on_edge["start_time"])
    before = swc.WindowShard(0, start, edge, first=True, last=False)
    after = swc.WindowShard(1, edge, end, first=False, last=True)

    early = [c.sid for c in swc.run_shard(before)]
    late = [c.sid for c in swc.run_shard(after)]

    assert on_edge["sid"] not in early
    assert 1 == late.count(on_edge["sid"])
    assert not set(early) & set(late)
