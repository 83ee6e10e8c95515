"""Private requests and check-ins: `open_private` and `open_private_box`.

Modes (first byte, mod 4):
  0. the rest is the envelope's ``ct`` (the clear CBOR map of boxes, nonce and ciphertext);
  1. the rest is the signed statement, encrypted and boxed to Alice (an organizer) correctly;
  2. the rest is a private box's plaintext, sealed to Alice;
  3. the rest is whole envelope bytes from a peer.

Oracle: only `RemoteProtocolError`; an opened statement is a private kind without parents.
"""

from __future__ import annotations

from _harness import ALICE, EPOCH_KEY, NOW

from kith.identity import codec
from kith.identity.crypto import aead_encrypt, seal_to
from kith.identity.errors import RemoteProtocolError
from kith.sync.envelope import Envelope, epoch_id, header_bytes, pad_to, relay_key, topic_of_epoch_key
from kith.sync.private import PRIVATE_KINDS, open_private, open_private_box

TOPIC = topic_of_epoch_key(EPOCH_KEY)
EPOCH = epoch_id(EPOCH_KEY)
RELAY_KEY = relay_key(EPOCH_KEY)
KEY = bytes([0x31]) * 32
NONCE = bytes([0x32]) * 24


def _open(envelope_bytes: bytes) -> None:
    try:
        statement = open_private(Envelope.decode(envelope_bytes), ALICE)
    except RemoteProtocolError:
        return
    if statement.op.kind not in PRIVATE_KINDS or statement.op.parents:
        raise AssertionError("open_private returned something other than a private statement")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    if len(rest) > 60_000:
        return
    if mode == 0:
        _open(Envelope.build(TOPIC, EPOCH, NOW, NONCE, rest, relay_key=RELAY_KEY).data)
    elif mode == 1:
        ciphertext = aead_encrypt(KEY, NONCE, pad_to(rest, len(rest) + 1), header_bytes(TOPIC, EPOCH, NOW))
        payload = codec.encode({"v": 1, "boxes": [seal_to(ALICE.dh_public, KEY)], "nonce": NONCE, "ct": ciphertext})
        _open(Envelope.build(TOPIC, EPOCH, NOW, NONCE, payload, relay_key=RELAY_KEY).data)
    elif mode == 2:
        try:
            open_private_box(seal_to(ALICE.dh_public, rest), ALICE)
        except RemoteProtocolError:
            pass
    else:
        _open(rest)
