"""`fetch --processes N` and `list --windows W --processes N`: one output, each call exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest

pytest.importorskip("click", reason="the command line needs the cli extra")
pytest.importorskip("rich", reason="the command line needs the cli extra")
from signalwire_calls.testing import FakeSignalWire, FaultProfile
from test_cli import MISSING, cli_env, one_line_error, run_cli, start_cli, wait_for_lines
from test_cli_fetch import exported


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=120, seed=21) as emulator:
        yield emulator


@pytest.fixture
async def slow_fake():
    """An emulator slow enough (10-30 ms a call) that a fetch can be stopped mid-run."""
    faults = FaultProfile(latency=(0.01, 0.03), seed=3)
    async with FakeSignalWire(calls=400, seed=6, faults=faults, record_requests=False) as emulator:
        yield emulator


def span(fake) -> tuple[str, str]:
    created = [parsedate_to_datetime(c["date_created"]) for c in fake.calls.values()]
    return min(created).isoformat(), (max(created) + timedelta(seconds=10)).isoformat()


async def test_fetch_with_two_processes_writes_every_call_once(fake, tmp_path):
    """Two workers fill one export equal to the emulator's data; a missing SID is reported; exit 1."""
    (tmp_path / "sids.txt").write_text("\n".join([*fake.call_sids, MISSING]) + "\n")
    out, errors = tmp_path / "calls.jsonl", tmp_path / "errors.jsonl"

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, "--errors", errors,
        "--processes", "2", "--progress", env=cli_env(fake),
    )  # fmt: skip

    assert 1 == done.code, done.stderr
    assert fake.calls == exported(out)
    assert [{"sid": MISSING, "error": "missing", "reason": "no such call"}] == [
        json.loads(line) for line in errors.read_text().splitlines()
    ]
    assert "fetch: 120 found, 1 missing, 0 failed" in done.stderr
    assert "121/121" in done.stderr
    assert all(fake.attempts(sid) == 1 for sid in fake.call_sids)


async def test_fetch_with_processes_and_a_flag_token_never_shows_it(fake, tmp_path):
    """--api-token reaches the workers (through their environment) and appears in no output."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids[:30]) + "\n")
    out = tmp_path / "calls.jsonl"
    env = cli_env(fake)
    token = env.pop("SIGNALWIRE_API_TOKEN")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, "--processes", "2",
        "--api-token", token, "-v", env=env,
    )  # fmt: skip

    assert 0 == done.code, done.stderr
    assert 30 == len(exported(out))
    assert token not in done.stderr + done.stdout


async def test_fetch_with_processes_and_a_refused_token_exits_2_in_one_line(fake, tmp_path):
    """A refused token stops every worker; one line, exit 2, as with one process."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")
    env = cli_env(fake, SIGNALWIRE_API_TOKEN="PTnot-the-token")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", tmp_path / "c.jsonl",
        "--processes", "2", env=env,
    )  # fmt: skip

    assert 2 == done.code
    assert "401" in one_line_error(done)


async def test_fetch_with_processes_killed_with_sigkill_resumes_to_exactly_once(
    slow_fake, tmp_path
):
    """SIGKILL of the parent mid-run: its workers stop by themselves; a rerun completes, once each."""
    sids = tmp_path / "sids.txt"
    sids.write_text("\n".join(slow_fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    args = ("fetch", "--input", sids, "--output", out, "--concurrency", "4", "--processes", "2")

    proc = await start_cli(*args, env=cli_env(slow_fake))
    await wait_for_lines(out, 30, proc)
    proc.kill()
    await proc.communicate()
    partial = exported(out)
    # The orphaned workers notice within a moment and stop sending requests.
    async with asyncio.timeout(10):
        while True:
            before = sum(slow_fake.attempts(sid) for sid in slow_fake.call_sids)
            await asyncio.sleep(0.3)
            if before == sum(slow_fake.attempts(sid) for sid in slow_fake.call_sids):
                break

    done = await run_cli(*args, env=cli_env(slow_fake))

    assert -signal.SIGKILL == proc.returncode
    assert 30 <= len(partial) < 400
    assert 0 == done.code, done.stderr
    assert slow_fake.calls == exported(out)
    assert f"{len(partial):,} skipped (already in the output)" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_fetch_with_processes_stops_cleanly_on_a_signal(slow_fake, tmp_path, signum):
    """Ctrl-C or SIGTERM: workers stop, what arrived is written, exit 130 with a summary."""
    sids = tmp_path / "sids.txt"
    sids.write_text("\n".join(slow_fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    args = ("fetch", "--input", sids, "--output", out, "--concurrency", "4", "--processes", "2")

    proc = await start_cli(*args, env=cli_env(slow_fake))
    await wait_for_lines(out, 10, proc)
    proc.send_signal(signum)
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    partial = exported(out)
    resumed = await run_cli(*args, env=cli_env(slow_fake))

    assert 130 == proc.returncode, err.decode()
    assert "Traceback" not in err.decode()
    assert f"fetch: {len(partial):,} found" in err.decode()
    assert 0 == resumed.code
    assert slow_fake.calls == exported(out)


async def test_list_with_windows_over_processes_equals_one_listing(fake, tmp_path):
    """`list --windows 6 --processes 2` writes the very lines of a single-process listing."""
    after, before = span(fake)
    common = ("list", "--all", "--started-after", after, "--started-before", before)

    single = await run_cli(*common, env=cli_env(fake))
    multi = await run_cli(*common, "--windows", "6", "--processes", "2", env=cli_env(fake))

    assert (0, 0) == (single.code, multi.code), multi.stderr
    assert len(single.lines) == len(multi.lines)
    assert sorted(single.lines) == sorted(multi.lines)


async def test_list_with_processes_stops_at_the_limit(fake, tmp_path):
    """--limit with --processes writes exactly that many distinct calls."""
    after, before = span(fake)

    done = await run_cli(
        "list", "--started-after", after, "--started-before", before, "--windows", "4",
        "--processes", "2", "--limit", "25", "--page-size", "10", env=cli_env(fake),
    )  # fmt: skip

    assert 0 == done.code, done.stderr
    assert 25 == len({json.loads(line)["sid"] for line in done.lines}) == len(done.lines)


async def test_list_processes_without_windows_is_a_usage_error(fake):
    """--processes alone is refused in one line: there is nothing to split."""
    done = await run_cli("list", "--processes", "2", env=cli_env(fake))

    assert 2 == done.code
    assert "--processes needs --windows" in one_line_error(done)


async def test_format_parquet_without_pyarrow_says_what_to_install(fake, tmp_path):
    """With pyarrow missing, --format parquet is one line naming the extra; exit 2."""
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from signalwire_calls._cli import main\n"
        "main(sys.argv[1:])\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "list", "--output", str(tmp_path / "c.parquet"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env(fake),
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()

    assert 2 == proc.returncode
    assert "pip install 'signalwire-calls[parquet]'" in err.decode()
    assert "Traceback" not in err.decode()
    assert not (tmp_path / "c.parquet").exists()
