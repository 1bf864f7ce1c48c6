"""The ``signalwire-calls`` commands: get, fetch, list, serve and demo (see ``_cli.py``)."""

from __future__ import annotations

import contextlib
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from signalwire_calls._cli._common import (
    EXIT_INTERRUPTED,
    EXIT_LOOKUPS,
    EXIT_OK,
    CliError,
    connection_options,
    make_client,
    run_main,
    say,
    until_signal,
    with_client,
)
from signalwire_calls._cli._demo import demo, serve
from signalwire_calls._cli._fetch import SidList, describe, fetch, read_sids, stdin_lines
from signalwire_calls._cli._files import ReplacingOutput
from signalwire_calls._cli._output import CallWriter, Counts, ProgressBar, print_table
from signalwire_calls._cli._params import sid_option, when_option, whole_option
from signalwire_calls._cli._parquet import ParquetWriter
from signalwire_calls._cli._processes import list_in_processes
from signalwire_calls._client import CallsClient
from signalwire_calls._errors import AuthenticationError, PermissionDeniedError
from signalwire_calls._listing import MAX_PAGE_SIZE
from signalwire_calls._models import Call, CallResult, CallStatus

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="signalwire-calls", message="%(prog)s %(version)s")
def cli() -> None:
    """Read SignalWire call records (Compatibility API, Calls) from the command line.

    Credentials come from flags or SIGNALWIRE_SPACE_URL, SIGNALWIRE_PROJECT_ID and
    SIGNALWIRE_API_TOKEN. Try `signalwire-calls demo`: it needs no account.

    Exit codes: 0 all found; 1 some lookups failed or were missing; 2 usage or
    configuration error; 130 interrupted.
    """


# --------------------------------------------------------------------------- get


@cli.command()
@click.argument("sids", nargs=-1, metavar="[SID]... | -")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
    help="One JSON object per line, or a table.",
)
@connection_options
def get(sids: tuple[str, ...], fmt: str, **conn: Any) -> None:
    """Print calls by SID: one JSON object per line (the API's shape) on stdout.

    '-' (or no SID, with stdin not a terminal) reads SIDs from stdin, one per line;
    blank lines and surrounding spaces are ignored.
    """
    wanted = _get_sids(sids)
    for _, text in wanted.invalid:
        say(f"{text}: not a call SID (expected a UUID)")
    if not wanted.sids and not wanted.invalid:
        say("get: no SIDs to look up")
        sys.exit(EXIT_OK)
    client = make_client(conn)
    shown = _Shown(fmt, problems=len(wanted.invalid))

    async def main() -> bool:
        async def consume() -> None:
            async for result in client.iter_call_results(wanted.sids, ordered=True):
                shown.take(result)

        async with client:
            # SIGTERM as well as Ctrl-C: stop cleanly, keeping what has arrived.
            return await until_signal(consume())

    interrupted = run_main(main())
    if shown.calls:
        print_table(shown.calls)
    if interrupted:
        say(f"get: interrupted: {shown.found:,} found, {shown.problems:,} not found or failed")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_LOOKUPS if shown.problems else EXIT_OK)


class _Shown:
    """What ``get`` has shown: JSON lines as results arrive, or calls kept for a table."""

    def __init__(self, fmt: str, *, problems: int) -> None:
        self.fmt = fmt
        self.counts = Counts()
        self.invalid = problems
        self.calls: list[Call] = []
        self._out = sys.stdout.buffer

    @property
    def found(self) -> int:
        return self.counts.found

    @property
    def problems(self) -> int:
        return self.invalid + self.counts.missing + self.counts.failed

    def take(self, result: CallResult) -> None:
        if isinstance(result.error, (AuthenticationError, PermissionDeniedError)):
            raise result.error
        outcome = self.counts.count(result)
        call = result.call
        if call is None:
            say(f"{result.sid}: {describe(result.error, outcome)}")
            return
        if self.fmt == "table":
            self.calls.append(call)
        else:
            CallWriter(self._out, "jsonl").write(call)


def _get_sids(args: tuple[str, ...]) -> SidList:
    """Return the SIDs of ``get``: its arguments, ``-`` (or none, stdin piped) meaning stdin."""
    if not args:
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("no SIDs: pass them as arguments, or '-' to read them from stdin")
        args = ("-",)
    lines: list[str] = []
    for arg in args:
        if arg == "-":
            lines += stdin_lines()
        else:
            lines.append(arg)
    return read_sids(lines)


# -------------------------------------------------------------------------- list


#: The most time windows ``list --windows`` pages at once: each buffers up to a page.
MAX_WINDOWS = 100
_TIME_HELP = "ISO 8601 date or time (UTC unless it has an offset)."
_PYTHON_NAMES = re.compile(r"\b(?:(?:started|ended)_(?:after|before)|parent_call_sid|page_size)\b")


