"""The signalwire-calls command line, run as a person would: subprocesses against the emulator.

The emulator runs in the test's event loop and the CLI as a subprocess started with
``asyncio.create_subprocess_exec``, so the loop keeps serving while a test waits.
Helpers here are shared with test_cli_fetch.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

click = pytest.importorskip("click", reason="the command line needs the cli extra")
pytest.importorskip("rich", reason="the command line needs the cli extra")
from click.testing import CliRunner  # noqa: E402
from signalwire_calls._cli._app import cli  # noqa: E402
from signalwire_calls._wire import WIRE_ORDER  # noqa: E402
from signalwire_calls.testing import FakeSignalWire, FaultProfile  # noqa: E402

MISSING = "00000000-0000-4000-8000-000000000000"


# ---------------------------------------------------------------------- helpers


@attrs.frozen
class Done:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def cli_env(fake: FakeSignalWire | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run: none of the host's SIGNALWIRE_*, the emulator's if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    if fake is not None:
        env |= {
            "SIGNALWIRE_BASE_URL": fake.base_url,
            "SIGNALWIRE_PROJECT_ID": fake.project_id,
            "SIGNALWIRE_API_TOKEN": fake.api_token,
        }
    return env | extra


async def start_cli(
    *args: str | Path, env: Mapping[str, str], stdin: bool = False
) -> asyncio.subprocess.Process:
    """Start ``python -m signalwire_calls ARGS``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalwire_calls",
        *map(str, args),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )


async def run_cli(*args: str | Path, env: Mapping[str, str], stdin: str | None = None) -> Done:
    """Run the CLI to completion and return its exit code and output."""
    proc = await start_cli(*args, env=env, stdin=stdin is not None)
    async with asyncio.timeout(120):
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def wait_for_lines(path: Path, count: int, proc: Any) -> None:
    """Poll until ``path`` has at least ``count`` complete lines, while the CLI still runs."""
    async with asyncio.timeout(60):
        while not path.exists() or path.read_bytes().count(b"\n") < count:  # noqa: ASYNC240
            assert proc.returncode is None, "the CLI finished before it could be interrupted"
            await asyncio.sleep(0.01)


def one_line_error(done: Done) -> str:
    """Assert the run failed with exactly one line on stderr and no traceback; return it."""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=40, seed=5) as emulator:
        yield emulator


# -------------------------------------------------------------------------- get


async def test_get_prints_each_call_as_one_json_line_in_the_apis_shape(fake):
    """`get` prints one JSON object per SID, in argument order, equal to what the API sent."""
    sids = fake.call_sids[3:6]

    done = await run_cli("get", *sids, env=cli_env(fake))

    assert (0, "") == (done.code, done.stderr)
    assert [fake.calls[sid] for sid in sids] == [json.loads(line) for line in done.lines]


async def test_get_reports_missing_and_invalid_sids_and_exits_1(fake):
    """A missing and an invalid SID are reported on stderr; the found call still prints."""
    sid = fake.call_sids[0]

    done = await run_cli("get", sid, MISSING, "not-a-sid", env=cli_env(fake))

    assert 1 == done.code
    assert [fake.calls[sid]] == [json.loads(line) for line in done.lines]
    assert f"{MISSING}: no such call" in done.stderr
    assert "not-a-sid: not a call SID" in done.stderr
    assert "Traceback" not in done.stderr


async def test_get_stops_cleanly_on_sigterm_keeping_what_arrived():
    """SIGTERM mid-run exits 130 with a summary; the lines already printed are whole calls."""
    faults = FaultProfile(hang_rate=0.5, hang_seconds=5, seed=3)
    async with FakeSignalWire(calls=40, seed=5, faults=faults) as slow:
        proc = await start_cli("get", *slow.call_sids, env=cli_env(slow))
        async with asyncio.timeout(30):
            while len(slow.requests) < len(slow.call_sids):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()

    printed = [json.loads(line) for line in out.decode().splitlines()]
    assert 130 == proc.returncode
    assert "Traceback" not in err.decode()
    assert [slow.calls[sid] for sid in slow.call_sids[: len(printed)]] == printed
    assert f"get: interrupted: {len(printed)} found" in err.decode()


