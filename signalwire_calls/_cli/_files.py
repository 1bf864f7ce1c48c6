"""The files a command writes: exports that replace the old one only at the end.

Also the check that the paths a command was given are different files.

``list --output FILE`` writes to a temporary file beside ``FILE`` and renames it over
``FILE`` when the run ends (or is interrupted, keeping what arrived): a run that fails
(refused credentials, an unreachable API, a full disk) leaves the previous export as it
was. Writes are unbuffered, one system call per line, so a failing write raises once,
where it happens, and closing the file cannot raise a second error over the first.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Self

from signalwire_calls._cli._common import CliError

__all__ = ["ReplacingOutput", "check_distinct"]


class ReplacingOutput:
    """A binary file that takes the place of ``path`` on :meth:`commit`, not before.

    A path that is not a regular file (``/dev/stdout``, ``/dev/full``, a FIFO) is
    written in place: it cannot be replaced, and has no previous export to keep.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._temporary: Path | None = None

    def __enter__(self) -> Self:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            mode = None
        except OSError as err:
            raise CliError(f"cannot write {self.path}: {err.strerror or err}") from None
        try:
            if mode is not None and not stat.S_ISREG(mode):
                self._file = self.path.open("wb", buffering=0)
            else:
                handle, name = tempfile.mkstemp(
                    dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial"
                )
                self._temporary = Path(name)
                self._file = os.fdopen(handle, "wb", buffering=0)
        except OSError as err:
            raise CliError(f"cannot write {self.path}: {err.strerror or err}") from None
        return self

    def write(self, data: bytes) -> int:
        """Write all of ``data`` now; a failure names ``path``, not the temporary file."""
        if self._file is None:
            raise RuntimeError("use ReplacingOutput as a context manager")
        view = memoryview(data)
        try:
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from None
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered: every write has reached the operating system."""

    def commit(self) -> None:
        """Sync the file and put it in place of ``path``."""
        file = self._file
        if file is None:
            return
        try:
            if self._temporary is not None:
                os.fsync(file.fileno())
                file.close()
                self._temporary.replace(self.path)
                self._temporary = None
            else:
                file.close()
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from None
        finally:
            self._file = None

    def __exit__(self, *exc_info: object) -> None:
        """Discard what was not committed: the previous export stays as it was."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self._temporary.unlink()
            self._temporary = None


def check_distinct(**paths: Path | None) -> None:
    """Refuse two options that name the same file (also through links), before any is opened.

    Args:
        paths: The option names (``errors``, ``output``...) and their paths; ``None``
            and ``-`` (stdin/stdout) are not files and are left out.

    Raises:
        CliError: Two of them are the same file.
    """
    named = [(name, Path(path)) for name, path in paths.items() if path and str(path) != "-"]
    for i, (first, one) in enumerate(named):
        for second, other in named[i + 1 :]:
            if _same_file(one, other):
                raise CliError(
                    f"--{first} and --{second} name the same file ({one}): give each its own"
                )


def _same_file(one: Path, other: Path) -> bool:
    with contextlib.suppress(OSError):
        return one.samefile(other)  # both exist: hard and symbolic links too
    return one.resolve() == other.resolve()
