"""Invite codes, join requests and welcomes: how a newcomer gets into a circle.

1. A member makes an invite: a random 32-byte secret, recorded (with its limits) in an
   ``invite.create`` op, and a code (`InviteCode`) handed over out of band: the circle's
   topic, the secret, the current epoch's relay key, the inviter's member id, a few
   addresses to dial, and the expiry.
2. The newcomer sends a **join request** envelope on the topic (marker epoch ``ff..ff``):
   their identity card, encrypted with a key derived from the secret, so only members
   (who read the secret in the op) can open it, and authenticated with the relay key.
3. An approver adds them (``member.add`` with their card) and sends a **welcome**
   envelope (marker epoch ``00..00``): the circle id and epoch keys sealed to the
   newcomer's X25519 key. The newcomer checks that the circle id hashes to the topic it
   asked to join (only members know the id), so nobody else can plant a fake circle.
   A refusal travels the same way and says why.

Everything here is pure: randomness and time are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from identity import codec
from identity.crypto import (
    NONCE_BYTES,
    RandomBytes,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    open_sealed,
    random_bytes,
    seal_to,
)
from identity.errors import Malformed, Undecryptable
from identity.keys import IdentityCard, MemberIdentity
from sync import limits
from sync.codes import decode_code, encode_code
from sync.envelope import (
    JOIN_EPOCH,
    WELCOME_EPOCH,
    Envelope,
    circle_topic,
    epoch_id,
    header_bytes,
)
from sync.kinds.keys import invite_id

PREFIX = "KITH-INVITE:"
MAX_ADDRESSES = 4
MAX_ADDRESS_CHARS = 256
MAX_WELCOME_EPOCHS = 1024


@dataclass(frozen=True)
class InviteCode:
    topic: bytes
    secret: bytes = field(repr=False)
    relay_key: bytes = field(repr=False)
    epoch: bytes
    inviter: bytes
    addresses: tuple[str, ...]
    expires: int | None

    def __post_init__(self) -> None:
        for name, value, size in (
            ("topic", self.topic, 32),
            ("secret", self.secret, 32),
            ("relay key", self.relay_key, 32),
            ("epoch", self.epoch, 16),
            ("inviter", self.inviter, 32),
        ):
            if type(value) is not bytes or len(value) != size:
                raise Malformed(f"invite {name} must be {size} bytes")
        if type(self.addresses) is not tuple or len(self.addresses) > MAX_ADDRESSES:
            raise Malformed(f"an invite carries at most {MAX_ADDRESSES} addresses")
        for address in self.addresses:
            if type(address) is not str or not address.startswith("/") or len(address) > MAX_ADDRESS_CHARS:
                raise Malformed("invite address is not a peer address")
        if self.expires is not None and (type(self.expires) is not int or not 0 <= self.expires <= limits.MAX_TS):
            raise Malformed("invite expiry is out of range")

    @property
    def invite_id(self) -> bytes:
        return invite_id(self.secret)

    def encode(self) -> str:
        return encode_code(
            PREFIX,
            {
                "v": 1,
                "t": self.topic,
                "s": self.secret,
                "r": self.relay_key,
                "e": self.epoch,
                "i": self.inviter,
                "a": list(self.addresses),
                "x": self.expires,
            },
        )

    @classmethod
    def decode(cls, text: str) -> InviteCode:
        raw = decode_code(PREFIX, text, what="invite code")
        if type(raw) is not dict or raw.get("v") != 1:
            raise Malformed("this invite code comes from a newer kith; upgrade to join")
        if set(raw) != {"v", "t", "s", "r", "e", "i", "a", "x"} or type(raw["a"]) is not list:
            raise Malformed("invite code has the wrong fields")
        return cls(raw["t"], raw["s"], raw["r"], raw["e"], raw["i"], tuple(raw["a"]), raw["x"])


def join_key(secret: bytes) -> bytes:
    return blake2b(b"kith/join/v1", person=b"kith-join-key", key=secret, size=32)


def _marker_envelope(
    topic: bytes, epoch: bytes, ts: int, nonce: bytes, ciphertext: bytes, relay_key: bytes
) -> Envelope:
    return Envelope.build(topic, epoch, ts, nonce, ciphertext, relay_key=relay_key)


def seal_join_request(
    code: InviteCode, newcomer: MemberIdentity, *, ts: int, rand: RandomBytes = random_bytes
) -> Envelope:
    nonce = rand(NONCE_BYTES)
    plaintext = codec.encode({"v": 1, "card": newcomer.card().to_bytes(), "invite": code.invite_id})
    ciphertext = aead_encrypt(join_key(code.secret), nonce, plaintext, header_bytes(code.topic, JOIN_EPOCH, ts))
    return _marker_envelope(code.topic, JOIN_EPOCH, ts, nonce, ciphertext, code.relay_key)


@dataclass(frozen=True)
class JoinRequest:
    card: IdentityCard
    invite: bytes
    envelope_id: bytes


def open_join_request(envelope: Envelope, secret: bytes) -> JoinRequest:
    """Decrypt and check a join request with an invite's secret; `Undecryptable` if not ours."""
    if envelope.epoch != JOIN_EPOCH:
        raise Malformed("not a join request")
    plaintext = aead_decrypt(join_key(secret), envelope.nonce, envelope.ciphertext, envelope.associated_data())
    raw = codec.decode(plaintext, max_size=4096, what="join request")
    if type(raw) is not dict or set(raw) != {"v", "card", "invite"} or raw["v"] != 1:
        raise Malformed("join request has the wrong fields")
    if raw["invite"] != invite_id(secret):
        raise Malformed("join request names another invite")
    if type(raw["card"]) is not bytes:
        raise Malformed("join request card must be bytes")
    return JoinRequest(IdentityCard.from_bytes(raw["card"]), raw["invite"], envelope.id)


