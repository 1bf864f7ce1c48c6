"""``--format parquet``: Parquet output for ``list`` and a resumable Parquet export for ``fetch``.

Needs the ``parquet`` extra (pyarrow); the columns are
:data:`signalwire_calls.arrow.CALL_SCHEMA`.

A Parquet file is readable only once its footer is written, so a file cannot be
appended to line by line like the JSON Lines export. ``fetch --format parquet``
therefore writes a *directory* of part files, the layout pandas, polars, DuckDB and
Spark read as one table (``pd.read_parquet("calls.parquet")``,
``read_parquet('calls.parquet/*.parquet')``):

- Calls are kept in memory until :data:`PART_ROWS` have arrived (or the run ends,
  Ctrl-C and SIGTERM included), then written as one part: to a hidden temporary
  name, synced, and renamed to ``part-NNNNN.parquet``. A part is thus complete or
  absent, never torn.
- On start, the SIDs of the existing parts are read (the ``sid`` column only) and
  skipped; leftover temporary files of a killed run are removed. A ``kill -9``
  loses only the calls not yet in a part, and the next run fetches them again:
  each call ends up exactly once.
- An exclusive ``flock`` on ``.lock`` in the directory refuses a second writer.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from signalwire_calls._cli._common import CliError
from signalwire_calls._cli._resumable import OutputBusyError

if TYPE_CHECKING:
    from signalwire_calls._cli._output import Writable
    from signalwire_calls._models import Call

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["PART_ROWS", "ParquetParts", "ParquetWriter", "require_pyarrow"]

#: Calls per part file of ``fetch`` and per row group of ``list``.
PART_ROWS: Final = 10_000
_PART: Final = re.compile(r"part-(\d{5,})\.parquet")


def require_pyarrow() -> Any:
    """Return :mod:`signalwire_calls.arrow`, or stop with one line saying what to install."""
    try:
        from signalwire_calls import arrow  # noqa: PLC0415 - pyarrow is optional
    except ImportError:
        raise CliError(
            "--format parquet needs pyarrow: pip install 'signalwire-calls[parquet]'"
        ) from None
    return arrow


class ParquetParts:
    """A resumable Parquet export: a directory of atomically written parts (see the module doc).

    The same interface as :class:`~signalwire_calls._cli._resumable.ResumableOutput`.
    """

    def __init__(self, path: Path, *, part_rows: int = PART_ROWS) -> None:
        self.path = path
        self.done: set[str] = set()
        self.repaired = 0
        self._arrow = require_pyarrow()
        self._rows = part_rows
        self._pending: list[Call] = []
        self._next = 0
        self._lock: IO[bytes] | None = None

    def open(self) -> None:
        """Lock the directory, remove a killed run's leftovers, collect the SIDs written."""
        if self.path.exists() and not self.path.is_dir():
            raise CliError(
                f"{self.path} is a file: a Parquet export of fetch is a directory of parts "
                "(give a new name)"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        lock = (self.path / ".lock").open("ab")
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                raise OutputBusyError(
                    f"{self.path} is being written by another signalwire-calls fetch"
                ) from None
        self._lock = lock
        import pyarrow.parquet as pq  # noqa: PLC0415 - pyarrow is optional

        for leftover in self.path.glob(".part-*.partial"):
            leftover.unlink()
            self.repaired += 1
        for part in sorted(self.path.iterdir()):
            match = _PART.fullmatch(part.name)
            if match is None:
                continue
            self._next = max(self._next, int(match[1]) + 1)
            sids = pq.read_table(part, columns=["sid"]).column("sid").to_pylist()
            self.done.update(sid.lower() for sid in sids)

    def write(self, call: Call) -> None:
        """Keep ``call`` for the next part; write the part when it is full."""
        self._pending.append(call)
        self.done.add(call.sid.lower())
        if len(self._pending) >= self._rows:
            self._write_part()

    def _write_part(self) -> None:
        if not self._pending:
            return
        name = f"part-{self._next:05d}.parquet"
        temporary = self.path / f".{name}.partial"
        table = self._arrow.calls_to_table(self._pending)
        import pyarrow.parquet as pq  # noqa: PLC0415 - pyarrow is optional

        with temporary.open("wb") as file:
            pq.write_table(table, file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.path / name)
        _sync_directory(self.path)
        self._next += 1
        self._pending = []

    def close(self) -> None:
        """Write the calls not yet in a part, then release the lock. Idempotent."""
        try:
            self._write_part()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.close()


def _sync_directory(path: Path) -> None:
    """Make the rename durable: sync the directory (where the platform allows it)."""
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


class _Sink:
    """The minimal file object pyarrow writes Parquet to: appends, counting its position."""

    def __init__(self, stream: Writable) -> None:
        self._stream = stream
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._stream.write(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.closed = True


class ParquetWriter:
    """Write calls as one Parquet file to a binary stream (``list --format parquet``).

    Row groups of :data:`PART_ROWS` calls; the file is complete once :meth:`close`
    has written its footer (``list`` replaces its output only after that).
    """

    def __init__(self, stream: Writable) -> None:
        self._arrow = require_pyarrow()
        import pyarrow.parquet as pq  # noqa: PLC0415 - pyarrow is optional

        self._writer = pq.ParquetWriter(_Sink(stream), self._arrow.CALL_SCHEMA)
        self._pending: list[Call] = []

    def write(self, call: Call) -> None:
        """Keep ``call``; write a row group when one is full."""
        self._pending.append(call)
        if len(self._pending) >= PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        self._writer.write_table(self._arrow.calls_to_table(self._pending))
        self._pending = []

    def close(self) -> None:
        """Write the last row group and the footer."""
        if self._pending:
            self._flush()
        self._writer.close()
