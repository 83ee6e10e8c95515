"""Signed ops: `SignedOp.decode` on raw bytes, and on op maps signed with a real key.

Modes (first byte, mod 2):
  0. the rest is signed-op bytes from a peer;
  1. the rest is an op map (CBOR); the harness signs it as Alice, so every field check
     and the canonical-form check see the fuzz bytes, not just the signature check.

Oracle: only `RemoteProtocolError`; an accepted op keeps its exact bytes and re-signs
to the same bytes.
"""

from __future__ import annotations

from _harness import ALICE

from kith.identity.errors import RemoteProtocolError
from kith.sync import limits
from kith.sync.ops import OP_DOMAIN, SignedOp


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 2, data[1:]
    if mode == 1:
        if len(rest) + 67 > limits.MAX_OP_BYTES:
            return
        if not rest:
            return
        rest = b"\x82" + rest + b"\x58\x40" + ALICE.sign(OP_DOMAIN, rest)
    try:
        signed = SignedOp.decode(rest)
    except RemoteProtocolError:
        return
    if signed.data != rest:
        raise AssertionError("an accepted op does not keep its bytes")
    if signed.op.author == ALICE.member_id and SignedOp.create(signed.op, ALICE).data != rest:
        raise AssertionError("an accepted op does not re-sign to the same bytes")
