"""What the command line writes: JSON lines, CSV, tables, the progress bar and summaries.

Data goes to stdout or a file; everything meant for a person (progress, problems,
the summary) goes to stderr, so ``signalwire-calls get SID | jq`` stays clean.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, Self

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from signalwire_calls._wire import WIRE_ORDER

if TYPE_CHECKING:
    from types import TracebackType

    from signalwire_calls._models import Call, CallResult

__all__ = [
    "FIELDS",
    "FORMATS",
    "CallWriter",
    "Counts",
    "ProgressBar",
    "dumps_call",
    "format_for",
    "print_table",
    "stderr_console",
]

try:  # the same speedup the client uses; both give one line of valid JSON
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - exercised when the extra is not installed

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def dumps_call(call: Call) -> bytes:
    """Return ``call`` as one line of JSON in the API's shape, newline included."""
    return _dumps(call.to_dict()) + b"\n"


def stderr_console(*, force: bool | None = None) -> Console:
    """Return the console for messages: stderr, colour and live display only on a terminal."""
    return Console(stderr=True, force_terminal=force, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------- call output

#: The output formats of every command that prints calls (``get`` and ``list``).
FORMATS: Final = ("jsonl", "json", "csv", "table")
#: The fields ``--fields`` may name: the API's keys, in its order.
FIELDS: Final = WIRE_ORDER
_DATE_KEYS: Final = frozenset({"date_created", "date_updated", "start_time", "end_time"})


def format_for(output: str, fmt: str | None) -> str:
    """Return the format asked for, or the one an output file's name implies (JSON Lines)."""
    if fmt is not None:
        return fmt
    name = output.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return "json"
    return "jsonl"


def _csv_cell(call: Call, key: str, data: dict[str, Any]) -> Any:
    if key in _DATE_KEYS:  # ISO 8601, which spreadsheets read (the API's RFC 2822 they do not)
        when = getattr(call, key)
        return "" if when is None else when.isoformat()
    value = data.get(key)
    if isinstance(value, dict | list):  # subresource_uris: keep it as JSON text
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else value


class Writable(Protocol):
    """Where a :class:`CallWriter` writes: a binary stream (stdout, a file)."""

    def write(self, data: bytes, /) -> int:
        """Write ``data``."""
        ...

    def flush(self) -> None:
        """Flush what was written."""
        ...


class CallWriter:
    """Write calls as JSON Lines, one JSON array, or CSV (API field order) to a binary stream.

    ``fields`` picks and orders the keys (default: all of them, as received). CSV
    dates are ISO 8601; JSON keeps the API's own values. Call :meth:`close` at the
    end (it closes a JSON array; it does not close the stream).
    """

    def __init__(self, stream: Writable, fmt: str, fields: Sequence[str] | None = None) -> None:
        if fmt not in {"jsonl", "json", "csv"}:
            raise ValueError(f"unknown format {fmt!r}")
        self._stream = stream
        self._fmt = fmt
        self._fields = tuple(fields) if fields else None
        self._written = 0
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        if fmt == "csv":
            self._csv.writerow(self._fields or WIRE_ORDER)
            self._flush_text()

    def _data(self, call: Call) -> dict[str, Any]:
        data = call.to_dict()
        if self._fields is None:
            return data
        return {key: data.get(key) for key in self._fields}

    def write(self, call: Call) -> None:
        """Write one call (one line, one array item or one CSV row) and flush it."""
        if self._fmt == "jsonl":
            self._stream.write(_dumps(self._data(call)) + b"\n")
        elif self._fmt == "json":
            self._stream.write((b",\n" if self._written else b"[\n") + _dumps(self._data(call)))
        else:
            data = call.to_dict()
            self._csv.writerow([_csv_cell(call, key, data) for key in self._fields or WIRE_ORDER])
            self._flush_text()
        self._written += 1
        self._stream.flush()

    def close(self) -> None:
        """End the output: a JSON array gets its closing bracket (``[]`` if empty)."""
        if self._fmt == "json":
            self._stream.write(b"\n]\n" if self._written else b"[]\n")
            self._stream.flush()

    def _flush_text(self) -> None:
        self._stream.write(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()


def _started(call: Call) -> str:
    return call.start_time.strftime("%Y-%m-%d %H:%M:%S") if call.start_time else ""


_TABLE_COLUMNS: tuple[tuple[str, Callable[[Call], object]], ...] = (
    ("SID", lambda c: c.sid),
    ("Status", lambda c: c.status),
    ("Direction", lambda c: c.direction),
    ("From", lambda c: c.from_),
    ("To", lambda c: c.to),
    ("Started (UTC)", _started),
    ("Duration", lambda c: f"{c.duration} s"),
    ("Price", lambda c: "" if c.price is None else f"{c.price} {c.price_unit or ''}".strip()),
)


def print_table(
    calls: Iterable[Call], out: IO[str] | None = None, fields: Sequence[str] | None = None
) -> None:
    """Print calls as a readable table (``--format table``); ``fields`` picks the columns."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    if fields:
        for key in fields:
            table.add_column(key, no_wrap=key == "sid")
        for call in calls:
            data = call.to_dict()
            table.add_row(*(str(_csv_cell(call, key, data)) for key in fields))
    else:
        for title, _ in _TABLE_COLUMNS:
            table.add_column(
                title,
                no_wrap=title == "SID",
                justify="right" if title in {"Duration", "Price"} else "left",
            )
        for call in calls:
            table.add_row(*(str(get(call)) for _, get in _TABLE_COLUMNS))
    Console(file=out or sys.stdout, highlight=False, width=200).print(table)


# ------------------------------------------------------------- progress, summary


@attrs.define
class Counts:
    """What a ``fetch`` or ``list`` run did, for its summary line."""

    found: int = 0
    missing: int = 0
    failed: int = 0
    skipped: int = 0
    started: float = attrs.field(factory=time.monotonic)

    def count(self, result: CallResult) -> str:
        """Count one lookup's result by its :attr:`~CallResult.outcome`, and return that."""
        outcome = result.outcome
        if outcome == "found":
            self.found += 1
        elif outcome == "missing":
            self.missing += 1
        else:
            self.failed += 1
        return outcome

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def summary(self, *, noun: str = "found") -> str:
        """Return the one-line summary: counts, elapsed time and throughput."""
        done = self.found + self.missing + self.failed
        elapsed = self.elapsed
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.found:,} {noun}"]
        if noun == "found":
            parts += [f"{self.missing:,} missing", f"{self.failed:,} failed"]
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped (already in the output)")
        return f"{', '.join(parts)} in {elapsed:.1f} s ({rate:,.0f} calls/s)"


class ProgressBar:
    """A progress bar on stderr (done / total / rate / errors / ETA), or nothing at all.

    It is drawn only when ``enabled`` (by default: when stderr is a terminal). Use
    :meth:`say` for messages while it runs, so they print above the bar.
    """

    def __init__(self, description: str, total: int | None, *, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.console = stderr_console(force=True if enabled else None)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9,.0f}/s"),
                TextColumn("errors {task.fields[errors]:,}"),
                TextColumn("{task.fields[load]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                # Erased when done: the summary line takes its place, and nothing is
                # left half-drawn for the next line to be glued onto.
                transient=True,
            )
            self._task = self._progress.add_task(
                description, total=total, rate=0.0, errors=0, load=""
            )
        self._started = time.monotonic()

    def update(
        self,
        done: int,
        errors: int,
        total: int | None = None,
        *,
        retries: int = 0,
        throttled: int = 0,
        concurrency: int | None = None,
    ) -> None:
        """Show ``done`` (of ``total`` if given), the errors, and how hard the service pushes back.

        ``retries`` and ``throttled`` (429s) show once nonzero, ``concurrency`` when given.
        """
        if self._progress is None or self._task is None:
            return
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if total is not None:
            self._progress.update(self._task, total=total)
        load = [f"retries {retries:,}", f"429s {throttled:,}"] if retries or throttled else []
        if concurrency is not None:
            load.append(f"concurrency {concurrency}")
        self._progress.update(
            self._task, completed=done, rate=rate, errors=errors, load=" ".join(load)
        )

    def say(self, message: str) -> None:
        """Print a line on stderr, above the bar if there is one."""
        self.console.print(message, markup=False)

    def echo(self, message: str) -> None:
        """Print a line for stdout; above the bar if both are the same terminal."""
        if self._progress is not None and sys.stdout.isatty():
            self.console.print(message, markup=False)
        else:
            sys.stdout.write(message + "\n")
            sys.stdout.flush()

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
