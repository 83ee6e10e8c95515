"""Relay tokens: what an organizer hands a relay operator so the relay serves a circle.

A token names the circle's public topic and carries relay keys (never epoch keys): with
them the relay can refuse forged envelopes, but it cannot read anything. For each epoch it
also carries the public key that checks relay grants from that epoch (`sync.invites`), a
label the organizer chose for the operator's records (not the circle's name) and a
per-topic storage quota suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kith.identity.errors import Malformed
from kith.identity.keys import clean_display_text
from kith.sync import limits
from kith.sync.codes import decode_code, encode_code

PREFIX = "KITH-RELAY:"
DEFAULT_QUOTA_BYTES = 1024 * 1024 * 1024
MAX_KEYS = 256


@dataclass(frozen=True)
class RelayToken:
    topic: bytes
    label: str
    relay_keys: dict[bytes, bytes] = field(repr=False)
    quota_bytes: int = DEFAULT_QUOTA_BYTES
    grant_keys: dict[bytes, bytes] = field(default_factory=dict)
    """epoch id -> the Ed25519 key that checks relay grants from that epoch."""

    def __post_init__(self) -> None:
        if type(self.topic) is not bytes or len(self.topic) != limits.TOPIC_BYTES:
            raise Malformed("relay token topic must be 32 bytes")
        clean_display_text(self.label, max_chars=64, what="relay token label")
        if type(self.relay_keys) is not dict or not 1 <= len(self.relay_keys) <= MAX_KEYS:
            raise Malformed("relay token must carry between 1 and 256 relay keys")
        for epoch, key in self.relay_keys.items():
            if type(epoch) is not bytes or len(epoch) != limits.EPOCH_ID_BYTES:
                raise Malformed("relay token epoch ids must be 16 bytes")
            if type(key) is not bytes or len(key) != 32:
                raise Malformed("relay token keys must be 32 bytes")
        if type(self.quota_bytes) is not int or not 0 < self.quota_bytes <= 2**50:
            raise Malformed("relay token quota is out of range")
        if type(self.grant_keys) is not dict or not set(self.grant_keys) <= set(self.relay_keys):
            raise Malformed("relay token grant keys must name its epochs")
        for key in self.grant_keys.values():
            if type(key) is not bytes or len(key) != 32:
                raise Malformed("relay token grant keys must be 32 bytes")

    def encode(self) -> str:
        return encode_code(
            PREFIX,
            {
                "v": 2,
                "keys": self.relay_keys,
                "grants": self.grant_keys,
                "label": self.label,
                "quota": self.quota_bytes,
                "topic": self.topic,
            },
        )

    @classmethod
    def decode(cls, text: str) -> RelayToken:
        raw = decode_code(PREFIX, text, what="relay token")
        if type(raw) is dict and raw.get("v") == 1:
            raise Malformed("this relay token comes from an older kith; ask the organizer for a new one")
        if type(raw) is not dict or set(raw) != {"v", "keys", "grants", "label", "quota", "topic"}:
            raise Malformed("relay token has the wrong fields")
        if raw["v"] != 2 or type(raw["v"]) is not int:
            raise Malformed("relay token version is not supported; upgrade kith")
        return cls(raw["topic"], raw["label"], raw["keys"], raw["quota"], raw["grants"])
