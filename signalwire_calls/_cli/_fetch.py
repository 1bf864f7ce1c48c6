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
import re
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
from signalwire_calls._errors import APIError, AuthenticationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from signalwire_calls import BulkProgress, CallResult, CallsClient

__all__ = [
    "OutputBusyError",
    "ResumableOutput",
    "SidList",
    "fetch",
    "read_sids",
    "run_fetch",
    "stdin_is_terminal",
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


#: ``GET <url> [for call <sid>]`` in a message: the line already names the SID.
_REQUEST = re.compile(r"\bGET https?://\S*[^\s:](?: for call \S*[^\s:])?")


def describe(error: BaseException | None, outcome: str = "failed") -> str:
    """Return a one-line reason for a lookup that found nothing, without its URL.

    The line it goes on starts with the SID; the error's own message names it
    twice more (in the URL and after it), which says nothing new.
    """
    if outcome == "missing":
        return "no such call"
    if error is None:
        return "no result"
    if isinstance(error, APIError):
        reason = f"HTTP {error.status}" + (f" (code {error.code})" if error.code else "")
        return f"{reason}: {error.message}" if error.message else reason
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return _REQUEST.sub("request", text)


async def run_fetch(
    client: CallsClient,
    sids: list[str],
    output: ResumableOutput | ParquetParts,
    *,
    concurrency: int | None,
    counts: Counts,
    bar: ProgressBar,
    report: Callable[[str, str, str], None],
    max_concurrency: int | None = None,
) -> bool:
    """Fetch ``sids`` into ``output``; return ``False`` if interrupted (Ctrl-C, SIGTERM).

    ``report(sid, kind, reason)`` is called for each SID that is ``missing`` or
    ``failed``. A refused credential stops the job: it would fail every SID, and
    so does an API that cannot be reached at all (:class:`UnreachableError`).
    """
    total = len(sids)
    latest: list[BulkProgress] = []

    def show() -> None:
        # The bar counts as the summary does (its errors are the "failed"), and says
        # how hard the service pushes back: retries, 429s, the concurrency in force.
        progress = latest[-1] if latest else None
        bar.update(
            counts.found + counts.missing + counts.failed,
            counts.failed,
            total,
            retries=progress.retries if progress else 0,
            throttled=progress.throttled if progress else 0,
            concurrency=progress.limit if progress else None,
        )

    def on_progress(progress: BulkProgress) -> None:
        latest[:] = [progress]
        show()

    show()
    results = client.iter_call_results(
        sids,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        on_progress=on_progress,
        distinct=True,  # read_sids has removed the duplicates already
    )
    interrupted = await until_signal(_consume(results, output, counts, show, report))
    return not interrupted


async def _consume(
    results: AsyncIterator[CallResult],
    output: ResumableOutput | ParquetParts,
    counts: Counts,
    show: Callable[[], None],
    report: Callable[[str, str, str], None],
) -> None:
    async with contextlib.aclosing(results):  # type: ignore[type-var]
        async for result in results:
            if isinstance(result.error, AuthenticationError):
                raise result.error
            counts.count(result)
            if result.ok:
                output.write(result.call)
            else:
                report(result.sid, result.outcome, describe(result.error, result.outcome))
            show()


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
    default=None,
    help="Pin the lookups in flight at N (default: self-tuning; halves by itself on 429).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="The ceiling of the self-tuning concurrency (default 1000).",
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
def fetch(  # noqa: PLR0917 - click passes every option by name
    source: str,
    output: Path,
    errors_path: Path | None,
    concurrency: int | None,
    max_concurrency: int | None,
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
    if concurrency is not None and max_concurrency is not None:
        raise CliError("--concurrency pins the concurrency; --max-concurrency bounds it: pick one")
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
            max_concurrency=max_concurrency,
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


def stdin_is_terminal() -> bool:
    """Whether stdin is a terminal (a person typing), not a pipe or a file."""
    return sys.stdin is not None and sys.stdin.isatty()


def stdin_lines() -> list[str]:
    """Return stdin's lines, read as UTF-8 (a byte-order mark is ignored); empty if closed.

    On a terminal it first says what it waits for, rather than waiting silently.
    """
    if sys.stdin is None:
        return []
    if stdin_is_terminal():
        say("reading SIDs from the terminal, one per line; end with Ctrl-D (Ctrl-C to cancel)")
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
    """Failures as JSON lines in ``--errors``, or as lines on stderr.

    The file is rewritten by each run that gets going, but a run refused at the
    start (bad credentials) leaves it as it was, and creates no empty file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.bar: ProgressBar | None = None
        self._file: IO[str] | None = None
        self._created = False
        self._rewritten = False

    def __enter__(self) -> Self:
        if self.path is not None:
            self._created = not self.path.exists()
            try:  # append: checks that it can be written, and keeps it until a report
                self._file = self.path.open("a", encoding="utf-8")
            except OSError as err:
                raise CliError(f"cannot write {self.path}: {err.strerror or err}") from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._file is None or self.path is None:
            return
        if exc_type is None:
            self._rewrite()  # a run that got going lists only what still fails
        self._file.close()
        if exc_type is not None and self._created and not self._rewritten:
            self.path.unlink(missing_ok=True)

    def _rewrite(self) -> None:
        if self._file is not None and not self._rewritten:
            self._file.truncate(0)
            self._rewritten = True

    def report(self, sid: str, kind: str, reason: str) -> None:
        """Record one SID that was ``invalid``, ``missing`` or ``failed``."""
        if self._file is not None:
            self._rewrite()
            self._file.write(json.dumps({"sid": sid, "error": kind, "reason": reason}) + "\n")
            self._file.flush()
        elif self.bar is not None:
            self.bar.say(f"{kind} {sid}: {reason}")
