"""Circle keys as the keystore holds them: epoch keys per circle, and relay keys per topic.

A member's keystore maps each circle id to its epoch keys (id -> 32-byte key) and the id
of the current epoch (the one new envelopes are sealed with). A relay's keystore maps
each allowed topic to the relay keys it was given: enough to authenticate envelopes,
never enough to read them.

These are plain data classes with strict (de)serialisation to the keystore's CBOR maps;
keystore contents were encrypted and authenticated, but are still checked, because a
newer or buggy build may have written them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kith.identity.errors import LocalProtocolError, Malformed

EPOCH_ID_BYTES = 16


@dataclass(slots=True)
class CircleKeys:
    """A member's keys for one circle: every epoch key (to open envelopes) and the content
    keys it was given (to read what people said: newcomers may lack the earlier ones)."""

    circle_id: bytes
    label: str
    epochs: dict[bytes, bytes] = field(repr=False)
    current: bytes
    contents: dict[bytes, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.circle_id) != 16:
            raise LocalProtocolError("a circle id is 16 bytes")
        if self.current not in self.epochs:
            raise LocalProtocolError("the current epoch must be one of the circle's epochs")

    @property
    def current_key(self) -> bytes:
        return self.epochs[self.current]

    @property
    def current_content_key(self) -> bytes | None:
        return self.contents.get(self.current)

    def add_epoch(self, epoch: bytes, key: bytes, *, make_current: bool, content: bytes | None = None) -> bool:
        """Remember an epoch key (and its content key); returns False if it was already known."""
        if len(epoch) != EPOCH_ID_BYTES or len(key) != 32 or (content is not None and len(content) != 32):
            raise LocalProtocolError("epoch ids are 16 bytes and keys 32")
        known = epoch in self.epochs
        self.epochs[epoch] = key
        if content is not None:
            self.contents[epoch] = content
        if make_current:
            self.current = epoch
        return not known

    def to_map(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "epochs": dict(self.epochs),
            "current": self.current,
            "contents": dict(self.contents),
        }

    @classmethod
    def from_map(cls, circle_id: bytes, raw: Any) -> CircleKeys:
        if type(circle_id) is not bytes or len(circle_id) != 16:
            raise Malformed("a circle id in the keystore is not 16 bytes")
        try:
            label, epochs, current, contents = raw["label"], raw["epochs"], raw["current"], raw["contents"]
        except (KeyError, TypeError) as exc:
            raise Malformed("circle keys are incomplete") from exc
        if (
            type(label) is not str
            or type(epochs) is not dict
            or type(current) is not bytes
            or type(contents) is not dict
        ):
            raise Malformed("circle keys have the wrong types")
        for table in (epochs, contents):
            for epoch, key in table.items():
                if type(epoch) is not bytes or len(epoch) != EPOCH_ID_BYTES or type(key) is not bytes or len(key) != 32:
                    raise Malformed("circle epoch keys are malformed")
        if current not in epochs:
            raise Malformed("circle's current epoch has no key")
        return cls(circle_id, label, dict(epochs), current, dict(contents))


@dataclass(slots=True)
class RelayTopic:
    """What a relay knows about a topic it serves: relay keys by epoch id, and a label."""

    topic: bytes
    label: str
    relay_keys: dict[bytes, bytes] = field(repr=False)
    quota_bytes: int
    grant_keys: dict[bytes, bytes] = field(default_factory=dict)
    """epoch id -> the key that checks relay grants from that epoch (see `sync.invites`)."""

    def to_map(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "relay_keys": dict(self.relay_keys),
            "grant_keys": dict(self.grant_keys),
            "quota_bytes": self.quota_bytes,
        }

    @classmethod
    def from_map(cls, topic: bytes, raw: Any) -> RelayTopic:
        if type(topic) is not bytes or len(topic) != 32:
            raise Malformed("a relay topic in the keystore is not 32 bytes")
        try:
            label, keys, quota = raw["label"], raw["relay_keys"], raw["quota_bytes"]
            grants = raw.get("grant_keys", {})
        except (KeyError, TypeError, AttributeError) as exc:
            raise Malformed("relay topic entry is incomplete") from exc
        if type(label) is not str or type(keys) is not dict or type(quota) is not int or quota < 0:
            raise Malformed("relay topic entry has the wrong types")
        if type(grants) is not dict:
            raise Malformed("relay topic entry has the wrong types")
        for table in (keys, grants):
            for epoch, key in table.items():
                if type(epoch) is not bytes or len(epoch) != EPOCH_ID_BYTES or type(key) is not bytes or len(key) != 32:
                    raise Malformed("relay keys are malformed")
        return cls(topic, label, dict(keys), quota, dict(grants))
