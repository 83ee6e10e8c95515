"""Invite codes, join requests and welcomes: how a newcomer gets into a circle.

1. A member makes an invite: a random 32-byte secret, recorded (with its limits) in an
   ``invite.create`` op, and a code (`InviteCode`) handed over out of band: the secret, a
   16-byte check of the circle id, a few addresses to dial, and the expiry. Nothing in it
   names the circle, its topic, a relay key or the inviter.
2. The newcomer sends a **join request** envelope on the invite's own topic (derived from
   the secret; marker epoch ``ff..ff``): their identity card and a fresh 16-byte
   ``request`` nonce, encrypted with a key derived from the secret, so only members (who
   read the secret in the op) can open it, and authenticated with the invite's mac key
   (also from the secret): a join-only capability. Members serve an invite's topic only
   while the invite is open, so the capability dies with the invite.
3. An approver adds them (``member.add`` with their card and the request nonce, which
   admits once) and sends a **welcome** envelope (marker epoch ``00..00``): the circle id
   and epoch keys, the request nonce, signed by the approver and sealed to the newcomer's
   X25519 key, on the invite's topic. The newcomer takes only a welcome naming its pending
   request (so an old welcome, replayed after they left, opens nothing), and checks the
   circle id against the code's check (only members know the id), so nobody else can plant
   a fake circle. A refusal travels the same way, signed and bound to the request, and says
   why.
4. When a circle's key changes, a **relay grant** (marker epoch ``fe..fe``) tells relays the
   new epoch's relay key, encrypted under the previous one and signed with a key only
   holders of the previous *epoch* key can derive (not mere relay-key holders). A relay
   learns each epoch's key once and never replaces it.

Everything here is pure: randomness and time are passed in.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from kith.identity import codec
from kith.identity.crypto import (
    SEAL_OVERHEAD,
    TAG_BYTES,
    RandomBytes,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    open_sealed,
    random_bytes,
    seal_to,
    sign,
    signing_keypair,
    verify,
)
from kith.identity.errors import Malformed, Undecryptable
from kith.identity.keys import IdentityCard, MemberIdentity
from kith.sync import limits
from kith.sync.codes import decode_code, encode_code
from kith.sync.envelope import (
    Envelope,
    Kind,
    ct_length,
    epoch_id,
    epoch_topic,
    header_bytes,
    hint_key,
    hinted_nonce,
    pad,
    pad_to,
    unpad,
    unpad_to,
)
from kith.sync.envelope import relay_key as relay_key_of
from kith.sync.kinds.keys import invite_id, relay_address_problem

PREFIX = "KITH-INVITE:"
MAX_ADDRESSES = 4
MAX_ADDRESS_CHARS = 256
MAX_WELCOME_EPOCHS = 1024


def invite_topic(secret: bytes) -> bytes:
    """The invite's own rendezvous topic: join requests, welcomes and refusals travel on
    it, never on the circle's topic. Members serve it while the invite is open."""
    return blake2b(b"kith/invite-topic/v1", person=b"kith-inv-topic", key=secret, size=32)


def invite_mac_key(secret: bytes) -> bytes:
    """The invite's join-only capability: it authenticates envelopes on the invite's topic
    (as a relay key does on a circle's) and nothing else. It dies with the invite."""
    return blake2b(b"kith/invite-mac/v1", person=b"kith-inv-mac", key=secret, size=32)


def invite_epoch(mac_key: bytes) -> bytes:
    """The epoch every envelope on an invite's topic carries: like an epoch id, random to
    anyone without the invite's capability, so an invite's topic looks like a quiet circle's."""
    return blake2b(b"kith/invite-epoch/v1", person=b"kith-inv-epoch", key=mac_key, size=limits.EPOCH_ID_BYTES)


def invite_hints(secret: bytes) -> list[tuple[Kind, bytes]]:
    """The hints holders of an invite's secret recognise on its topic."""
    return [(Kind.JOIN, hint_key(secret, Kind.JOIN)), (Kind.WELCOME, hint_key(secret, Kind.WELCOME))]


