"""Canonical CBOR: the only module in kith that turns objects into bytes and back.

Everything kith signs, hashes or sends is canonical CBOR (RFC 8949 section 4.2.3, the
"length-first" deterministic map key order that cbor2 implements with
``canonical=True``). Decoding is strict, because every decoded byte may be hostile:

* a hard size cap is checked before parsing;
* nesting depth is capped, indefinite lengths and duplicate map keys are refused;
* every CBOR tag is refused (no datetimes, bignums, sets or regexes sneak in);
* the decoded value must re-encode to exactly the input bytes, so one value has one
  encoding and therefore one id and one signature input.

Callers then check the exact Python types they expect (`type(x) is int`, never
`isinstance`, because ``bool`` is an ``int``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import cbor2

from kith.identity.errors import Malformed, Oversized

__all__ = ["encode", "encode_ordered", "canonical_copy", "decode", "decode_unverified", "MAX_DEPTH"]

MAX_DEPTH = 16
"""Deepest nesting any kith structure needs (op bodies nest at most a few levels)."""


def _refuse_tag(decoder: object, *args: object) -> Any:
    raise ValueError("CBOR tags are not allowed")


class _EveryTag(Mapping[int, Any]):
    """A mapping that claims every tag number, so cbor2's built-in decoders never run."""

    def __getitem__(self, key: int) -> Any:
        return _refuse_tag

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: int, default: Any = None) -> Any:
        return _refuse_tag

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[int]:
        return iter(())


_NO_TAGS = _EveryTag()


def encode(value: Any) -> bytes:
    """Encode ``value`` as canonical CBOR."""
    return cbor2.dumps(value, canonical=True)


def _text_key(key: str) -> tuple[int, bytes]:
    encoded = key.encode("utf-8")
    return (len(encoded), encoded)


_PLAIN = (str, bytes, bool, type(None))


def canonical_copy(value: Any) -> Any:
    """A copy of ``value`` with every map's keys inserted in canonical order.

    Also refuses what kith never puts in CBOR: floats, and integers beyond 64 bits
    (which CBOR can only carry as tagged bignums).
    """
    kind = type(value)
    if kind is dict:
        if all(type(k) is str for k in value):
            keys = sorted(value, key=_text_key)
        else:
            keys = sorted(value, key=cbor2.dumps)
            keys.sort(key=lambda k: len(cbor2.dumps(k)))
        copy = {}
        for key in keys:
            item = value[key]
            copy[key] = item if type(item) in _PLAIN else canonical_copy(item)
        return copy
    if kind is list or kind is tuple:
        return [item if type(item) in _PLAIN else canonical_copy(item) for item in value]
    if kind is float:
        raise Malformed("floating-point numbers are not allowed in kith data")
    if kind is int and not -(2**64) <= value < 2**64:
        raise Malformed("integer does not fit in 64 bits")
    return value


def encode_ordered(value: Any) -> bytes:
    """Encode ``value`` whose maps were all built in canonical key order.

    This is canonical CBOR at a third of the cost of `encode`, for the fixed-layout
    structures on the hot path (envelopes, ops). The caller guarantees the order, with
    dict literals in canonical order and `canonical_copy` for free-form parts; tests
    check it against `encode`.
    """
    return cbor2.dumps(value)


def decode(data: bytes, *, max_size: int, what: str = "input") -> Any:
    """Decode untrusted canonical CBOR of at most ``max_size`` bytes.

    Raises `Oversized` or `Malformed` (both `RemoteProtocolError`) and nothing else.
    """
    value = decode_unverified(data, max_size=max_size, what=what)
    try:
        canonical = encode(value)
    except (cbor2.CBORError, ValueError, TypeError) as exc:
        raise Malformed(f"{what} is not canonical CBOR") from exc
    if canonical != data:
        raise Malformed(f"{what} is not canonical CBOR")
    return value


def decode_unverified(data: bytes, *, max_size: int, what: str = "input") -> Any:
    """Strictly parse untrusted CBOR, without proving it is the canonical encoding.

    Only for decoders of fixed layouts that then prove canonical form themselves, by
    re-encoding the validated fields with `encode_ordered` and comparing bytes.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        raise Oversized(f"{what} is {len(data)} bytes, more than the {max_size} allowed")
    if not data:
        raise Malformed(f"{what} is empty")
    try:
        value = cbor2.loads(
            data,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
            semantic_decoders=_NO_TAGS,
            tag_hook=_refuse_tag,
        )
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise Malformed(f"{what} is not valid CBOR") from exc
    return value
