"""Envelopes: what travels between nodes and what relays store.

An envelope is a canonical CBOR map with a clear header ``{v, topic, epoch, ts}`` and
the fields ``nonce`` and ``ct``. ``ct`` is XChaCha20-Poly1305 of a signed op under the
circle's epoch key, with the encoded header as associated data, so a relay can read the
header (to route, dedupe and reconcile) but cannot read or undetectably alter anything.
The envelope id is `ids.envelope_id` of the exact bytes.

Welcome envelopes (keys for a newcomer) use the all-zero epoch and carry a sealed box;
see the membership layer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from identity import codec
from identity.crypto import (
    NONCE_BYTES,
    TAG_BYTES,
    RandomBytes,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    random_bytes,
)
from identity.errors import LocalProtocolError, Malformed, UnsupportedVersion
from sync import limits
from sync.ids import envelope_id

VERSION = 1
WELCOME_EPOCH = bytes(limits.EPOCH_ID_BYTES)
"""Marker epoch of welcome envelopes, whose ``ct`` is a sealed box, not AEAD output."""

_KEYS = frozenset({"v", "topic", "epoch", "ts", "nonce", "ct"})


def circle_topic(circle_id: bytes) -> bytes:
    """The public gossip topic of a circle: a keyed hash, so the id never travels."""
    if len(circle_id) != limits.CIRCLE_ID_BYTES:
        raise LocalProtocolError("a circle id is 16 bytes")
    return blake2b(b"kith/topic/v1", person=b"kith-topic", key=circle_id, size=limits.TOPIC_BYTES)


@functools.lru_cache(maxsize=256)
def epoch_id(epoch_key: bytes) -> bytes:
    """The public id of an epoch key (reveals nothing about the key)."""
    if len(epoch_key) != 32:
        raise LocalProtocolError("an epoch key is 32 bytes")
    return blake2b(b"kith/epoch/v1", person=b"kith-epoch", key=epoch_key, size=limits.EPOCH_ID_BYTES)


def header_bytes(topic: bytes, epoch: bytes, ts: int) -> bytes:
    """The associated data: canonical CBOR of the clear header (keys in canonical order)."""
    return codec.encode_ordered({"v": VERSION, "ts": ts, "epoch": epoch, "topic": topic})


def _envelope_bytes(topic: bytes, epoch: bytes, ts: int, nonce: bytes, ciphertext: bytes) -> bytes:
    return codec.encode_ordered(
        {"v": VERSION, "ct": ciphertext, "ts": ts, "epoch": epoch, "nonce": nonce, "topic": topic}
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: bytes
    epoch: bytes
    ts: int
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    data: bytes = field(repr=False)
    id: bytes

    @classmethod
    def build(cls, topic: bytes, epoch: bytes, ts: int, nonce: bytes, ciphertext: bytes) -> Envelope:
        data = _envelope_bytes(topic, epoch, ts, nonce, ciphertext)
        if len(data) > limits.MAX_ENVELOPE_BYTES:
            raise LocalProtocolError(f"envelope is larger than {limits.MAX_ENVELOPE_BYTES} bytes")
        return cls(topic, epoch, ts, nonce, ciphertext, data, envelope_id(data))

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Validate untrusted envelope bytes (no keys needed). Raises `Malformed` and kin."""
        raw = codec.decode_unverified(data, max_size=limits.MAX_ENVELOPE_BYTES, what="envelope")
        if type(raw) is not dict or raw.keys() != _KEYS:
            if type(raw) is dict and "v" in raw and raw["v"] != VERSION:
                raise UnsupportedVersion(f"envelope version {raw['v']!r} is not supported")
            raise Malformed("envelope has missing or unknown fields")
        if type(raw["v"]) is not int or raw["v"] != VERSION:
            raise UnsupportedVersion(f"envelope version {raw['v']!r} is not supported")
        topic, epoch, ts, nonce, ct = raw["topic"], raw["epoch"], raw["ts"], raw["nonce"], raw["ct"]
        if type(topic) is not bytes or len(topic) != limits.TOPIC_BYTES:
            raise Malformed("envelope topic must be 32 bytes")
        if type(epoch) is not bytes or len(epoch) != limits.EPOCH_ID_BYTES:
            raise Malformed("envelope epoch must be 16 bytes")
        if type(ts) is not int or not 0 <= ts <= limits.MAX_TS:
            raise Malformed("envelope timestamp is out of range")
        if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
            raise Malformed("envelope nonce must be 24 bytes")
        if type(ct) is not bytes or len(ct) < TAG_BYTES:
            raise Malformed("envelope ciphertext is too short")
        if _envelope_bytes(topic, epoch, ts, nonce, ct) != data:
            raise Malformed("envelope is not canonical CBOR")
        return cls(topic, epoch, ts, nonce, ct, data, envelope_id(data))

    def associated_data(self) -> bytes:
        return header_bytes(self.topic, self.epoch, self.ts)

    @property
    def is_welcome(self) -> bool:
        return self.epoch == WELCOME_EPOCH


def seal(
    plaintext: bytes,
    *,
    topic: bytes,
    epoch_key: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    """Encrypt a signed op's bytes into an envelope under an epoch key."""
    if len(plaintext) > limits.MAX_OP_BYTES:
        raise LocalProtocolError(f"plaintext is larger than {limits.MAX_OP_BYTES} bytes")
    epoch = epoch_id(epoch_key)
    nonce = rand(NONCE_BYTES)
    ciphertext = aead_encrypt(epoch_key, nonce, plaintext, header_bytes(topic, epoch, ts))
    return Envelope.build(topic, epoch, ts, nonce, ciphertext)


def open_envelope(envelope: Envelope, epoch_key: bytes) -> bytes:
    """Authenticate and decrypt; raises `Undecryptable` (opaque) on any failure."""
    return aead_decrypt(epoch_key, envelope.nonce, envelope.ciphertext, envelope.associated_data())