def circle_check(circle: bytes, secret: bytes) -> bytes:
    """What the code says about the circle: enough for the newcomer to check that a welcome
    is for the circle they were invited to, nothing for anyone without the circle's id."""
    return blake2b(circle, person=b"kith-inv-check", key=secret, size=16)


@dataclass(frozen=True)
class InviteCode:
    """A bearer code that reveals as little as it can: no circle topic or id, no relay key,
    no inviter. Whoever holds it can ask to join (on the invite's own topic) and nothing
    more; what they learn of the circle comes with the welcome."""

    secret: bytes = field(repr=False)
    check: bytes
    addresses: tuple[str, ...]
    expires: int | None

    def __post_init__(self) -> None:
        for name, value, size in (("secret", self.secret, 32), ("circle check", self.check, 16)):
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

    @property
    def topic(self) -> bytes:
        return invite_topic(self.secret)

    @property
    def mac_key(self) -> bytes:
        return invite_mac_key(self.secret)

    @property
    def epoch(self) -> bytes:
        return invite_epoch(self.mac_key)

    def encode(self) -> str:
        fields = {"v": 2, "s": self.secret, "c": self.check, "a": list(self.addresses), "x": self.expires}
        return encode_code(PREFIX, fields)

    @classmethod
    def decode(cls, text: str) -> InviteCode:
        raw = decode_code(PREFIX, text, what="invite code")
        if type(raw) is dict and raw.get("v") == 1:
            raise Malformed("this invite code comes from an older kith; ask for a new one")
        if type(raw) is not dict or raw.get("v") != 2:
            raise Malformed("this invite code comes from a newer kith; upgrade to join")
        if set(raw) != {"v", "s", "c", "a", "x"} or type(raw["a"]) is not list:
            raise Malformed("invite code has the wrong fields")
        return cls(raw["s"], raw["c"], tuple(raw["a"]), raw["x"])


def join_key(secret: bytes) -> bytes:
    return blake2b(b"kith/join/v1", person=b"kith-join-key", key=secret, size=32)


def _marker_envelope(
    topic: bytes, epoch: bytes, ts: int, nonce: bytes, ciphertext: bytes, relay_key: bytes
) -> Envelope:
    return Envelope.build(topic, epoch, ts, nonce, ciphertext, relay_key=relay_key)


REQUEST_BYTES = 16
"""The nonce that names one join request; a member.add answering it names it too."""
_WELCOME_DOMAIN = b"kith/welcome/v1\x00"
_GRANT_DOMAIN = b"kith/relay-grant/v1\x00"


def seal_join_request(
    code: InviteCode, newcomer: MemberIdentity, *, ts: int, rand: RandomBytes = random_bytes
) -> tuple[Envelope, bytes]:
    """The join request envelope (on the invite's topic) and its request nonce (keep it:
    only a welcome naming it counts)."""
    nonce = hinted_nonce(hint_key(code.secret, Kind.JOIN), rand)
    request = rand(REQUEST_BYTES)
    plaintext = codec.encode({"v": 2, "card": newcomer.card().to_bytes(), "invite": code.invite_id, "request": request})
    header = header_bytes(code.topic, code.epoch, ts)
    ciphertext = aead_encrypt(join_key(code.secret), nonce, pad(plaintext), header)
    return _marker_envelope(code.topic, code.epoch, ts, nonce, ciphertext, code.mac_key), request


@dataclass(frozen=True)
class JoinRequest:
    card: IdentityCard
    invite: bytes | None
    envelope_id: bytes
    request: bytes | None = None
    """The request nonce (None: a member added by card, with no request)."""


