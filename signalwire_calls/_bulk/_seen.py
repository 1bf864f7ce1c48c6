"""The de-duplication state of a bulk job: exact, and compact on unbounded input."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

__all__ = ["SeenKeys"]

K = TypeVar("K", bound=Hashable)

#: Keys kept in a plain set before they move to the compact store: a set is
#: the fastest membership test there is, and 16,384 of them hold about 2 MB.
RECENT_MAX: Final = 16_384


class SeenKeys(Generic[K]):
    """Remember which keys a job has seen, exactly, in bounded bytes per key.

    Recent keys sit in a :class:`set`. With ``compact`` (a function giving each
    key a short ``bytes`` form, e.g. a UUID's 16 bytes), every ``recent_max``
    keys move into an in-memory SQLite table of those bytes (a B-tree: about 30
    bytes per key instead of the ~140 a set of 36-character strings holds), in
    one sorted batch, so the event loop is held up for milliseconds at a time.
    Without ``compact`` the set keeps everything.

    Args:
        compact: The short, unique ``bytes`` form of a key (``None``: a plain set).
        recent_max: How many keys the set holds before they move.
    """

    __slots__ = ("_compact", "_db", "_recent", "_recent_max", "_select")

    def __init__(
        self, compact: Callable[[K], bytes] | None = None, *, recent_max: int = RECENT_MAX
    ) -> None:
        self._compact = compact
        self._recent: set[K] = set()
        self._recent_max = recent_max
        self._db: sqlite3.Connection | None = None
        self._select: str = "SELECT 1 FROM seen WHERE key = ?"

    def __contains__(self, key: K) -> bool:
        if key in self._recent:
            return True
        db = self._db
        if db is None:
            return False
        assert self._compact is not None  # noqa: S101 - only set with compact
        row = db.execute(self._select, (self._compact(key),)).fetchone()
        return row is not None

    def add(self, key: K) -> None:
        """Remember ``key`` (known not to be there yet)."""
        recent = self._recent
        recent.add(key)
        if self._compact is not None and len(recent) >= self._recent_max:
            self._spill()

    def close(self) -> None:
        """Free the compact store (the set is dropped with the object)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self._recent.clear()

    def _spill(self) -> None:
        compact = self._compact
        assert compact is not None  # noqa: S101 - only called with compact
        db = self._db
        if db is None:
            # One connection, used by this event loop's thread only.
            db = self._db = sqlite3.connect(":memory:", isolation_level=None)
            db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY) WITHOUT ROWID")
        rows = sorted(compact(key) for key in self._recent)
        db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((row,) for row in rows))
        self._recent.clear()
