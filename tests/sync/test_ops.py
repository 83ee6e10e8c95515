"""Signed ops: exact round trips, and nothing forged or malformed gets through."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kith.identity import codec
from kith.identity.errors import BadSignature, LocalProtocolError, Malformed, Oversized, RemoteProtocolError
from kith.identity.keys import MemberIdentity
from kith.sync import limits
from kith.sync.opkind import OpKind
from kith.sync.ops import Op, SignedOp

ALICE = MemberIdentity("Alice", bytes([1]) * 32, bytes([2]) * 32, 0)
MALLORY = MemberIdentity("Mallory", bytes([3]) * 32, bytes([4]) * 32, 0)
CIRCLE = bytes([7]) * 16


def _op(**changes: object) -> Op:
    fields: dict[str, object] = {
        "circle": CIRCLE,
        "author": ALICE.member_id,
        "parents": (bytes([5]) * 32,),
        "lamport": 2,
        "seq": 3,
        "ts": 1_700_000_000,
        "kind": "msg.post",
        "body": {"text": "hello", "urgent": False},
    }
    fields.update(changes)
    return Op(**fields)  # type: ignore[arg-type]


bodies = st.dictionaries(
    st.text(max_size=10),
    st.integers(min_value=-(2**64), max_value=2**64 - 1) | st.text(max_size=30) | st.booleans() | st.none(),
    max_size=5,
)


@given(
    parents=st.lists(st.binary(min_size=32, max_size=32), max_size=limits.MAX_PARENTS, unique=True),
    lamport=st.integers(min_value=2, max_value=limits.MAX_LAMPORT),
    seq=st.integers(min_value=1, max_value=limits.MAX_SEQ),
    ts=st.integers(min_value=0, max_value=limits.MAX_TS),
    kind=st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8})?", fullmatch=True),
    body=bodies,
)
def test_round_trip(parents: list[bytes], lamport: int, seq: int, ts: int, kind: str, body: dict[str, object]) -> None:
    if not parents:
        lamport, seq = 1, 1
    op = _op(parents=tuple(sorted(parents)), lamport=lamport, seq=seq, ts=ts, kind=kind, body=body)
    signed = SignedOp.create(op, ALICE)
    decoded = SignedOp.decode(signed.data)
    assert decoded == signed
    assert decoded.op.body == body
    assert codec.decode(signed.data, max_size=1 << 20)[0] == codec.decode(op.encode(), max_size=1 << 20)


def test_every_bit_flip_is_rejected() -> None:
    data = SignedOp.create(_op(), ALICE).data
    for position in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[position // 8] ^= 1 << (position % 8)
        with pytest.raises((Malformed, BadSignature)):
            SignedOp.decode(bytes(flipped))


def test_forged_author_is_rejected() -> None:
    # Mallory signs an op that claims Alice wrote it.
    op = _op()
    signature = MALLORY.sign(b"kith/op/v2\x00", op.encode())
    data = b"\x82" + op.encode() + b"\x58\x40" + signature
    with pytest.raises(BadSignature):
        SignedOp.decode(data)
    with pytest.raises(LocalProtocolError):
        SignedOp.create(op, MALLORY)


def test_signature_is_domain_separated() -> None:
    op = _op()
    signature = ALICE.sign(b"kith/card/v1\x00", op.encode())
    with pytest.raises(BadSignature):
        SignedOp.decode(b"\x82" + op.encode() + b"\x58\x40" + signature)


def _resign(fields: dict[str, object]) -> bytes:
    op_bytes = codec.encode(fields)
    return codec.encode([fields, ALICE.sign(b"kith/op/v2\x00", op_bytes)])


@pytest.mark.parametrize(
    "change",
    [
        {"lamport": 0},
        {"lamport": True},
        {"lamport": 1},  # has parents, so must be >= 2
        {"seq": 0},
        {"seq": True},
        {"seq": 2**53},
        {"seq": 2, "parents": [], "lamport": 1},  # no parents: the author's first op
        {"ts": -1},
        {"ts": 1.5},
        {"circle": b"short"},
        {"author": "not bytes"},
        {"parents": [b"\x01" * 32, b"\x00" * 32]},  # unsorted
        {"parents": [b"\x01" * 32, b"\x01" * 32]},  # repeated
        {"parents": [bytes([i]) * 32 for i in range(17)]},
        {"kind": "Msg.Post"},
        {"kind": "x" * 40},
        {"body": ["not", "a", "map"]},
        {"extra": 1},
    ],
)
def test_malformed_fields_are_rejected(change: dict[str, object]) -> None:
    fields = _op().to_map()
    fields.update(change)
    with pytest.raises(Malformed):
        SignedOp.decode(_resign(fields))


def test_missing_field_and_bad_shapes() -> None:
    fields = _op().to_map()
    del fields["kind"]
    with pytest.raises(Malformed):
        SignedOp.decode(_resign(fields))
    for shape in ([1, 2, 3], {"a": 1}, [fields], [fields, b"short"]):
        with pytest.raises(Malformed):
            SignedOp.decode(codec.encode(shape))


def test_non_canonical_encoding_is_rejected_even_when_signed() -> None:
    op = _op()
    fields = op.to_map()
    import cbor2

    reordered = cbor2.dumps(dict(reversed(list(fields.items()))))
    signature = ALICE.sign(b"kith/op/v2\x00", reordered)
    with pytest.raises(Malformed):
        SignedOp.decode(b"\x82" + reordered + b"\x58\x40" + signature)


def test_values_cbor_cannot_carry_plainly_are_refused_when_signing() -> None:
    for body in ({"n": 2**64}, {"f": 0.5}, {"nested": [{"f": 1.0}]}):
        with pytest.raises(Malformed):
            SignedOp.create(_op(body=body), ALICE)


def test_oversized() -> None:
    with pytest.raises(Oversized):
        SignedOp.decode(b"\x82" + b"\x00" * limits.MAX_OP_BYTES)
    with pytest.raises(Oversized):  # what was typed does not fit: the caller says so
        SignedOp.create(_op(body={"text": "x" * limits.MAX_OP_BYTES}), ALICE)


@given(st.binary(max_size=300))
def test_garbage_raises_only_protocol_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        SignedOp.decode(data)


def test_genesis_shape() -> None:
    genesis = _op(parents=(), lamport=1, seq=1, kind="circle.create")
    assert SignedOp.decode(SignedOp.create(genesis, ALICE).data).op == genesis
    with pytest.raises(Malformed):
        dataclasses.replace(genesis, lamport=2)


@pytest.mark.parametrize("kind", list(OpKind))
def test_an_op_kind_member_signs_and_encodes_as_its_plain_name(kind: OpKind) -> None:
    """An op made with an `OpKind` is the op made with the plain string: same field (an
    exact str, which is what a decoded op holds), same bytes, same id."""
    made = SignedOp.create(_op(kind=kind), ALICE)
    plain = SignedOp.create(_op(kind=kind.value), ALICE)
    assert type(made.op.kind) is str
    assert made.op.kind == kind.value
    assert made.data == plain.data
    assert made.id == plain.id
    assert SignedOp.decode(made.data).op == plain.op
    assert codec.encode({"kind": kind, kind: [kind]}) == codec.encode({"kind": kind.value, kind.value: [kind.value]})


def test_a_str_subclass_other_than_op_kind_is_still_malformed() -> None:
    class Sly(str):
        pass

    with pytest.raises(Malformed):
        _op(kind=Sly("msg.post"))