@dataclass(frozen=True)
class Welcome:
    circle: bytes
    name: str
    epochs: dict[bytes, bytes] = field(repr=False)
    current: bytes
    relays: tuple[str, ...]
    refused: str | None = None


def seal_welcome(
    newcomer: IdentityCard,
    *,
    circle: bytes,
    name: str,
    epochs: dict[bytes, bytes],
    current: bytes,
    relays: list[str],
    relay_key: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    """The welcome for an approved newcomer: the circle's id and keys, sealed to them."""
    payload = {
        "v": 1,
        "circle": circle,
        "name": name,
        "epochs": dict(epochs),
        "current": current,
        "relays": relays[:MAX_ADDRESSES],
        "to": newcomer.member_id,
    }
    topic = circle_topic(circle)
    return _marker_envelope(
        topic, WELCOME_EPOCH, ts, rand(NONCE_BYTES), seal_to(newcomer.dh_public, codec.encode(payload)), relay_key
    )


def seal_refusal(
    newcomer: IdentityCard, *, topic: bytes, reason: str, relay_key: bytes, ts: int, rand: RandomBytes = random_bytes
) -> Envelope:
    payload = {"v": 1, "refused": reason[:200], "to": newcomer.member_id}
    return _marker_envelope(
        topic, WELCOME_EPOCH, ts, rand(NONCE_BYTES), seal_to(newcomer.dh_public, codec.encode(payload)), relay_key
    )


def open_welcome(envelope: Envelope, me: MemberIdentity) -> Welcome:
    """Open a welcome or refusal meant for us; `Undecryptable` if it is someone else's."""
    if envelope.epoch != WELCOME_EPOCH:
        raise Malformed("not a welcome")
    plaintext = open_sealed(me.dh_public, me.dh_secret, envelope.ciphertext)
    raw = codec.decode(plaintext, max_size=limits.MAX_OP_BYTES, what="welcome")
    if type(raw) is not dict or raw.get("v") != 1 or raw.get("to") != me.member_id:
        raise Malformed("welcome is malformed or meant for someone else")
    if "refused" in raw:
        if set(raw) != {"v", "refused", "to"} or type(raw["refused"]) is not str:
            raise Malformed("refusal has the wrong fields")
        return Welcome(b"", "", {}, b"", (), refused=raw["refused"])
    if set(raw) != {"v", "circle", "name", "epochs", "current", "relays", "to"}:
        raise Malformed("welcome has the wrong fields")
    circle, epochs, current = raw["circle"], raw["epochs"], raw["current"]
    if type(circle) is not bytes or len(circle) != limits.CIRCLE_ID_BYTES or circle_topic(circle) != envelope.topic:
        raise Malformed("welcome names a circle other than the one asked to join")
    if type(epochs) is not dict or not 1 <= len(epochs) <= MAX_WELCOME_EPOCHS:
        raise Malformed("welcome carries no usable keys")
    for epoch, key in epochs.items():
        if type(key) is not bytes or len(key) != 32 or epoch_id(key) != epoch:
            raise Malformed("welcome key does not match its epoch id")
    if current not in epochs:
        raise Malformed("welcome lacks the current key")
    name = raw["name"] if type(raw["name"]) is str else ""
    relays = tuple(r for r in raw["relays"] if type(r) is str) if type(raw["relays"]) is list else ()
    return Welcome(circle, name[:64], dict(epochs), current, relays)


def seal_epoch_key(recipient_dh_public: bytes, key: bytes) -> bytes:
    """An epoch key sealed to one member (for key.rotate / key.share): 80 bytes."""
    return seal_to(recipient_dh_public, key)


def open_epoch_key(sealed: bytes, me: MemberIdentity, epoch: bytes) -> bytes:
    """Our copy of an epoch key; `Undecryptable` if it is not ours or does not match."""
    key = open_sealed(me.dh_public, me.dh_secret, sealed)
    if len(key) != 32 or epoch_id(key) != epoch:
        raise Undecryptable()
    return key


__all__ = [
    "InviteCode",
    "JoinRequest",
    "Welcome",
    "join_key",
    "open_epoch_key",
    "open_join_request",
    "open_welcome",
    "seal_epoch_key",
    "seal_join_request",
    "seal_refusal",
    "seal_welcome",
]

