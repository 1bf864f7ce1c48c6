"""The command line's shared conventions, as a new user meets them in the first hour.

One output vocabulary and ``--fields`` across commands, a default ``--limit``, one
error style, clear words on a waiting stdin, no file left by a refused start, ISO 8601
in CSV, a clean terminal after a progress bar, one emulator command, shell completion.
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
import sys
from pathlib import Path

import pytest
from signalwire_calls.testing import EXAMPLE_SID, FakeSignalWire, FaultProfile
from test_cli import cli_env, one_line_error, run_cli, start_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=40, seed=5) as emulator:
        emulator.add_example_call()
        yield emulator


async def run_on_terminal(*args: str, env: dict[str, str], typed: bytes = b"") -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; return code and output."""
    leader, terminal = os.openpty()
    drawn = bytearray()

    def read_terminal() -> None:
        with contextlib.suppress(OSError):  # EIO once the CLI has closed the terminal
            while chunk := os.read(leader, 65536):
                drawn.extend(chunk)

    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "signalwire_calls", *args,
                stdin=terminal, stdout=terminal, stderr=terminal,
                env=env | {"COLUMNS": "120"},
            )  # fmt: skip
        finally:
            os.close(terminal)  # the CLI holds its own copy: EOF comes when it exits
        reader = asyncio.create_task(asyncio.to_thread(read_terminal))
        if typed:
            await asyncio.sleep(0.5)  # let it reach its read (no assertion depends on time)
            os.write(leader, typed)
        async with asyncio.timeout(60):
            await proc.wait()
            await reader
    finally:
        os.close(leader)
    assert proc.returncode is not None
    return proc.returncode, drawn.decode(errors="replace")


def screen(drawn: str) -> list[str]:
    """Replay what was drawn as a terminal shows it, colours dropped.

    It follows line feeds, erased lines and cursor-up moves: the sequences rich uses.
    """
    lines = [""]
    row = 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r\n|\n|\r|[^\x1b\r\n]+", drawn):
        if token in {"\n", "\r\n"}:
            row += 1
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            pass  # the next text overwrites the line: rich erases it first
        elif token.endswith("K"):  # erase the line
            lines[row] = ""
        elif token.endswith("A"):  # cursor up
            row = max(0, row - int(token[2:-1] or 1))
        elif not token.startswith("\x1b"):
            lines[row] += token
    return lines


# ------------------------------------------------------------- formats, fields


async def test_get_and_list_take_the_same_formats_and_fields(fake):
    """`get` and `list` both write json, jsonl, csv and table, keeping the --fields given."""
    fields = ["--fields", "sid,status,duration"]
    as_json = await run_cli("get", EXAMPLE_SID, "--format", "json", *fields, env=cli_env(fake))
    as_jsonl = await run_cli(
        "list", "--limit", "2", "--format", "jsonl", *fields, env=cli_env(fake)
    )
    as_table = await run_cli(
        "list", "--limit", "2", "--format", "table", *fields, env=cli_env(fake)
    )

    assert [{"sid": EXAMPLE_SID, "status": "completed", "duration": 106}] == json.loads(
        as_json.stdout
    )
    assert [["sid", "status", "duration"]] * 2 == [list(json.loads(x)) for x in as_jsonl.lines]
    assert ["sid", "status", "duration"] == as_table.lines[0].split()
    assert fake.call_sids[0] == as_table.lines[1].split()[0]


async def test_an_empty_json_listing_is_still_a_json_array(fake):
    """`list --format json` that matches nothing prints [] (valid JSON), not nothing."""
    done = await run_cli("list", "--to", "+10000000000", "--format", "json", env=cli_env(fake))

    assert (0, []) == (done.code, json.loads(done.stdout))


async def test_csv_dates_are_iso_8601(fake, tmp_path):
    """CSV has ISO 8601 dates, which spreadsheets read, while JSON keeps the API's own."""
    out = tmp_path / "calls.csv"
    done = await run_cli(
        "get", EXAMPLE_SID, "--format", "csv", "--fields", "sid,date_created,start_time,end_time",
        env=cli_env(fake),
    )  # fmt: skip
    listed = await run_cli("list", "--all", "--output", out, env=cli_env(fake))

    assert [
        ["sid", "date_created", "start_time", "end_time"],
        [EXAMPLE_SID, "2026-10-12T14:03:11+00:00", "2026-10-12T14:03:12+00:00",
         "2026-10-12T14:04:58+00:00"],
    ] == list(csv.reader(io.StringIO(done.stdout)))  # fmt: skip
    assert 0 == listed.code
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", r["date_created"]) for r in rows
    )


