"""Sketch geometry and the two ways an item becomes a sketch value (docs/RECONCILE.md, section 3).

A sketch is 4 sub-tables of pairwise coprime sizes ``s, s-2, s-4, s-6``; an item with
48-bit *sketch key* ``k`` holds the 64-bit value ``k << 16 | check(k)`` and is XOR-ed into
cell ``k mod size_t`` of each sub-table. Where ``k`` comes from is the *layout*:

* **plain**: ``k`` is the first 6 bytes of the id, little-endian. It does not depend on
  the session, so the index keeps whole-set tables up to date as items arrive
  (`toggle`, O(1) per insert and table) and a session reads them in O(cells).
* **salted**: ``k`` is the multiply-shift hash of the id under the session's salt
  (`sync.reconcile_sketch.sketch_values`), recomputed per session in O(items). It is the
  fallback that a crafted id cannot defeat: a range whose plain sketch does not decode,
  or whose decoded result does not verify, is sketched again salted.

This module is the part both the index and the sketch code need; it imports neither.
"""

from __future__ import annotations

import sys
from array import array

__all__ = [
    "CELL_BYTES",
    "KEY_BYTES",
    "MIN_TABLE",
    "build_cells",
    "cells_of",
    "check_of",
    "first_of_cells",
    "key_value",
    "plain_key",
    "plain_keys",
    "plain_values",
    "table_for_cells",
    "table_sizes",
    "toggle",
    "valid_first",
    "values_of",
]

KEY_BYTES = 6
CELL_BYTES = 8
MIN_TABLE = 7
"""Smallest first sub-table: sizes 7, 5, 3, 1 (16 cells)."""

_M64 = (1 << 64) - 1
_M48 = (1 << 48) - 1
_CHECK_MUL = 0x9E3779B97F4A7C15
_ID_AT = 8
"""Where the id starts inside a 40-byte item key ``BE64(ts) || id``."""


def check_of(key: int) -> int:
    """The 16-bit check of a sketch key: bits 48..63 of ``key * 0x9E3779B97F4A7C15 mod 2^64``."""
    return ((key * _CHECK_MUL) & _M64) >> 48


def key_value(key: int) -> int:
    """The 64-bit cell value of a sketch key."""
    return (key << 16) | check_of(key)


def plain_key(item_id: bytes) -> int:
    """The plain sketch key of an id: ``LE48(id[0:6])``."""
    return int.from_bytes(item_id[:KEY_BYTES], "little")


def plain_keys(item_keys: list[bytes]) -> list[int]:
    """Plain sketch keys of 40-byte item keys (``BE64(ts) || id``), in order."""
    # One C-level pass: the keys as five little-endian u64 each; the second is LE64(id[0:8]).
    words = array("Q")
    words.frombytes(b"".join(item_keys))
    if sys.byteorder != "little":
        words.byteswap()
    return [word & _M48 for word in words[1::5]]


def values_of(keys: list[int]) -> array[int]:
    """Cell values ``key << 16 | check(key)`` of sketch keys, as an ``array('Q')``."""
    mul = _CHECK_MUL
    return array("Q", [(key << 16) | (((key * mul) & _M64) >> 48) for key in keys])


def plain_values(item_keys: list[bytes]) -> array[int]:
    """Plain cell values of 40-byte item keys, as an ``array('Q')`` (the key is ``v >> 16``)."""
    return values_of(plain_keys(item_keys))


def table_sizes(first: int) -> tuple[int, int, int, int]:
    return first, first - 2, first - 4, first - 6


def valid_first(first: int) -> bool:
    return first >= MIN_TABLE and first % 6 in (1, 5)


def table_for_cells(cells: int) -> int:
    """The smallest valid first sub-table size giving at least ``cells`` cells."""
    first = max(MIN_TABLE, -(-(cells + 12) // 4))
    while not valid_first(first):
        first += 1
    return first


def cells_of(first: int) -> int:
    return 4 * first - 12


def first_of_cells(cells: int) -> int | None:
    """The first sub-table size of a sketch with ``cells`` cells, or None if no valid sketch has that many."""
    if (cells + 12) % 4:
        return None
    first = (cells + 12) // 4
    return first if valid_first(first) else None


def build_cells(values: array[int] | list[int], first: int) -> list[int]:
    """The cells of a sketch of ``values``: each XOR-ed into cell ``key mod size_t`` of sub-table t."""
    s0, s1, s2, s3 = table_sizes(first)
    t0 = [0] * s0
    t1 = [0] * s1
    t2 = [0] * s2
    t3 = [0] * s3
    for value in values:
        key = value >> 16
        t0[key % s0] ^= value
        t1[key % s1] ^= value
        t2[key % s2] ^= value
        t3[key % s3] ^= value
    return t0 + t1 + t2 + t3


def toggle(cells: list[int], first: int, value: int) -> None:
    """XOR one value into its 4 cells (adds an item to a sketch, or takes it out)."""
    key = value >> 16
    s0, s1, s2, s3 = table_sizes(first)
    cells[key % s0] ^= value
    cells[s0 + key % s1] ^= value
    cells[s0 + s1 + key % s2] ^= value
    cells[s0 + s1 + s2 + key % s3] ^= value
