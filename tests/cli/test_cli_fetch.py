"""`signalwire-calls fetch`: the resumable bulk export, including SIGKILL mid-run and resume."""

from __future__ import annotations

import json
import signal
import socket
from collections import Counter

import pytest

pytest.importorskip("click", reason="the command line needs the cli extra")
pytest.importorskip("rich", reason="the command line needs the cli extra")
from signalwire_calls._cli._fetch import read_sids
from signalwire_calls._cli._resumable import OutputBusyError, ResumableOutput
from signalwire_calls.testing import FakeSignalWire, FaultProfile
from test_cli import (
    MISSING,
    cli_env,
    one_line_error,
    run_cli,
    start_cli,
    wait_for_lines,
)


def exported(path) -> dict[str, dict]:
    """Parse an export, asserting every line is complete JSON and every SID appears once."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    rows = [json.loads(line) for line in data.splitlines()]
    counts = Counter(row["sid"] for row in rows)
    assert [] == [sid for sid, n in counts.items() if n > 1]
    return {row["sid"]: row for row in rows}


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=60, seed=9) as emulator:
        yield emulator


@pytest.fixture
async def slow_fake():
    """An emulator slow enough (10-30 ms a call) that a fetch can be stopped mid-run."""
    faults = FaultProfile(latency=(0.01, 0.03), seed=2)
    async with FakeSignalWire(calls=300, seed=4, faults=faults, record_requests=False) as emulator:
        yield emulator


# ------------------------------------------------------------------- the command


async def test_fetch_writes_every_call_once_as_the_api_sent_it(fake, tmp_path):
    """A file of SIDs becomes a JSONL export equal to the emulator's data; exit 0."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, env=cli_env(fake)
    )

    assert (0, "") == (done.code, done.stdout)
    assert fake.calls == exported(out)
    assert "fetch: 60 found, 0 missing, 0 failed" in done.stderr


async def test_fetch_reads_stdin_ignoring_blanks_and_spaces_reporting_bad_lines(fake, tmp_path):
    """`--input -`: blank lines and spaces are ignored, duplicates fetched once, bad lines reported."""
    sids = fake.call_sids[:3]
    stdin = f"\n  {sids[0]}  \n\n{sids[1]}\nnot-a-sid\n{sids[2]}\n{sids[0]}\n{MISSING}\n"
    out, errors = tmp_path / "calls.jsonl", tmp_path / "errors.jsonl"

    done = await run_cli(
        "fetch", "--input", "-", "--output", out, "--errors", errors, env=cli_env(fake), stdin=stdin
    )

    assert 1 == done.code
    assert {sid: fake.calls[sid] for sid in sids} == exported(out)
    assert [
        {"sid": "not-a-sid", "error": "invalid", "reason": "line 5 of the input is not a call SID"},
        {"sid": MISSING, "error": "missing", "reason": "no such call"},
    ] == [json.loads(line) for line in errors.read_text().splitlines()]
    assert "Traceback" not in done.stderr


async def test_fetch_failures_go_to_stderr_without_errors_file(fake, tmp_path):
    """Without --errors, a SID that keeps failing is one stderr line with its reason; exit 1."""
    bad = fake.call_sids[0]
    fake.fail(bad, status=503, times=None)
    (tmp_path / "sids.txt").write_text(f"{bad}\n{fake.call_sids[1]}\n")
    out = tmp_path / "calls.jsonl"

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, "--retries", "1",
        env=cli_env(fake),
    )  # fmt: skip

    assert 1 == done.code
    assert [fake.call_sids[1]] == list(exported(out))
    assert f"failed {bad}: " in done.stderr
    assert "503" in done.stderr
    assert "0 missing, 1 failed" in done.stderr


async def test_fetch_with_refused_credentials_stops_at_once_with_exit_2(fake, tmp_path):
    """A refused token ends the job with one line and exit 2, leaving no output file."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    env = cli_env(fake, SIGNALWIRE_API_TOKEN="PTnot-the-token")

    done = await run_cli("fetch", "--input", tmp_path / "sids.txt", "--output", out, env=env)

    assert 2 == done.code
    assert "401" in one_line_error(done)
    assert not out.exists()


async def test_fetch_killed_with_sigkill_resumes_to_every_call_exactly_once(slow_fake, tmp_path):
    """A SIGKILL mid-run, then the same command: each SID exactly once, every line valid and as served."""
    sids = tmp_path / "sids.txt"
    sids.write_text("\n".join(slow_fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    args = ("fetch", "--input", sids, "--output", out, "--concurrency", "4")

    proc = await start_cli(*args, env=cli_env(slow_fake))
    await wait_for_lines(out, 20, proc)
    proc.kill()
    await proc.communicate()
    partial = exported(out)  # complete lines only, even right after the kill

    done = await run_cli(*args, env=cli_env(slow_fake))

    assert -signal.SIGKILL == proc.returncode
    assert 20 <= len(partial) < 300
    assert 0 == done.code
    assert slow_fake.calls == exported(out)
    assert f"{len(partial):,} skipped (already in the output)" in done.stderr
    assert sum(slow_fake.attempts(sid) for sid in partial) == len(partial)  # not fetched again


async def test_fetch_interrupted_with_ctrl_c_stops_cleanly_with_a_summary(slow_fake, tmp_path):
    """SIGINT mid-run exits 130 with a summary and a valid partial file that resumes."""
    sids = tmp_path / "sids.txt"
    sids.write_text("\n".join(slow_fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    args = ("fetch", "--input", sids, "--output", out, "--concurrency", "4")

    proc = await start_cli(*args, env=cli_env(slow_fake))
    await wait_for_lines(out, 10, proc)
    proc.send_signal(signal.SIGINT)
    _, err = await proc.communicate()
    partial = exported(out)
    resumed = await run_cli(*args, env=cli_env(slow_fake))

    assert 130 == proc.returncode
    assert "Traceback" not in err.decode()
    assert f"fetch: {len(partial):,} found" in err.decode()
    assert "run the same command again" in err.decode()
    assert 0 == resumed.code
    assert slow_fake.calls == exported(out)


async def test_fetch_repairs_a_torn_last_line_before_resuming(fake, tmp_path):
    """A last line cut mid-write is dropped and its call fetched again: one copy of each."""
    first, second = fake.call_sids[:2]
    out = tmp_path / "calls.jsonl"
    torn = json.dumps(fake.calls[second]).encode()[:100]
    out.write_bytes(json.dumps(fake.calls[first]).encode() + b"\n" + torn)
    (tmp_path / "sids.txt").write_text(f"{first}\n{second}\n")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, env=cli_env(fake)
    )

    assert 0 == done.code
    assert {first: fake.calls[first], second: fake.calls[second]} == exported(out)
    assert "removed 1 incomplete line(s)" in done.stderr
    assert "1 found" in done.stderr


async def test_fetch_progress_bar_draws_done_and_total_when_asked(fake, tmp_path):
    """--progress draws the bar on stderr (done/total) even when stderr is not a terminal."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", tmp_path / "c.jsonl", "--progress",
        env=cli_env(fake),
    )  # fmt: skip

    assert 0 == done.code
    assert "60/60" in done.stderr
    assert "ETA" in done.stderr


