"""Envelopes: `Envelope.decode` on raw bytes, and `open_envelope` + `SignedOp.decode` behind a real key.

Modes (first byte, mod 2):
  0. the rest is envelope bytes from a peer: decode, then try to open it with the epoch key;
  1. the rest is a plaintext the harness seals under the epoch key, so opening succeeds and
     the signed-op decoder behind the AEAD sees the fuzz bytes.

Oracle: only `RemoteProtocolError`; an accepted envelope keeps its exact bytes; a sealed
plaintext opens to itself.
"""

from __future__ import annotations

from _harness import EPOCH_KEY, NOW, fixed_rand

from kith.identity.errors import RemoteProtocolError
from kith.sync import limits
from kith.sync.envelope import Envelope, open_envelope, seal, topic_of_epoch_key
from kith.sync.ops import SignedOp

TOPIC = topic_of_epoch_key(EPOCH_KEY)


def _open_and_decode(envelope: Envelope) -> bytes | None:
    try:
        plaintext = open_envelope(envelope, EPOCH_KEY)
    except RemoteProtocolError:
        return None
    try:
        SignedOp.decode(plaintext)
    except RemoteProtocolError:
        pass
    return plaintext


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 2, data[1:]
    if mode == 0:
        try:
            envelope = Envelope.decode(rest)
        except RemoteProtocolError:
            return
        if envelope.data != rest:
            raise AssertionError("an accepted envelope does not keep its bytes")
        _open_and_decode(envelope)
        return
    if len(rest) > limits.MAX_OP_BYTES:
        return
    sealed = seal(rest, epoch_key=EPOCH_KEY, ts=NOW, rand=fixed_rand(b"envelope"))
    envelope = Envelope.decode(sealed.data)
    if _open_and_decode(envelope) != rest:
        raise AssertionError("a sealed plaintext does not open to itself")
