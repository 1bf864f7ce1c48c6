"""The ``signalwire-calls`` commands: get, fetch, list, serve and demo (see ``_cli.py``)."""

from __future__ import annotations

import contextlib
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from signalwire_calls._cli._output import (
    FORMATS,
    CallWriter,
    Counts,
    ProgressBar,
    Writable,
    format_for,
    print_table,
)
from signalwire_calls._cli._params import fields_option, sid_option, when_option, whole_option
from signalwire_calls._cli._parquet import ParquetWriter
from signalwire_calls._cli._processes import list_in_processes
from signalwire_calls._client import CallsClient
from signalwire_calls._errors import AuthenticationError, PermissionDeniedError
from signalwire_calls._listing import MAX_PAGE_SIZE
from signalwire_calls._models import Call, CallResult, CallStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["cli"]


class _Commands(click.Group):
    """The command group, with click's usage errors in this CLI's one-line style."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; show every expected error as ``signalwire-calls: error: ...``."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as err:  # a bad flag or value, or a CliError
            if not isinstance(err, CliError) and isinstance(err, click.UsageError):
                err = CliError(_usage_message(err), err.exit_code)
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:  # Ctrl-C or end of input in a prompt
            say("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _usage_message(err: click.UsageError) -> str:
    """Return click's usage error as one line, pointing at the command's ``--help``."""
    message = " ".join(err.format_message().split())
    if err.ctx is not None:
        message += f" (see '{err.ctx.command_path} --help')"
    return message


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="signalwire-calls", message="%(prog)s %(version)s")
def cli() -> None:
    """Read SignalWire call records (Compatibility API, Calls) from the command line.

    Credentials come from flags or SIGNALWIRE_SPACE_URL, SIGNALWIRE_PROJECT_ID and
    SIGNALWIRE_API_TOKEN. Try `signalwire-calls demo`: it needs no account.

    Exit codes: 0 all found; 1 some lookups failed or were missing; 2 usage or
    configuration error, or the API could not be reached at all; 130 interrupted.
    """


# --------------------------------------------------------------------------- get


_FORMAT_HELP = (
    "jsonl: one JSON object per line (the API's shape); json: one JSON array; "
    "csv: a header and one row per call (ISO 8601 dates); table: for reading."
)
_FIELDS_HELP = "Comma-separated fields to show, in this order (e.g. sid,status,duration)."


@cli.command()
@click.argument("sids", nargs=-1, metavar="[SID]... | -")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help=_FORMAT_HELP,
)
@click.option("--fields", metavar="F1,F2", callback=fields_option, help=_FIELDS_HELP)
@connection_options
def get(sids: tuple[str, ...], fmt: str, fields: tuple[str, ...], **conn: Any) -> None:
    """Print calls by SID on stdout: one JSON object per line (the API's shape) by default.

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
    shown = _Shown(fmt, fields, problems=len(wanted.invalid))

    async def main() -> bool:
        async def consume() -> None:
            async for result in client.iter_call_results(wanted.sids, ordered=True):
                shown.take(result)

        async with client:
            # SIGTERM as well as Ctrl-C: stop cleanly, keeping what has arrived.
            return await until_signal(consume())

    interrupted = run_main(main())
    shown.close()
    if interrupted:
        say(f"get: interrupted: {shown.found:,} found, {shown.problems:,} not found or failed")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_LOOKUPS if shown.problems else EXIT_OK)


class _Shown:
    """What ``get`` has shown: JSON lines as results arrive, or calls kept for a table."""

    def __init__(self, fmt: str, fields: tuple[str, ...], *, problems: int) -> None:
        self.fmt = fmt
        self.fields = fields
        self.counts = Counts()
        self.invalid = problems
        self.sink = CallSink(sys.stdout.buffer, fmt, fields)

    @property
    def found(self) -> int:
        return self.counts.found

    @property
    def problems(self) -> int:
        return self.invalid + self.counts.missing + self.counts.failed

    def take(self, result: CallResult) -> None:
        if isinstance(result.error, (AuthenticationError, PermissionDeniedError)):
            raise result.error
        self.counts.count(result)
        if result.ok:
            self.sink.write(result.call)
        else:
            say(f"{result.sid}: {describe(result.error, result.outcome)}")

    def close(self) -> None:
        """Finish the output (print the table, close the JSON array)."""
        self.sink.close()


