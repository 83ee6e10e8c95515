"""The per-topic item index that range-based reconciliation walks (docs/RECONCILE.md).

Theory of operation
-------------------
Reconciliation talks about *items* ``(ts, id)`` in ``(ts, id)`` order and about
half-open ranges ``[lower, upper)`` of that order. Inside kith an item is held as its
40-byte *item key* ``BE64(ts) || id``: bytewise order of item keys is exactly
``(ts, id)`` order, one bytes object costs half what a ``(int, bytes)`` tuple does, and
a range bound ``BE64(ts) || id-prefix`` compares against item keys with plain ``<``
(an item sorts below a bound iff it sorts below the bound padded with zero bytes).

The index is a list of sorted blocks of at most `BLOCK_MAX` item keys, plus each
block's first key for bisection. Per block it caches what reconciliation asks about
whole blocks: the sum of the ids (as 256-bit little-endian integers, mod 2^256) and
the 128 bit-population counts behind the tug-of-war estimator. A range query walks the
blocks it touches, using the caches for whole blocks and the items themselves for the
two partial ones, so a fingerprint of any range costs O(blocks + `BLOCK_MAX`).
Inserts are usually appends (new envelopes carry recent timestamps) but may land
anywhere; an insert updates the block's sum and drops its population counts, which are
recomputed on demand with byte-table tricks that run at C speed.

For the *plain* sketch layout (sync/reconcile_tables.py) the index also keeps, once a
session has asked for them, whole-set sketch tables of the sizes recently used and a map
from plain sketch key to item. Each insert XORs the new item into every kept table and
adds it to the map, so a session sketches the whole set, and looks its decoded keys up,
without touching the other items: O(cells + differences), not O(items).

Everything here is plain Python: no clock, no randomness, no I/O.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator
from itertools import compress, repeat
from typing import Literal

from kith.identity.crypto import blake2b
from kith.identity.errors import LocalProtocolError
from kith.sync import limits
from kith.sync.reconcile_tables import build_cells, key_value, plain_key, plain_keys, toggle, values_of

__all__ = [
    "AMS_COUNTERS",
    "BLOCK_MAX",
    "FINGERPRINT_BYTES",
    "ID_BYTES",
    "INFINITY",
    "ITEM_KEY_BYTES",
    "ItemIndex",
    "fingerprint",
    "item_key",
    "population_counts",
    "split_key",
]

PLAIN_TABLES_KEPT = 6
"""Whole-set plain sketch tables kept up to date (the sizes most recently asked for)."""

ID_BYTES = limits.ENVELOPE_ID_BYTES
TS_BYTES = 8
ITEM_KEY_BYTES = TS_BYTES + ID_BYTES
INFINITY = b"\xff" * (TS_BYTES + 1)
"""The upper bound of the last range: sorts after every item key (ts < 2^40)."""

BLOCK_MAX = 1024
"""Items per block before it splits in two: big enough that blocks are few, small enough
that a partial block is cheap to walk."""

FINGERPRINT_BYTES = 16
AMS_COUNTERS = 128
"""Tug-of-war counters: item bit ``j`` of ``id[16:32]`` (little-endian) is its sign in counter ``j``."""
AMS_OFFSET = TS_BYTES + 16
"""Where the estimator's sign bits start inside an item key (id bytes 16..31)."""

_MOD = 1 << 256
_FP_PERSON = b"kith-recon-fp"


def item_key(ts: int, item_id: bytes) -> bytes:
    """The 40-byte key ``BE64(ts) || id`` of an item; its bytes sort like ``(ts, id)``."""
    if type(ts) is not int or not 0 <= ts <= limits.MAX_TS:
        raise LocalProtocolError(f"an item timestamp is an int in [0, {limits.MAX_TS}]")
    if type(item_id) is not bytes or len(item_id) != ID_BYTES:
        raise LocalProtocolError(f"an item id is {ID_BYTES} bytes")
    return ts.to_bytes(TS_BYTES, "big") + item_id


def split_key(key: bytes) -> tuple[int, bytes]:
    """(ts, id) of an item key."""
    return int.from_bytes(key[:TS_BYTES], "big"), key[TS_BYTES:]


def fingerprint(id_sum: int, count: int) -> bytes:
    """BLAKE2b-128(LE256(sum of ids mod 2^256) || LE64(count), person="kith-recon-fp")."""
    return blake2b(
        (id_sum % _MOD).to_bytes(32, "little") + count.to_bytes(8, "little"),
        person=_FP_PERSON,
        size=FINGERPRINT_BYTES,
    )


