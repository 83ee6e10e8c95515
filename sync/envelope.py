"""Envelopes: what travels between nodes and what relays store.

An envelope is a canonical CBOR map with a clear header ``{v, topic, epoch, ts}`` and
the fields ``nonce``, ``ct`` and ``mac``. ``ct`` is XChaCha20-Poly1305 of a signed op
under the circle's epoch key, with the encoded header as associated data, so a relay can
read the header (to route, dedupe and reconcile) but cannot read or undetectably alter
anything. The plaintext is padded to a size class first (`pad`: 1 KiB, powers of two, the
largest op), so a watcher of sizes cannot tell a rent request from a reaction. The envelope
id is `ids.envelope_id` of the exact bytes.

``mac`` lets a keyless relay tell a circle's envelopes from forgeries: it is a keyed
BLAKE2b of ``header || nonce || ct`` under the epoch's *relay key*, derived one-way from
the epoch key and handed to relays in relay tokens. A relay that knows the relay key can
check envelopes (and so refuse floods of forged ones) but cannot decrypt them: the relay
key does not reveal the epoch key.

``topic`` is the epoch's own topic (`epoch_topic`, a keyed hash of the relay key): each
rotation moves a circle to a new topic, so a watcher who once linked a member to a
circle's topic learns nothing about the circle's traffic after the next rotation, and a
topic names exactly one relay key (one check per envelope).

Welcome envelopes (keys for a newcomer) use the all-zero epoch and carry a sealed box;
see the membership layer.
"""

from __future__ import annotations

import functools
import hmac
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
from identity.errors import BadSignature, LocalProtocolError, Malformed, Undecryptable, UnsupportedVersion
from sync import limits
from sync.ids import envelope_id

VERSION = 2
"""2: the plaintext of a normal envelope is padded to a size class (`pad`)."""
WELCOME_EPOCH = bytes(limits.EPOCH_ID_BYTES)
"""Marker epoch of welcome envelopes, whose ``ct`` is a sealed box, not AEAD output."""
JOIN_EPOCH = b"\xff" * limits.EPOCH_ID_BYTES
"""Marker epoch of join requests, encrypted with a key derived from an invite's secret."""
GRANT_EPOCH = b"\xfe" * limits.EPOCH_ID_BYTES
"""Marker epoch of relay grants: a new epoch's relay key, encrypted under the previous one."""
PRIVATE_EPOCH = b"\xfd" * limits.EPOCH_ID_BYTES
"""Marker epoch of private requests and check-ins, sealed to the circle's organizers."""
MARKER_EPOCHS = (WELCOME_EPOCH, JOIN_EPOCH, GRANT_EPOCH, PRIVATE_EPOCH)
KEY_HINT_BYTES = 4
"""A marker envelope's nonce begins with a hint naming the relay key that authenticates
it, so a receiver checks one key, not every epoch's (docs/PROTOCOL.md §5)."""


def key_hint(relay_key: bytes) -> bytes:
    return blake2b(relay_key, person=b"kith-key-hint", size=KEY_HINT_BYTES)


def marker_nonce(relay_key: bytes, rand: RandomBytes) -> bytes:
    """The nonce of a marker envelope authenticated with ``relay_key``: its hint, then
    20 random bytes (still far too many to repeat)."""
    return key_hint(relay_key) + rand(NONCE_BYTES - KEY_HINT_BYTES)

MAC_BYTES = 16
MIN_PADDED_BYTES = 1024
MAX_PADDED_BYTES = limits.MAX_OP_BYTES + 1


def padded_size(length: int) -> int:
    """The size class of a plaintext of ``length`` bytes (plus its one-byte pad marker):
    1 KiB, then powers of two, then the largest op. Reactions, posts, check-ins and rent
    requests of ordinary length all look alike (1 KiB); only long texts stand out, by class."""
    need = length + 1
    if need > MAX_PADDED_BYTES:
        raise LocalProtocolError(f"plaintext is larger than {limits.MAX_OP_BYTES} bytes")
    size = MIN_PADDED_BYTES
    while size < need:
        size *= 2
    return min(size, MAX_PADDED_BYTES)


