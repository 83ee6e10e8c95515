"""Which envelopes a node lets in: the checks every untrusted envelope passes, in order.

1. size and structure (`Envelope.decode`, no keys needed);
2. the topic is one this node serves;
3. the timestamp is not absurdly far in the future (clock skew of hours is fine);
4. the relay authenticator verifies under a relay key we know for (topic, epoch); for a
   marker envelope (welcome, join request, relay grant, private), under the relay key its
   nonce's hint names (`sync.envelope.key_hint`): one check, however many epochs we know;
5. the node's own admission (`Gate.admit`): a member opens what it can, so authentic junk
   (made with a relay key, which relays and invite holders once had) is refused, and keeps
   what it cannot open within quotas.

Members know relay keys because they derive them from their epoch keys; relays get them in
relay tokens. An envelope whose epoch is unknown but whose topic we serve may be from a
key rotation we have not caught up with: members hold it in a bounded quarantine, relays
refuse it. Everything refused is counted by reason.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from identity.errors import BadSignature, RemoteProtocolError
from sync.envelope import KEY_HINT_BYTES, MARKER_EPOCHS, Envelope, key_hint

MAX_FUTURE_SKEW_S = 7 * 24 * 3600


class Verdict(Enum):
    ACCEPT = "accept"
    UNKNOWN_EPOCH = "unknown-epoch"
    REJECT = "reject"
    JUNK = "junk"
    """Authentic under a relay key or an invite's capability, but it does not open: made
    by someone who holds such a key (a relay, an old member) but not the epoch key. Not
    stored or forwarded; the peer that sent it may only have forwarded it (a relay cannot
    tell), so it counts lightly against that peer."""
    FULL = "full"
    """Authentic, but the topic's share of this node's disk is used up: not stored, not
    forwarded, not held against the sender (it may be honest)."""


Admit = Callable[[Envelope], Verdict]
"""A node's own check after the authenticator verified (see `Gate.admit`)."""


@dataclass
class Gate:
    relay_keys: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)
    """topic -> epoch id -> relay key."""
    refused: Counter[str] = field(default_factory=Counter)
    hints: dict[bytes, dict[bytes, list[bytes]]] = field(default_factory=dict)
    """topic -> key hint -> the relay keys with that hint (almost always one)."""
    admit: Admit | None = None
    """Step 5, a member's: open what it can before storing it (an envelope a relay key
    authenticates but the epoch key does not open is junk from a relay-key holder, REJECT)
    and keep each kind of envelope it cannot open within a quota (FULL)."""

    def serves(self, topic: bytes) -> bool:
        return topic in self.relay_keys

    def add_key(self, topic: bytes, epoch: bytes, relay_key: bytes) -> None:
        keys = self.relay_keys.setdefault(topic, {})
        if keys.get(epoch) == relay_key:
            return
        keys[epoch] = relay_key
        same = self.hints.setdefault(topic, {}).setdefault(key_hint(relay_key), [])
        if relay_key not in same:
            same.append(relay_key)

    def remove_topic(self, topic: bytes) -> None:
        self.relay_keys.pop(topic, None)
        self.hints.pop(topic, None)

    def parse(self, data: bytes) -> Envelope | None:
        try:
            return Envelope.decode(data)
        except RemoteProtocolError as exc:
            self.refused[f"malformed: {type(exc).__name__}"] += 1
            return None

    def check(self, envelope: Envelope, *, now: float, topic: bytes | None = None) -> Verdict:
        keys = self.relay_keys.get(envelope.topic)
        if keys is None or (topic is not None and envelope.topic != topic):
            self.refused["topic not served"] += 1
            return Verdict.REJECT
        if envelope.ts > now + MAX_FUTURE_SKEW_S:
            self.refused["timestamp in the far future"] += 1
            return Verdict.REJECT
        marker = envelope.epoch in MARKER_EPOCHS
        if marker:
            # Welcomes and join requests are authenticated with the relay key of whichever
            # epoch their sender knew (an invite carries the current one); the nonce's hint
            # says which, so a forged marker costs one check, not one per epoch.
            candidates = self.hints.get(envelope.topic, {}).get(envelope.nonce[:KEY_HINT_BYTES], [])
            if not candidates:
                # Authenticated with a relay key of an epoch we have not learned yet (say,
                # while our own join is pending): unverifiable, not forged.
                self.refused["marker with an unknown relay key"] += 1
                return Verdict.UNKNOWN_EPOCH
        else:
            key = keys.get(envelope.epoch)
            if key is None:
                return Verdict.UNKNOWN_EPOCH
            candidates = [key]
        for key in candidates:
            try:
                envelope.check_mac(key)
            except BadSignature:
                continue
            if self.admit is None:
                return Verdict.ACCEPT
            verdict = self.admit(envelope)
            if verdict is Verdict.JUNK:
                self.refused["junk: authentic but does not open"] += 1
            elif verdict is Verdict.FULL:
                self.refused["over this node's quota for the topic"] += 1
            return verdict
        self.refused["bad authenticator"] += 1
        return Verdict.REJECT


class Quarantine:
    """Envelopes of a served topic whose epoch we cannot check yet; bounded, oldest evicted."""

    def __init__(self, max_items: int = 10_000, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, Envelope] = OrderedDict()
        self._bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, envelope_id: bytes) -> bool:
        return envelope_id in self._items

    def add(self, envelope: Envelope) -> None:
        if envelope.id in self._items:
            return
        self._items[envelope.id] = envelope
        self._bytes += len(envelope.data)
        while len(self._items) > self.max_items or self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old.data)
            self.evicted += 1

    def release(self, topic: bytes, epoch: bytes) -> list[Envelope]:
        """Take out every held envelope of (topic, epoch), now that its key is known."""
        matching = [e for e in self._items.values() if e.topic == topic and e.epoch == epoch]
        for envelope in matching:
            del self._items[envelope.id]
            self._bytes -= len(envelope.data)
        return matching
