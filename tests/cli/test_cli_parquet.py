"""`--format parquet`: fetch's resumable directory of parts and list's single file, equal to JSON Lines."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest

pytest.importorskip("click", reason="the command line needs the cli extra")
pytest.importorskip("rich", reason="the command line needs the cli extra")
pytest.importorskip("pyarrow", reason="--format parquet needs the parquet extra (pyarrow)")
import pyarrow.parquet as pq
import signalwire_calls as swc
from signalwire_calls._cli._parquet import ParquetParts
from signalwire_calls.arrow import CALL_SCHEMA
from signalwire_calls.testing import FakeSignalWire
from test_cli import cli_env, run_cli
from test_cli_fetch import exported

from test_arrow import actual_row, expected_row


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=90, seed=17) as emulator:
        emulator.add_call(surprise={"kept": True})
        yield emulator


def rows_by_sid(table) -> dict[str, dict]:
    return {row["sid"]: actual_row(row) for row in table.to_pylist()}


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_fetch_parquet_reads_back_row_for_row_equal_to_the_jsonl_export(
    fake, tmp_path, processes
):
    """The Parquet parts hold the documented schema and the very calls of the JSON Lines export."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")
    jsonl, parquet = tmp_path / "calls.jsonl", tmp_path / "calls.parquet"
    common = ("fetch", "--input", tmp_path / "sids.txt", "--processes", processes)

    first = await run_cli(*common, "--output", jsonl, env=cli_env(fake))
    second = await run_cli(*common, "--output", parquet, env=cli_env(fake))
    table = pq.read_table(parquet)

    assert (0, 0) == (first.code, second.code), second.stderr
    assert parquet.is_dir()
    assert CALL_SCHEMA.names == table.schema.names
    assert len(fake.calls) == table.num_rows
    assert {sid: expected_row(row) for sid, row in exported(jsonl).items()} == rows_by_sid(table)


async def test_fetch_parquet_resumes_skipping_the_calls_of_its_parts(fake, tmp_path):
    """A second run with more SIDs fetches only the new ones, into a new part."""
    sids = fake.call_sids
    out = tmp_path / "calls.parquet"
    (tmp_path / "some.txt").write_text("\n".join(sids[:40]) + "\n")
    (tmp_path / "all.txt").write_text("\n".join(sids) + "\n")

    await run_cli("fetch", "--input", tmp_path / "some.txt", "--output", out, env=cli_env(fake))
    done = await run_cli(
        "fetch", "--input", tmp_path / "all.txt", "--output", out, env=cli_env(fake)
    )

    assert 0 == done.code, done.stderr
    assert "40 skipped (already in the output)" in done.stderr
    assert ["part-00000.parquet", "part-00001.parquet"] == sorted(
        p.name for p in out.glob("part-*")
    )
    assert sorted(sids) == sorted(pq.read_table(out).column("sid").to_pylist())
    assert all(fake.attempts(sid) == 1 for sid in sids)


def test_parquet_parts_survive_a_kill_losing_only_what_was_not_in_a_part(tmp_path):
    """Parts are written whole; a killed run's temporary file is removed and its calls refetched."""
    fake = FakeSignalWire(calls=5, seed=2)
    calls = [swc.Call.from_dict(wire) for wire in fake.calls.values()]
    out = tmp_path / "calls.parquet"
    parts = ParquetParts(out, part_rows=2)
    parts.open()
    for call in calls:
        parts.write(call)  # two full parts; the fifth call is still pending: then "killed"
    (out / ".part-00002.parquet.partial").write_bytes(b"PAR1 torn")
    parts._lock.close()

    again = ParquetParts(out, part_rows=2)
    again.open()
    again.close()

    assert {c.sid for c in calls[:4]} == again.done
    assert 1 == again.repaired
    assert ["part-00000.parquet", "part-00001.parquet"] == sorted(
        p.name for p in out.iterdir() if p.name != ".lock"
    )


async def test_fetch_parquet_refuses_an_existing_file(fake, tmp_path):
    """A Parquet export is a directory: an existing file of that name is refused in one line."""
    (tmp_path / "sids.txt").write_text(fake.call_sids[0] + "\n")
    (tmp_path / "calls.parquet").write_text("not a directory")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", tmp_path / "calls.parquet",
        env=cli_env(fake),
    )  # fmt: skip

    assert 2 == done.code
    assert "is a file" in done.stderr


async def test_list_parquet_is_one_file_equal_to_the_jsonl_listing(fake, tmp_path):
    """`list --output calls.parquet` (by its name) holds the rows of `list` as JSON Lines."""
    created = [parsedate_to_datetime(c["date_created"]) for c in fake.calls.values()]
    after, before = min(created).isoformat(), (max(created) + timedelta(seconds=5)).isoformat()
    common = ("list", "--started-after", after, "--started-before", before)

    lines = await run_cli(*common, env=cli_env(fake))
    done = await run_cli(*common, "--output", tmp_path / "calls.parquet", env=cli_env(fake))
    table = pq.read_table(tmp_path / "calls.parquet")

    assert (0, 0) == (lines.code, done.code), done.stderr
    listed = [json.loads(line) for line in lines.lines]
    assert [expected_row(row) for row in listed] == [actual_row(r) for r in table.to_pylist()]
