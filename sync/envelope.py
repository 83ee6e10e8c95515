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

Every envelope on a topic carries the topic's epoch, whatever it holds: an op, a relay
grant, a private request, a join request or a welcome. Nothing in the clear tells them
apart; only the nonce does, to those who hold the right key: a marker envelope's nonce
begins with a 4-byte hint keyed with what its readers hold (`Kind`, `hinted_nonce`), and
an op's nonce is drawn so that it carries no hint.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field
from enum import IntEnum

from kith.identity import codec
from kith.identity.crypto import (
    NONCE_BYTES,
    TAG_BYTES,
    RandomBytes,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    random_bytes,
)
from kith.identity.errors import BadSignature, LocalProtocolError, Malformed, Undecryptable, UnsupportedVersion
from kith.sync import limits
from kith.sync.ids import envelope_id

VERSION = 3
"""3: one topic per epoch (`epoch_topic`), every envelope on it carries its epoch, and
kinds are told apart only by keyed nonce hints (`Kind`). 2 padded the plaintext."""


class Kind(IntEnum):
    """What an envelope holds. Never in the clear: a reader learns it from the nonce's hint
    (`has_hint`) with a key it holds, and a node keeps it next to the envelope it stored."""

    OP = 0
    """A signed op, sealed with the epoch key."""
    WELCOME = 1
    """A welcome or a refusal, on an invite's topic (hint keyed with the invite's secret)."""
    JOIN = 2
    """A join request, on an invite's topic (hint keyed with the invite's secret)."""
    GRANT = 3
    """A relay or invite grant, on an epoch's topic (hint keyed with the relay key)."""
    PRIVATE = 4
    """A private request or check-in, on an epoch's topic (hint keyed with the epoch key)."""


HINT_BYTES = 4


def hint_key(key: bytes, kind: Kind) -> bytes:
    """The key that marks envelopes of ``kind`` for holders of ``key`` (see `Kind`)."""
    return blake2b(bytes([kind]), person=b"kith-hint-key", key=key, size=32)


def _hint(hint_key: bytes, rest: bytes) -> bytes:
    return blake2b(rest, person=b"kith-hint", key=hint_key, size=HINT_BYTES)


def hinted_nonce(hint_key: bytes, rand: RandomBytes) -> bytes:
    """A marker envelope's nonce: a hint of its 20 random bytes keyed with ``hint_key``,
    then those bytes. To anyone without the key the whole nonce is random."""
    rest = rand(NONCE_BYTES - HINT_BYTES)
    return _hint(hint_key, rest) + rest


def has_hint(nonce: bytes, hint_key: bytes) -> bool:
    return hmac.compare_digest(nonce[:HINT_BYTES], _hint(hint_key, nonce[HINT_BYTES:]))


def unhinted_nonce(hint_keys: list[bytes], rand: RandomBytes) -> bytes:
    """A random nonce that carries none of these hints (one draw in 2**31 is redrawn), so an
    op is never mistaken for a marker by a reader that tells kinds by hint."""
    while True:
        nonce = rand(NONCE_BYTES)
        if not any(has_hint(nonce, key) for key in hint_keys):
            return nonce


@functools.lru_cache(maxsize=1024)
def epoch_hints(epoch_key: bytes) -> list[tuple[Kind, bytes]]:
    """The hints a member of an epoch recognises on its topic (do not modify the list)."""
    return [(Kind.GRANT, hint_key(relay_key(epoch_key), Kind.GRANT)), (Kind.PRIVATE, hint_key(epoch_key, Kind.PRIVATE))]


def is_marker(envelope: Envelope, epoch_key: bytes) -> bool:
    """A grant or private message, as a member of its epoch tells (`epoch_hints`)."""
    return any(has_hint(envelope.nonce, key) for _kind, key in epoch_hints(epoch_key))


def relay_hints(relay_key: bytes) -> list[tuple[Kind, bytes]]:
    """The hints a relay recognises on an epoch's topic: grants only."""
    return [(Kind.GRANT, hint_key(relay_key, Kind.GRANT))]


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


def pad_to(plaintext: bytes, length: int) -> bytes:
    """``plaintext || 0x80 || 0x00...`` of exactly ``length`` bytes (at least one more than
    the plaintext): for marker envelopes whose ciphertext carries more overhead than an
    op's AEAD tag, so that their ``ct`` comes out the length of an op's (`ct_length`)."""
    if length < len(plaintext) + 1:
        raise LocalProtocolError("padding cannot shrink a plaintext")
    return plaintext + b"\x80" + bytes(length - len(plaintext) - 1)


def unpad_to(padded: bytes) -> bytes:
    """Undo `pad_to`; `Malformed` if there is no padding marker."""
    end = padded.rfind(b"\x80")
    if end < 0 or any(padded[end + 1 :]):
        raise Malformed("padding is malformed")
    return padded[:end]


def ct_length(content: int) -> int:
    """The length of an op envelope's ``ct`` whose padded plaintext holds ``content`` bytes:
    what every marker envelope's ``ct`` is made to match. Beyond the largest class (a
    welcome to a circle with hundreds of epochs), one byte more than the content."""
    if content + 1 > MAX_PADDED_BYTES:
        return content + 1 + TAG_BYTES
    return padded_size(content) + TAG_BYTES


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
    nonce = unhinted_nonce([key for _kind, key in epoch_hints(epoch_key)], rand)
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