class CallSink:
    """Calls in any of the formats: written as they arrive, or kept for a table."""

    def __init__(self, stream: Writable, fmt: str, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.table: list[Call] = []
        self.writer = None if fmt == "table" else CallWriter(stream, fmt, fields)

    def write(self, call: Call) -> None:
        """Write one call, or keep it for the table."""
        if self.writer is None:
            self.table.append(call)
        else:
            self.writer.write(call)

    def close(self) -> None:
        """Finish the output: close the JSON array, or print the table on stdout."""
        if self.writer is not None:
            self.writer.close()
        elif self.table:
            print_table(self.table, fields=self.fields)


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
#: How many calls ``list`` shows without ``--limit`` or ``--all`` (as ``gh`` lists 30).
DEFAULT_LIMIT = 30
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
@click.option(
    "--limit",
    metavar="N",
    callback=whole_option(1),
    help=f"Stop after this many calls.  [default: {DEFAULT_LIMIT}]",
)
@click.option("--all", "every", is_flag=True, help="Every matching call: no --limit.")
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
    "--output",
    default="-",
    show_default=True,
    help="A file (.jsonl, .json or .csv), or '-' for stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*FORMATS, "parquet"]),
    help=_FORMAT_HELP + " Default: from the --output name (.csv, .json, .parquet), else jsonl.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="List the --windows in this many worker processes (one core each).",
)
@click.option("--fields", metavar="F1,F2", callback=fields_option, help=_FIELDS_HELP)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar (default: if stderr is a terminal).",
)
@connection_options
def list_calls(  # noqa: C901, PLR0917 - one parameter per flag, one branch per output
    status: str | None,
    from_: str | None,
    to: str | None,
    parent_call_sid: str | None,
    started_after: datetime | None,
    started_before: datetime | None,
    ended_after: datetime | None,
    ended_before: datetime | None,
    limit: int | None,
    every: bool,
    windows: int | None,
    page_size: int | None,
    output: str,
    fmt: str | None,
    fields: tuple[str, ...],
    processes: int,
    progress: bool | None,
    **conn: Any,
) -> None:
    """List calls, newest first: the first 30 unless --limit N or --all.

    JSON Lines by default, or --format json, csv (columns in the API's field order)
    or table.
    """
    default_limit = limit is None and not every
    limit = _list_limit(limit, every=every, windows=windows, started_after=started_after)
    client = make_client(conn)
    fmt = "parquet" if fmt is None and output.lower().endswith(".parquet") else fmt
    fmt = format_for(output, fmt)
    if fmt == "parquet" and fields:
        raise CliError("--fields does not apply to --format parquet: its columns are the schema's")
    try:
        calls = client.iter_calls(
            status=CallStatus(status) if status else None,
            to=to,
            from_=from_,
            parent_call_sid=parent_call_sid,
            started_after=started_after,
            started_before=started_before,
            ended_after=ended_after,
            ended_before=ended_before,
            page_size=page_size or (min(MAX_PAGE_SIZE, limit + 1) if limit else MAX_PAGE_SIZE),
            limit=None if limit is None else limit + 1,  # one more: are there others?
            windows=windows or 1,
        )
    except (TypeError, ValueError) as err:  # the client names its arguments: name the flags
        message = _PYTHON_NAMES.sub(lambda m: "--" + m[0].replace("_", "-"), str(err))
        raise CliError(message) from None
    counts = Counts()
    more = False
    with contextlib.ExitStack() as stack:
        export = None if output == "-" else stack.enter_context(ReplacingOutput(Path(output)))
        stream = sys.stdout.buffer if export is None else export
        sink = ParquetWriter(stream) if fmt == "parquet" else CallSink(stream, fmt, fields)
        bar = stack.enter_context(ProgressBar("list", limit, enabled=progress))

        async def main(_client: CallsClient) -> bool:
            async def consume() -> None:
                nonlocal more
                async with contextlib.aclosing(calls):  # type: ignore[type-var]
                    async for call in calls:
                        if limit is not None and counts.found == limit:
                            more = True  # the one extra call asked for: not shown
                            break
                        sink.write(call)
                        counts.found += 1
                        bar.update(counts.found, 0)

            return not await until_signal(consume())

        if processes > 1:  # the same flags, from click's context
            finished = list_in_processes(sink, client, limit=limit, counts=counts, bar=bar)
        else:
            finished = run_main(with_client(client, main))
        try:
            sink.close()
            if export is not None:  # only now does the new export replace the old one
                export.commit()
        except OSError as err:
            raise CliError(f"cannot write {output}: {err.strerror or err}") from None
    if not finished:
        say(f"list: interrupted: {counts.summary(noun='listed')}")
        sys.exit(EXIT_INTERRUPTED)
    say(f"list: {counts.summary(noun='listed')}")
    if more and default_limit:
        say(f"list: there are more: the first {limit} are shown; --limit N or --all for more")
    sys.exit(EXIT_OK)


def _list_limit(
    limit: int | None, *, every: bool, windows: int | None, started_after: datetime | None
) -> int | None:
    """Check the flags that shape a listing; return its limit (``None``: every call)."""
    if windows and windows > 1 and started_after is None:
        raise CliError("--windows needs --started-after: the start of the time range to split")
    if every and limit is not None:
        raise CliError("--all and --limit: choose one")
    return None if every else (limit or DEFAULT_LIMIT)


cli.add_command(fetch)
cli.add_command(serve)
cli.add_command(demo)