async def test_get_format_table_prints_a_readable_table(fake):
    """`--format table` prints a header and one row per call, with from, to and status."""
    sid = fake.call_sids[1]
    call = fake.calls[sid]

    done = await run_cli("get", sid, "--format", "table", env=cli_env(fake))

    assert 0 == done.code
    header, row = done.lines
    assert header.split()[:3] == ["SID", "Status", "Direction"]
    assert row.split()[:5] == [sid, call["status"], call["direction"], call["from"], call["to"]]


async def test_get_dash_reads_sids_from_stdin_ignoring_blanks_and_spaces(fake):
    """`get -` looks up stdin's SIDs in order; blanks and spaces are ignored, a bad line reported."""
    first, second = fake.call_sids[7:9]
    stdin = f"\n  {first}  \n\nnot-a-sid\n\t{second}\n"

    done = await run_cli("get", "-", env=cli_env(fake), stdin=stdin)

    assert 1 == done.code
    assert [fake.calls[first], fake.calls[second]] == [json.loads(line) for line in done.lines]
    assert "signalwire-calls: not-a-sid: not a call SID (expected a UUID)\n" == done.stderr


async def test_get_without_sids_reads_a_piped_stdin(fake):
    """With no SID arguments and stdin a pipe, `get` reads the SIDs from stdin; exit 0."""
    sids = fake.call_sids[10:13]

    done = await run_cli("get", env=cli_env(fake), stdin="\n".join(sids) + "\n")

    assert (0, "") == (done.code, done.stderr)
    assert [fake.calls[sid] for sid in sids] == [json.loads(line) for line in done.lines]


async def test_get_with_an_empty_stdin_looks_up_nothing_and_exits_0(fake):
    """An empty stdin (a grep that matched nothing) is not an error: no output, exit 0."""
    done = await run_cli("get", "-", env=cli_env(fake), stdin="\n  \n")

    assert (0, "") == (done.code, done.stdout)
    assert "no SIDs to look up" in done.stderr
    assert [] == fake.requests


async def test_get_without_sids_on_a_terminal_is_a_usage_error_exit_2(fake):
    """With no SID arguments and stdin a terminal, `get` does not wait: one line, exit 2."""
    leader, terminal = os.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signalwire_calls", "get",
            stdin=terminal, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=cli_env(fake),
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        os.close(terminal)
        os.close(leader)

    assert 2 == proc.returncode
    assert "no SIDs: pass them as arguments, or '-'" in one_line_error(Done(2, "", err.decode()))
    assert b"" == out


async def test_refused_credentials_are_one_line_exit_2_without_the_token(fake):
    """A wrong token gives exit 2 and one line naming the variables, never the token."""
    token = "PTwrong-token-0123456789"

    done = await run_cli("get", fake.call_sids[0], env=cli_env(fake, SIGNALWIRE_API_TOKEN=token))

    assert 2 == done.code
    line = one_line_error(done)
    assert "401" in line
    assert "SIGNALWIRE_API_TOKEN" in line
    assert token not in done.stdout + done.stderr


async def test_flags_override_the_environment(fake):
    """--project-id/--api-token/--base-url work with no SIGNALWIRE_* variables set."""
    sid = fake.call_sids[0]

    done = await run_cli(
        "get",
        sid,
        "--base-url",
        fake.base_url,
        "--project-id",
        fake.project_id,
        "--api-token",
        fake.api_token,
        env=cli_env(),
    )

    assert (0, [fake.calls[sid]]) == (done.code, [json.loads(line) for line in done.lines])


async def test_verbose_shows_debug_logs_but_never_the_token(fake):
    """--verbose logs the target on stderr; the token appears nowhere."""
    done = await run_cli("get", fake.call_sids[0], "--verbose", env=cli_env(fake))

    assert 0 == done.code
    assert f"calls of project {fake.project_id} at {fake.base_url}" in done.stderr
    assert fake.api_token not in done.stdout + done.stderr


