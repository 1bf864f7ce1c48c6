"""The output of ``signalwire-calls fetch``: a file that survives being killed at any moment.

How nothing is lost or written twice:

- Each call is appended to the output as one complete line with a single
  ``write()`` on an unbuffered file, as soon as it arrives (``fetch --processes``
  appends each batch a worker sends, complete lines only, with one ``write()``).
  Once that system call returns, the line belongs to the operating system: killing
  the process, even with ``SIGKILL``, cannot lose or tear it.
- On start, the existing output is scanned: the SIDs it holds are skipped, and a
  line that is not complete, valid JSON (the tail of a write cut short by a full
  disk or a crash of the machine) is removed first.
- The file is ``fsync``-ed once at the end, not per line (a sync per line would
  cap the export at the disk's sync rate). So a *power loss* can lose the last few
  seconds of lines, or leave a torn tail: the next run detects and repairs both.
- An exclusive ``flock`` refuses a second ``fetch`` writing to the same file.
- A file this run created and wrote nothing to (credentials refused at the start)
  is removed on close: a refused start leaves no empty output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import IO, TYPE_CHECKING, Any

from signalwire_calls._cli._output import dumps_call

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

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

__all__ = ["OutputBusyError", "ResumableOutput"]


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
        self.written = 0
        self._created = False
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        """Lock the file, repair a torn tail, collect the SIDs already written, open to append."""
        self._created = not self.path.exists()
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
        self.written += 1

    def write_lines(self, sids: Iterable[str], data: bytes) -> None:
        """Append complete lines (the calls ``sids``, pre-serialised) with one system call."""
        if self._file is None:
            raise RuntimeError("open() the output first")
        _write_all(self._file, data)
        before = len(self.done)
        self.done.update(sid.lower() for sid in sids)
        self.written += len(self.done) - before

    def close(self) -> None:
        """Sync the file to disk and close it (and its lock). Idempotent.

        A file this run created and wrote nothing to is removed.
        """
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                os.fsync(file.fileno())
            if self._created and not self.written:
                with contextlib.suppress(OSError):
                    self.path.unlink()  # still locked by us: no other fetch has it open
            file.close()


def _write_all(file: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written or 0 :]
