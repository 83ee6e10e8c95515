"""Member identities, their public cards, fingerprints and safety numbers.

A member identity is two independent secrets: an Ed25519 seed that signs everything the
member says, and an X25519 secret that receives keys sealed to them (welcomes, private
requests). The public half travels as a self-signed `IdentityCard`.

The node's libp2p network key is a third, unrelated secret (`NetworkKey`): peers on the
mesh see it, and nothing links it to the member identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kith.identity import codec
from kith.identity.crypto import (
    RandomBytes,
    blake2b,
    random_bytes,
    sign,
    signing_keypair,
    verify,
    x25519_public_key,
    x25519_public_key_usable,
)
from kith.identity.errors import LocalProtocolError, Malformed

CARD_DOMAIN = b"kith/card/v1\x00"
MAX_CARD_BYTES = 1024
MAX_NAME_CHARS = 64
SAFETY_ITERATIONS = 5200
"""Iterations of the safety-number hash, as in Signal's NumericFingerprint (it slows
down an attacker who grinds keys to match a victim's number)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


DEFAULT_NAME = "member"
"""The display name of someone who chose none; circles then show a short id instead."""


def clean_display_text(text: str, *, max_chars: int, what: str) -> str:
    """Validate short user-visible text: no control or bidi-override characters.

    Bidi overrides and zero-width characters let one member impersonate another in a
    listing ("alice" vs "al\u200bice"), so they are refused outright.
    """
    if type(text) is not str:
        raise Malformed(f"{what} must be text")
    if not text.strip():
        raise Malformed(f"{what} must not be empty")
    if len(text) > max_chars:
        raise Malformed(f"{what} is longer than {max_chars} characters")
    if _CONTROL.search(text):
        raise Malformed(f"{what} contains control or invisible characters")
    return text


@dataclass(frozen=True, slots=True)
class IdentityCard:
    """A member's public, self-signed card. ``member_id`` is the signing public key."""

    name: str
    sign_public: bytes
    dh_public: bytes
    created: int
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        clean_display_text(self.name, max_chars=MAX_NAME_CHARS, what="display name")
        for label, value in (("signing key", self.sign_public), ("X25519 key", self.dh_public)):
            if type(value) is not bytes or len(value) != 32:
                raise Malformed(f"card {label} must be 32 bytes")
        if not x25519_public_key_usable(self.dh_public):
            raise Malformed("card X25519 key is a point of small order: nothing can be sealed to it")
        if type(self.created) is not int or not 0 <= self.created < 2**40:
            raise Malformed("card creation time is out of range")
        if type(self.signature) is not bytes or len(self.signature) != 64:
            raise Malformed("card signature must be 64 bytes")

    @property
    def member_id(self) -> bytes:
        return self.sign_public

    def _signed_map(self) -> dict[str, object]:
        return {
            "v": 1,
            "name": self.name,
            "sign": self.sign_public,
            "dh": self.dh_public,
            "created": self.created,
        }

    def signature_input(self) -> bytes:
        return codec.encode(self._signed_map())

    def to_bytes(self) -> bytes:
        return codec.encode({**self._signed_map(), "sig": self.signature})

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityCard:
        """Decode and verify a card; raises `Malformed` or `BadSignature`."""
        raw = codec.decode(data, max_size=MAX_CARD_BYTES, what="identity card")
        return cls.from_map(raw)

    @classmethod
    def from_map(cls, raw: object) -> IdentityCard:
        if type(raw) is not dict or set(raw) != {"v", "name", "sign", "dh", "created", "sig"}:
            raise Malformed("identity card has the wrong fields")
        if raw["v"] != 1 or type(raw["v"]) is not int:
            raise Malformed("identity card version is not 1")
        card = cls(raw["name"], raw["sign"], raw["dh"], raw["created"], raw["sig"])
        verify(card.sign_public, CARD_DOMAIN, card.signature_input(), card.signature)
        return card

    def to_map(self) -> dict[str, object]:
        return {**self._signed_map(), "sig": self.signature}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sign_public, self.dh_public)


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    """The secret half of a member: never logged, never written unencrypted."""

    name: str
    sign_seed: bytes = field(repr=False)
    dh_secret: bytes = field(repr=False)
    created: int
    sign_public: bytes = field(init=False)
    sign_secret: bytes = field(init=False, repr=False)
    dh_public: bytes = field(init=False)

    def __post_init__(self) -> None:
        clean_display_text(self.name, max_chars=MAX_NAME_CHARS, what="display name")
        if len(self.sign_seed) != 32 or len(self.dh_secret) != 32:
            raise LocalProtocolError("identity secrets are 32 bytes each")
        public, secret = signing_keypair(self.sign_seed)
        object.__setattr__(self, "sign_public", public)
        object.__setattr__(self, "sign_secret", secret)
        object.__setattr__(self, "dh_public", x25519_public_key(self.dh_secret))

    @classmethod
    def generate(cls, name: str, *, now: int, rand: RandomBytes = random_bytes) -> MemberIdentity:
        return cls(name, rand(32), rand(32), now)

    @property
    def member_id(self) -> bytes:
        return self.sign_public

    def card(self) -> IdentityCard:
        unsigned = IdentityCard(self.name, self.sign_public, self.dh_public, self.created, bytes(64))
        signature = sign(self.sign_secret, CARD_DOMAIN, unsigned.signature_input())
        return IdentityCard(self.name, self.sign_public, self.dh_public, self.created, signature)

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return sign(self.sign_secret, domain, message)

    def renamed(self, name: str) -> MemberIdentity:
        return MemberIdentity(name, self.sign_seed, self.dh_secret, self.created)


@dataclass(frozen=True, slots=True)
class NetworkKey:
    """The node's libp2p Ed25519 key, deliberately unrelated to any member identity."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if type(self.seed) is not bytes or len(self.seed) != 32:
            raise LocalProtocolError("a network key seed is 32 bytes")

    @classmethod
    def generate(cls, rand: RandomBytes = random_bytes) -> NetworkKey:
        return cls(rand(32))

    @property
    def public_key(self) -> bytes:
        return signing_keypair(self.seed)[0]


def fingerprint(sign_public: bytes, dh_public: bytes) -> str:
    """A short, human-comparable digest of a member's two public keys.

    40 hex digits in groups of four ("3f2a 9b01 ..."), 160 bits: enough to recognise a
    member in a listing; use the safety number to verify someone.
    """
    digest = blake2b(sign_public + dh_public, person=b"kith-fingerprint", size=20).hex()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def _safety_half(sign_public: bytes, dh_public: bytes) -> str:
    """Thirty digits for one party, Signal-style: an iterated hash cut into 5-digit chunks."""
    digest = b"\x00\x01" + sign_public + dh_public
    for _ in range(SAFETY_ITERATIONS):
        digest = blake2b(digest + sign_public + dh_public, person=b"kith-safety-v1", size=64)
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


def safety_number(a: IdentityCard, b: IdentityCard) -> str:
    """60 digits in 12 groups that both members see identically and can read aloud.

    Each side contributes 30 digits derived from its own public keys; the halves are
    sorted, so the number does not depend on who computes it.
    """
    return safety_number_of_keys(a.sign_public, a.dh_public, b.sign_public, b.dh_public)


def safety_number_of_keys(sign_a: bytes, dh_a: bytes, sign_b: bytes, dh_b: bytes) -> str:
    halves = sorted((_safety_half(sign_a, dh_a), _safety_half(sign_b, dh_b)))
    digits = halves[0] + halves[1]
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))