async def test_network_down_is_one_line_and_exit_2():
    """An unreachable server is one line naming it and exit 2, without a traceback."""
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = cli_env(
        SIGNALWIRE_BASE_URL=f"http://127.0.0.1:{port}/api/laml/2010-04-01",
        SIGNALWIRE_PROJECT_ID="3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
        SIGNALWIRE_API_TOKEN="PTsecret",
    )

    done = await run_cli("get", MISSING, "--retries", "0", env=env)

    assert 2 == done.code
    assert done.stdout == ""
    assert f"Cannot reach 127.0.0.1:{port}" in one_line_error(done)


# ----------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_PROJECT_ID"),
        ("SIGNALWIRE_API_TOKEN", "SIGNALWIRE_API_TOKEN"),
        ("SIGNALWIRE_BASE_URL", "SIGNALWIRE_SPACE_URL"),
    ],
)
def test_missing_credentials_name_the_variable_and_exit_2(monkeypatch, unset, named):
    """Each missing setting gives exit 2 and one line naming the variable to set."""
    for name in list(os.environ):
        if name.startswith("SIGNALWIRE_"):
            monkeypatch.delenv(name)
    settings = {
        "SIGNALWIRE_BASE_URL": "http://127.0.0.1:9/api/laml/2010-04-01",
        "SIGNALWIRE_PROJECT_ID": "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
        "SIGNALWIRE_API_TOKEN": "PTsecret",
    }
    for name, value in settings.items():
        if name != unset:
            monkeypatch.setenv(name, value)

    result = CliRunner().invoke(cli, ["get", MISSING])

    assert 2 == result.exit_code
    assert result.output.startswith("signalwire-calls: error: no ")
    assert named in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bad_flag_is_a_usage_error_exit_2():
    """An unknown option is click's usage error, exit 2."""
    result = CliRunner().invoke(cli, ["fetch", "--no-such-flag"])

    assert 2 == result.exit_code
    assert "No such option" in result.output


# -------------------------------------------------------------------------- list


async def test_list_writes_json_lines_newest_first(fake):
    """`list --limit 5` prints the five newest calls as JSON lines, in the API's shape."""
    done = await run_cli("list", "--limit", "5", env=cli_env(fake))

    assert 0 == done.code
    assert [fake.calls[sid] for sid in fake.call_sids[:5]] == [json.loads(x) for x in done.lines]
    assert re.fullmatch(r"signalwire-calls: list: 5 listed in .*\n", done.stderr)  # no bar: a pipe


async def test_list_writes_csv_in_the_apis_field_order_with_filters(fake, tmp_path):
    """`list --status completed --output x.csv` writes a header in wire order and matching rows."""
    out = tmp_path / "calls.csv"
    completed = [sid for sid in fake.call_sids if fake.calls[sid]["status"] == "completed"]

    done = await run_cli(
        "list", "--status", "completed", "--all", "--output", out, env=cli_env(fake)
    )  # fmt: skip

    assert 0 == done.code
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert list(WIRE_ORDER) == rows[0]
    assert completed == [row[0] for row in rows[1:]]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert fake.calls[completed[0]]["from"] == first["from"]


async def test_list_draws_a_progress_bar_when_stderr_is_a_terminal(fake):
    """With stderr a terminal and no --progress flag, `list` draws the bar (done/total, ETA)."""
    leader, terminal = os.openpty()
    drawn = bytearray()

    def read_terminal() -> None:
        with contextlib.suppress(OSError):  # EIO once the CLI has closed the terminal
            while chunk := os.read(leader, 65536):
                drawn.extend(chunk)

    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "signalwire_calls", "list", "--limit", "7",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=terminal,
                env=cli_env(fake, COLUMNS="120"),
            )  # fmt: skip
        finally:
            os.close(terminal)  # the CLI holds its own copy: EOF comes when it exits
        reader = asyncio.create_task(asyncio.to_thread(read_terminal))
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
            await reader
    finally:
        os.close(leader)

    assert 0 == proc.returncode
    assert 7 == len(out.splitlines())
    assert "7/7" in drawn.decode(errors="replace")
    assert "ETA" in drawn.decode(errors="replace")


