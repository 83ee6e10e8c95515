"""What a relay serves: its circles' epoch topics, the invite topics they open, their quotas.

A relay holds no member keys. Its operator allows a circle with a relay token
(`sync.relaytoken`), which gives the relay key and grant key of one epoch; the relay
serves that epoch's topic (`sync.envelope.epoch_topic`) and stores every envelope the
gate lets in, up to the circle's quota. At each rotation a member sends a relay grant,
sealed and signed with the keys of the epoch the relay already knows: the relay opens it
and serves the next epoch too, and so follows the circle with no member's help. An
invite grant asks it to serve an invite's own topic for a bounded time, so a join
request and its welcome can wait there for whoever is offline.

`RelayTopics` gets what it uses: the keystore (the allowed circles are kept there), the
gate (to hold each topic's keys), a clock, and three callables of the node that runs it
(serve a topic, drop a topic, report a failed write).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from kith.identity.errors import RemoteProtocolError, StorageError
from kith.identity.keyring import RelayTopic
from kith.p2pnet.gate import Gate
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.store import EnvelopeStore
from kith.p2pnet.syncproto import AcceptResult
from kith.sync.envelope import Envelope, Kind, epoch_topic, relay_hints
from kith.sync.invites import (
    INVITE_GRACE_S,
    INVITE_TOPIC_QUOTA,
    MAX_INVITE_GRANT_S,
    InviteGrant,
    invite_epoch,
    open_invite_grant,
    open_relay_grant,
)

log = logging.getLogger("kith.node")

RELAY_TOPICS_KEY = "relay_topics"
"""The keystore entry where a relay keeps the circles it serves (handle -> `RelayTopic`)."""


class RelayTopics:
    def __init__(
        self,
        keystore: Keystore,
        gate: Gate,
        *,
        clock: Callable[[], float],
        serve_topic: Callable[[bytes], None],
        drop_topic: Callable[[bytes], None],
        storage_failed: Callable[[StorageError], None],
    ) -> None:
        self.keystore = keystore
        self.gate = gate
        self.clock = clock
        self.serve_topic = serve_topic
        """Start serving a topic (gossip it, reconcile it with every peer)."""
        self.drop_topic = drop_topic
        """Stop serving a topic and delete what it held."""
        self.storage_failed = storage_failed
        self.topics: dict[bytes, RelayTopic] = {}
        """The circles we relay, by the handle their token names (`sync.envelope.circle_handle`)."""
        self.wires: dict[bytes, bytes] = {}
        """Epoch topics -> the handle of the circle they belong to."""
        self.invites: dict[bytes, tuple[bytes, float]] = {}
        """Invite topics: invite topic -> (the circle topic it came on, until)."""
        self.invites_closed: set[bytes] = set()

    def load(self, store: EnvelopeStore) -> None:
        """Serve the circles the keystore lists, and follow the grants already stored."""
        raw = self.keystore.data.extra.get(RELAY_TOPICS_KEY, {})
        for topic, entry in raw.items() if isinstance(raw, dict) else ():
            self.serve(RelayTopic.from_map(topic, entry))
        self._replay_grants(store)

    def serve(self, entry: RelayTopic) -> list[bytes]:
        """Serve every epoch topic a circle's entry has a key for; returns those topics."""
        self.topics[entry.topic] = entry
        return [self._serve_epoch(entry, epoch, key) for epoch, key in entry.relay_keys.items()]

    def _serve_epoch(self, entry: RelayTopic, epoch: bytes, key: bytes) -> bytes:
        topic = epoch_topic(key)
        self.wires[topic] = entry.topic
        self.gate.add_key(topic, epoch, key, relay_hints(key))
        return topic

    def wires_of(self, handle: bytes) -> list[bytes]:
        """The epoch topics we serve for the circle with this handle."""
        return [topic for topic, owner in self.wires.items() if owner == handle]

    def _replay_grants(self, store: EnvelopeStore) -> None:
        """Follow the grants already stored (the keystore may not have been saved after
        the last one: a kill, a full disk), in as many passes as the chain needs."""
        done: set[bytes] = set()
        while len(done) != len(self.wires):  # each grant followed adds an epoch topic
            for topic in [t for t in self.wires if t not in done]:
                done.add(topic)
                for data in store.by_kind(topic, Kind.GRANT):
                    self.on_grant(topic, Envelope.decode(data))

    def on_grant(self, topic: bytes, envelope: Envelope) -> None:
        """Follow a circle's key rotations: learn the next relay key from a grant.

        A grant must open under a relay key we hold *and* carry the signature of the grant
        key of that same epoch, so holding a relay key (as every relay does) is not enough
        to forge one. An epoch's keys are learned once and never replaced: a later grant
        naming a known epoch is ignored, whoever signed it.
        """
        handle = self.wires.get(topic)
        entry = self.topics.get(handle) if handle is not None else None
        if entry is None:
            return
        # A grant travels on the topic of the epoch it comes from: that epoch's keys check it.
        for epoch_id, relay_key in list(entry.relay_keys.items()):
            if epoch_topic(relay_key) != topic:
                continue
            grant_key = entry.grant_keys.get(epoch_id)
            if grant_key is None:
                return  # a token from before grants were signed: cannot check, so not followed
            try:
                grant = open_relay_grant(envelope, relay_key, grant_key)
            except RemoteProtocolError:
                try:
                    invite = open_invite_grant(envelope, relay_key, grant_key)
                except RemoteProtocolError:
                    return
                self._on_invite_grant(topic, invite)
                return
            if grant.epoch in entry.relay_keys:
                return
            entry.relay_keys[grant.epoch] = grant.relay_key
            entry.grant_keys[grant.epoch] = grant.grant_key
            new_topic = self._serve_epoch(entry, grant.epoch, grant.relay_key)
            self.keystore.data.extra.setdefault(RELAY_TOPICS_KEY, {})[entry.topic] = entry.to_map()
            try:
                self.keystore.save()
            except StorageError as exc:  # learned again from the stored grant on restart
                self.storage_failed(exc)
            log.info("relay learned the next epoch of circle %s", entry.topic.hex()[:8])
            self.serve_topic(new_topic)
            return

    def _on_invite_grant(self, topic: bytes, grant: InviteGrant) -> None:
        """Serve an invite's topic for a circle we relay, until the grant says (bounded);
        a closing grant (``until`` 0) drops it, and a closed invite stays closed."""
        now = self.clock()
        if grant.until <= now:
            self.invites_closed.add(grant.topic)
            if self.invites.pop(grant.topic, None) is not None:
                self.drop_topic(grant.topic)
            return
        if grant.topic in self.invites_closed or grant.topic in self.wires:
            return
        until = min(grant.until, now + MAX_INVITE_GRANT_S + INVITE_GRACE_S)
        self.invites[grant.topic] = (topic, until)
        # A relay stores an invite topic's envelopes without telling them apart (no hints).
        self.gate.add_key(grant.topic, invite_epoch(grant.mac_key), grant.mac_key)
        self.serve_topic(grant.topic)

    def expire_invites(self) -> None:
        now = self.clock()
        for invite_topic, (_circle_topic, until) in list(self.invites.items()):
            if until <= now:
                del self.invites[invite_topic]
                self.drop_topic(invite_topic)

    def within_quota(
        self,
        topic: bytes,
        envelopes: list[Envelope],
        topic_bytes: Counter[bytes],
        result: AcceptResult,
        refused: Counter[str],
    ) -> list[Envelope]:
        """The envelopes that fit the quota of the circle (all its epoch topics together)
        or invite the topic belongs to; the others are counted in ``result`` and ``refused``."""
        handle = self.wires.get(topic)
        entry = self.topics.get(handle) if handle is not None else None
        if entry is not None:  # the quota covers all of a circle's epoch topics together
            room = entry.quota_bytes - sum(topic_bytes[t] for t in self.wires_of(entry.topic))
        elif topic in self.invites:
            room = INVITE_TOPIC_QUOTA - topic_bytes[topic]
        else:
            return []
        kept = []
        for envelope in envelopes:
            if len(envelope.data) > room:
                result.rejected += 1
                refused["topic over quota"] += 1
                continue
            room -= len(envelope.data)
            kept.append(envelope)
        return kept
