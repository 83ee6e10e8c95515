"""Canonical CBOR: one value, one encoding; hostile bytes never get through."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kith.identity import codec
from kith.identity.errors import Malformed, Oversized, RemoteProtocolError

plain_keys = st.text(max_size=8) | st.binary(max_size=8)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64) + 1, max_value=2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(plain_keys, children, max_size=4),
    max_leaves=20,
)


@given(plain)
def test_round_trip(value: object) -> None:
    data = codec.encode(value)
    assert codec.decode(data, max_size=1 << 20) == value


@given(plain)
def test_ordered_encoding_matches_canonical(value: object) -> None:
    assert codec.encode_ordered(codec.canonical_copy(value)) == codec.encode(value)


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        codec.decode(data, max_size=1 << 20)
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (bytes.fromhex("a2616201616101"), "map keys out of order"),
        (bytes.fromhex("1805"), "non-minimal integer"),
        (bytes.fromhex("5f4101ff"), "indefinite byte string"),
        (bytes.fromhex("a2616101616101"), "duplicate key"),
        (bytes.fromhex("c11a00000001"), "tagged epoch time"),
        (bytes.fromhex("c24101"), "bignum tag"),
        (bytes.fromhex("d901028101"), "set tag"),
        (bytes.fromhex("0102"), "trailing bytes"),
        (bytes.fromhex("62c328"), "invalid UTF-8"),
        (bytes.fromhex("81" * 40 + "01"), "too deep"),
        (bytes.fromhex("5a ffffffff"), "length beyond input"),
    ],
)
def test_rejects(data: bytes, why: str) -> None:
    with pytest.raises(Malformed):
        codec.decode(data, max_size=1 << 20)


def test_size_checked_before_parsing() -> None:
    with pytest.raises(Oversized):
        codec.decode(codec.encode(b"x" * 100), max_size=50)


def test_float_that_round_trips_is_still_not_accepted_as_int() -> None:
    # Floats may decode, but no kith schema accepts them: exact type checks do that.
    value = codec.decode(cbor2.dumps(0.1, canonical=True), max_size=100)
    assert type(value) is float