async def test_list_stops_quietly_when_the_reader_of_stdout_goes_away():
    """`list | head -1`: once the reader closes the pipe, list exits 0 without a traceback."""
    reader, writer = os.pipe()
    async with FakeSignalWire(calls=400, seed=2, record_requests=False) as big:
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "signalwire_calls", "list", "--page-size", "50",
                    stdin=asyncio.subprocess.DEVNULL, stdout=writer,
                    stderr=asyncio.subprocess.PIPE, env=cli_env(big),
                )  # fmt: skip
            finally:
                os.close(writer)
            first = await asyncio.to_thread(os.read, reader, 100)
        finally:
            os.close(reader)  # what `head` does once it has its line
        async with asyncio.timeout(60):
            _, err = await proc.communicate()

    assert first.startswith(b'{"sid":')
    assert (0, b"") == (proc.returncode, err)


async def test_list_filters_by_end_time_taking_a_time_without_offset_as_utc(fake):
    """--ended-after/--ended-before send EndTime>/< in UTC (no offset means UTC) and filter on them."""
    low, high = (
        datetime(2026, 10, 12, 17, 0, tzinfo=UTC),
        datetime(2026, 10, 12, 17, 30, tzinfo=UTC),
    )
    ended = [sid for sid in fake.call_sids if fake.calls[sid]["end_time"]]
    expected = [s for s in ended if low <= parsedate_to_datetime(fake.calls[s]["end_time"]) <= high]

    done = await run_cli(
        "list", "--ended-after", "2026-10-12T17:00:00", "--ended-before", "2026-10-12T19:30+02:00",
        env=cli_env(fake),
    )  # fmt: skip

    assert 0 == done.code
    assert expected == [json.loads(line)["sid"] for line in done.lines]
    assert 0 < len(expected) < len(fake.call_sids)
    query = fake.requests[-1].query
    assert ("Mon, 12 Oct 2026 17:00:00 +0000", "Mon, 12 Oct 2026 17:30:00 +0000") == (
        query["EndTime>"],
        query["EndTime<"],
    )


async def test_list_parent_call_sid_and_page_size_page_through_the_legs(fake):
    """--parent-call-sid lists only that call's legs; --page-size 1 fetches one per page."""
    parent = fake.call_sids[-1]
    legs = [fake.add_call(parent_call_sid=parent)["sid"] for _ in range(3)][::-1]  # newest first

    done = await run_cli("list", "--parent-call-sid", parent, "--page-size", "1", env=cli_env(fake))

    assert 0 == done.code
    assert legs == [json.loads(line)["sid"] for line in done.lines]
    assert [(parent, "1")] * 3 == [
        (r.query.get("ParentCallSid"), r.query.get("PageSize")) for r in fake.requests
    ]


