"""Reconciliation messages: frozen payload classes and their strict wire form (docs/RECONCILE.md).

A message is one canonical CBOR array, flat so that thousands of ranges cost no nesting:
``[version, (salt,) ts_code, prefix, mode, fields..., ts_code, prefix, mode, fields...]``.
The salt appears only in the initiator's first message. Ranges tile the whole (ts, id)
order: each ends at its *bound* and starts where the previous one ended (the first at
minus infinity). A bound is sent as ``ts_code`` (0 for infinity, else
``1 + ts - previous bound's ts``) and an id prefix; trailing Skip ranges are omitted and
adjacent Skips merged, so every message has exactly one encoding.

Decoding checks every field (types, lengths, counts, order) against the limits below and
raises `Malformed`, `Oversized` or `UnsupportedVersion` (all `RemoteProtocolError`) and
nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from kith.identity import codec
from kith.identity.errors import LocalProtocolError, Malformed, RemoteProtocolError, UnsupportedVersion
from kith.sync import limits
from kith.sync.reconcile_index import FINGERPRINT_BYTES, ID_BYTES, INFINITY, TS_BYTES
from kith.sync.reconcile_sketch import AMS_BYTES, CELL_BYTES, KEY_BYTES, first_of_cells

__all__ = [
    "MAX_COUNT",
    "MAX_IDLIST",
    "MAX_MESSAGE_BYTES",
    "MAX_RANGES",
    "MAX_SKETCH_CELLS",
    "SALT_BYTES",
    "VERSION",
    "Estimate",
    "Fingerprint",
    "HaveAll",
    "IdList",
    "IdListReply",
    "Message",
    "NeedAll",
    "Payload",
    "Range",
    "RoundLimitExceeded",
    "SketchRange",
    "SketchResult",
    "Skip",
    "UnexpectedRange",
    "decode_message",
    "encode_message",
    "payload_size",
]

VERSION = 2
SALT_BYTES = 16
SUM_BYTES = 32
MAX_MESSAGE_BYTES = 256 * 1024
"""Every reconciliation message, both directions; larger answers continue in later rounds."""
MAX_RANGES = 2048
MAX_IDLIST = 4096
MAX_SKETCH_CELLS = 24_568
"""The largest valid sketch (first table 6145) that fits a message with room to spare."""
MAX_COUNT = 2**32 - 1
MAX_PREFIX = ID_BYTES


class UnexpectedRange(RemoteProtocolError):
    """A well-formed message that is not a valid answer to what this side sent."""


class RoundLimitExceeded(RemoteProtocolError):
    """The peer kept the session going for more rounds than the session allows."""


def _ensure(condition: bool, what: str) -> None:
    if not condition:
        raise LocalProtocolError(what)


def _count(value: int, what: str, *, low: int = 0) -> None:
    _ensure(type(value) is int and low <= value <= MAX_COUNT, f"{what} is an int in [{low}, {MAX_COUNT}]")


def _blob(value: bytes, what: str, size: int | None = None, *, unit: int = 1, most: int = MAX_MESSAGE_BYTES) -> None:
    _ensure(type(value) is bytes, f"{what} is a byte string")
    if size is not None:
        _ensure(len(value) == size, f"{what} is {size} bytes")
    else:
        _ensure(len(value) % unit == 0 and len(value) <= most, f"{what} has a bad length")


class Payload:
    """What a range says. ``TERMINAL`` payloads need no answer beyond Skip."""

    MODE: ClassVar[int]
    TERMINAL: ClassVar[bool] = False
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def fields(self) -> list[Any]:
        return [getattr(self, name) for name in self.FIELDS]


@dataclass(frozen=True, slots=True)
class Skip(Payload):
    """Nothing left to do in this range."""

    MODE: ClassVar[int] = 0
    TERMINAL: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Fingerprint(Payload):
    """My count and fingerprint here; answer with what to do next."""

    count: int
    fingerprint: bytes
    MODE: ClassVar[int] = 1
    FIELDS: ClassVar[tuple[str, ...]] = ("count", "fingerprint")

    def __post_init__(self) -> None:
        _count(self.count, "a count")
        _blob(self.fingerprint, "a fingerprint", FINGERPRINT_BYTES)


@dataclass(frozen=True, slots=True)
class Estimate(Payload):
    """A fingerprint plus my 128 tug-of-war counters, so the answer can size a sketch."""

    count: int
    fingerprint: bytes
    ams: bytes
    MODE: ClassVar[int] = 2
    FIELDS: ClassVar[tuple[str, ...]] = ("count", "fingerprint", "ams")

    def __post_init__(self) -> None:
        _count(self.count, "a count")
        _blob(self.fingerprint, "a fingerprint", FINGERPRINT_BYTES)
        _blob(self.ams, "an estimator", AMS_BYTES)


@dataclass(frozen=True, slots=True)
class IdList(Payload):
    """Every id I hold here (32 bytes each, in (ts, id) order)."""

    ids: bytes
    MODE: ClassVar[int] = 3
    FIELDS: ClassVar[tuple[str, ...]] = ("ids",)

    def __post_init__(self) -> None:
        _blob(self.ids, "an id list", unit=ID_BYTES, most=ID_BYTES * MAX_IDLIST)
        ids = self.id_list()
        _ensure(len(set(ids)) == len(ids), "an id list repeats an id")

    def id_list(self) -> list[bytes]:
        return [self.ids[i : i + ID_BYTES] for i in range(0, len(self.ids), ID_BYTES)]


@dataclass(frozen=True, slots=True)
class IdListReply(Payload):
    """Which of your listed ids I lack (bit i of the bitmap), and how many of mine you lack."""

    extra: int
    bitmap: bytes
    MODE: ClassVar[int] = 4
    TERMINAL: ClassVar[bool] = True
    FIELDS: ClassVar[tuple[str, ...]] = ("extra", "bitmap")

    def __post_init__(self) -> None:
        _count(self.extra, "an extra count")
        _blob(self.bitmap, "a bitmap", most=(MAX_IDLIST + 7) // 8)


@dataclass(frozen=True, slots=True)
class HaveAll(Payload):
    """You hold nothing here; I will send you all ``count`` of mine."""

    count: int
    MODE: ClassVar[int] = 5
    TERMINAL: ClassVar[bool] = True
    FIELDS: ClassVar[tuple[str, ...]] = ("count",)

    def __post_init__(self) -> None:
        _count(self.count, "a count", low=1)


@dataclass(frozen=True, slots=True)
class NeedAll(Payload):
    """I hold nothing here; send me everything you have."""

    MODE: ClassVar[int] = 6
    TERMINAL: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class SketchRange(Payload):
    """My count and my sketch of this range (8-byte little-endian cells)."""

    count: int
    cells: bytes
    MODE: ClassVar[int] = 7
    FIELDS: ClassVar[tuple[str, ...]] = ("count", "cells")

    def __post_init__(self) -> None:
        _count(self.count, "a count")
        _blob(self.cells, "sketch cells", unit=CELL_BYTES, most=CELL_BYTES * MAX_SKETCH_CELLS)
        _ensure(first_of_cells(len(self.cells) // CELL_BYTES) is not None, "a sketch has 4*s-12 cells")


@dataclass(frozen=True, slots=True)
class SketchResult(Payload):
    """Your sketch decoded: keys I need, keys you need, and what we hold in common."""

    need: bytes
    have: bytes
    common_count: int
    common_sum: bytes
    MODE: ClassVar[int] = 8
    FIELDS: ClassVar[tuple[str, ...]] = ("need", "have", "common_count", "common_sum")

    def __post_init__(self) -> None:
        most = KEY_BYTES * MAX_SKETCH_CELLS
        _blob(self.need, "needed keys", unit=KEY_BYTES, most=most)
        _blob(self.have, "offered keys", unit=KEY_BYTES, most=most)
        _count(self.common_count, "a common count")
        _blob(self.common_sum, "a common sum", SUM_BYTES)
        need, have = self.need_keys(), self.have_keys()
        _ensure(all(a < b for a, b in zip(need, need[1:], strict=False)), "needed keys are strictly ascending")
        _ensure(all(a < b for a, b in zip(have, have[1:], strict=False)), "offered keys are strictly ascending")
        _ensure(not set(need) & set(have), "a key is both needed and offered")

    def need_keys(self) -> list[int]:
        return _keys(self.need)

    def have_keys(self) -> list[int]:
        return _keys(self.have)


def _keys(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + KEY_BYTES], "big") for i in range(0, len(data), KEY_BYTES)]


def pack_keys(keys: list[int]) -> bytes:
    """Sketch keys as sorted 6-byte big-endian strings."""
    return b"".join(key.to_bytes(KEY_BYTES, "big") for key in sorted(keys))


_PAYLOADS: dict[int, type[Payload]] = {
    cls.MODE: cls
    for cls in (Skip, Fingerprint, Estimate, IdList, IdListReply, HaveAll, NeedAll, SketchRange, SketchResult)
}


@dataclass(frozen=True, slots=True)
class Range:
    """A payload for the range that ends at ``upper`` (exclusive) and starts where the previous one ended."""

    upper: bytes
    payload: Payload

    def __post_init__(self) -> None:
        _ensure(type(self.upper) is bytes, "a bound is bytes")
        _ensure(
            self.upper == INFINITY or TS_BYTES <= len(self.upper) <= TS_BYTES + MAX_PREFIX,
            "a bound is BE64(ts) || id prefix, or infinity",
        )
        _ensure(isinstance(self.payload, Payload), "a range carries a payload")


@dataclass(frozen=True, slots=True)
class Message:
    ranges: tuple[Range, ...]
    salt: bytes | None = None
    normalized: tuple[Range, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.salt is not None:
            _blob(self.salt, "a salt", SALT_BYTES)
        merged: list[Range] = []
        previous = b""
        for rng in self.ranges:
            _ensure(rng.upper > previous, "ranges are in ascending order")
            previous = rng.upper
            if merged and isinstance(rng.payload, Skip) and isinstance(merged[-1].payload, Skip):
                merged[-1] = rng
            else:
                merged.append(rng)
        while merged and isinstance(merged[-1].payload, Skip):
            merged.pop()
        _ensure(len(merged) <= MAX_RANGES, f"a message has at most {MAX_RANGES} ranges")
        object.__setattr__(self, "normalized", tuple(merged))

    def spans(self) -> list[tuple[bytes, bytes, Payload]]:
        """(lower, upper, payload) for every range, the implicit trailing Skip included."""
        out: list[tuple[bytes, bytes, Payload]] = []
        lower = b""
        for rng in self.normalized:
            out.append((lower, rng.upper, rng.payload))
            lower = rng.upper
        if lower != INFINITY:
            out.append((lower, INFINITY, Skip()))
        return out


def _bound_fields(upper: bytes, previous_ts: int) -> tuple[int, bytes, int]:
    if upper == INFINITY:
        return 0, b"", previous_ts
    ts = int.from_bytes(upper[:TS_BYTES], "big")
    return 1 + ts - previous_ts, upper[TS_BYTES:], ts


def encode_message(message: Message) -> bytes:
    items: list[Any] = [VERSION]
    if message.salt is not None:
        items.append(message.salt)
    previous_ts = 0
    for rng in message.normalized:
        code, prefix, previous_ts = _bound_fields(rng.upper, previous_ts)
        items += [code, prefix, rng.payload.MODE, *rng.payload.fields()]
    data = codec.encode_ordered(items)
    if len(data) > MAX_MESSAGE_BYTES:
        raise LocalProtocolError(f"a reconciliation message of {len(data)} bytes is over the limit")
    return data


def decode_message(data: bytes, *, first: bool) -> Message:
    """Parse and validate a message; ``first`` for the initiator's opening message (it has the salt)."""
    items = codec.decode(data, max_size=MAX_MESSAGE_BYTES, what="reconciliation message")
    if type(items) is not list or not items:
        raise Malformed("a reconciliation message is a non-empty array")
    if type(items[0]) is not int:
        raise Malformed("a reconciliation message starts with its version")
    if items[0] != VERSION:
        raise UnsupportedVersion(f"reconciliation version {items[0]} is not supported (this build speaks {VERSION})")
    at = 1
    salt = None
    if first:
        if len(items) < 2:
            raise Malformed("the first reconciliation message carries a salt")
        salt = items[1]
        at = 2
    ranges: list[Range] = []
    previous_ts = 0
    try:
        while at < len(items):
            if len(items) - at < 3:
                raise Malformed("a range is cut short")
            code, prefix, mode = items[at : at + 3]
            at += 3
            if type(code) is not int or type(prefix) is not bytes or type(mode) is not int or code < 0:
                raise Malformed("a range starts with ts code, prefix and mode")
            if code == 0:
                if prefix:
                    raise Malformed("the infinite bound has no id prefix")
                upper = INFINITY
            else:
                ts = previous_ts + code - 1
                if ts > limits.MAX_TS or len(prefix) > MAX_PREFIX:
                    raise Malformed("a bound is out of range")
                upper = ts.to_bytes(TS_BYTES, "big") + prefix
                previous_ts = ts
            cls = _PAYLOADS.get(mode)
            if cls is None:
                raise Malformed(f"unknown range mode {mode}")
            arity = len(cls.FIELDS)
            if len(items) - at < arity:
                raise Malformed("a range is cut short")
            payload = cls(*items[at : at + arity])
            at += arity
            if ranges and upper <= ranges[-1].upper:
                raise Malformed("range bounds are not ascending")
            if ranges and ranges[-1].upper == INFINITY:
                raise Malformed("a range follows the infinite bound")
            ranges.append(Range(upper, payload))
            if len(ranges) > MAX_RANGES:
                raise Malformed(f"more than {MAX_RANGES} ranges")
        message = Message(tuple(ranges), salt)
    except LocalProtocolError as exc:
        raise Malformed(f"bad reconciliation message: {exc}") from None
    if message.normalized != tuple(ranges):
        raise Malformed("a reconciliation message is not in canonical form (merged or trailing Skip)")
    return message


# --- sizes, for budgeting replies -----------------------------------------------------


def _head(value: int) -> int:
    """Bytes of a CBOR head carrying ``value`` (RFC 8949 shortest form)."""
    return 1 if value < 24 else 2 if value < 256 else 3 if value < 65536 else 5 if value < 2**32 else 9


def _field_size(value: Any) -> int:
    if type(value) is bytes:
        return _head(len(value)) + len(value)
    return _head(value)


BOUND_MAX = 9 + 1 + MAX_PREFIX + 1
"""Largest encoded ts code + prefix, plus the mode."""


def payload_size(payload: Payload) -> int:
    """An upper bound of one range's encoded size (bound, mode and fields)."""
    return BOUND_MAX + sum(_field_size(value) for value in payload.fields())