@cli.command(name="list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in CallStatus]),
    help="Only calls with this status.",
)
@click.option(
    "--from", "from_", metavar="NUMBER", help="Only calls from this number or SIP address."
)
@click.option("--to", metavar="NUMBER", help="Only calls to this number or SIP address.")
@click.option(
    "--parent-call-sid",
    metavar="SID",
    callback=sid_option,
    help="Only the legs of this parent call.",
)
@click.option("--started-after", metavar="T", callback=when_option, help=_TIME_HELP)
@click.option("--started-before", metavar="T", callback=when_option, help=_TIME_HELP)
@click.option("--ended-after", metavar="T", callback=when_option, help=_TIME_HELP)
@click.option("--ended-before", metavar="T", callback=when_option, help=_TIME_HELP)
@click.option("--limit", metavar="N", callback=whole_option(1), help="Stop after this many calls.")
@click.option(
    "--windows",
    metavar="N",
    callback=whole_option(1, MAX_WINDOWS),
    help="Split the --started-after to --started-before (default: now) range into N "
    "windows listed at once: faster for big ranges, but the output is not in date "
    f"order. Needs --started-after. At most {MAX_WINDOWS}.",
)
@click.option(
    "--page-size",
    metavar="N",
    callback=whole_option(1, MAX_PAGE_SIZE),
    help=f"Calls per page, 1 to {MAX_PAGE_SIZE}.  [default: {MAX_PAGE_SIZE}]",
)
@click.option(
    "--output", default="-", show_default=True, help="A .jsonl or .csv file, or '-' for stdout."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    help="Default: from the --output name (JSON Lines unless .csv or .parquet).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="List the --windows in this many worker processes (one core each).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar (default: if stderr is a terminal).",
)
@connection_options
def list_calls(  # noqa: PLR0917 - one parameter per flag
    status: str | None,
    from_: str | None,
    to: str | None,
    parent_call_sid: str | None,
    started_after: datetime | None,
    started_before: datetime | None,
    ended_after: datetime | None,
    ended_before: datetime | None,
    limit: int | None,
    windows: int | None,
    page_size: int | None,
    output: str,
    fmt: str | None,
    processes: int,
    progress: bool | None,
    **conn: Any,
) -> None:
    """List calls, newest first, as JSON Lines or CSV (columns in the API's field order)."""
    if windows and windows > 1 and started_after is None:
        raise CliError("--windows needs --started-after: the start of the time range to split")
    client = make_client(conn)
    fmt = fmt or ("csv" if output.lower().endswith(".csv") else "jsonl")
    fmt = "parquet" if output.lower().endswith(".parquet") and fmt == "jsonl" else fmt
    try:
        calls = client.iter_calls(
            status=status,
            to=to,
            from_=from_,
            parent_call_sid=parent_call_sid,
            started_after=started_after,
            started_before=started_before,
            ended_after=ended_after,
            ended_before=ended_before,
            page_size=page_size or MAX_PAGE_SIZE,
            limit=limit,
            windows=windows or 1,
        )
    except (TypeError, ValueError) as err:  # the client names its arguments: name the flags
        message = _PYTHON_NAMES.sub(lambda m: "--" + m[0].replace("_", "-"), str(err))
        raise CliError(message) from None
    counts = Counts()
    with contextlib.ExitStack() as stack:
        export = None if output == "-" else stack.enter_context(ReplacingOutput(Path(output)))
        stream = sys.stdout.buffer if export is None else export
        writer = ParquetWriter(stream) if fmt == "parquet" else CallWriter(stream, fmt)
        bar = stack.enter_context(ProgressBar("list", limit, enabled=progress))

        async def main(_client: CallsClient) -> bool:
            async def consume() -> None:
                async with contextlib.aclosing(calls):  # type: ignore[type-var]
                    async for call in calls:
                        writer.write(call)
                        counts.found += 1
                        bar.update(counts.found, 0)

            return not await until_signal(consume())

        if processes > 1:  # the same flags, from click's context
            finished = list_in_processes(writer, client, counts=counts, bar=bar)
        else:
            finished = run_main(with_client(client, main))
        if isinstance(writer, ParquetWriter):
            writer.close()
        if export is not None:  # only now does the new export replace the old one
            try:
                export.commit()
            except OSError as err:
                raise CliError(f"cannot write {output}: {err.strerror or err}") from None
    say(f"list: {counts.summary(noun='listed')}")
    sys.exit(EXIT_OK if finished else EXIT_INTERRUPTED)


cli.add_command(fetch)
cli.add_command(serve)
cli.add_command(demo)
