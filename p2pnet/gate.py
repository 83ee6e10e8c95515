"""Which envelopes a node lets in: the checks every untrusted envelope passes, in order.

1. size and structure (`Envelope.decode`, no keys needed);
2. the topic is one this node serves;
3. the timestamp is not absurdly far in the future (clock skew of hours is fine);
4. the relay authenticator verifies under the topic's key: a circle's topic is one epoch's
   (`sync.envelope.epoch_topic`), so it names exactly one relay key, and an envelope whose
   epoch is not the topic's is refused;
5. the node's own admission (`Gate.admit`), told the envelope's kind (`Gate.kind_of`: the
   nonce hints this node can read; anything else is an op): a member opens what it can, so
   authentic junk (made with a relay key, which relays and invite holders once had) is
   refused, and keeps what it cannot open within quotas.

Members know relay keys because they derive them from their epoch keys; relays get them in
relay tokens and grants. A node does not serve an epoch's topic before it holds the key,
so nothing has to wait for a key here: once the key comes, the topic is served and
reconciled. Everything refused is counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from kith.identity.errors import BadSignature, RemoteProtocolError
from kith.sync.envelope import Envelope, Kind, has_hint

MAX_FUTURE_SKEW_S = 7 * 24 * 3600


class Verdict(Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    JUNK = "junk"
    """Authentic under a relay key or an invite's capability, but it does not open: made
    by someone who holds such a key (a relay, an old member) but not the epoch key. Not
    stored or forwarded; the peer that sent it may only have forwarded it (a relay cannot
    tell), so it counts lightly against that peer."""
    FULL = "full"
    """Authentic, but the topic's share of this node's disk is used up: not stored, not
    forwarded, not held against the sender (it may be honest)."""


Admit = Callable[[Envelope, Kind], Verdict]
"""A node's own check after the authenticator verified (see `Gate.admit`)."""


@dataclass
class Gate:
    relay_keys: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)
    """topic -> epoch id -> relay key."""
    refused: Counter[str] = field(default_factory=Counter)
    hints: dict[bytes, list[tuple[Kind, bytes]]] = field(default_factory=dict)
    """topic -> the kinds of marker envelope this node recognises there, with their hint keys."""
    admit: Admit | None = None
    """Step 5, a member's: open what it can before storing it (an envelope a relay key
    authenticates but the epoch key does not open is junk from a relay-key holder, REJECT)
    and keep each kind of envelope it cannot open within a quota (FULL)."""

    def serves(self, topic: bytes) -> bool:
        return topic in self.relay_keys

    def add_key(
        self, topic: bytes, epoch: bytes, relay_key: bytes, hints: list[tuple[Kind, bytes]] | None = None
    ) -> None:
        """Serve ``topic``: its envelopes carry ``epoch`` and authenticate under ``relay_key``;
        ``hints`` are the marker kinds we can tell apart there."""
        self.relay_keys.setdefault(topic, {})[epoch] = relay_key
        if hints is not None:
            known = self.hints.setdefault(topic, [])
            known.extend(hint for hint in hints if hint not in known)

    def remove_topic(self, topic: bytes) -> None:
        self.relay_keys.pop(topic, None)
        self.hints.pop(topic, None)

    def kind_of(self, envelope: Envelope) -> Kind:
        """What the envelope holds, as far as the hints we hold for its topic tell."""
        for kind, key in self.hints.get(envelope.topic, ()):
            if has_hint(envelope.nonce, key):
                return kind
        return Kind.OP

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
        key = keys.get(envelope.epoch)
        if key is None:
            self.refused["epoch is not the topic's"] += 1
            return Verdict.REJECT
        try:
            envelope.check_mac(key)
        except BadSignature:
            self.refused["bad authenticator"] += 1
            return Verdict.REJECT
        if self.admit is None:
            return Verdict.ACCEPT
        verdict = self.admit(envelope, self.kind_of(envelope))
        if verdict is Verdict.JUNK:
            self.refused["junk: authentic but does not open"] += 1
        elif verdict is Verdict.FULL:
            self.refused["over this node's quota for the topic"] += 1
        return verdict