async def test_an_unknown_field_is_named_with_the_right_ones(fake):
    """`--fields stauts` is one line naming the wrong field and listing the right ones, exit 2."""
    done = await run_cli("list", "--fields", "sid,stauts", env=cli_env(fake))

    assert 2 == done.code
    line = one_line_error(done)
    assert line.startswith("signalwire-calls: error: --fields: unknown field 'stauts'")
    assert "sid, date_created" in line


# ------------------------------------------------------------------ list limit


async def test_list_shows_30_calls_by_default_and_all_with_all(fake):
    """Without --limit, `list` shows 30 and says there are more; --all lists every call."""
    first = await run_cli("list", env=cli_env(fake))
    every = await run_cli("list", "--all", env=cli_env(fake))
    both = await run_cli("list", "--all", "--limit", "5", env=cli_env(fake))

    assert (0, 30) == (first.code, len(first.lines))
    assert "there are more: the first 30 are shown; --limit N or --all" in first.stderr
    assert (0, 41) == (every.code, len(every.lines))
    assert "there are more" not in every.stderr
    assert "signalwire-calls: error: --all and --limit: choose one" == one_line_error(both)


# ----------------------------------------------------------------- error style


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["list", "--stauts", "completed"], "signalwire-calls: error: No such option '--stauts'"),
        (["list", "--status", "complete"], "signalwire-calls: error: Invalid value for '--status'"),
        (["serve", "--port", "99999"], "signalwire-calls: error: Invalid value for '--port'"),
        (["nonsense"], "signalwire-calls: error: No such command 'nonsense'"),
    ],
)
async def test_usage_errors_are_one_line_in_the_clis_own_style(args, start):
    """Usage errors from click print as the CLI's own errors do: one line, then exit 2."""
    done = await run_cli(*args, env=cli_env())

    assert 2 == done.code
    line = one_line_error(done)
    assert line.startswith(start)
    assert line.endswith("--help')")
    assert "Usage:" not in done.stderr


async def test_the_insecure_http_hint_names_the_flag(fake):
    """Plain http:// to another host is refused naming --allow-insecure-http, not Python."""
    env = cli_env(fake, SIGNALWIRE_BASE_URL="http://10.0.0.1:8080/api/laml/2010-04-01")
    done = await run_cli("get", EXAMPLE_SID, env=env)

    assert 2 == done.code
    line = one_line_error(done)
    assert "pass --allow-insecure-http" in line
    assert "allow_insecure_http" not in line


# ----------------------------------------------------------------------- stdin


async def test_fetch_input_dash_on_a_terminal_says_what_it_waits_for(fake, tmp_path):
    """`fetch --input -` on a terminal says it reads SIDs until Ctrl-D, then fetches them."""
    out = tmp_path / "calls.jsonl"
    code, drawn = await run_on_terminal(
        "fetch", "--input", "-", "--output", str(out), "--no-progress",
        env=cli_env(fake), typed=f"{EXAMPLE_SID}\n\x04".encode(),
    )  # fmt: skip

    assert 0 == code
    assert "reading SIDs from the terminal, one per line; end with Ctrl-D" in drawn
    assert [EXAMPLE_SID] == [json.loads(line)["sid"] for line in out.read_text().splitlines()]


# -------------------------------------------------------------- refused starts


async def test_a_refused_fetch_leaves_no_file_and_the_old_errors_untouched(fake, tmp_path):
    """Bad credentials create no --output and keep the previous run's --errors as it was."""
    (tmp_path / "sids.txt").write_text(f"{EXAMPLE_SID}\n")
    out, errors = tmp_path / "calls.jsonl", tmp_path / "errors.jsonl"
    errors.write_text('{"sid": "x", "error": "failed", "reason": "from the last run"}\n')
    env = cli_env(fake, SIGNALWIRE_API_TOKEN="PTnot-the-token")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", out, "--errors", errors, env=env
    )  # fmt: skip

    assert 2 == done.code
    assert not out.exists()
    assert "from the last run" in errors.read_text()


async def test_a_fetch_that_runs_rewrites_the_errors_file(fake, tmp_path):
    """A run that gets going rewrites --errors: only what fails now is in it."""
    (tmp_path / "sids.txt").write_text(f"{EXAMPLE_SID}\n")
    errors = tmp_path / "errors.jsonl"
    errors.write_text('{"sid": "x", "error": "failed", "reason": "from the last run"}\n')

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", tmp_path / "calls.jsonl",
        "--errors", errors, env=cli_env(fake),
    )  # fmt: skip

    assert (0, "") == (done.code, errors.read_text())


