"""The de-duplication state of bulk jobs: exact at every size, and small."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signalwire_calls._bulk._seen import PackedKeys, SeenKeys
from signalwire_calls._checks import sid_bytes


def _keys(n: int, seed: int = 0) -> list[bytes]:
    return [
        uuid.UUID(int=(i * 0x9E3779B97F4A7C15F39CC0605CEDC835 + seed) % (1 << 128)).bytes
        for i in range(n)
    ]


@settings(max_examples=200)
@given(
    st.lists(st.binary(min_size=4, max_size=4), max_size=300),
    st.lists(st.binary(min_size=4, max_size=4), max_size=50),
)
def test_packed_keys_answer_as_a_set_does(added: list[bytes], asked: list[bytes]) -> None:
    """Whatever was added is found, whatever was not is not, in one bucket or many."""
    packed = PackedKeys(4, buckets=1)  # short keys in few buckets: many straddling matches
    model: set[bytes] = set()
    for key in added:
        assert (key in packed) == (key in model)
        if key not in model:
            packed.add(key)
            model.add(key)
    assert len(packed) == len(model)
    assert sorted(packed) == sorted(model)
    for key in asked:
        assert (key in packed) == (key in model)


def test_a_key_made_of_two_neighbours_halves_is_not_found() -> None:
    """A match that straddles two stored keys is no match: only whole keys count."""
    packed = PackedKeys(16, buckets=1)
    packed.update([b"A" * 8 + b"B" * 8, b"B" * 8 + b"C" * 8])
    assert b"B" * 16 not in packed  # in the bucket's bytes at offset 8, across both keys
    assert b"A" * 8 + b"B" * 8 in packed
    assert b"B" * 8 + b"C" * 8 in packed


def test_packed_keys_grow_one_bucket_at_a_time_and_lose_nothing() -> None:
    """Keys added in batches are all found, and the buckets stay small."""
    keys = _keys(300_000)
    packed = PackedKeys(16)
    for start in range(0, len(keys), 16_384):
        packed.update(keys[start : start + 16_384])
    assert len(packed) == len(keys)
    assert all(key in packed for key in keys[::97])
    assert not any(key in packed for key in _keys(2_000, seed=1))
    sizes = sorted(len(bucket) // 16 for bucket in packed._buckets)
    assert sizes[len(sizes) // 2] <= 64  # a bucket searched in well under a µs
    assert sizes[-1] <= 160  # no bucket far above the rest
    assert sum(map(len, packed._buckets)) == 16 * len(keys)  # no padding


def test_packed_keys_refuse_a_key_of_another_width_and_keep_what_they_had() -> None:
    """A key of the wrong length is an error, and a batch holding one adds nothing."""
    packed = PackedKeys(16)
    packed.add(b"x" * 16)
    with pytest.raises(ValueError, match="16 bytes"):
        packed.update([b"y" * 16, b"z" * 15])
    assert len(packed) == 1
    assert b"y" * 16 not in packed
    with pytest.raises(ValueError, match="power of two"):
        PackedKeys(16, buckets=3)
    with pytest.raises(ValueError, match="width"):
        PackedKeys(0)


def test_seen_keys_stay_exact_after_moving_to_the_compact_store() -> None:
    """Keys that moved from the set to the compact store are still found, and others not."""
    seen: SeenKeys[str] = SeenKeys(sid_bytes, recent_max=8)
    sids = [str(uuid.UUID(int=i)) for i in range(1, 50)]
    for sid in sids:
        assert sid not in seen
        assert seen.first(sid)
    assert len(seen) == len(sids)
    assert all(sid in seen for sid in sids)
    assert not any(seen.first(sid) for sid in sids)  # each is known, from set or store
    assert str(uuid.UUID(int=10_000)) not in seen
    seen.close()
    assert len(seen) == 0
    assert seen.first(sids[0])


def test_seen_keys_without_a_compact_form_keep_a_plain_set() -> None:
    """With no compact form nothing moves: any hashable key works, however many."""
    seen: SeenKeys[tuple[int, int]] = SeenKeys(recent_max=4)
    assert all(seen.first((i, i)) for i in range(100))
    assert not seen.first((7, 7))
    assert len(seen) == 100


def test_the_compact_store_holds_a_little_more_than_the_keys_bytes() -> None:
    """Once the SIDs have moved, each holds about 18 bytes: its UUID's 16 and a share of a bucket."""
    sids = [str(uuid.UUID(bytes=key)) for key in _keys(100_000, seed=2)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seen: SeenKeys[str] = SeenKeys(sid_bytes, recent_max=1_024)
        for sid in sids:
            seen.first(sid)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(seen) == len(sids)
    assert held / len(sids) < 22  # the set of recent SIDs included
