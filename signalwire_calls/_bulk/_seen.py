"""The de-duplication state of a bulk job: exact, and compact on unbounded input."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Final, Generic, TypeVar

__all__ = ["PackedKeys", "SeenKeys"]

K = TypeVar("K", bound=Hashable)

#: Keys kept in a plain set before they move to the compact store: a set is
#: the fastest membership test there is, and 16,384 of them hold about 2 MB.
RECENT_MAX: Final = 16_384
#: The average number of keys per bucket of :class:`PackedKeys` before a bucket
#: is split: a bucket of 32 sixteen-byte keys is 512 bytes, searched in well
#: under a microsecond, and its object costs about 1.5 bytes per key.
_PER_BUCKET: Final = 32
_FIRST_BUCKETS: Final = 64


class PackedKeys:
    """An exact set of byte strings of one width, packed into ``bytes`` buckets.

    A key's bucket is chosen by its hash (``hash()`` of ``bytes``: SipHash with the
    process's random key, so no input can pile its keys into one bucket), and a
    bucket is the concatenation of its keys, searched with ``bytes.find`` (a match
    must start at a multiple of the width). The table grows by linear hashing: when
    it holds more than 32 keys per bucket on average, the next bucket in turn is
    split in two, so growing never rehashes more than one bucket at a time and no
    call holds the event loop up for longer than that. A key costs its width plus
    about 2 bytes (18 bytes for a UUID); a lookup costs a hash, one list index and
    one search of a few hundred bytes, whatever the size.

    Args:
        width: The length of every key, in bytes.
        buckets: How many buckets to start with (a power of two).
    """

    __slots__ = ("_buckets", "_count", "_mask", "_split", "_width")

    def __init__(self, width: int, *, buckets: int = _FIRST_BUCKETS) -> None:
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        if buckets < 1 or buckets & (buckets - 1):
            raise ValueError(f"buckets must be a power of two, got {buckets}")
        self._width = width
        self._buckets: list[bytes] = [b""] * buckets
        #: Buckets below ``_split`` have been split this round and are indexed by
        #: one more bit of the hash: ``len(_buckets) == _mask + 1 + _split``.
        self._mask = buckets - 1
        self._split = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: bytes) -> bool:
        h = hash(key)
        index = h & self._mask
        if index < self._split:
            index = h & (self._mask << 1 | 1)
        bucket = self._buckets[index]
        at = bucket.find(key)
        width = self._width
        while at > 0 and at % width:  # a match that straddles two keys: look on
            at = bucket.find(key, at + 1)
        return at >= 0

    def __iter__(self) -> Iterator[bytes]:
        width = self._width
        for bucket in self._buckets:
            for at in range(0, len(bucket), width):
                yield bucket[at : at + width]

    def add(self, key: bytes) -> None:
        """Add ``key``, which must not be there yet (check with ``in`` first).

        Raises:
            ValueError: ``key`` is not ``width`` bytes long.
        """
        self.update((key,))

    def update(self, keys: Iterable[bytes]) -> None:
        """Add ``keys``: distinct, and none of them there yet.

        In one batch: the table is grown first, so that every key goes straight to
        its final bucket, and each bucket it touches is rebuilt once.

        Raises:
            ValueError: A key is not ``width`` bytes long (nothing is added).
        """
        new = keys if isinstance(keys, list | tuple) else list(keys)
        if not new:
            return
        if set(map(len, new)) != {self._width}:
            raise ValueError(f"every key must be {self._width} bytes long")
        count = self._count + len(new)
        while count > len(self._buckets) * _PER_BUCKET:
            self._split_next()
        mask = self._mask
        split = self._split
        wide = mask << 1 | 1
        groups: dict[int, list[bytes]] = {}
        for key in new:
            h = hash(key)
            index = h & mask
            if index < split:
                index = h & wide
            group = groups.get(index)
            if group is None:
                groups[index] = [key]
            else:
                group.append(key)
        buckets = self._buckets
        for index, group in groups.items():
            buckets[index] += b"".join(group)
        self._count = count

    def _split_next(self) -> None:
        """Split bucket ``_split`` by the next bit of the hash (linear hashing)."""
        width = self._width
        old = self._buckets[self._split]
        high = self._mask + 1  # the new bucket's index is split + high
        stay: list[bytes] = []
        move: list[bytes] = []
        for at in range(0, len(old), width):
            key = old[at : at + width]
            (move if hash(key) & high else stay).append(key)
        self._buckets[self._split] = b"".join(stay)
        self._buckets.append(b"".join(move))
        self._split += 1
        if self._split == high:  # every bucket of this round is split: the next round
            self._mask = self._mask << 1 | 1
            self._split = 0


class SeenKeys(Generic[K]):
    """Remember which keys a job has seen, exactly, in bounded bytes per key.

    Recent keys sit in a :class:`set`. With ``compact`` (a function giving each
    key a short ``bytes`` form of one width, e.g. a UUID's 16 bytes), every
    ``recent_max`` keys move into a :class:`PackedKeys` of those bytes (about 18
    bytes per key instead of the ~140 a set of 36-character strings holds), in
    one batch of a few milliseconds. Without ``compact`` the set keeps everything.

    Args:
        compact: The short, unique ``bytes`` form of a key (``None``: a plain set).
        recent_max: How many keys the set holds before they move.
    """

    __slots__ = ("_compact", "_forms", "_packed", "_recent", "_recent_max")

    def __init__(
        self, compact: Callable[[K], bytes] | None = None, *, recent_max: int = RECENT_MAX
    ) -> None:
        self._compact = compact
        self._recent: set[K] = set()
        self._recent_max = recent_max
        self._packed: PackedKeys | None = None
        #: The compact forms of the keys in the set, once the packed store exists
        #: (each was made to look the key up there): the next move reuses them.
        self._forms: list[bytes] = []

    def __contains__(self, key: K) -> bool:
        if key in self._recent:
            return True
        packed = self._packed
        if packed is None:
            return False
        assert self._compact is not None  # noqa: S101 - only set with compact
        return self._compact(key) in packed

    def __len__(self) -> int:
        return len(self._recent) + (0 if self._packed is None else len(self._packed))

    def first(self, key: K) -> bool:
        """Remember ``key``; return whether it is new (``False``: seen before)."""
        recent = self._recent
        if key in recent:
            return False
        packed = self._packed
        if packed is not None:
            form = self._compact(key)  # type: ignore[misc] # packed is only made with compact
            if form in packed:
                return False
            self._forms.append(form)
        recent.add(key)
        if len(recent) >= self._recent_max and self._compact is not None:
            self._spill()
        return True

    def close(self) -> None:
        """Free what is held (the object stays usable, and empty)."""
        self._packed = None
        self._forms = []
        self._recent.clear()

    def _spill(self) -> None:
        compact = self._compact
        assert compact is not None  # noqa: S101 - only called with compact
        packed = self._packed
        if packed is None:
            forms = [compact(key) for key in self._recent]
            packed = self._packed = PackedKeys(len(forms[0]))
        else:
            forms = self._forms
        packed.update(forms)
        self._forms = []
        self._recent.clear()
