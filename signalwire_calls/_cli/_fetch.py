"""``signalwire-calls fetch``: a bulk export that can be killed at any moment and resumed.

The command reads the SIDs, skips those already in the output and fetches the
rest; the output file that makes a kill at any moment safe, and its guarantees,
are in ``_cli_resumable.py``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

import attrs
import click

from signalwire_calls._checks import check_sid
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
from signalwire_calls._cli._files import check_distinct
from signalwire_calls._cli._output import Counts, ProgressBar
from signalwire_calls._cli._parquet import ParquetParts
from signalwire_calls._cli._resumable import OutputBusyError, ResumableOutput
from signalwire_calls._errors import AuthenticationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from signalwire_calls import BulkProgress, CallsClient

__all__ = [
    "OutputBusyError",
    "ResumableOutput",
    "SidList",
    "fetch",
    "read_sids",
    "run_fetch",
    "stdin_lines",
]


@attrs.define
class SidList:
    """SIDs read from the input: valid and distinct, and the lines that were not SIDs."""

    sids: list[str] = attrs.field(factory=list)
    invalid: list[tuple[int, str]] = attrs.field(factory=list)
    duplicates: int = 0


def read_sids(lines: Iterable[str]) -> SidList:
    """Read SIDs one per line; blank lines and surrounding spaces are ignored."""
    found = SidList()
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            check_sid(text)
        except ValueError:
            found.invalid.append((number, text[:80]))
            continue
        if text.lower() in seen:
            found.duplicates += 1
            continue
        seen.add(text.lower())
        found.sids.append(text)
    return found


def describe(error: BaseException | None, outcome: str = "failed") -> str:
    """Return a one-line reason for a lookup that found nothing."""
    if outcome == "missing":
        return "no such call"
    if error is None:
        return "no result"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


async def run_fetch(
    client: CallsClient,
    sids: list[str],
    output: ResumableOutput | ParquetParts,
    *,
    concurrency: int,
    counts: Counts,
    bar: ProgressBar,
    report: Callable[[str, str, str], None],
) -> bool:
    """Fetch ``sids`` into ``output``; return ``False`` if interrupted (Ctrl-C, SIGTERM).

    ``report(sid, kind, reason)`` is called for each SID that is ``missing`` or
    ``failed``. A refused credential stops the job: it would fail every SID.
    """
    total = len(sids)

    def on_progress(progress: BulkProgress) -> None:
        bar.update(progress.done, progress.failed, total)

    results = client.iter_call_results(sids, concurrency=concurrency, on_progress=on_progress)
    interrupted = await until_signal(_consume(results, output, counts, report))
    return not interrupted


async def _consume(
    results: Any,
    output: ResumableOutput | ParquetParts,
    counts: Counts,
    report: Callable[[str, str, str], None],
) -> None:
    async with contextlib.aclosing(results):
        async for result in results:
            if isinstance(result.error, AuthenticationError):
                raise result.error
            outcome = counts.count(result)
            if result.call is not None:
                output.write(result.call)
            else:
                report(result.sid, outcome, describe(result.error, outcome))


# ---------------------------------------------------------------------- command


@click.command()
@click.option(
    "--input", "source", required=True, metavar="FILE", help="SIDs, one per line; '-' reads stdin."
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),  # a Parquet export is a directory
    help="JSON Lines file (or Parquet directory); an existing one is resumed.",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write failures here as JSON lines, rewritten each run (default: stderr).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most lookups in flight (halves by itself on 429).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each with its own event loop: for when one core is the limit.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet"]),
    help="Default: from the --output name (a Parquet directory of parts if .parquet).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar (default: if stderr is a terminal).",
)
@connection_options
def fetch(  # noqa: PLR0917 - one parameter per flag
    source: str,
    output: Path,
    errors_path: Path | None,
    concurrency: int,
    processes: int,
    fmt: str | None,
    progress: bool | None,
    **conn: Any,
) -> None:
    """Export calls by SID to a JSON Lines file, resumable after any interruption.

    Each call is written as one complete line as it arrives. Run the same command
    again after a crash, Ctrl-C or kill -9: SIDs already in --output are skipped.
    """
    # Before anything is opened: --errors over --output would tear the export, and
    # --input over either would read what this run writes.
    check_distinct(input=None if source == "-" else Path(source), output=output, errors=errors_path)
    flags = dict(conn)
    client = make_client(conn)
    wanted = _read_input(source)
    parquet = (fmt or ("parquet" if output.suffix.lower() == ".parquet" else "jsonl")) == "parquet"
    out = ParquetParts(output) if parquet else ResumableOutput(output)
    try:
        out.open()
    except OSError as err:
        raise CliError(f"cannot write {output}: {err.strerror or err}") from None
    if out.repaired:
        say(f"{output}: removed {out.repaired} incomplete line(s) left by an interrupted run")
    todo = [sid for sid in wanted.sids if sid.lower() not in out.done]
    counts = Counts(skipped=len(wanted.sids) - len(todo))
    with (
        _ErrorSink(errors_path) as errors,
        ProgressBar("fetch", len(todo), enabled=progress) as bar,
    ):
        errors.bar = bar
        for number, text in wanted.invalid:
            errors.report(text, "invalid", f"line {number} of the input is not a call SID")
        job = functools.partial(
            run_fetch,
            sids=todo,
            output=out,
            concurrency=concurrency,
            counts=counts,
            bar=bar,
            report=errors.report,
        )
        try:
            if processes > 1:
                from signalwire_calls._cli import _processes  # noqa: PLC0415 - it imports this module

                finished = _processes.fetch_in_processes(
                    todo,
                    out,
                    processes=processes,
                    options=_processes.shard_options(
                        flags, client.base_url, client.project_id, concurrency
                    ),
                    token=_processes.worker_token(flags),
                    counts=counts,
                    bar=bar,
                    report=errors.report,
                )
            else:
                finished = run_main(with_client(client, job))
        finally:
            out.close()
    say(f"fetch: {counts.summary()}")
    if wanted.invalid:
        say(f"fetch: {len(wanted.invalid):,} input line(s) were not call SIDs")
    if not finished:
        say(f"interrupted: run the same command again to fetch the rest into {output}")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_LOOKUPS if counts.missing or counts.failed or wanted.invalid else EXIT_OK)


def stdin_lines() -> list[str]:
    """Return stdin's lines, read as UTF-8 (a byte-order mark is ignored); empty if closed."""
    if sys.stdin is None:
        return []
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline=None)
    try:
        return list(stream)
    except UnicodeDecodeError:
        raise CliError("cannot read stdin: not UTF-8 text") from None
    finally:
        stream.detach()  # leave sys.stdin's buffer open


def _read_input(source: str) -> SidList:
    if source == "-":
        return read_sids(stdin_lines())
    try:
        with Path(source).open(encoding="utf-8-sig") as lines:
            return read_sids(lines)
    except OSError as err:
        raise CliError(f"cannot read {source}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CliError(f"cannot read {source}: not UTF-8 text") from None


class _ErrorSink:
    """Failures as JSON lines in ``--errors``, or as lines on stderr."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.bar: ProgressBar | None = None
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        if self.path is not None:
            try:
                self._file = self.path.open("w", encoding="utf-8")
            except OSError as err:
                raise CliError(f"cannot write {self.path}: {err.strerror or err}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()

    def report(self, sid: str, kind: str, reason: str) -> None:
        """Record one SID that was ``invalid``, ``missing`` or ``failed``."""
        if self._file is not None:
            self._file.write(json.dumps({"sid": sid, "error": kind, "reason": reason}) + "\n")
            self._file.flush()
        elif self.bar is not None:
            self.bar.say(f"{kind} {sid}: {reason}")
