"""The ``signalwire-calls`` commands: get, fetch, list, serve and demo (see ``_cli.py``)."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import click

from signalwire_calls._cli_common import (
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
from signalwire_calls._cli_demo import demo, serve
from signalwire_calls._cli_fetch import describe, fetch, read_sids
from signalwire_calls._cli_output import CallWriter, Counts, ProgressBar, print_table
from signalwire_calls._client import CallsClient
from signalwire_calls._errors import AuthenticationError, NotFoundError, PermissionDeniedError
from signalwire_calls._models import Call, CallStatus

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
@click.argument("sids", nargs=-1, required=True)
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
    """Print calls by SID: one JSON object per line (the API's shape) on stdout."""
    wanted = read_sids(sids)
    for _, text in wanted.invalid:
        say(f"{text}: not a call SID (expected a UUID)")
    client = make_client(conn)
    problems = len(wanted.invalid)

    async def main() -> list[Call]:
        nonlocal problems
        calls: list[Call] = []
        out = sys.stdout.buffer
        async with client:
            async for result in client.get_calls(wanted.sids, ordered=True):
                if isinstance(result.error, (AuthenticationError, PermissionDeniedError)):
                    raise result.error
                if result.call is None:
                    problems += 1
                    reason = (
                        "no such call"
                        if isinstance(result.error, NotFoundError)
                        else describe(result.error)
                    )
                    say(f"{result.sid}: {reason}")
                elif fmt == "table":
                    calls.append(result.call)
                else:
                    CallWriter(out, "jsonl").write(result.call)
        return calls

    calls = run_main(main())
    if fmt == "table" and calls:
        print_table(calls)
    sys.exit(EXIT_LOOKUPS if problems else EXIT_OK)


# -------------------------------------------------------------------------- list


def _when(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> date | datetime | None:
    """Parse an ISO 8601 date or time; a time without an offset is taken as UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:  # noqa: PLR2004 - YYYY-MM-DD
            return date.fromisoformat(value)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected 2026-10-01 or 2026-10-01T14:30:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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
    "--started-after", metavar="T", callback=_when, help="ISO 8601 date or time (UTC unless given)."
)
@click.option(
    "--started-before",
    metavar="T",
    callback=_when,
    help="ISO 8601 date or time (UTC unless given).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many calls.")
@click.option(
    "--output", default="-", show_default=True, help="A .jsonl or .csv file, or '-' for stdout."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="Default: from the --output name (JSON Lines unless .csv).",
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
    started_after: date | datetime | None,
    started_before: date | datetime | None,
    limit: int | None,
    output: str,
    fmt: str | None,
    progress: bool | None,
    **conn: Any,
) -> None:
    """List calls, newest first, as JSON Lines or CSV (columns in the API's field order)."""
    client = make_client(conn)
    fmt = fmt or ("csv" if output.lower().endswith(".csv") else "jsonl")
    try:
        calls = client.iter_calls(
            status=status,
            to=to,
            from_=from_,
            started_after=started_after,
            started_before=started_before,
            limit=limit,
        )
    except ValueError as err:
        raise CliError(str(err)) from None
    counts = Counts()
    with contextlib.ExitStack() as stack:
        stream = sys.stdout.buffer if output == "-" else stack.enter_context(_open_out(output))
        writer = CallWriter(stream, fmt)
        bar = stack.enter_context(ProgressBar("list", limit, enabled=progress))

        async def main(_client: CallsClient) -> bool:
            async def consume() -> None:
                async with contextlib.aclosing(calls):  # type: ignore[type-var]
                    async for call in calls:
                        writer.write(call)
                        counts.found += 1
                        bar.update(counts.found, 0)

            return not await until_signal(consume())

        finished = run_main(with_client(client, main))
    say(f"list: {counts.summary(noun='listed')}")
    sys.exit(EXIT_OK if finished else EXIT_INTERRUPTED)


def _open_out(path: str) -> IO[bytes]:
    try:
        return Path(path).open("wb")
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror or err}") from None


cli.add_command(fetch)
cli.add_command(serve)
cli.add_command(demo)