# ------------------------------------------------------------ the pieces, in-process


def test_read_sids_strips_skips_blanks_dedupes_and_numbers_bad_lines():
    """read_sids keeps distinct SIDs in order and reports bad lines with their numbers."""
    a, b = "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21", "82e7850d-054e-4067-8c4f-6568acd96575"

    found = read_sids(["", f" {a} \n", "CA123\n", "\n", f"{b}\n", f"{a.upper()}\n"])

    assert [a, b] == found.sids
    assert [(3, "CA123")] == found.invalid
    assert 1 == found.duplicates


def test_resumable_output_keeps_valid_lines_around_damage_in_the_middle(tmp_path):
    """A garbage line between valid ones (a machine crash) is removed; the rest is kept."""
    path = tmp_path / "calls.jsonl"
    a, b = '{"sid":"AAA","x":1}\n', '{"sid":"bbb","x":2}\n'
    path.write_text(a + "\0\0\0garbage\n" + b + '{"sid":"ccc"')
    output = ResumableOutput(path)

    output.open()
    output.close()

    assert {"aaa", "bbb"} == output.done
    assert 2 == output.repaired
    assert a + b == path.read_text()


def test_resumable_output_refuses_a_second_writer(tmp_path):
    """While one fetch holds the output, another is refused instead of interleaving lines."""
    first = ResumableOutput(tmp_path / "calls.jsonl")
    first.open()
    try:
        with pytest.raises(OutputBusyError, match="another signalwire-calls fetch"):
            ResumableOutput(tmp_path / "calls.jsonl").open()
    finally:
        first.close()


async def test_fetch_against_a_closed_port_stops_with_one_line_and_exit_2(fake, tmp_path):
    """Nothing listening: one line naming the host and the SIDs not tried, and exit 2."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    env = cli_env(fake, SIGNALWIRE_BASE_URL=f"http://127.0.0.1:{port}/api/laml/2010-04-01")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, "--retries", "0", env=env
    )

    assert 2 == done.code
    line = one_line_error(done)
    assert f"127.0.0.1:{port}" in line
    assert "60 SID(s) not tried" in line
    assert not out.exists()  # a refused start leaves no empty export behind


async def test_fetch_progress_bar_shows_retries_429s_and_concurrency(fake, tmp_path):
    """A job throttled by 429s says so on the bar: retries, 429s and the concurrency."""
    (tmp_path / "sids.txt").write_text("\n".join(fake.call_sids) + "\n")
    fake.fail("*", status=429, times=5, retry_after=0)

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", tmp_path / "c.jsonl", "--progress",
        env=cli_env(fake),
    )  # fmt: skip

    assert 0 == done.code
    assert "retries 5" in done.stderr
    assert "429s 5" in done.stderr
    assert "concurrency" in done.stderr


async def test_verbose_prints_each_request_and_vv_each_attempt_without_the_token(fake, tmp_path):
    """-v: one line per request (method, path, status, latency); -vv adds attempts; no token, no asyncio."""
    sid = fake.call_sids[0]
    fake.fail(sid, status=503, times=1)
    path = f"/Accounts/{fake.project_id}/Calls/{sid}"

    once = await run_cli("get", sid, "-v", env=cli_env(fake))
    fake.fail(sid, status=503, times=1)
    twice = await run_cli("get", sid, "-vv", env=cli_env(fake))

    assert (0, 0) == (once.code, twice.code)
    request_line = next(
        line for line in once.stderr.splitlines() if "GET " in line and " 200 in " in line
    )
    assert path in request_line
    assert request_line.endswith("ms (2 attempts)")
    assert "Retrying GET" in once.stderr
    assert "attempt 1:" not in once.stderr
    assert "attempt 1:" in twice.stderr
    assert "attempt 2:" in twice.stderr
    for run in (once, twice):
        assert fake.api_token not in run.stderr
        assert "asyncio" not in run.stderr