def open_join_request(envelope: Envelope, secret: bytes) -> JoinRequest:
    """Decrypt and check a join request with an invite's secret; `Undecryptable` if not ours."""
    padded = aead_decrypt(join_key(secret), envelope.nonce, envelope.ciphertext, envelope.associated_data())
    raw = codec.decode(unpad(padded), max_size=4096, what="join request")
    if type(raw) is not dict or set(raw) != {"v", "card", "invite", "request"} or raw["v"] != 2:
        raise Malformed("join request has the wrong fields")
    if raw["invite"] != invite_id(secret):
        raise Malformed("join request names another invite")
    if type(raw["card"]) is not bytes:
        raise Malformed("join request card must be bytes")
    if type(raw["request"]) is not bytes or len(raw["request"]) != REQUEST_BYTES:
        raise Malformed("join request nonce must be 16 bytes")
    card = IdentityCard.from_bytes(raw["card"])
    return JoinRequest(card, raw["invite"], envelope.id, raw["request"])


@dataclass(frozen=True)
class Welcome:
    circle: bytes
    name: str
    epochs: dict[bytes, bytes] = field(repr=False)
    current: bytes
    relays: tuple[str, ...]
    refused: str | None = None
    contents: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    """Content keys: the current epoch's, and earlier ones if the circle shares its history."""
    request: bytes = b""
    """The join request it answers."""
    by: bytes = b""
    """The member id of the approver (or refuser), whose signature it carries."""


def _signed_payload(payload: dict[str, object], approver: MemberIdentity) -> bytes:
    body = dict(payload, by=approver.member_id)
    return codec.encode({**body, "sig": approver.sign(_WELCOME_DOMAIN, codec.encode(body))})