async def test_list_windows_lists_every_call_once_across_concurrent_windows(fake):
    """--windows 4 splits the range into four StartTime windows and lists each call exactly once."""
    done = await run_cli(
        "list", "--windows", "4", "--started-after", "2026-10-12T16:00:00Z",
        "--started-before", "2026-10-12T18:00:01Z", "--all", env=cli_env(fake),
    )  # fmt: skip

    assert 0 == done.code
    listed = [json.loads(line)["sid"] for line in done.lines]
    assert sorted(fake.call_sids) == sorted(listed)
    assert len(listed) == len(set(listed))
    assert 4 == len({r.query["StartTime>"] for r in fake.requests})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--started-after", "yesterday"], "--started-after: 'yesterday': expected 2026-10-01"),
        (["--ended-before", "2026-13-01"], "--ended-before: '2026-13-01': expected 2026-10-01"),
        (["--windows", "0"], "--windows: expected a whole number from 1 to 100, got '0'"),
        (["--windows", "2"], "--windows needs --started-after"),
        (["--page-size", "1001"], "--page-size: expected a whole number from 1 to 1000"),
        (["--limit", "ten"], "--limit: expected a whole number at least 1, got 'ten'"),
        (["--parent-call-sid", "CA123"], "--parent-call-sid: 'CA123' is not a call SID"),
        (
            ["--ended-after", "2026-10-02", "--ended-before", "2026-10-01"],
            "--ended-after (2026-10-02 00:00:00+00:00) is later than --ended-before",
        ),
    ],
)
def test_list_rejects_a_bad_value_in_one_line_with_exit_2(args, message):
    """A bad filter value is one line naming the flag, exit 2, before any request."""
    env = {
        "SIGNALWIRE_BASE_URL": "http://127.0.0.1:9/api/laml/2010-04-01",
        "SIGNALWIRE_PROJECT_ID": "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
        "SIGNALWIRE_API_TOKEN": "PTsecret",
    }

    result = CliRunner().invoke(cli, ["list", *args], env=env)

    assert 2 == result.exit_code
    (line,) = result.output.splitlines()
    assert line.startswith(f"signalwire-calls: error: {message}"), line


# ---------------------------------------------------------------- serve, demo


def test_parse_faults_reads_rates_latency_and_presets():
    """--faults specs map to FaultProfile fields; a preset name expands."""
    assert FaultProfile(error_rate=0.05, rate_limit_rate=0.01, latency=(0.01, 0.02), seed=3) == (
        FaultProfile.parse("error=0.05, 429=0.01, latency=0.01:0.02", seed=3)
    )
    assert 0.03 == FaultProfile.parse("flaky").error_rate
    assert FaultProfile() == FaultProfile.parse("none")


async def test_serve_prints_parseable_settings_and_stops_on_sigint(tmp_path):
    """`serve --port 0` prints export lines a client can use; SIGINT ends it with exit 0."""
    proc = await start_cli("serve", "--port", "0", "--calls", "5", env=cli_env())
    assert proc.stdout is not None
    settings: dict[str, str] = {}
    try:
        async with asyncio.timeout(30):
            while "SIGNALWIRE_API_TOKEN" not in settings:
                line = (await proc.stdout.readline()).decode()
                assert line, "serve exited before printing its settings"
                if match := re.fullmatch(r"export (SIGNALWIRE_\w+)=(\S+)\n", line):
                    settings[match[1]] = match[2]
        listed = await run_cli("list", env=cli_env(**settings))
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)

    assert 0 == proc.returncode
    assert 6 == len(listed.lines)  # the five generated calls and the docs' example call
    assert settings["SIGNALWIRE_BASE_URL"].endswith("/api/laml/2010-04-01")


async def test_demo_stops_cleanly_on_sigterm_with_partial_figures():
    """SIGTERM during the lookups exits 130 with the summary of what was done so far."""
    proc = await start_cli("demo", "--calls", "3000", "--no-progress", env=cli_env())
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while b"2. Looking up" not in await proc.stdout.readline():
            pass
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()

    assert 130 == proc.returncode
    assert "Traceback" not in err.decode()
    assert "interrupted" in out.decode()
    found = int(re.search(r"found\s+([\d,]+)", out.decode())[1].replace(",", ""))
    assert found < 3000


async def test_demo_fetches_through_injected_faults_without_an_account():
    """`demo` finds every call despite the injected faults and reports the absorbed retries."""
    done = await run_cli("demo", "--calls", "300", "--missing", "7", env=cli_env())

    assert (0, "") == (done.code, done.stderr)
    counts = dict(re.findall(r"^\s+(found|missing|failed)\s+([\d,]+)", done.stdout, re.MULTILINE))
    assert {"found": "300", "missing": "7", "failed": "0"} == counts
    assert "all absorbed by retries" in done.stdout
    assert re.search(r"requests\s+\d+\s+for 307 SIDs: [1-9]\d* faults injected", done.stdout)
