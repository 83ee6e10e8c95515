"""Signed ops: the unit of everything a member says or does in a circle.

An op is ``{circle, author, parents, lamport, seq, ts, kind, body}``, encoded as canonical
CBOR and signed by its author's Ed25519 key over ``"kith/op/v2\\0" || op bytes``. ``seq``
numbers the author's ops in the circle (1, 2, ...): each op cites its author's previous one
among its parents, so an author's ops form a hash chain, and two ops with one ``seq`` are a
provable fork (see `sync.dag`, `sync.causal`). The signed
op travels as the two-element array ``[op, signature]``; its id is `ids.op_id` of those
bytes. Decoding validates every field before the signature is checked, and the
signature before anything else may look at the op. Kind-specific body schemas and
authority rules live in the circle-state fold, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kith.identity import codec
from kith.identity.crypto import verify
from kith.identity.errors import LocalProtocolError, Malformed, Oversized
from kith.identity.keys import MemberIdentity
from kith.sync import limits
from kith.sync.ids import op_id
from kith.sync.opkind import OpKind

OP_DOMAIN = b"kith/op/v2\x00"
_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_OP_KEYS = frozenset({"circle", "author", "parents", "lamport", "seq", "ts", "kind", "body"})
_SIG_SUFFIX = b"\x58\x40"  # CBOR: byte string of length 64
_VALID_KINDS: set[str] = set()
"""Kind names already checked against `_KIND` (a bounded cache: the regex is the slow part)."""


@dataclass(frozen=True, slots=True)
class Op:
    """An unsigned op. ``parents`` are op ids in ascending byte order, without repeats.

    ``seq`` is keyword-only: the author's sequence number in the circle (1 for their first
    op; an op without parents is always its author's first)."""

    circle: bytes
    author: bytes
    parents: tuple[bytes, ...]
    lamport: int
    ts: int
    kind: str
    """Any well-formed kind name (one this build does not know is folded as rejected); an
    `OpKind` given here is stored as its plain string."""
    body: dict[str, Any] = field(hash=False)
    seq: int = field(kw_only=True)

    def __post_init__(self) -> None:
        # Written for speed (every op decoded passes here): plain comparisons, no helpers.
        circle, author, parents, lamport = self.circle, self.author, self.parents, self.lamport
        if type(circle) is not bytes or len(circle) != limits.CIRCLE_ID_BYTES:
            raise Malformed(f"op circle id must be {limits.CIRCLE_ID_BYTES} bytes")
        if type(author) is not bytes or len(author) != limits.MEMBER_ID_BYTES:
            raise Malformed(f"op author must be {limits.MEMBER_ID_BYTES} bytes")
        if type(parents) is not tuple or len(parents) > limits.MAX_PARENTS:
            raise Malformed(f"op cites more than {limits.MAX_PARENTS} parents")
        previous = b""
        for parent in parents:
            if type(parent) is not bytes or len(parent) != limits.OP_ID_BYTES:
                raise Malformed(f"op parent id must be {limits.OP_ID_BYTES} bytes")
            if parent <= previous:
                raise Malformed("op parents must be sorted and distinct")
            previous = parent
        if type(lamport) is not int or not 1 <= lamport <= limits.MAX_LAMPORT:
            raise Malformed("op lamport clock is out of range")
        if parents:
            if lamport < 2:
                raise Malformed("an op with parents must have lamport of at least 2")
        elif lamport != 1:
            raise Malformed("an op without parents must have lamport 1")
        seq = self.seq
        if type(seq) is not int or not 1 <= seq <= limits.MAX_SEQ:
            raise Malformed("op seq is out of range")
        if not parents and seq != 1:
            raise Malformed("an op without parents must have seq 1")
        if type(self.ts) is not int or not 0 <= self.ts <= limits.MAX_TS:
            raise Malformed("op timestamp is out of range")
        kind = self.kind
        if type(kind) is not str or kind not in _VALID_KINDS:  # type first: a list is not hashable
            if type(kind) is OpKind:  # made here, not decoded: the op keeps the plain name
                kind = kind.value
                object.__setattr__(self, "kind", kind)
            if type(kind) is not str or len(kind) > limits.MAX_KIND_CHARS or not _KIND.fullmatch(kind):
                raise Malformed("op kind is not a valid kind name")
            if len(_VALID_KINDS) < 4096:
                _VALID_KINDS.add(kind)
        if type(self.body) is not dict:
            raise Malformed("op body must be a map")

    def to_map(self) -> dict[str, Any]:
        """The op as a map whose keys are in canonical order (length, then bytes)."""
        return {
            "ts": self.ts,
            "seq": self.seq,
            "body": codec.canonical_copy(self.body),
            "kind": self.kind,
            "author": self.author,
            "circle": self.circle,
            "lamport": self.lamport,
            "parents": list(self.parents),
        }

    def encode(self) -> bytes:
        return codec.encode_ordered(self.to_map())


@dataclass(frozen=True, slots=True)
class SignedOp:
    """An op with its author's signature; ``data`` are the exact wire bytes, ``id`` their hash."""

    op: Op
    signature: bytes = field(repr=False)
    data: bytes = field(repr=False)
    id: bytes

    @classmethod
    def create(cls, op: Op, author: MemberIdentity) -> SignedOp:
        if author.member_id != op.author:
            raise LocalProtocolError("an op must be signed by its own author")
        op_bytes = op.encode()
        if len(op_bytes) + 67 > limits.MAX_OP_BYTES:
            # What was typed does not fit: the caller tells the user, nothing is signed.
            raise Oversized(f"op is larger than {limits.MAX_OP_BYTES} bytes")
        signature = author.sign(OP_DOMAIN, op_bytes)
        data = b"\x82" + op_bytes + _SIG_SUFFIX + signature
        return cls(op, signature, data, op_id(data))

    @classmethod
    def decode(cls, data: bytes) -> SignedOp:
        """Parse, validate and verify untrusted signed-op bytes.

        Raises `Malformed`/`Oversized` for bad structure and `BadSignature` for a bad or
        forged signature. Nothing else escapes.
        """
        raw = codec.decode_unverified(data, max_size=limits.MAX_OP_BYTES, what="signed op")
        if type(raw) is not list or len(raw) != 2:
            raise Malformed("signed op must be a two-element array")
        fields, signature = raw
        if type(fields) is not dict or fields.keys() != _OP_KEYS:
            raise Malformed("op has missing or unknown fields")
        if type(signature) is not bytes or len(signature) != 64:
            raise Malformed("op signature must be 64 bytes")
        parents = fields["parents"]
        if type(parents) is not list:
            raise Malformed("op parents must be an array")
        op = Op(
            fields["circle"],
            fields["author"],
            tuple(parents),
            fields["lamport"],
            fields["ts"],
            fields["kind"],
            fields["body"],
            seq=fields["seq"],
        )
        op_bytes = op.encode()
        if data != b"\x82" + op_bytes + _SIG_SUFFIX + signature:
            raise Malformed("signed op is not canonical CBOR")
        verify(op.author, OP_DOMAIN, op_bytes, signature)
        return cls(op, signature, data, op_id(data))
