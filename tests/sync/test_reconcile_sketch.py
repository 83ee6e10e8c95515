"""Difference sketches and the estimator, checked against the formulas in docs/RECONCILE.md."""

from __future__ import annotations

import hashlib
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kith.identity.errors import LocalProtocolError
from kith.sync.reconcile_index import item_key, population_counts
from kith.sync.reconcile_sketch import (
    Sketch,
    ams_residues,
    cells_for_estimate,
    cells_of,
    check_of,
    decode_ams,
    difference_energy,
    encode_ams,
    first_of_cells,
    key_value,
    peel,
    plain_key,
    plain_keys,
    plain_values,
    salt_multiplier,
    sketch_key,
    sketch_values,
    table_for_cells,
    table_sizes,
    valid_first,
)


def reference_value(item_id: bytes, salt: bytes) -> int:
    """The spec, spelled out with no shortcuts."""
    a = int.from_bytes(hashlib.blake2b(salt, digest_size=32, person=b"kith-recon-mul").digest(), "little") | 1
    key = (a * int.from_bytes(item_id, "little")) % 2**256 >> 208
    check = (key * 0x9E3779B97F4A7C15) % 2**64 >> 48
    return key << 16 | check


@settings(max_examples=50)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20), st.binary(min_size=16, max_size=16))
def test_values_follow_the_spec(id_list: list[bytes], salt: bytes) -> None:
    multiplier = salt_multiplier(salt)
    keys = [item_key(1_700_000_000 + n, i) for n, i in enumerate(id_list)]
    values = sketch_values(keys, multiplier)
    assert list(values) == [reference_value(i, salt) for i in id_list]
    assert [v >> 16 for v in values] == [sketch_key(i, multiplier) for i in id_list]
    assert all(key_value(v >> 16) == v and check_of(v >> 16) == v & 0xFFFF for v in values)
    assert multiplier % 2 == 1


@settings(max_examples=50)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_plain_values_follow_the_spec(id_list: list[bytes]) -> None:
    keys = [item_key(1_700_000_000 + n, i) for n, i in enumerate(id_list)]
    expected = []
    for item_id in id_list:
        key = int.from_bytes(item_id[:6], "little")
        expected.append(key << 16 | (key * 0x9E3779B97F4A7C15) % 2**64 >> 48)
    assert list(plain_values(keys)) == expected
    assert plain_keys(keys) == [plain_key(i) for i in id_list] == [v >> 16 for v in expected]


def test_table_sizes_are_pairwise_coprime() -> None:
    firsts = [s for s in range(7, 6146) if valid_first(s)]
    assert firsts[:4] == [7, 11, 13, 17]
    for first in firsts:
        sizes = table_sizes(first)
        assert all(math.gcd(x, y) == 1 for n, x in enumerate(sizes) for y in sizes[n + 1 :])
        assert first_of_cells(cells_of(first)) == first
    assert first_of_cells(24) is None and first_of_cells(17) is None
    assert cells_of(table_for_cells(1)) == 16 and cells_of(table_for_cells(200)) >= 200
    assert all(cells_of(table_for_cells(c)) - c < 24 for c in range(1, 3000))


def _keys(rng: random.Random, count: int) -> list[int]:
    return [rng.getrandbits(48) for _ in range(count)]


@pytest.mark.parametrize("d", [1, 2, 5, 30, 300])
def test_subtracting_sketches_recovers_the_difference(d: int) -> None:
    rng = random.Random(d)
    common = _keys(rng, 2000)
    mine, theirs = _keys(rng, d // 2), _keys(rng, d - d // 2)
    first = table_for_cells(2 * d + 16)
    a = Sketch.build([key_value(k) for k in common + mine], first)
    b = Sketch.build([key_value(k) for k in theirs + common], first)
    assert Sketch.from_bytes(a.to_bytes()).cells == a.cells
    assert peel(a.xor(b)) == set(mine) | set(theirs)
    assert peel(a.xor(a)) == set()


def test_an_overloaded_sketch_does_not_peel() -> None:
    rng = random.Random(1)
    sketch = Sketch.build([key_value(k) for k in _keys(rng, 200)], table_for_cells(40))
    assert peel(sketch) is None
    garbage = Sketch(sketch.first, [rng.getrandbits(64) for _ in sketch.cells])
    assert peel(garbage) is None
    with pytest.raises(LocalProtocolError):
        sketch.xor(Sketch.build([], table_for_cells(200)))
    with pytest.raises(LocalProtocolError):
        Sketch(12, [0] * 36)


def test_estimator_counters_round_trip_and_estimate() -> None:
    rng = random.Random(4)
    residues = [rng.randrange(4096) for _ in range(128)]
    assert decode_ams(encode_ams(residues)) == residues
    assert len(encode_ams(residues)) == 192
    # Two sets differing in d items: Q / 128 estimates d.
    for d in (10, 100, 1000):
        common = [item_key(1, rng.randbytes(32)) for _ in range(3000)]
        extra = [item_key(2, rng.randbytes(32)) for _ in range(d)]
        half = d // 2
        a, b = common + extra[:half], common + extra[half:]
        q = difference_energy(
            decode_ams(encode_ams(ams_residues(len(a), population_counts(a)))),
            ams_residues(len(b), population_counts(b)),
        )
        assert 0.5 * d < q / 128 < 1.6 * d


def test_sizing_rule() -> None:
    assert cells_for_estimate(0, 0, 10) == 16
    assert cells_for_estimate(128 * 100, 0, 10**6) == 180 + 16
    assert cells_for_estimate(0, 100, 10**6) == 180 + 16
    assert cells_for_estimate(128 * 10**6, 0, 50) == 90 + 16  # never more than both sets hold
    assert cells_for_estimate(128 * 101, 3, 10**6) > cells_for_estimate(128 * 100, 3, 10**6)
