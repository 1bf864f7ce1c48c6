"""``signalwire-calls fetch``: a bulk export that can be killed at any moment and resumed.

How nothing is lost or written twice:

- Each call is appended to the output as one complete line with a single
  ``write()`` on an unbuffered file, as soon as it arrives. Once that system call
  returns, the line belongs to the operating system: killing the process, even with
  ``SIGKILL``, cannot lose or tear it.
- On start, the existing output is scanned: the SIDs it holds are skipped, and a
  line that is not complete, valid JSON (the tail of a write cut short by a full
  disk or a crash of the machine) is removed first.
- The file is ``fsync``-ed once at the end, not per line (a sync per line would
  cap the export at the disk's sync rate). So a *power loss* can lose the last few
  seconds of lines, or leave a torn tail: the next run detects and repairs both.
- An exclusive ``flock`` refuses a second ``fetch`` writing to the same file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

import attrs
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
from signalwire_calls._cli_output import Counts, ProgressBar, dumps_call
from signalwire_calls._client import check_sid
from signalwire_calls._errors import AuthenticationError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from signalwire_calls._bulk import BulkProgress
    from signalwire_calls._client import CallsClient
    from signalwire_calls._models import Call

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    _loads = json.loads

__all__ = [
    "OutputBusyError",
    "ResumableOutput",
    "SidList",
    "fetch",
    "read_sids",
    "run_fetch",
    "stdin_lines",
]


class OutputBusyError(OSError):
    """Another process holds the output file's lock."""


def _sid_of(line: bytes) -> str | None:
    """Return the SID of a complete output line, or ``None`` if the line is not one."""
    if not line.endswith(b"\n"):
        return None
    try:
        data = _loads(line)
    except ValueError:
        return None
    sid = data.get("sid") if isinstance(data, dict) else None
    return sid.lower() if isinstance(sid, str) else None


class ResumableOutput:
    """An append-only JSON Lines file of calls, safe to kill and resume (see the module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        self.repaired = 0
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        """Lock the file, repair a torn tail, collect the SIDs already written, open to append."""
        file = self.path.open("ab", buffering=0)  # unbuffered: one write() per line
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise OutputBusyError(
                        f"{self.path} is being written by another signalwire-calls fetch"
                    ) from None
            self._recover(file)
        except BaseException:
            file.close()
            raise
        self._file = file

    def _recover(self, file: IO[bytes]) -> None:
        good_end = offset = 0
        damaged = False  # a valid line after an invalid one: not just a torn tail
        with self.path.open("rb") as lines:
            for line in lines:
                offset += len(line)
                sid = _sid_of(line)
                if sid is None:
                    self.repaired += 1
                    continue
                damaged = damaged or self.repaired > 0
                self.done.add(sid)
                if not self.repaired:
                    good_end = offset
        if not self.repaired:
            return
        if damaged:
            self._rewrite(file)
        else:  # the usual case: only the last line is torn
            file.truncate(good_end)
        os.fsync(file.fileno())

    def _rewrite(self, file: IO[bytes]) -> None:
        """Keep only the valid lines, in place (the lock is on this very file)."""
        with tempfile.TemporaryFile() as spare:
            with self.path.open("rb") as lines:
                for line in lines:
                    if _sid_of(line) is not None:
                        spare.write(line)
            file.truncate(0)
            spare.seek(0)
            shutil.copyfileobj(spare, file)

    def write(self, call: Call) -> None:
        """Append ``call`` as one line with one system call; flushed to the OS on return."""
        if self._file is None:
            raise RuntimeError("open() the output first")
        _write_all(self._file, dumps_call(call))
        self.done.add(call.sid.lower())

    def close(self) -> None:
        """Sync the file to disk and close it (and its lock). Idempotent."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                os.fsync(file.fileno())
            file.close()


def _write_all(file: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written or 0 :]


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


def describe(error: BaseException | None) -> str:
    """Return a one-line reason for a failed lookup."""
    if error is None:
        return "no result"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


async def run_fetch(
    client: CallsClient,
    sids: list[str],
    output: ResumableOutput,
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

    results = client.get_calls(sids, concurrency=concurrency, on_progress=on_progress)
    interrupted = await until_signal(_consume(results, output, counts, report))
    return not interrupted


async def _consume(
    results: Any,
    output: ResumableOutput,
    counts: Counts,
    report: Callable[[str, str, str], None],
) -> None:
    async with contextlib.aclosing(results):
        async for result in results:
            if result.call is not None:
                output.write(result.call)
                counts.found += 1
            elif isinstance(result.error, AuthenticationError):
                raise result.error
            elif isinstance(result.error, NotFoundError):
                counts.missing += 1
                report(result.sid, "missing", "no such call")
            else:
                counts.failed += 1
                report(result.sid, "failed", describe(result.error))


# ---------------------------------------------------------------------- command


@click.command()
@click.option(
    "--input", "source", required=True, metavar="FILE", help="SIDs, one per line; '-' reads stdin."
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON Lines file; an existing one is resumed.",
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
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar (default: if stderr is a terminal).",
)
@connection_options
def fetch(
    source: str,
    output: Path,
    errors_path: Path | None,
    concurrency: int,
    progress: bool | None,
    **conn: Any,
) -> None:
    """Export calls by SID to a JSON Lines file, resumable after any interruption.

    Each call is written as one complete line as it arrives. Run the same command
    again after a crash, Ctrl-C or kill -9: SIDs already in --output are skipped.
    """
    client = make_client(conn)
    wanted = _read_input(source)
    out = ResumableOutput(output)
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