def seal_welcome(
    newcomer: IdentityCard,
    *,
    approver: MemberIdentity,
    request: bytes,
    circle: bytes,
    name: str,
    epochs: dict[bytes, bytes],
    contents: dict[bytes, bytes],
    current: bytes,
    relays: list[str],
    secret: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    """The welcome for an approved newcomer: the circle's id and keys, for their request,
    signed by the approver and sealed to them, on the topic of the invite (``secret``) they
    came with.

    ``epochs`` holds every epoch key (the whole circle state is a fold over all ops);
    ``contents`` the content keys the newcomer may have (at least the current one).
    """
    payload = {
        "v": 1,
        "circle": circle,
        "name": name,
        "epochs": dict(epochs),
        "contents": dict(contents),
        "current": current,
        "relays": relays[:MAX_ADDRESSES],
        "to": newcomer.member_id,
        "request": request,
    }
    return _sealed_to_newcomer(newcomer, _signed_payload(payload, approver), secret, ts, rand)


def _sealed_to_newcomer(
    newcomer: IdentityCard, plaintext: bytes, secret: bytes, ts: int, rand: RandomBytes
) -> Envelope:
    """A welcome or refusal: sealed to the newcomer, padded so that its ``ct`` is as long
    as an op's (a sealed box adds 48 bytes where an AEAD adds 16)."""
    overhead = SEAL_OVERHEAD - TAG_BYTES
    padded = pad_to(plaintext, ct_length(len(plaintext) + overhead) - SEAL_OVERHEAD)
    mac_key = invite_mac_key(secret)
    nonce = hinted_nonce(hint_key(secret, Kind.WELCOME), rand)
    topic = invite_topic(secret)
    return _marker_envelope(topic, invite_epoch(mac_key), ts, nonce, seal_to(newcomer.dh_public, padded), mac_key)


def seal_refusal(
    newcomer: IdentityCard,
    *,
    refuser: MemberIdentity,
    request: bytes,
    reason: str,
    secret: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    payload = {"v": 1, "refused": reason[:200], "to": newcomer.member_id, "request": request}
    return _sealed_to_newcomer(newcomer, _signed_payload(payload, refuser), secret, ts, rand)


def open_welcome(envelope: Envelope, me: MemberIdentity, request: bytes, code: InviteCode) -> Welcome:
    """Open a welcome or refusal meant for us, for our join ``request`` with ``code``.

    `Undecryptable` if it is someone else's; `Malformed` if it is ours but malformed,
    unsigned, answers another request (a stale welcome, replayed) or names a circle other
    than the one the code was made for."""
    plaintext = unpad_to(open_sealed(me.dh_public, me.dh_secret, envelope.ciphertext))
    raw = codec.decode(plaintext, max_size=limits.MAX_OP_BYTES, what="welcome")
    if type(raw) is not dict or raw.get("v") != 1 or raw.get("to") != me.member_id:
        raise Malformed("welcome is malformed or meant for someone else")
    by, signature = raw.get("by"), raw.get("sig")
    if type(by) is not bytes or len(by) != limits.MEMBER_ID_BYTES or type(signature) is not bytes:
        raise Malformed("welcome is not signed")
    body = {key: value for key, value in raw.items() if key != "sig"}
    verify(by, _WELCOME_DOMAIN, codec.encode(body), signature)
    if raw.get("request") != request:
        raise Malformed("welcome answers another join request")
    if "refused" in raw:
        if set(raw) != {"v", "refused", "to", "request", "by", "sig"} or type(raw["refused"]) is not str:
            raise Malformed("refusal has the wrong fields")
        return Welcome(b"", "", {}, b"", (), refused=raw["refused"], request=request, by=by)
    if set(raw) != {"v", "circle", "name", "epochs", "contents", "current", "relays", "to", "request", "by", "sig"}:
        raise Malformed("welcome has the wrong fields")
    circle, epochs, current, contents = raw["circle"], raw["epochs"], raw["current"], raw["contents"]
    if (
        type(circle) is not bytes
        or len(circle) != limits.CIRCLE_ID_BYTES
        or not hmac.compare_digest(circle_check(circle, code.secret), code.check)
    ):
        raise Malformed("welcome names a circle other than the one asked to join")
    if type(epochs) is not dict or not 1 <= len(epochs) <= MAX_WELCOME_EPOCHS:
        raise Malformed("welcome carries no usable keys")
    for epoch, key in epochs.items():
        if type(key) is not bytes or len(key) != 32 or epoch_id(key) != epoch:
            raise Malformed("welcome key does not match its epoch id")
    if current not in epochs:
        raise Malformed("welcome lacks the current key")
    if type(contents) is not dict or current not in contents:
        raise Malformed("welcome lacks the current content key")
    for epoch, key in contents.items():
        if epoch not in epochs or type(key) is not bytes or len(key) != 32:
            raise Malformed("welcome content key is malformed")
    name = raw["name"] if type(raw["name"]) is str else ""
    # The approver may run a modified client: keep at most MAX_ADDRESSES relays, and only
    # addresses a member can dial (the rule relay.add has), so a welcome cannot make the
    # newcomer's node dial junk or keep a huge list.
    offered = raw["relays"] if type(raw["relays"]) is list else []
    relays = tuple(r for r in offered[: 4 * MAX_ADDRESSES] if type(r) is str and relay_address_problem(r) is None)[
        :MAX_ADDRESSES
    ]
    return Welcome(circle, name[:64], dict(epochs), current, relays, None, dict(contents), request, by)


def _grant_key(relay_key: bytes) -> bytes:
    return blake2b(b"kith/grant/v1", person=b"kith-grant-key", key=relay_key, size=32)


def grant_signing_keypair(epoch_key: bytes) -> tuple[bytes, bytes]:
    """(public, secret) Ed25519 keys that sign relay grants from this epoch: derived from the
    epoch key, so members (who hold it) can sign and relays (who hold only the relay key)
    can check, but a relay-key holder cannot forge."""
    return signing_keypair(blake2b(b"kith/grant-sign/v1", person=b"kith-grant-sign", key=epoch_key, size=32))


def seal_relay_grant(
    *,
    previous_key: bytes,
    epoch: bytes,
    epoch_key: bytes,
    ts: int,
    rand: RandomBytes = random_bytes,
) -> Envelope:
    """Tell relays a new epoch's relay key (and the key that will check grants from it),
    encrypted under the previous relay key and signed with the previous epoch's grant key.

    Relays follow this chain from the relay keys in their token, so they keep accepting a
    circle's envelopes across rotations without an organizer's help. Only holders of the
    previous *epoch* key can sign one; a relay learns each epoch's key once and never
    replaces it (docs/PROTOCOL.md §10).
    """
    previous_relay_key = relay_key_of(previous_key)
    topic = epoch_topic(previous_relay_key)  # the previous epoch's topic: relays serve it
    _public, secret = grant_signing_keypair(previous_key)
    grant_public, _secret = grant_signing_keypair(epoch_key)
    previous_epoch = epoch_id(previous_key)
    header = header_bytes(topic, previous_epoch, ts)
    body = {"v": 1, "epoch": epoch, "relay_key": relay_key_of(epoch_key), "grant_key": grant_public}
    signature = sign(secret, _GRANT_DOMAIN, header + codec.encode(body))
    plaintext = codec.encode({**body, "sig": signature})
    nonce = hinted_nonce(hint_key(previous_relay_key, Kind.GRANT), rand)
    ciphertext = aead_encrypt(_grant_key(previous_relay_key), nonce, pad(plaintext), header)
    return _marker_envelope(topic, previous_epoch, ts, nonce, ciphertext, previous_relay_key)


@dataclass(frozen=True)
class RelayGrant:
    epoch: bytes
    relay_key: bytes = field(repr=False)
    grant_key: bytes
    """Checks the grants that will come from this epoch."""


def open_relay_grant(envelope: Envelope, previous_relay_key: bytes, previous_grant_key: bytes) -> RelayGrant:
    """A grant from the epoch whose relay key and grant key are given; `Undecryptable` if it
    is not from that epoch, `BadSignature` if it is not signed with that epoch's grant key."""
    header = envelope.associated_data()
    padded = aead_decrypt(_grant_key(previous_relay_key), envelope.nonce, envelope.ciphertext, header)
    raw = codec.decode(unpad(padded), max_size=512, what="relay grant")
    if type(raw) is not dict or set(raw) != {"v", "epoch", "relay_key", "grant_key", "sig"} or raw["v"] != 1:
        raise Malformed("relay grant has the wrong fields")
    epoch, key, grant_key, signature = raw["epoch"], raw["relay_key"], raw["grant_key"], raw["sig"]
    if type(epoch) is not bytes or len(epoch) != limits.EPOCH_ID_BYTES or type(key) is not bytes or len(key) != 32:
        raise Malformed("relay grant is malformed")
    if type(grant_key) is not bytes or len(grant_key) != 32 or type(signature) is not bytes:
        raise Malformed("relay grant is malformed")
    body = {k: v for k, v in raw.items() if k != "sig"}
    verify(previous_grant_key, _GRANT_DOMAIN, header + codec.encode(body), signature)
    return RelayGrant(epoch, key, grant_key)


_INVITE_GRANT_DOMAIN = b"kith/invite-grant/v1\x00"
MAX_INVITE_GRANT_S = 90 * 24 * 3600
"""The longest a relay serves an invite's topic on one grant."""
INVITE_GRACE_S = 2 * 24 * 3600
"""How long an invite's topic is still served after it is used up or expires (so the
last welcome, or a refusal saying why, reaches the newcomer)."""
INVITE_TOPIC_QUOTA = 256 * 1024
"""Bytes a node (member or relay) keeps on one invite topic: join requests and welcomes
are small, and whoever holds the code can write there."""


@dataclass(frozen=True)
class InviteGrant:
    topic: bytes
    """The invite's topic, to serve until ``until``."""
    mac_key: bytes = field(repr=False)
    until: int
    """Unix seconds; 0 means the invite is closed: stop serving its topic now."""


def seal_invite_grant(
    *, epoch_key: bytes, secret: bytes, until: int, ts: int, rand: RandomBytes = random_bytes
) -> Envelope:
    """Tell the circle's relays to serve an invite's topic (so a join request and its welcome
    can wait there for whoever is offline) until ``until``, or to stop (``until`` 0).

    On the epoch's topic like a relay grant, encrypted under the epoch's relay key and
    signed with the epoch's grant key: relays can check it, only members can make it."""
    current_relay_key = relay_key_of(epoch_key)
    topic = epoch_topic(current_relay_key)
    _public, signing = grant_signing_keypair(epoch_key)
    current_epoch = epoch_id(epoch_key)
    header = header_bytes(topic, current_epoch, ts)
    body = {"v": 1, "invite": invite_topic(secret), "mac": invite_mac_key(secret), "until": until}
    plaintext = codec.encode({**body, "sig": sign(signing, _INVITE_GRANT_DOMAIN, header + codec.encode(body))})
    nonce = hinted_nonce(hint_key(current_relay_key, Kind.GRANT), rand)
    ciphertext = aead_encrypt(_grant_key(current_relay_key), nonce, pad(plaintext), header)
    return _marker_envelope(topic, current_epoch, ts, nonce, ciphertext, current_relay_key)


def open_invite_grant(envelope: Envelope, relay_key: bytes, grant_key: bytes) -> InviteGrant:
    """An invite grant from the epoch whose relay key and grant key are given; `Undecryptable`
    if it is not from that epoch, `BadSignature` if not signed with its grant key."""
    header = envelope.associated_data()
    padded = aead_decrypt(_grant_key(relay_key), envelope.nonce, envelope.ciphertext, header)
    raw = codec.decode(unpad(padded), max_size=512, what="invite grant")
    if type(raw) is not dict or set(raw) != {"v", "invite", "mac", "until", "sig"} or raw["v"] != 1:
        raise Malformed("invite grant has the wrong fields")
    topic, mac_key, until, signature = raw["invite"], raw["mac"], raw["until"], raw["sig"]
    if type(topic) is not bytes or len(topic) != limits.TOPIC_BYTES or type(mac_key) is not bytes or len(mac_key) != 32:
        raise Malformed("invite grant is malformed")
    if type(until) is not int or not 0 <= until <= limits.MAX_TS or type(signature) is not bytes:
        raise Malformed("invite grant is malformed")
    body = {k: v for k, v in raw.items() if k != "sig"}
    verify(grant_key, _INVITE_GRANT_DOMAIN, header + codec.encode(body), signature)
    return InviteGrant(topic, mac_key, until)


NO_CONTENT_KEY = bytes(32)
"""The content key of a share that hands over an epoch key only: the epoch began before
the recipient joined a circle that keeps its history from newcomers, so they may open its
envelopes (fold the ops) but not read what was said."""


def seal_epoch_key(
    recipient_dh_public: bytes, key: bytes, content_key: bytes, rand: RandomBytes | None = None
) -> bytes:
    """An epoch's two keys sealed to one member (for key.rotate / key.share): 112 bytes.
    (``rand``: see `identity.crypto.seal_to`.)"""
    return seal_to(recipient_dh_public, key + content_key, rand)


def open_epoch_key(sealed: bytes, me: MemberIdentity, epoch: bytes) -> tuple[bytes, bytes]:
    """Our copy of an epoch's (epoch key, content key); `Undecryptable` if not ours or wrong."""
    keys = open_sealed(me.dh_public, me.dh_secret, sealed)
    if len(keys) != 64 or epoch_id(keys[:32]) != epoch:
        raise Undecryptable()
    return keys[:32], keys[32:]


__all__ = [
    "InviteCode",
    "InviteGrant",
    "JoinRequest",
    "open_invite_grant",
    "seal_invite_grant",
    "circle_check",
    "invite_mac_key",
    "invite_topic",
    "Welcome",
    "join_key",
    "NO_CONTENT_KEY",
    "open_epoch_key",
    "open_join_request",
    "open_relay_grant",
    "seal_relay_grant",
    "grant_signing_keypair",
    "RelayGrant",
    "REQUEST_BYTES",
    "open_welcome",
    "seal_epoch_key",
    "seal_join_request",
    "seal_refusal",
    "seal_welcome",
]