def sum_ids(keys: list[bytes]) -> int:
    """Sum of the ids of item keys, as little-endian integers (not reduced)."""
    # int(LE(key)) = LE(ts bytes) + 2^64 * id; the ts parts are summed and taken away.
    little: repeat[Literal["little"]] = repeat("little")  # (endless: both sums can share it)
    whole = sum(map(int.from_bytes, keys, little))
    if not whole:
        return 0
    low = sum(map(int.from_bytes, (key[:TS_BYTES] for key in keys), little))
    return (whole - low) >> (8 * TS_BYTES)


def population_counts(keys: list[bytes]) -> list[int]:
    """For j in 0..127, how many of the item keys have bit j of ``LE128(id[16:32])`` set."""
    count = len(keys)
    if not count:
        return [0] * AMS_COUNTERS
    joined = b"".join(keys)
    # One byte column at a time as a big integer: AND with "bit b of every byte", popcount.
    masks = [int.from_bytes(bytes([1 << bit]) * count, "little") for bit in range(8)]
    counts: list[int] = []
    for byte in range(16):
        column = int.from_bytes(joined[AMS_OFFSET + byte :: ITEM_KEY_BYTES], "little")
        counts.extend((column & mask).bit_count() for mask in masks)
    return counts


class ItemIndex:
    """The sorted (ts, id) items of one topic, with fast range counts, sums and estimators."""

    __slots__ = ("_blocks", "_firsts", "_sums", "_pops", "_len", "_plain", "_scans", "_tables")

    def __init__(self, items: Iterable[tuple[int, bytes]] = ()) -> None:
        keys = sorted({item_key(ts, item_id) for ts, item_id in items})
        self._blocks: list[list[bytes]] = [keys[i : i + BLOCK_MAX // 2] for i in range(0, len(keys), BLOCK_MAX // 2)]
        self._firsts = [block[0] for block in self._blocks]
        self._sums: list[int | None] = [None] * len(self._blocks)
        self._pops: list[int | None] = [None] * len(self._blocks)
        self._len = len(keys)
        self._plain: PlainKeyMap | None = None
        self._scans = 0
        self._tables: dict[int, list[int]] = {}

    # --- the set ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __contains__(self, item: object) -> bool:
        if not (isinstance(item, tuple) and len(item) == 2):
            return False
        ts, item_id = item
        if type(ts) is not int or type(item_id) is not bytes or len(item_id) != ID_BYTES or ts < 0:
            return False
        if ts > limits.MAX_TS:
            return False
        key = ts.to_bytes(TS_BYTES, "big") + item_id
        block, pos = self._locate(key)
        blocks = self._blocks
        return block < len(blocks) and pos < len(blocks[block]) and blocks[block][pos] == key

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for block in self._blocks:
            for key in block:
                yield split_key(key)

    def add(self, ts: int, item_id: bytes) -> bool:
        """Insert an item; False if it was already present."""
        key = item_key(ts, item_id)
        if not self._blocks:
            self._blocks.append([key])
            self._firsts.append(key)
            self._sums.append(None)
            self._pops.append(None)
            self._len = 1
            self._add_plain(key)
            return True
        index = max(bisect_right(self._firsts, key) - 1, 0)
        block = self._blocks[index]
        pos = bisect_left(block, key)
        if pos < len(block) and block[pos] == key:
            return False
        block.insert(pos, key)
        if pos == 0:
            self._firsts[index] = key
        cached = self._sums[index]
        if cached is not None:
            self._sums[index] = (cached + int.from_bytes(item_id, "little")) % _MOD
        self._pops[index] = None
        self._len += 1
        self._add_plain(key)
        if len(block) > BLOCK_MAX:
            half = len(block) // 2
            tail = block[half:]
            del block[half:]
            self._blocks.insert(index + 1, tail)
            self._firsts.insert(index + 1, tail[0])
            self._sums[index] = None
            self._sums.insert(index + 1, None)
            self._pops[index] = None
            self._pops.insert(index + 1, None)
        return True

    def update(self, items: Iterable[tuple[int, bytes]]) -> int:
        """Insert many items; returns how many were new."""
        return sum(self.add(ts, item_id) for ts, item_id in items)

    # --- ranges -------------------------------------------------------------------

    def _locate(self, bound: bytes) -> tuple[int, int]:
        """(block, position) of the first item key >= bound (block == len(blocks) at the end)."""
        blocks = self._blocks
        if not blocks:
            return 0, 0
        index = max(bisect_right(self._firsts, bound) - 1, 0)
        pos = bisect_left(blocks[index], bound)
        if pos == len(blocks[index]) and index + 1 < len(blocks):
            return index + 1, 0
        return index, pos

    def _pieces(self, lower: bytes, upper: bytes) -> Iterator[tuple[int, int, int]]:
        """(block, start, stop) slices covering ``lower <= key < upper``."""
        if lower >= upper or not self._blocks:
            return
        b0, p0 = self._locate(lower)
        b1, p1 = self._locate(upper)
        if b0 == len(self._blocks):
            return
        if b0 == b1:
            if p0 < p1:
                yield b0, p0, p1
            return
        yield b0, p0, len(self._blocks[b0])
        for index in range(b0 + 1, min(b1, len(self._blocks))):
            yield index, 0, len(self._blocks[index])
        if b1 < len(self._blocks) and p1:
            yield b1, 0, p1

    def item_keys(self, lower: bytes = b"", upper: bytes = INFINITY) -> list[bytes]:
        """The item keys in ``[lower, upper)``, in order."""
        out: list[bytes] = []
        for index, start, stop in self._pieces(lower, upper):
            block = self._blocks[index]
            out.extend(block if start == 0 and stop == len(block) else block[start:stop])
        return out

    def count(self, lower: bytes = b"", upper: bytes = INFINITY) -> int:
        return sum(stop - start for _index, start, stop in self._pieces(lower, upper))

    def count_and_sum(self, lower: bytes = b"", upper: bytes = INFINITY) -> tuple[int, int]:
        """(number of items, sum of their ids mod 2^256) in ``[lower, upper)``."""
        count = 0
        total = 0
        for index, start, stop in self._pieces(lower, upper):
            block = self._blocks[index]
            count += stop - start
            if start == 0 and stop == len(block):
                total += self._block_sum(index)
            elif 2 * (stop - start) <= len(block):
                total += sum_ids(block[start:stop])
            else:
                total += self._block_sum(index) - sum_ids(block[:start]) - sum_ids(block[stop:])
        return count, total % _MOD

    def fingerprint(self, lower: bytes = b"", upper: bytes = INFINITY) -> tuple[int, bytes]:
        """(count, fingerprint) of ``[lower, upper)``."""
        count, total = self.count_and_sum(lower, upper)
        return count, fingerprint(total, count)

    def population_counts(self, lower: bytes = b"", upper: bytes = INFINITY) -> tuple[int, list[int]]:
        """(count, per-bit set counts) of the estimator bits over ``[lower, upper)``."""
        count = 0
        total = 0  # the 128 counts packed in 32-bit lanes: one big-int addition per block
        for index, start, stop in self._pieces(lower, upper):
            block = self._blocks[index]
            count += stop - start
            if start == 0 and stop == len(block):
                total += self._block_pops(index)
            else:
                total += _pack_counts(population_counts(block[start:stop]))
        return count, _unpack_counts(total)

    def split_bounds(self, lower: bytes, upper: bytes, parts: int) -> list[bytes]:
        """Up to ``parts - 1`` bounds cutting ``[lower, upper)`` into runs of nearly equal count.

        Each bound is the shortest ``BE64(ts) || id-prefix`` that sorts after the item
        before the cut and not after the item at the cut.
        """
        keys = self.item_keys(lower, upper)
        count = len(keys)
        parts = min(parts, count)
        return [shortest_bound(keys[rank - 1], keys[rank]) for rank in (n * count // parts for n in range(1, parts))]

    # --- the plain sketch layout ----------------------------------------------------

    def plain_table(self, first: int) -> list[int]:
        """A copy of the plain sketch cells of the whole set, for first sub-table size ``first``.

        The first request for a size walks every item; the table is then kept current by
        `add` (the `PLAIN_TABLES_KEPT` most recently requested sizes are kept).
        """
        cells = self._tables.pop(first, None)
        if cells is None:
            keys = self.item_keys()
            sketch_keys = plain_keys(keys)
            cells = build_cells(values_of(sketch_keys), first)
        self._tables[first] = cells
        while len(self._tables) > PLAIN_TABLES_KEPT:
            del self._tables[next(iter(self._tables))]
        return list(cells)

    def items_with_plain_keys(self, wanted: Collection[int]) -> dict[int, tuple[bytes, ...]]:
        """The item keys whose id has each wanted plain sketch key (keys no item has are absent).

        The first call walks the items (as a version 1 session did); the second builds the
        `PlainKeyMap` that `add` keeps current, so later calls cost O(len(wanted) log N).
        """
        plain = self._plain
        if plain is None:
            keys = self.item_keys()
            sketch_keys = plain_keys(keys)
            self._scans += 1
            if self._scans < 2:
                found: dict[int, tuple[bytes, ...]] = {}
                for at in compress(range(len(keys)), map(wanted.__contains__, sketch_keys)):
                    found[sketch_keys[at]] = (*found.get(sketch_keys[at], ()), keys[at])
                return found
            plain = self._plain = PlainKeyMap(sketch_keys, keys)
        return {key: items for key in wanted if (items := plain.get(key))}

    def _add_plain(self, key: bytes) -> None:
        if not self._tables and self._plain is None:
            return
        item_id = key[TS_BYTES:]
        value = key_value(plain_key(item_id))
        for first, cells in self._tables.items():
            toggle(cells, first, value)
        if self._plain is not None:
            self._plain.add(plain_key(item_id), key)

    # --- caches -------------------------------------------------------------------

    def _block_sum(self, index: int) -> int:
        cached = self._sums[index]
        if cached is None:
            cached = sum_ids(self._blocks[index]) % _MOD
            self._sums[index] = cached
        return cached

    def _block_pops(self, index: int) -> int:
        """The block's population counts, packed (`_pack_counts`)."""
        cached = self._pops[index]
        if cached is None:
            cached = _pack_counts(population_counts(self._blocks[index]))
            self._pops[index] = cached
        return cached


def _pack_counts(counts: list[int]) -> int:
    """128 counts (each < 2^32) as one integer, count j in bits 32j..32j+31: sums of packed
    counts are packed sums as long as no total reaches 2^32 (counts are items, at most 2^32 - 1)."""
    lanes = array("I", counts)
    if sys.byteorder != "little":
        lanes.byteswap()
    return int.from_bytes(lanes.tobytes(), "little")


def _unpack_counts(packed: int) -> list[int]:
    lanes = array("I")
    lanes.frombytes(packed.to_bytes(4 * AMS_COUNTERS, "little"))
    if sys.byteorder != "little":
        lanes.byteswap()
    return lanes.tolist()


PLAIN_RECENT_MIN = 4096
"""Inserts the plain key map holds in its small dict before merging them into its arrays."""


class PlainKeyMap:
    """Plain sketch key -> item keys, in about 16 bytes per item.

    A sorted ``array('Q')`` of keys with a parallel list of item keys (shared with the
    blocks, not copied), looked up by bisection, plus a dict of recent inserts that is
    merged in once it holds more than `PLAIN_RECENT_MIN` or 1/32 of the items: O(log N)
    amortised per insert. A dict of every item would cost about 100 bytes per item.
    """

    __slots__ = ("_keys", "_items", "_recent")

    def __init__(self, sketch_keys: list[int], item_keys: list[bytes]) -> None:
        self._keys = array("Q")
        self._items: list[bytes] = []
        self._recent: dict[int, list[bytes]] = {}
        self._merge(sketch_keys, item_keys)

    def get(self, key: int) -> tuple[bytes, ...]:
        keys = self._keys
        at = bisect_left(keys, key)
        found = []
        while at < len(keys) and keys[at] == key:
            found.append(self._items[at])
            at += 1
        found.extend(self._recent.get(key, ()))
        return tuple(found)

    def add(self, key: int, item_key: bytes) -> None:
        self._recent.setdefault(key, []).append(item_key)
        if len(self._recent) > max(PLAIN_RECENT_MIN, len(self._keys) >> 5):
            recent = [(k, item) for k, items in self._recent.items() for item in items]
            self._recent = {}
            self._merge([k for k, _ in recent], [item for _, item in recent])

    def _merge(self, sketch_keys: list[int], item_keys: list[bytes]) -> None:
        # Sort (key, position) packed in one int: cheaper than sorting tuples.
        items = [*self._items, *item_keys]
        width = max(len(items), 1).bit_length()
        packed = [key << width | at for at, key in enumerate(self._keys)]
        base = len(self._keys)
        packed += [key << width | (base + at) for at, key in enumerate(sketch_keys)]
        packed.sort()
        mask = (1 << width) - 1
        self._keys = array("Q", [code >> width for code in packed])
        self._items = [items[code & mask] for code in packed]


def shortest_bound(before: bytes, at: bytes) -> bytes:
    """The shortest bound key ``b`` with ``before < b <= at`` (``before < at`` item keys)."""
    if before[:TS_BYTES] != at[:TS_BYTES]:
        return at[:TS_BYTES]
    common = TS_BYTES
    while before[common] == at[common]:
        common += 1
    return at[: common + 1]