def pad(plaintext: bytes) -> bytes:
    """``plaintext || 0x80 || 0x00...`` up to its size class (ISO/IEC 7816-4 padding)."""
    return plaintext + b"\x80" + bytes(padded_size(len(plaintext)) - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes:
    """Undo `pad`; `Malformed` if the padding is not exactly what `pad` makes."""
    end = padded.rfind(b"\x80")
    if end < 0 or any(padded[end + 1 :]) or len(padded) != padded_size(end):
        raise Malformed("envelope padding is malformed")
    return padded[:end]


_KEYS = frozenset({"v", "topic", "epoch", "ts", "nonce", "ct", "mac"})


def circle_handle(circle_id: bytes) -> bytes:
    """A circle's local handle: what a relay files a circle's epoch topics under (it is in
    relay tokens) and what a node's status names it by. It never travels in an envelope,
    gossip or sync: those use `epoch_topic`, which changes with every rotation."""
    if len(circle_id) != limits.CIRCLE_ID_BYTES:
        raise LocalProtocolError("a circle id is 16 bytes")
    return blake2b(b"kith/topic/v1", person=b"kith-topic", key=circle_id, size=limits.TOPIC_BYTES)


@functools.lru_cache(maxsize=1024)
def epoch_topic(relay_key: bytes) -> bytes:
    """The topic of one epoch of a circle: every envelope sealed under an epoch key travels
    on the topic its relay key names. Only holders of that relay key (members of the epoch,
    the circle's relays) can name or prove it, and a rotation moves the circle to a topic
    nobody can link to the old one without the new key (docs/PROTOCOL.md §5)."""
    if len(relay_key) != 32:
        raise LocalProtocolError("a relay key is 32 bytes")
    return blake2b(b"kith/epoch-topic/v1", person=b"kith-ep-topic", key=relay_key, size=limits.TOPIC_BYTES)


@functools.lru_cache(maxsize=256)
def epoch_id(epoch_key: bytes) -> bytes:
    """The public id of an epoch key (reveals nothing about the key)."""
    if len(epoch_key) != 32:
        raise LocalProtocolError("an epoch key is 32 bytes")
    return blake2b(b"kith/epoch/v1", person=b"kith-epoch", key=epoch_key, size=limits.EPOCH_ID_BYTES)


@functools.lru_cache(maxsize=256)
def relay_key(epoch_key: bytes) -> bytes:
    """The key relays use to authenticate an epoch's envelopes (one-way from the epoch key)."""
    if len(epoch_key) != 32:
        raise LocalProtocolError("an epoch key is 32 bytes")
    return blake2b(b"kith/relay-key/v1", person=b"kith-relay-key", key=epoch_key, size=32)


def topic_of_epoch_key(epoch_key: bytes) -> bytes:
    """The topic of the epoch whose key this is (`epoch_topic` of its relay key)."""
    return epoch_topic(relay_key(epoch_key))


def envelope_mac(key: bytes, header: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return blake2b(header + nonce + ciphertext, person=b"kith-env-mac", key=key, size=MAC_BYTES)


def header_bytes(topic: bytes, epoch: bytes, ts: int) -> bytes:
    """The associated data: canonical CBOR of the clear header (keys in canonical order)."""
    return codec.encode_ordered({"v": VERSION, "ts": ts, "epoch": epoch, "topic": topic})


def _envelope_bytes(topic: bytes, epoch: bytes, ts: int, nonce: bytes, ciphertext: bytes, mac: bytes) -> bytes:
    return codec.encode_ordered(
        {"v": VERSION, "ct": ciphertext, "ts": ts, "mac": mac, "epoch": epoch, "nonce": nonce, "topic": topic}
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: bytes
    epoch: bytes
    ts: int
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    data: bytes = field(repr=False)
    id: bytes

    @classmethod
    def build(
        cls, topic: bytes, epoch: bytes, ts: int, nonce: bytes, ciphertext: bytes, *, relay_key: bytes
    ) -> Envelope:
        """Assemble an envelope, authenticating it under ``relay_key``."""
        mac = envelope_mac(relay_key, header_bytes(topic, epoch, ts), nonce, ciphertext)
        data = _envelope_bytes(topic, epoch, ts, nonce, ciphertext, mac)
        if len(data) > limits.MAX_ENVELOPE_BYTES:
            raise LocalProtocolError(f"envelope is larger than {limits.MAX_ENVELOPE_BYTES} bytes")
        return cls(topic, epoch, ts, nonce, ciphertext, mac, data, envelope_id(data))

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
        topic, epoch, ts, nonce, ct, mac = raw["topic"], raw["epoch"], raw["ts"], raw["nonce"], raw["ct"], raw["mac"]
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
        if type(mac) is not bytes or len(mac) != MAC_BYTES:
            raise Malformed("envelope mac must be 16 bytes")
        if _envelope_bytes(topic, epoch, ts, nonce, ct, mac) != data:
            raise Malformed("envelope is not canonical CBOR")
        return cls(topic, epoch, ts, nonce, ct, mac, data, envelope_id(data))

    def associated_data(self) -> bytes:
        return header_bytes(self.topic, self.epoch, self.ts)

    def check_mac(self, key: bytes) -> None:
        """Check the relay authenticator; raise `BadSignature` if it does not verify."""
        expected = envelope_mac(key, self.associated_data(), self.nonce, self.ciphertext)
        if not hmac.compare_digest(expected, self.mac):
            raise BadSignature("envelope authenticator does not verify")

    @property
    def is_welcome(self) -> bool:
        return self.epoch == WELCOME_EPOCH


def seal(
    plaintext: bytes,
    *,
    epoch_key: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    """Encrypt a signed op's bytes, padded to its size class, into an envelope under an epoch
    key, on that epoch's topic."""
    if len(plaintext) > limits.MAX_OP_BYTES:
        raise LocalProtocolError(f"plaintext is larger than {limits.MAX_OP_BYTES} bytes")
    topic = topic_of_epoch_key(epoch_key)
    epoch = epoch_id(epoch_key)
    nonce = rand(NONCE_BYTES)
    header = header_bytes(topic, epoch, ts)
    ciphertext = aead_encrypt(epoch_key, nonce, pad(plaintext), header)
    mac = envelope_mac(relay_key(epoch_key), header, nonce, ciphertext)
    data = _envelope_bytes(topic, epoch, ts, nonce, ciphertext, mac)
    return Envelope(topic, epoch, ts, nonce, ciphertext, mac, data, envelope_id(data))


def open_envelope(envelope: Envelope, epoch_key: bytes) -> bytes:
    """Authenticate (relay mac and AEAD tag) and decrypt; raises `Undecryptable` on any failure.

    Checking the relay mac too means a member accepts exactly the envelopes a relay
    accepts: an envelope with a damaged mac is refused everywhere, not stored under a
    second id.
    """
    header = envelope.associated_data()
    expected = envelope_mac(relay_key(epoch_key), header, envelope.nonce, envelope.ciphertext)
    if not hmac.compare_digest(expected, envelope.mac):
        raise Undecryptable()
    padded = aead_decrypt(epoch_key, envelope.nonce, envelope.ciphertext, header)
    try:
        return unpad(padded)
    except Malformed:
        raise Undecryptable() from None  # authentic but not made by `seal`: one opaque error
