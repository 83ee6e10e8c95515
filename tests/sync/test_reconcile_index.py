"""ItemIndex: range counts, sums, estimators and split points agree with brute force."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kith.identity.errors import LocalProtocolError
from kith.sync import reconcile_index
from kith.sync.reconcile_index import (
    BLOCK_MAX,
    INFINITY,
    PLAIN_TABLES_KEPT,
    ItemIndex,
    fingerprint,
    item_key,
    population_counts,
    shortest_bound,
    sum_ids,
)

ids = st.binary(min_size=32, max_size=32)
items = st.lists(st.tuples(st.integers(0, 40), ids), max_size=60)
bound = st.one_of(
    st.just(b""),
    st.just(INFINITY),
    st.tuples(st.integers(0, 41), st.binary(max_size=3)).map(lambda b: b[0].to_bytes(8, "big") + b[1]),
)


def naive_keys(pairs: list[tuple[int, bytes]], lower: bytes, upper: bytes) -> list[bytes]:
    return sorted({item_key(ts, i) for ts, i in pairs if lower <= item_key(ts, i) < upper})


def naive_pops(keys: list[bytes]) -> list[int]:
    return [sum(int.from_bytes(k[24:40], "little") >> j & 1 for k in keys) for j in range(128)]


@settings(max_examples=200)
@given(items, items, bound, bound)
def test_ranges_match_brute_force(
    first: list[tuple[int, bytes]], later: list[tuple[int, bytes]], lo: bytes, hi: bytes
) -> None:
    index = ItemIndex(first)
    added = [index.add(ts, i) for ts, i in later]
    everything = first + later
    seen = {item_key(ts, i) for ts, i in first}
    for (ts, i), was_new in zip(later, added, strict=True):
        assert was_new == (item_key(ts, i) not in seen)
        seen.add(item_key(ts, i))
    assert len(index) == len(seen)
    assert list(index) == [(int.from_bytes(k[:8], "big"), k[8:]) for k in sorted(seen)]
    expected = naive_keys(everything, lo, hi)
    assert index.item_keys(lo, hi) == expected
    assert index.count(lo, hi) == len(expected)
    total = sum(int.from_bytes(k[8:], "little") for k in expected) % 2**256
    assert index.count_and_sum(lo, hi) == (len(expected), total)
    assert index.fingerprint(lo, hi) == (len(expected), fingerprint(total, len(expected)))
    assert index.population_counts(lo, hi) == (len(expected), naive_pops(expected))


def test_many_blocks_with_inserts_anywhere() -> None:
    rng = random.Random(3)
    pairs = [(rng.randrange(500), rng.randbytes(32)) for _ in range(5 * BLOCK_MAX)]
    index = ItemIndex(pairs[:BLOCK_MAX])
    for ts, i in pairs[BLOCK_MAX:]:
        assert index.add(ts, i)
    assert not index.add(*pairs[7])
    assert (pairs[7][0], pairs[7][1]) in index and (pairs[7][0] + 1, pairs[7][1]) not in index
    assert len(index._blocks) > 5  # it split as it grew
    keys = sorted(item_key(ts, i) for ts, i in pairs)
    assert index.item_keys() == keys
    for n in range(40):
        lo, hi = sorted(rng.sample(keys, 2))
        lo, hi = lo[: rng.randrange(8, 41)], hi[: rng.randrange(8, 41)]
        expected = [k for k in keys if lo <= k < hi]
        assert index.count_and_sum(lo, hi) == (len(expected), sum_ids(expected) % 2**256)
        if n < 6:
            assert index.population_counts(lo, hi) == (len(expected), naive_pops(expected))


def reference_plain_cells(keys: list[bytes], first: int) -> list[int]:
    """docs/RECONCILE.md section 3, spelled out: key = LE48(id[0:6]), 4 sub-tables."""
    sizes = (first, first - 2, first - 4, first - 6)
    cells = [0] * sum(sizes)
    for key in keys:
        sketch_key = int.from_bytes(key[8:14], "little")
        value = sketch_key << 16 | (sketch_key * 0x9E3779B97F4A7C15) % 2**64 >> 48
        offset = 0
        for size in sizes:
            cells[offset + sketch_key % size] ^= value
            offset += size
    return cells


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), ids), max_size=80),
    st.lists(st.tuples(st.integers(0, 40), ids), max_size=80),
    st.lists(st.sampled_from([7, 11, 13, 17, 29, 53]), min_size=1, max_size=9),
    st.booleans(),
)
def test_kept_plain_tables_and_key_map_follow_inserts(
    before: list[tuple[int, bytes]], after: list[tuple[int, bytes]], sizes: list[int], collide: bool
) -> None:
    if collide:  # ids sharing their first 6 bytes: one plain key, several items
        after = [(ts, (before[0][1][:6] if before else bytes(6)) + i[6:]) for ts, i in after]
    index = ItemIndex(before)
    for first in sizes:  # asks for some sizes before the inserts (kept), others only after
        assert index.plain_table(first) == reference_plain_cells(index.item_keys(), first)
    zero = tuple(k for k in index.item_keys() if k[8:14] == bytes(6))
    assert index.items_with_plain_keys({0}) == ({0: zero} if zero else {})  # walks the items
    index.items_with_plain_keys({1})  # builds the key map, which the inserts below update
    for ts, i in after:
        index.add(ts, i)
    keys = index.item_keys()
    for first in sizes:
        assert index.plain_table(first) == reference_plain_cells(keys, first)
    assert len(index._tables) <= PLAIN_TABLES_KEPT
    expected: dict[int, list[bytes]] = {}
    for key in keys:
        expected.setdefault(int.from_bytes(key[8:14], "little"), []).append(key)
    found = index.items_with_plain_keys({*expected, 2**48 - 1})
    assert {k: sorted(v) for k, v in found.items()} == expected


def test_the_plain_key_map_stays_exact_across_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile_index, "PLAIN_RECENT_MIN", 16)
    rng = random.Random(4)
    pairs = [(rng.randrange(500), rng.randbytes(32)) for _ in range(3000)]
    pairs += [(ts + 1, i[:6] + rng.randbytes(26)) for ts, i in pairs[:40]]  # shared plain keys
    rng.shuffle(pairs)
    index = ItemIndex(pairs[:300])
    index.items_with_plain_keys({0})
    index.items_with_plain_keys({0})  # the second call builds the map
    for ts, i in pairs[300:]:
        index.add(ts, i)
    expected: dict[bytes, list[bytes]] = {}
    for key in index.item_keys():
        expected.setdefault(key[8:14], []).append(key)
    assert len(index._plain._recent) < 200  # type: ignore[union-attr]  # it merged along the way
    found = index.items_with_plain_keys({int.from_bytes(prefix, "little") for prefix in expected})
    assert {k.to_bytes(6, "little"): sorted(v) for k, v in found.items()} == expected


def test_a_kept_table_is_a_copy_and_updates_on_insert_anywhere() -> None:
    rng = random.Random(9)
    pairs = [(rng.randrange(500), rng.randbytes(32)) for _ in range(3 * BLOCK_MAX)]
    index = ItemIndex(pairs[:BLOCK_MAX])
    cells = index.plain_table(11)
    cells[0] ^= 1  # the caller's copy, not the kept table
    for ts, i in pairs[BLOCK_MAX:]:
        index.add(ts, i)
    assert index.plain_table(11) == reference_plain_cells(index.item_keys(), 11)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 5), ids), min_size=1, max_size=300), st.integers(2, 20))
def test_split_bounds_cut_into_nearly_equal_runs(pairs: list[tuple[int, bytes]], parts: int) -> None:
    index = ItemIndex(pairs)
    keys = index.item_keys()
    bounds = index.split_bounds(b"", INFINITY, parts)
    assert len(bounds) == min(parts, len(keys)) - 1
    assert bounds == sorted(set(bounds))
    edges = [b"", *bounds, INFINITY]
    sizes = [index.count(lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)]
    assert sum(sizes) == len(keys) and min(sizes) >= len(keys) // parts


def test_shortest_bound() -> None:
    a = item_key(5, bytes([1, 2, 3]) + bytes(29))
    b = item_key(5, bytes([1, 2, 9]) + bytes(29))
    c = item_key(6, bytes(32))
    assert shortest_bound(a, b) == (5).to_bytes(8, "big") + bytes([1, 2, 9])
    assert shortest_bound(b, c) == (6).to_bytes(8, "big")
    for before, at in ((a, b), (b, c)):
        cut = shortest_bound(before, at)
        assert before < cut <= at


def test_helpers_and_validation() -> None:
    keys = [item_key(7, bytes([n]) * 32) for n in range(1, 40)]
    assert sum_ids(keys) == sum(int.from_bytes(k[8:], "little") for k in keys)
    assert population_counts(keys) == naive_pops(keys)
    assert population_counts([]) == [0] * 128 and sum_ids([]) == 0
    assert fingerprint(0, 0) != fingerprint(0, 1) != fingerprint(1, 1)
    for bad in ((-1, bytes(32)), (2**40, bytes(32)), (1, bytes(31)), (True, bytes(32)), (1, "x" * 32)):
        with pytest.raises(LocalProtocolError):
            item_key(*bad)  # type: ignore[arg-type]
    index = ItemIndex()
    assert index.count_and_sum() == (0, 0) and index.item_keys() == [] and index.split_bounds(b"", INFINITY, 4) == []
    assert "x" not in index and (1,) not in index and (2**41, bytes(32)) not in index
    assert index.update([(1, bytes(32)), (1, bytes(32)), (2, bytes(32))]) == 2
