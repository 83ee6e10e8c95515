"""Private requests and check-ins: asking the organizers for help without telling the circle.

A member who needs help privately does not post an op: their node signs a statement
(a `SignedOp` of kind ``private.request`` or ``private.checkin`` that is never folded) and
sends it in an envelope on the circle's current epoch topic that looks like any other
(same epoch, same size classes; only members recognise it, by a nonce hint keyed with
the epoch key): the statement is encrypted with a fresh key, and that key is sealed to
each organizer in an anonymous list of sealed boxes (a relay sees neither that it is
private nor who wrote it nor whom it is for).

An organizer's node opens it. A check-in stays between the member and the organizers. A
request is posted to the circle by an organizer on the member's behalf (``aid.request``
with ``private``), after a random delay, naming it only by `private_ref`:
members see that a request exists, its category and any amount, so
they can pledge and the books stay complete, but the description and the requester's
identity are sealed to the organizers (``private.boxes``), never to the circle.
"""

from __future__ import annotations

from typing import Any

from kith.identity import codec
from kith.identity.crypto import (
    NONCE_BYTES,
    TAG_BYTES,
    RandomBytes,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    open_sealed,
    random_bytes,
    seal_to,
)
from kith.identity.errors import Malformed, RemoteProtocolError, Undecryptable
from kith.identity.keys import MemberIdentity
from kith.sync import limits
from kith.sync.envelope import (
    Envelope,
    Kind,
    ct_length,
    epoch_id,
    header_bytes,
    hint_key,
    hinted_nonce,
    pad_to,
    relay_key,
    topic_of_epoch_key,
    unpad_to,
)
from kith.sync.ops import Op, SignedOp

MAX_RECIPIENTS = 32
PRIVATE_KINDS = ("private.request", "private.checkin", "private.ask", "private.reveal", "private.report")


def seal_private(
    statement: SignedOp,
    organizers: list[bytes],
    *,
    epoch_key: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    """An envelope only the holders of ``organizers`` (X25519 public keys) can open, on the
    topic of the epoch whose key is given, as long as an op of the same size class."""
    if not 1 <= len(organizers) <= MAX_RECIPIENTS:
        raise Malformed(f"a private message goes to 1 to {MAX_RECIPIENTS} organizers")
    topic, epoch = topic_of_epoch_key(epoch_key), epoch_id(epoch_key)
    header = header_bytes(topic, epoch, ts)
    key, inner_nonce = rand(32), rand(NONCE_BYTES)
    boxes = [seal_to(dh, key) for dh in organizers]

    def payload(length: int) -> bytes:
        ciphertext = aead_encrypt(key, inner_nonce, pad_to(statement.data, length), header)
        return codec.encode({"v": 1, "boxes": boxes, "nonce": inner_nonce, "ct": ciphertext})

    # The statement is padded so that the whole payload is exactly an op's ct length of the
    # class that holds it: CBOR's length prefixes move by a byte or two, so fit in a few steps.
    length = len(statement.data) + 1
    target = ct_length(len(payload(length)) - TAG_BYTES)
    for _ in range(4):
        length += target - len(payload(length))
        if len(payload(length)) == target:
            break
    data = payload(length)
    nonce = hinted_nonce(hint_key(epoch_key, Kind.PRIVATE), rand)
    return Envelope.build(topic, epoch, ts, nonce, data, relay_key=relay_key(epoch_key))


def open_private(envelope: Envelope, me: MemberIdentity) -> SignedOp:
    """The signed statement inside, if one of the boxes is ours; `Undecryptable` if none is."""
    raw = codec.decode(envelope.ciphertext, max_size=limits.MAX_ENVELOPE_BYTES, what="private message")
    if type(raw) is not dict or set(raw) != {"v", "boxes", "nonce", "ct"} or raw["v"] != 1:
        raise Malformed("private message has the wrong fields")
    boxes, nonce, ciphertext = raw["boxes"], raw["nonce"], raw["ct"]
    if type(boxes) is not list or not 1 <= len(boxes) <= MAX_RECIPIENTS or type(nonce) is not bytes:
        raise Malformed("private message is malformed")
    if type(ciphertext) is not bytes or len(nonce) != NONCE_BYTES:
        raise Malformed("private message is malformed")
    for box in boxes:
        if type(box) is not bytes:
            raise Malformed("private message box is malformed")
        try:
            key = open_sealed(me.dh_public, me.dh_secret, box)
        except Undecryptable:
            continue
        plaintext = unpad_to(aead_decrypt(key, nonce, ciphertext, envelope.associated_data()))
        statement = SignedOp.decode(plaintext)
        if statement.op.kind not in PRIVATE_KINDS or statement.op.parents:
            raise Malformed("private message holds something else")
        return statement
    raise Undecryptable()


def private_ref(statement: SignedOp) -> bytes:
    """How the circle's placeholder names a private request: a hash of the signed
    statement, which only the requester and the organizers ever see. It cannot be linked
    to the envelope that carried it (whose id everyone sees, and whose arrival a member
    could tie to the peer that first sent it)."""
    return blake2b(statement.data, person=b"kith-private-ref", size=32)


def make_statement(me: MemberIdentity, circle: bytes, kind: str, body: dict[str, Any], *, ts: int) -> SignedOp:
    """The requester's signed statement (never folded: it stands alone, lamport 1)."""
    return SignedOp.create(Op(circle, me.member_id, (), 1, ts, kind, body, seq=1), me)


def seal_private_box(recipient_dh_public: bytes, *, description: str, requester: bytes) -> bytes:
    """What an organizer can read of a private request posted on a member's behalf."""
    return seal_to(recipient_dh_public, codec.encode({"description": description, "requester": requester}))


def open_private_box(box: bytes, me: MemberIdentity) -> dict[str, Any]:
    raw = codec.decode(open_sealed(me.dh_public, me.dh_secret, box), max_size=8192, what="private request")
    if type(raw) is not dict or set(raw) != {"description", "requester"}:
        raise Malformed("private request box has the wrong fields")
    if type(raw["description"]) is not str or type(raw["requester"]) is not bytes:
        raise Malformed("private request box is malformed")
    return raw


__all__ = ["RemoteProtocolError", "make_statement", "open_private", "open_private_box", "private_ref", "seal_private"]