async def test_an_error_line_names_the_sid_once(fake, tmp_path):
    """A failed lookup's line says the SID once, then why, without the request URL."""
    sid = fake.call_sids[0]
    fake.fail(sid, status=503)
    (tmp_path / "sids.txt").write_text(f"{sid}\n")

    done = await run_cli(
        "fetch", "--input", tmp_path / "sids.txt", "--output", tmp_path / "calls.jsonl",
        "--retries", "0", env=cli_env(fake),
    )  # fmt: skip

    assert 1 == done.code
    [line] = [line for line in done.stderr.splitlines() if sid in line]
    assert 1 == line.count(sid)
    assert re.search(r"HTTP 503 \(code \d+\)", line)
    assert "http://" not in line


# -------------------------------------------------------------- interruptions


async def test_ctrl_c_in_list_says_it_was_interrupted(fake):
    """SIGINT during `list` ends it with `list: interrupted: N listed` and exit 130."""
    fake.faults = FaultProfile(latency=(0.2, 0.2))
    proc = await start_cli("list", "--all", "--page-size", "5", env=cli_env(fake))
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        await proc.stdout.readline()  # the first call is out: the listing is under way
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(60):
        _, err = await proc.communicate()

    assert 130 == proc.returncode
    assert re.search(
        r"^signalwire-calls: list: interrupted: \d+ listed", err.decode(), re.MULTILINE
    )


# ------------------------------------------------------------- progress bars


async def test_the_progress_bar_leaves_a_clean_terminal_and_counts_as_the_summary():
    """In a terminal the demo's bar is erased when done, and its errors are the failures."""
    code, drawn = await run_on_terminal(
        "demo", "--calls", "200", "--missing", "5", "--faults", "none", "--progress", env=cli_env()
    )  # fmt: skip

    shown = screen(drawn)
    assert 0 == code
    assert not [line for line in shown if "━" in line or "ETA" in line]  # no leftover bar
    assert "   found         200" in shown
    assert "   missing         5   (404: no such call; reported, not fatal)" in shown
    assert {"0"} == set(re.findall(r"errors (\d+)", drawn))  # 404s are not errors


# ------------------------------------------------------------------ emulator


async def test_serve_off_loopback_warns_and_says_how_others_reach_it():
    """`serve --host 0.0.0.0` warns on stderr and prints a URL for other machines too."""
    everywhere = "0.0.0.0"  # noqa: S104 - what the test is about
    proc = await start_cli(
        "serve", "--host", everywhere, "--port", "0", "--calls", "1", env=cli_env()
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            warning = (await proc.stderr.readline()).decode()
            lines = [(await proc.stdout.readline()).decode() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 30)

    assert warning.startswith("signalwire-calls: warning: listening on 0.0.0.0: anyone")
    assert lines[1].startswith("export SIGNALWIRE_BASE_URL=http://127.0.0.1:")
    assert lines[2].startswith("# from other machines: http://<this machine's address>:")


async def test_serve_writes_the_sids_file_with_one_missing_sid(tmp_path):
    """`serve --sids-file` writes every SID it serves, the docs' example too, then a missing one."""
    path = tmp_path / "sids.txt"
    proc = await start_cli(
        "serve", "--port", "0", "--calls", "3", "--sids-file", path, env=cli_env()
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while b"Press Ctrl-C" not in await proc.stdout.readline():
                pass
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 30)

    sids = path.read_text().split()
    assert 5 == len(sids)
    assert EXAMPLE_SID in sids
    assert "00000000-0000-4000-8000-000000000000" == sids[-1]


# ---------------------------------------------------------------- completion


async def test_the_documented_completion_line_prints_a_bash_completion_script():
    """The bash line of docs/cli.md works: the variable makes the CLI print its script."""
    documented = (ROOT / "docs" / "cli.md").read_text()
    assert '"$(_SIGNALWIRE_CALLS_COMPLETE=bash_source signalwire-calls)"' in documented

    done = await run_cli(env=cli_env(_SIGNALWIRE_CALLS_COMPLETE="bash_source"))

    assert 0 == done.code
    assert "complete -o nosort -F _signalwire_calls_completion signalwire-calls" in done.stdout
