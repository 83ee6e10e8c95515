"""Ops the fuzzers and the Wycheproof run found: rejected with a reason, never a crash later."""

from __future__ import annotations

from typing import Any

import pytest

from kith.identity import codec
from kith.identity.errors import Malformed
from kith.identity.keys import CARD_DOMAIN, MemberIdentity
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import OP_DOMAIN, SignedOp

ALICE = MemberIdentity("Alice", bytes([1]) * 32, bytes([2]) * 32, 1)


def test_member_add_with_a_small_order_x25519_key_is_rejected(circle: Any) -> None:
    # Sealing a rotated key to such a member raised nacl's RuntimeError in the organizer's
    # node (key maintenance catches only kith errors), so one hostile card stopped every
    # rotation of the circle. The card is now refused, so the member is never added.
    eve = circle.people["eve"]
    signed_fields = {"v": 1, "name": "Eve", "sign": eve.sign_public, "dh": bytes(32), "created": 1}
    card = codec.encode({**signed_fields, "sig": eve.sign(CARD_DOMAIN, codec.encode(signed_fields))})
    body = {**member_add_body(eve.card().to_bytes()), "card": card}
    op = circle.sign("alice", "member.add", body)
    circle.replica.ingest(op)
    assert circle.reason(op) == "invalid body: card: bad card"
    assert eve.member_id not in circle.state.members


@pytest.mark.parametrize("kind", [["msg.post"], {"k": 1}, b"msg.post", 7, None])
def test_signed_op_with_a_kind_that_is_not_text_is_malformed(kind: Any) -> None:
    # The kind cache (a set, 31cd2b7) looked the kind up before checking its type: a list
    # or map raised TypeError out of SignedOp.decode (fuzz_envelope, opened plaintext).
    fields = {
        "ts": 1,
        "body": {},
        "kind": kind,
        "author": ALICE.member_id,
        "circle": bytes(16),
        "lamport": 1,
        "seq": 1,
        "parents": [],
    }
    op_bytes = codec.encode(fields)
    data = b"\x82" + op_bytes + b"\x58\x40" + ALICE.sign(OP_DOMAIN, op_bytes)
    with pytest.raises(Malformed, match="kind"):
        SignedOp.decode(data)
