"""The Node: the composition root that wires storage, circles, the mesh and the control API.

Theory of operation
-------------------
`run` builds what exists only while the node runs, whole, before anything uses it
(runtime.py): the `Disk` (stores, and a member's circles and lifecycle), then the
`Runtime`, whose one nursery owns every task. Inside it run: the libp2p stack (gossip +
the sync protocol), a dialer that keeps bootstrap peers and relays connected (and redials at once when this
machine's address changes under a connection: pathwatch.py), a periodic reconciler, a
snapshot saver, and the control API server. Every envelope from anywhere (gossip, sync,
or our own authoring) goes through `accept`: gate checks (structure, topic, authenticator),
then the durable store, then the reconciliation index, and, on a member node, decryption
and the circle fold. Gossip is the fast path; reconciliation with every connected peer,
on connect and every ``sync_interval_s``, is what guarantees that nothing is missed.

A relay is the same node without member keys: it serves the circles its operator allowed
(with the relay keys from relay tokens, and those relay grants add at each rotation), on
one topic per epoch (`sync.envelope.epoch_topic`), stores every valid envelope, answers
reconciliation and forwards gossip, and enforces per-circle quotas and per-peer rates.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from kith.identity.errors import KithError, LocalProtocolError, StorageError, UsageError
from kith.identity.keyring import RelayTopic
from kith.p2pnet.circles import Circle, MemberCircles
from kith.p2pnet.config import NodeConfig
from kith.p2pnet.control import ControlServer, Handler
from kith.p2pnet.events import Emit, EventName
from kith.p2pnet.framing import close_quietly
from kith.p2pnet.gate import Gate, Verdict
from kith.p2pnet.gossip import JUNK_WEIGHT, GossipService, topic_from_name, topic_name
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.lifecycle import Lifecycle
from kith.p2pnet.netstack import NetError, NetStack, open_netstack, parse_peer_id
from kith.p2pnet.outbox import Outbox
from kith.p2pnet.pathwatch import PathWatch, route_source
from kith.p2pnet.peerguard import BAN_S, PENALTY_HALF_LIFE_S, PeerGuard
from kith.p2pnet.ratelimit import KeyedLimiter, TokenBucket
from kith.p2pnet.relaying import RELAY_TOPICS_KEY as RELAY_TOPICS_KEY  # where api.py and tests look
from kith.p2pnet.relaying import RelayTopics
from kith.p2pnet.runtime import Disk, MemberParts, Runtime
from kith.p2pnet.statecache import StateCache
from kith.p2pnet.store import EnvelopeStore
from kith.p2pnet.syncproto import PROTOCOL as SYNC_PROTOCOL
from kith.p2pnet.syncproto import AcceptResult, SyncPeer, SyncStats, run_initiator, run_responder
from kith.sync.envelope import Envelope, Kind
from kith.sync.reconcile import ItemIndex

log = logging.getLogger("kith.node")

Arrival = Literal["gossip", "sync", "key", "held", "self"]
"""How the envelopes of an `ops` event came: by gossip, by reconciliation, from the store
once the key that opens them arrived, from the store once a close's claimed time came, or
from this node itself (its own ops, what it stored before)."""

MAX_REDIAL_S = 300.0
"""The longest a node waits between dials of an unreachable relay or bootstrap peer."""
FIRST_REDIAL_S = 1.0
"""A target that dropped is dialed at once; after a failed dial, again after 1 s, then 2, 4,
... up to `MAX_REDIAL_S`: one that is gone for good costs a dial every few minutes."""
RECENTLY_LOST_S = 600.0
RECENTLY_LOST_REDIAL_S = 4.0
"""For `RECENTLY_LOST_S` after its connection dropped, a target is dialed at least this often:
a relay restarting, or a network split healing, is back within seconds, not after a backoff
that had grown to 8 or 16 s while it was away (in soaks, members that reached a relay only
that late after a partition got posts 5-8 s late). Every member of a relay that comes back
then reconnects within these seconds; after ten minutes away the backoff grows as usual."""


def redial_backoff(failures: int, since_lost: float | None) -> float:
    """Seconds (before jitter) until the next dial of a target after ``failures`` failed
    dials in a row, ``since_lost`` seconds after its connection dropped (None: never had one)."""
    backoff = min(MAX_REDIAL_S, FIRST_REDIAL_S * 2 ** min(failures - 1, 16))
    if since_lost is not None and since_lost < RECENTLY_LOST_S:
        return min(backoff, RECENTLY_LOST_REDIAL_S)
    return backoff


STORAGE_RETRY_S = 2.0
"""How often a node whose writes failed half-way tries to rebuild its circles."""
MISSING_PARENT_GRACE_S = 1.0
"""How long parents an op names may take to come by gossip before the node reconciles with
every peer to fetch them: most are a moment behind (gossip reorders, and two relays forward
the same burst), and a session with each peer at every out-of-order op kept the soak's
relays busy."""
HAND_ON_S = 3.0
"""How long a clean stop waits at most for what we made to be offered to a peer
(`Node._hand_on_unsent`): a relay takes a moment to follow a rotation's grant, and the
client stopping the node it started waits 10 s before it kills it."""
HAND_ON_PAUSES = (0.0, 0.3, 0.6, 1.0)
"""Before each round of sessions of that hand-on: the first at once, then a little later
each time, for a topic a relay begins to serve once a grant reaches it."""
REGOSSIP_BURST = 256
REGOSSIP_PER_S = 32.0
"""How many envelopes that reconciliation brought the node gossips on (`Node.accept`): a
partition's backlog (about 150 in the default soak) at once, a rebuild's not. A relay that
lost its database and rebuilt 1,000 envelopes from its members gossiped every one back to
every member (and the other relay to all of its own); in default soaks the relays' outbound
queues then grew for a minute and posts came seconds late. Past the bucket, peers get them
by their own reconciliation, as they would have anyway."""
CACHE_CHECKPOINT_S = 1.0
"""How often the state cache's commits are made durable (in a worker thread): a power loss
loses at most this much of the cache, which the envelope store gives back on start."""

ControlApi = Callable[["Node"], Mapping[str, Handler]]
"""Builds the control API's method table for a node (`kith.p2pnet.api.build_methods`): the
API sits above the node and drives it, so the node is handed it rather than importing it."""


@dataclass
class PeerState:
    peer: str
    connected_at: float
    last_sync: SyncStats | None = None
    received: int = 0
    """New envelopes this peer gave us (by gossip or reconciliation) since it connected."""
    syncing: bool = False
    again: bool = False
    """Asked to sync while a session was running (a topic just added, say): run another."""
    next_sync: float | None = None
    """trio time when our next periodic session with this peer is due (None: not scheduled yet)."""


@dataclass
class Reach:
    """How dialing one target (a relay, a bootstrap peer) has gone."""

    failures: int = 0
    """Failed dials in a row."""
    next_try: float = 0.0
    """trio time of the next dial."""
    reached: float | None = None
    """Wall-clock time of the last successful dial."""
    lost: float | None = None
    """trio time its connection last dropped (None: connected since, or never)."""
    error: str | None = None
    """Why the last dial failed."""


@dataclass
class NodeStats:
    started: float = field(default_factory=time.time)
    accepted: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    syncs: int = 0
    sync_errors: int = 0
    connection_events: int = 0
    """Connection opened/closed reports from libp2p handled so far (one per connection)."""
    parent_checks: int = 0
    """Times the node looked again, `MISSING_PARENT_GRACE_S` later, for parents ops named."""
    parent_fetches: int = 0
    """... and found some still missing, so reconciled with every peer to fetch them."""
    regossiped: int = 0
    """Envelopes reconciliation brought that the node gossiped on (`REGOSSIP_BURST`) ..."""
    not_regossiped: int = 0
    """... and those it left to its peers' own reconciliation."""


class Node:
    """A member's node or, with ``relay``, a relay: the composition root. What it keeps for
    its whole life (home, keystore, config, gate, peer table, indexes, stats) is made here;
    what exists only while it runs is built in `run` (`disk`, `runtime`)."""

    def __init__(
        self,
        home: Home,
        keystore: Keystore,
        config: NodeConfig,
        *,
        relay: bool = False,
        clock: Callable[[], float] = time.time,
        control_api: ControlApi | None = None,
    ) -> None:
        """``control_api``: what the node serves on its control socket; without one it
        serves no socket (in-process nodes driven through the API's handlers directly)."""
        self.home = home
        self.keystore = keystore
        self.config = config
        self.is_relay = relay
        self.clock = clock
        self.stats = NodeStats()
        self.gate = Gate()
        self.indexes: dict[bytes, ItemIndex] = {}
        self.topic_bytes: Counter[bytes] = Counter()
        self.peers: dict[str, PeerState] = {}
        self.proved: dict[str, set[bytes]] = {}
        """peer -> the topics it proved a key of in a sync session (`sync.access`): the only
        topics whose gossip it may exchange with us. Kept across reconnects (the proof was
        bound to its authenticated peer id) and announced again on each new connection."""
        self.control_api = control_api
        self._disk: Disk | None = None
        """Set once at the start of `run`, fully built (runtime.py)."""
        self._runtime: Runtime | None = None
        """Set once `run` has opened the network and its nursery, fully built (runtime.py)."""
        self._regossip = TokenBucket(REGOSSIP_PER_S, REGOSSIP_BURST)
        """What reconciliation brings that we may still gossip on (`REGOSSIP_BURST`)."""
        self.relaying = RelayTopics(
            keystore,
            self.gate,
            clock=clock,
            serve_topic=self.serve_topic_nowait,
            drop_topic=self.drop_topic,
            storage_failed=lambda exc: self._storage_failed(exc, 0),
        )
        """What a relay serves (relaying.py); empty on a member's node."""
        self._sync_wanted = trio.Event()
        self._awaited_parents: dict[bytes, set[bytes]] = {}
        """Parents ops named that were missing (circle -> ids), checked after a grace."""
        self._parents_check_due = False
        self._paths = PathWatch()
        """The route each connection was made on (pathwatch.py)."""
        self._stopping = trio.Event()
        self.ready = trio.Event()
        self.listeners: list[Emit] = []
        self.guard = PeerGuard()
        self._circle_relays: set[str] = set()
        """The relays our circles listed when we last looked (`_remember_circle_relays`)."""
        self.reach: dict[str, Reach] = {}
        """Dial targets (`dial_targets`) -> how dialing them has gone (backoff, last error)."""
        self.topic_synced: dict[bytes, float] = {}
        """When each topic last finished a reconciliation with some peer."""
        self.outbox = Outbox()
        """Topics with envelopes we made that no session has offered to a peer yet."""
        self._sync_limiter = KeyedLimiter(rate=0.5, burst=8)
        self._asked_limiter = KeyedLimiter(rate=0.2, burst=2)
        """Syncs we start because a peer announced a topic it has not proved to us yet."""
        self._storage_warned = float("-inf")

    # --- the parts that exist while the node runs ----------------------------------

    @property
    def disk(self) -> Disk:
        """The stores (and a member's circles and lifecycle); there from the start of `run`."""
        if self._disk is None:
            raise LocalProtocolError("the node's storage is not open: start it with run()")
        return self._disk

    @property
    def runtime(self) -> Runtime:
        """The host, gossip, sync host, control server and nursery of a running node."""
        if self._runtime is None:
            raise LocalProtocolError("the node is not running: start it with run()")
        return self._runtime

    @property
    def store(self) -> EnvelopeStore:
        return self.disk.store

    @property
    def cache(self) -> StateCache | None:
        """A member's encrypted state cache (None on a relay)."""
        member = self.disk.member
        return member.cache if member is not None else None

    @property
    def circles(self) -> MemberCircles | None:
        """A member's circles (None on a relay)."""
        member = self.disk.member
        return member.circles if member is not None else None

    @property
    def lifecycle(self) -> Lifecycle | None:
        """A member's membership lifecycle (None on a relay)."""
        member = self.disk.member
        return member.lifecycle if member is not None else None

    @property
    def net(self) -> NetStack:
        return self.runtime.net

    @property
    def gossip(self) -> GossipService:
        return self.runtime.gossip

    @property
    def control(self) -> ControlServer | None:
        return self.runtime.control

    # --- start-up -----------------------------------------------------------------

    def _open_disk(self) -> Disk:
        """Open the stores and build a member's services; nothing is loaded yet."""
        self.home.ensure()
        store = EnvelopeStore(self.home.store, fsync=self.config.fsync)
        if self.is_relay:
            return Disk(store, None)
        cache = StateCache(self.home.root / "state.sqlite", self.keystore.data.storage_key, fsync=self.config.fsync)
        circles = MemberCircles(self.keystore, store, cache, clock=self.clock)
        lifecycle = Lifecycle(
            circles,
            store=store,
            gate=self.gate,
            keystore=self.keystore,
            mesh=self,
            emit=self.emit,
            clock=self.clock,
            private_delay_s=self.config.private_delay_s,
        )
        return Disk(store, MemberParts(cache, circles, lifecycle))

    def _load_disk(self) -> None:
        """Serve what the disk holds: a relay's topics (and the grants stored for them), or a
        member's circles, their keys and the lifecycle's pending work; index every topic."""
        member = self.disk.member
        if member is None:
            self.relaying.load(self.disk.store)
        else:
            member.circles.on_stored = self._publish_authored
            member.circles.open_all()
            self.gate.admit = member.lifecycle.admit
            member.circles.private_opener = member.lifecycle.open_private_item
            self._follow_circles(member)
        for topic in self.served_topics():
            self._load_index(topic)

    def _follow_circles(self, member: MemberParts) -> None:
        """Give the gate every epoch key the opened circles hold, and pick up the
        lifecycle's stored work (on start, and after a rebuild from the store)."""
        for topic, epoch, key, hints in member.circles.gate_keys():
            self.gate.add_key(topic, epoch, key, hints)
        member.lifecycle.restore()

    def _load_index(self, topic: bytes, *, again: bool = False) -> ItemIndex:
        if again or topic not in self.indexes:
            store = self.disk.store
            self.indexes[topic] = ItemIndex(store.items(topic))
            self.topic_bytes[topic] = store.bytes_in_topic(topic)
        return self.indexes[topic]

    def _holds(self, topic: bytes, envelope: Envelope) -> bool:
        """Is ``envelope`` stored and indexed here (gossip does not pass on what we held)?
        A topic whose index is not loaded counts as holding nothing."""
        index = self.indexes.get(topic)
        return index is not None and (envelope.ts, envelope.id) in index

    def topic_size(self, topic: bytes) -> int:
        """Bytes stored on ``topic``, as far as this node has indexed it."""
        return self.topic_bytes.get(topic, 0)

    def peer_count(self) -> int:
        return len(self.peers)

    def listen_addresses(self) -> list[str]:
        """Where this node listens (none before the network is up)."""
        return self._runtime.net.listen_addresses() if self._runtime is not None else []

    # The relay's names the control API (p2pnet/api.py) and tests use.

    @property
    def relay_topics(self) -> dict[bytes, RelayTopic]:
        return self.relaying.topics

    @property
    def relay_invites(self) -> dict[bytes, tuple[bytes, float]]:
        return self.relaying.invites

    def serve_relay_topic(self, entry: RelayTopic) -> list[bytes]:
        """Serve every epoch topic a relay's entry has a key for; returns those topics."""
        return self.relaying.serve(entry)

    def relay_topic_wires(self, handle: bytes) -> list[bytes]:
        """The epoch topics a relay serves for the circle with this handle."""
        return self.relaying.wires_of(handle)

    def served_topics(self) -> list[bytes]:
        return sorted(self.gate.relay_keys)

    def _proof_keys(self) -> dict[bytes, list[bytes]]:
        """topic -> its relay keys, in the order learned (newest last): what we prove with."""
        return {topic: list(keys.values()) for topic, keys in self.gate.relay_keys.items()}

    def _on_proved(self, peer: str, topics: list[bytes]) -> None:
        """A sync session proved ``topics`` both ways with ``peer``: gossip them with it."""
        known = self.proved.setdefault(peer, set())
        new = [t for t in topics if t not in known]
        known.update(new)
        for topic in new:
            self.runtime.net.allow_gossip(peer, topic_name(topic))

    def _may_gossip(self, peer: str, name: str) -> bool:
        topic = topic_from_name(name)
        return topic is not None and topic in self.proved.get(peer, ())

    def _asked_for_topic(self, peer: str, name: str) -> None:
        """A peer says it follows a topic we serve but has not proved it to us: most likely
        it just started (a join, a new circle on a relay). Sync now rather than at the next
        tick, so the proofs and then the gossip start at once (rate-limited per peer)."""
        topic = topic_from_name(name)
        if topic is not None and self.gate.serves(topic) and self._asked_limiter.allow(peer, self.clock()):
            self._start_sync(peer)

    def _forget_peer(self, peer: str) -> None:
        """A peer left: drop what the gossip layer held for it (its proofs stay), and if we
        keep it connected (a relay, a bootstrap peer), dial it again at once."""
        self.runtime.net.forget_peer(peer)
        for address, record in self.reach.items():
            if address.rsplit("/p2p/", 1)[-1] == peer and record.failures == 0:
                record.next_try = 0.0
                record.lost = trio.current_time()

    async def run(self, *, task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the disk and load it, then the network; run every service in one nursery
        until `stop`; close the stores whatever happens."""
        self._disk = self._open_disk()
        try:
            self._load_disk()
            network = open_netstack(
                self.keystore.data.network, self.config.listen, self.config.announce, hub=self.is_relay
            )
            async with network as net, trio.open_nursery() as nursery:
                self._runtime = self._build_runtime(net, nursery)
                await self._start_services(self._runtime)
                self.ready.set()
                log.info("node ready", extra={"peer_id": net.peer_id, "addresses": net.listen_addresses()})
                task_status.started(self)
                await self._stopping.wait()
                await self._hand_on_unsent()
                nursery.cancel_scope.cancel()
        finally:
            self._disk.close()

    def _build_runtime(self, net: NetStack, nursery: trio.Nursery) -> Runtime:
        """The network side, whole: gossip, the sync protocol's host, the control server."""
        # Every node caps what one peer may gossip at it; a relay (which many peers
        # reach) uses the configured rate, a member a generous fixed one.
        rate = self.config.relay_peer_rate if self.is_relay else 500.0
        gossip = GossipService(
            net,
            self.gate,
            self._accept_gossip,
            peer_limiter=KeyedLimiter(rate, 4 * rate),
            clock=self.clock,
            on_misbehaviour=self.penalize,
            is_known=self._holds,
        )
        host = SyncPeer(
            net.peer_id, self._proof_keys, self._load_index, self._load_envelopes, self.accept, self._on_proved
        )
        control = None if self.control_api is None else ControlServer(self.home.socket, dict(self.control_api(self)))
        return Runtime(net=net, gossip=gossip, sync_host=host, control=control, nursery=nursery)

    async def _start_services(self, runtime: Runtime) -> None:
        """Let peers in (gossip policy, the sync protocol), join every served topic, and
        start each long-lived task in the runtime's nursery."""
        net, nursery = runtime.net, runtime.nursery
        net.set_gossip_policy(self._may_gossip, on_unproved=self._asked_for_topic)
        net.set_stream_handler(SYNC_PROTOCOL, lambda stream, peer: self._respond_sync(stream, peer))
        for topic in self.served_topics():
            await runtime.gossip.join(topic, nursery)
        await nursery.start(runtime.gossip.run_publisher)
        if runtime.control is not None:
            await nursery.start(runtime.control.serve)
        nursery.start_soon(self._watch_connections)
        nursery.start_soon(self._dial_loop)
        nursery.start_soon(self._sync_loop)
        member = self.disk.member
        if member is not None:
            nursery.start_soon(self._snapshot_loop, member)
            nursery.start_soon(self._checkpoint_loop, member.cache)
            nursery.start_soon(self._storage_recovery_loop, member)
            nursery.start_soon(member.lifecycle.run)
        nursery.start_soon(self._signal_loop)
        nursery.start_soon(self._penalty_decay_loop)
        nursery.start_soon(self._peer_hygiene_loop)
        nursery.start_soon(self._path_loop)

    def stop(self) -> None:
        """Stop cleanly: hand on what we made (up to `HAND_ON_S`), then end every task.
        (A panic does not come here: it exits without a moment's delay, panic.py.)"""
        self._stopping.set()

    async def _hand_on_unsent(self) -> None:
        """Before a clean stop, reconcile with every connected peer while some topic holds
        an envelope we made that no session has offered to a peer (outbox.py).

        Without this, what we made in our last moments reached whoever gossip reached,
        perhaps nobody. The case that showed it: an organizer admits a newcomer and quits.
        The admission rotates the circle's key, and its ops travel on the new epoch's topic,
        which the relay serves only once the grant sent with the rotation reaches it. So
        the newcomer found its welcome at the relay but not its admission, and waited for
        the organizer to come back. Later rounds give the relay that moment (it then also
        reconciles with us itself)."""
        if not self.outbox.pending() or not self.peers:
            return
        with trio.move_on_after(HAND_ON_S):
            for pause in HAND_ON_PAUSES:
                await trio.sleep(pause)
                if not self.outbox.pending() or not self.peers:
                    return
                async with trio.open_nursery() as nursery:
                    for peer, state in list(self.peers.items()):
                        if not state.syncing and not self.is_banned(peer):
                            state.syncing = True
                            nursery.start_soon(self._initiate_sync, peer)
        if self.outbox.pending():
            log.info("stopping with %d topics not yet offered to any peer", len(self.outbox.pending()))

    def stop_soon(self, delay: float = 0.2) -> None:
        """Stop shortly, so a control-API reply announcing it can still be sent."""
        if self._runtime is None:
            self.stop()
            return

        async def later() -> None:
            await trio.sleep(delay)
            self.stop()

        self._runtime.nursery.start_soon(later)

    def start_soon(self, task: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``task`` in the node's nursery (it ends when the node stops)."""
        self.runtime.nursery.start_soon(task, *args)

    async def _signal_loop(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("stopping on %s", signal.Signals(signum).name)
                self.stop()
                return

    # --- events for the control API -----------------------------------------------

    def emit(self, event: EventName, payload: dict[str, Any]) -> None:
        """Tell the control API's clients (and in-process listeners) what happened."""
        if self._runtime is not None and self._runtime.control is not None:
            self._runtime.control.notify(event, payload)
        for listener in self.listeners:
            listener(event, payload)

    # --- accepting envelopes ------------------------------------------------------

    async def _accept_gossip(self, topic: bytes, envelopes: list[Envelope], peer: str) -> None:
        await self.accept(topic, envelopes, peer, via_gossip=True)

    async def accept(
        self, topic: bytes, envelopes: list[Envelope], source: str, *, via_gossip: bool = False
    ) -> AcceptResult:
        """Gate, store, index and (on members) fold envelopes of one topic.

        Envelopes that arrived by reconciliation rather than gossip are gossiped on once,
        so the rest of our mesh learns them in milliseconds instead of at its next sync
        (this is what makes a healed partition converge quickly), up to `REGOSSIP_BURST`.
        """
        result = AcceptResult()
        member = self.disk.member
        if member is not None and member.circles.write_error is not None:
            # A write failed half-way: store nothing until the circles are rebuilt;
            # reconciliation offers all of this again afterwards.
            self.stats.refused["not stored: waiting for the disk"] += len(envelopes)
            return result
        index = self._load_index(topic) if self.gate.serves(topic) else None
        candidates = self._screen(topic, envelopes, source, index, result)
        if self.is_relay and candidates:
            candidates = self.relaying.within_quota(topic, candidates, self.topic_bytes, result, self.stats.refused)
        if not candidates or index is None:
            return result
        kinds = {e.id: kind for e in candidates if (kind := self.gate.kind_of(e)) is not Kind.OP}
        stored = await self._store(topic, index, candidates, kinds)
        if stored is None:
            return result
        index, new = stored
        result.duplicates += len(candidates) - len(new)
        self._index_new(topic, index, new, source, result)
        if new and not via_gossip and self._runtime is not None:
            now = trio.current_time()
            for count, envelope in enumerate(new):
                if not self._regossip.allow(now):
                    self.stats.not_regossiped += len(new) - count
                    break
                self._runtime.gossip.publish_nowait(envelope)
                self.stats.regossiped += 1
        self.stats.duplicates += result.duplicates
        if new and member is not None:
            self._act_as_member(member, topic, new, kinds, source, "gossip" if via_gossip else "sync")
        elif new:
            self._act_as_relay(topic, new, kinds)
        return result

    async def _store(
        self, topic: bytes, index: ItemIndex, candidates: list[Envelope], kinds: Mapping[bytes, Kind]
    ) -> tuple[ItemIndex, list[Envelope]] | None:
        """Write the batch in a worker thread while other tasks run; the topic's index and
        the envelopes that were new, or None when nothing is to be indexed.

        The batch's bytes are reserved first, so concurrent batches cannot together pass a
        relay's quota check; the write is shielded, so what it stored always reaches the
        index (nothing after it waits)."""
        reserved = sum(len(e.data) for e in candidates)
        self.topic_bytes[topic] += reserved
        failure: StorageError | None = None
        member = self.disk.member
        with trio.CancelScope(shield=True), member.circles.storing() if member else contextlib.nullcontext():
            try:
                new = await self.disk.store.add_batch_in_thread(candidates, kinds)
            except StorageError as exc:  # nothing was stored; peers offer it again later
                new, failure = [], exc
        current = self.indexes.get(topic)
        if current is None:  # dropped meanwhile: what the batch added goes too
            if new:
                self.drop_topic(topic)
            return None
        if current is index:
            self.topic_bytes[topic] += sum(len(e.data) for e in new) - reserved
        else:  # rebuilt from the store meanwhile (storage recovery), maybe before this commit
            self.topic_bytes[topic] = self.disk.store.bytes_in_topic(topic)
        if failure is not None:
            self._storage_failed(failure, len(candidates))
            return None
        return current, new

    def _screen(
        self, topic: bytes, envelopes: list[Envelope], source: str, index: ItemIndex | None, result: AcceptResult
    ) -> list[Envelope]:
        """The envelopes that are new here and pass the gate; the others are counted in
        ``result`` (and junk against the peer that sent it)."""
        now = self.clock()
        candidates: list[Envelope] = []
        for envelope in envelopes:
            if index is not None and (envelope.ts, envelope.id) in index:
                result.duplicates += 1
                continue
            verdict = self.gate.check(envelope, now=now, topic=topic)
            if verdict is Verdict.ACCEPT:
                candidates.append(envelope)
            elif verdict is Verdict.JUNK:
                result.junk += 1
                if source not in ("self", "store"):
                    self.penalize(source, "junk envelopes", JUNK_WEIGHT)
            elif verdict is Verdict.FULL:
                result.unverifiable += 1  # not the sender's fault
                self.stats.refused["over quota"] += 1
            else:
                result.rejected += 1
                self.stats.refused["gate"] += 1
        return candidates

    def _index_new(
        self, topic: bytes, index: ItemIndex, new: list[Envelope], source: str, result: AcceptResult
    ) -> None:
        """Envelopes just stored: what reconciliation offers from now on, and who gave them."""
        for envelope in new:
            index.add(envelope.ts, envelope.id)
        result.new = new
        self.stats.accepted += len(new)
        if new and source in self.peers:
            self.peers[source].received += len(new)

    def _act_as_member(
        self,
        member: MemberParts,
        topic: bytes,
        new: list[Envelope],
        kinds: Mapping[bytes, Kind],
        source: str,
        via: Arrival,
    ) -> None:
        """Fold the new ops, and hand welcomes, join requests, private envelopes and grants
        to the lifecycle."""
        try:
            self._fold(topic, [e for e in new if e.id not in kinds], source, via)
            for envelope in new:
                if envelope.id in kinds:
                    member.lifecycle.on_marker(topic, envelope, kinds[envelope.id])
        except StorageError as exc:
            # Stored, but not folded or acted on: rebuilt from the store once writes work.
            member.circles.write_error = member.circles.write_error or exc
            self._storage_failed(exc, 0)

    def _act_as_relay(self, topic: bytes, new: list[Envelope], kinds: Mapping[bytes, Kind]) -> None:
        """A relay opens nothing but the grants that carry a circle's next relay key."""
        for envelope in new:
            if kinds.get(envelope.id) is Kind.GRANT:
                self.relaying.on_grant(topic, envelope)
        self.emit("stored", {"topic": topic.hex(), "count": len(new)})

    def fold_stored(self, topic: bytes, envelopes: list[Envelope]) -> None:
        """Fold envelopes that were already stored (e.g. once their keys arrived)."""
        self._fold(topic, [e for e in envelopes if self.gate.kind_of(e) is Kind.OP], via="key")

    def accept_soon(self, topic: bytes, envelopes: list[Envelope]) -> None:
        """Accept envelopes from a synchronous context (our own)."""
        if self._runtime is not None:
            self._runtime.nursery.start_soon(self.accept, topic, envelopes, "self")

    def publish_nowait(self, envelope: Envelope) -> None:
        """Index and gossip an envelope we made. It must already be in the store: the
        index is what reconciliation offers peers, and what `accept` treats as known."""
        index = self._load_index(envelope.topic)
        if index.add(envelope.ts, envelope.id):
            self.topic_bytes[envelope.topic] += len(envelope.data)
        self.outbox.made(envelope.topic, time.time())  # the clock of SyncStats.started
        if self._runtime is not None:
            self._runtime.gossip.publish_nowait(envelope)

    def request_sync(self) -> None:
        self._sync_wanted.set()

    def dial_soon(self, address: str) -> None:
        if self._runtime is None:
            return

        async def dial() -> None:
            try:
                await self.connect(address)
            except (NetError, UsageError) as exc:
                log.info("could not reach %s: %s", address, exc)

        self._runtime.nursery.start_soon(dial)

    def _fold(self, topic: bytes, envelopes: list[Envelope], source: str = "self", via: Arrival = "self") -> None:
        """Fold envelopes of one topic and tell listeners what entered (``via``: how these
        envelopes came, for the `ops` event: see `Arrival`)."""
        member = self.disk.member
        if member is None:
            raise LocalProtocolError("a relay folds nothing: it holds no member keys")
        if not envelopes:
            return
        circles, lifecycle = member.circles, member.lifecycle
        processed = circles.process(topic, envelopes, source)
        if processed.over_share and source not in ("self", "store"):
            # Valid members' ops whose parents never come, more than 2 MiB of them: the
            # buffer evicted this peer's own oldest ones; count it against the peer.
            self.penalize(source, "ops whose parents never come")
        for circle_id, waiting in processed.waiting_keys.items():
            lifecycle.after_fold(circles.circles[circle_id], waiting)
        for circle_id, ops in processed.applied.items():
            lifecycle.after_fold(circles.circles[circle_id], ops)
            self.emit(
                "ops",
                {
                    "circle": circle_id.hex(),
                    "via": via,
                    "ops": [
                        {
                            "id": op.id.hex(),
                            "kind": op.op.kind,
                            "author": op.op.author.hex(),
                            # Not in this batch: it arrived earlier and waited for a parent.
                            "waited": op.id not in processed.arrived,
                        }
                        for op in ops
                    ],
                },
            )
        for circle_id, rejected in processed.rejected.items():
            self.emit(
                "rejected", {"circle": circle_id.hex(), "ops": [{"id": i.hex(), "reason": r} for i, r in rejected]}
            )
        if processed.missing:
            # Parents we do not have: reconcile with everyone if they have not come by gossip
            # in a moment, rather than at the next tick.
            self._fetch_missing_soon(processed.missing)

    def _fetch_missing_soon(self, missing: Mapping[bytes, frozenset[bytes]]) -> None:
        """Reconcile with every peer if any of ``missing`` (circle -> op ids) is still missing
        `MISSING_PARENT_GRACE_S` from now (one check at a time gathers what comes meanwhile)."""
        for circle_id, ids in missing.items():
            self._awaited_parents.setdefault(circle_id, set()).update(ids)
        if self._runtime is None:
            self._sync_wanted.set()  # (not running yet: the first round reconciles anyway)
            return
        if self._parents_check_due:
            return
        self._parents_check_due = True

        async def check() -> None:
            await trio.sleep(MISSING_PARENT_GRACE_S)
            self._parents_check_due = False
            awaited, self._awaited_parents = self._awaited_parents, {}
            self.stats.parent_checks += 1
            circles = self.circles
            for circle_id, ids in awaited.items():
                circle = circles.circles.get(circle_id) if circles is not None else None
                if circle is not None and ids & circle.replica.missing():
                    self.stats.parent_fetches += 1
                    self._sync_wanted.set()
                    return

        self._runtime.nursery.start_soon(check)

    def fold_held(self, circle: Circle) -> None:
        """Fold the closes held until their claimed time, once it has come."""
        circles = self.circles
        if circles is None:
            raise LocalProtocolError("a relay holds no circles")
        due = circles.due_held(circle)
        if due:
            data = self._load_envelopes(due)
            self._fold(circle.current_topic, [Envelope.decode(data[i]) for i in due if i in data], "store", "held")

    def _load_envelopes(self, ids: list[bytes]) -> dict[bytes, bytes]:
        return self.disk.store.get_many(ids)

    def _publish_authored(self, envelopes: list[Envelope]) -> None:
        """Ops we authored, just stored (`MemberCircles.on_stored`): index and gossip them."""
        for envelope in envelopes:
            self.publish_nowait(envelope)

    async def serve_topic(self, topic: bytes) -> None:
        """Start serving a topic that was just added (a new circle, a newly allowed topic)."""
        self._load_index(topic)
        if self._runtime is not None:
            await self._runtime.gossip.join(topic, self._runtime.nursery)
        self._sync_wanted.set()

    def serve_topic_nowait(self, topic: bytes) -> None:
        """`serve_topic` from a synchronous context (gossip joins once the node runs)."""
        self._load_index(topic)
        if self._runtime is not None:
            self._runtime.gossip.join_nowait(topic, self._runtime.nursery)
        self._sync_wanted.set()

    def drop_topic(self, topic: bytes) -> None:
        """Stop serving a topic and forget what it held (an invite's, once it is closed)."""
        self.gate.remove_topic(topic)
        self.indexes.pop(topic, None)
        self.topic_bytes.pop(topic, None)
        self.outbox.forget(topic)
        if self._runtime is not None:
            self._runtime.gossip.leave_nowait(topic, self._runtime.nursery)
        try:
            self.disk.store.delete_topic(topic)
        except StorageError as exc:  # dropped again on the next start: the topic is no longer followed
            self._storage_failed(exc, 0)

    # --- a full disk ---------------------------------------------------------------

    def _storage_failed(self, exc: StorageError, dropped: int) -> None:
        """A write failed (disk full, most likely): keep running, say so once a minute."""
        self.stats.refused["not stored: storage error"] += dropped
        if time.monotonic() - self._storage_warned > 60:
            self._storage_warned = time.monotonic()
            log.error("%s; the node keeps running and retries", exc)

    async def _storage_recovery_loop(self, member: MemberParts) -> None:
        """Once writes work again, rebuild circles a failed write left unsure, as a restart would."""
        circles = member.circles
        while True:
            await trio.sleep(STORAGE_RETRY_S)
            if circles.write_error is None:
                continue
            if any(circle.authoring.locked() for circle in circles.circles.values()):
                continue  # an author step's write is in flight: rebuilt replicas would miss it
            try:
                self.keystore.save()  # in-memory keys first; also tells whether writes work
                circles.reopen()
                self._follow_circles(member)
                for topic in self.served_topics():
                    self._load_index(topic, again=True)
            except StorageError as exc:
                circles.write_error = circles.write_error or exc
                continue
            log.warning("writes work again: circles rebuilt from the store")
            self.request_sync()

    # --- misbehaving peers --------------------------------------------------------

    def penalize(self, peer: str, reason: str, weight: float = 1.0) -> None:
        """Count a peer's bad input; past the guard's threshold it is disconnected and refused."""
        runtime = self._runtime
        if runtime is None or peer == runtime.net.peer_id or not peer:
            return
        self.stats.refused[f"from peers: {reason}"] += 1
        if self.guard.penalize(peer, weight):
            log.warning("banning peer %s for %.0f s: %s", peer[:12], BAN_S, reason)
            self.emit("peer", {"peer": peer, "connected": False, "banned": True})
            runtime.nursery.start_soon(runtime.net.disconnect, peer)

    def block(self, peer: str, seconds: float) -> None:
        """Refuse a peer for a while, as a ban does (an operator's tool; the soak cuts
        partitions with it): drop its connection, refuse its dials, stop dialing it."""
        self.guard.block(peer, seconds)
        if self._runtime is not None:
            self._runtime.nursery.start_soon(self._runtime.net.disconnect, peer)

    def is_banned(self, peer: str) -> bool:
        return self.guard.is_banned(peer)

    async def _penalty_decay_loop(self) -> None:
        while True:
            await trio.sleep(PENALTY_HALF_LIFE_S)
            self.guard.decay()

    async def _peer_hygiene_loop(self) -> None:
        """Once a second, make the peer table match the host: a blocked or banned peer
        whose connection outlived the disconnect (a dial that was in flight, a second
        connection opened at the same moment) is dropped again, and a peer connected or
        gone without its event (one of two connections closing) is added or forgotten."""
        net = self.runtime.net
        while True:
            await trio.sleep(1.0)
            if self.is_relay:
                self.relaying.expire_invites()
            connected = set(net.connected_peers())
            for peer in connected:
                if self.is_banned(peer):
                    await net.disconnect(peer)
                elif peer not in self.peers:
                    self._on_connected(peer)
            for peer in [p for p, state in self.peers.items() if p not in connected and not state.syncing]:
                del self.peers[peer]
                self._forget_peer(peer)
                self.emit("peer", {"peer": peer, "connected": False})

    async def _path_loop(self) -> None:
        """Once a second, drop the connections this machine can no longer carry (its address
        changed: pathwatch.py) and dial those peers again at once."""
        net = self.runtime.net
        while True:
            await trio.sleep(1.0)
            for peer in self._paths.stale(net.connection_endpoints(), route_source, net.dialed_sources()):
                log.info("the route to %s changed under its connection; reconnecting", peer[:12])
                with trio.move_on_after(5):
                    await net.disconnect(peer)
                for address in self.dial_targets():
                    if address.rsplit("/p2p/", 1)[-1] == peer:
                        self.dial_soon(address)

    # --- peers and reconciliation -------------------------------------------------

    async def _watch_connections(self) -> None:
        net, nursery = self.runtime.net, self.runtime.nursery
        async for kind, peer in net.events:
            self.stats.connection_events += 1
            if kind == "connected":
                self._paths.observe(net.connection_endpoints(), route_source, net.dialed_sources())
                if peer in self.peers:
                    # A peer that dials us again has given its old connection up.
                    nursery.start_soon(net.close_abandoned, peer)
                self._on_connected(peer)
            elif not net.has_connection(peer):
                # Only when the last connection went: closing the older of two (a peer that
                # dialled again, two dials at once) used to forget a peer still connected,
                # and nothing redialled it (the dial finds the live connection).
                self._forget_peer(peer)
                if self.peers.pop(peer, None) is not None:
                    self.emit("peer", {"peer": peer, "connected": False})

    def _on_connected(self, peer: str) -> None:
        runtime = self.runtime
        if self.is_banned(peer):
            runtime.nursery.start_soon(runtime.net.disconnect, peer)
        elif peer not in self.peers:
            self.peers[peer] = PeerState(peer, self.clock())
            self.emit("peer", {"peer": peer, "connected": True})
            for topic in sorted(self.proved.get(peer, ())):  # proved before: gossip at once
                runtime.net.allow_gossip(peer, topic_name(topic))
            self._start_sync(peer)

    def _start_sync(self, peer: str) -> None:
        state = self.peers.get(peer)
        if state is not None and state.syncing:
            state.again = True
            return
        if state is None or self._runtime is None or self.is_banned(peer):
            return
        # Both sides may start at once after a connect; the lower peer id initiates, the
        # other waits for it (its own periodic tick still runs as a backstop).
        if state.last_sync is None and peer < self._runtime.net.peer_id and self.clock() - state.connected_at < 5:
            return
        state.syncing = True
        self._runtime.nursery.start_soon(self._initiate_sync, peer)

    async def sync_now(self, peer: str) -> SyncStats:
        """Run one reconciliation with ``peer`` and wait for it (tests, `kith sync`)."""
        try:
            parse_peer_id(peer)  # before it gets a row in the peer table
        except NetError as exc:
            return SyncStats(peer, True, error=str(exc))
        state = self.peers.setdefault(peer, PeerState(peer, self.clock()))
        state.syncing = True
        return await self._initiate_sync(peer)

    async def _initiate_sync(self, peer: str) -> SyncStats:
        runtime = self.runtime
        state = self.peers.get(peer)
        ended = False
        try:
            try:
                stream = await runtime.net.open_stream(peer, SYNC_PROTOCOL)
            except NetError as exc:
                stats = SyncStats(peer, True, error=str(exc))
            else:
                stats = await run_initiator(runtime.sync_host, stream, peer)
                if stats.error and not stats.error.startswith(("stream closed", "timed out")):
                    self.penalize(peer, "broke the sync protocol", 10.0)
            ended = True
        finally:
            if not ended and state is not None:
                # Cancelled part-way: a control request's deadline (`kith sync` took longer
                # than REQUEST_TIMEOUT_S), the end of a clean stop's hand-on, or the node
                # stopping. The peer stayed marked as syncing, and `_start_sync` then
                # never began another session with it: reconciliation with that peer stopped
                # for good, and whatever gossip had missed stayed missing.
                state.syncing = False
                if state.again:
                    state.again = False
                    self._sync_wanted.set()
        self._record_sync(state, stats)
        return stats

    async def _respond_sync(self, stream: Any, peer: str) -> None:
        # A session costs us real work (a sketch of a big topic can take a fraction of a
        # second), so one peer gets a few per minute, not a stream of them.
        if not self._sync_limiter.allow(peer, self.clock()):
            self.stats.refused["sync sessions over the per-peer rate"] += 1
            await close_quietly(stream, reset=True)
            return
        if self.is_banned(peer):
            await close_quietly(stream, reset=True)
            return
        stats = await run_responder(self.runtime.sync_host, stream, peer)
        self._note_topics_synced(stats)
        if stats.error and not stats.error.startswith(("stream closed", "timed out")):
            self.penalize(peer, "broke the sync protocol", 10.0)
        state = self.peers.get(peer)
        if state is not None:
            state.last_sync = stats
            self._reschedule_sync(state, stats)

    def _reschedule_sync(self, state: PeerState, stats: SyncStats) -> None:
        """A session with the peer went through, whichever side started it: our next
        periodic one with it is due an interval from now (see `_sync_loop`)."""
        if stats.error is None:
            state.next_sync = trio.current_time() + self.config.sync_interval_s * random.uniform(0.8, 1.2)  # noqa: S311 - jitter

    def _note_topics_synced(self, stats: SyncStats) -> None:
        if stats.error is None and stats.finished is not None:
            for topic in stats.shared_topics:
                self.topic_synced[topic] = stats.finished
            self.outbox.offered(stats.shared_topics, stats.started)

    def _record_sync(self, state: PeerState | None, stats: SyncStats) -> None:
        self.stats.syncs += 1
        self._note_topics_synced(stats)
        if stats.error:
            self.stats.sync_errors += 1
            log.info("sync with %s failed: %s", stats.peer[:12], stats.error)
        if state is not None:
            state.last_sync = stats
            state.syncing = False
            self._reschedule_sync(state, stats)
            if state.again:
                state.again = False
                self._start_sync(stats.peer)
        self.emit(
            "synced",
            {
                "peer": stats.peer,
                "received": stats.envelopes_new,
                "sent": stats.envelopes_sent,
                "error": stats.error,
                "topics": stats.topics,
                "rounds": stats.rounds,
                "seconds": round((stats.finished or time.time()) - stats.started, 3),
            },
        )

    async def _sync_loop(self) -> None:
        """Reconcile with each peer at least every ``sync_interval_s`` (jittered), each peer
        on a timer of its own, and with every peer at once when asked (`request_sync`).

        One timer for all peers started every session of a round at the same moment: a
        relay with 100 members ran 100 sessions at once every 30 s, and for the seconds that
        took (on both ends) gossip waited behind them, every post of those seconds 1-3 s
        late (`kith bench relay_100_circles_forward_p99_ms`). A peer's first periodic
        session comes at a random point of its first 1.2 intervals, so peers that connected
        together (a relay's members after it restarts) are spread over the interval. A
        session the peer started counts too (`_reschedule_sync`): both ends ran one each
        per interval, twice the work, which a relay serving many members pays in full."""
        interval = self.config.sync_interval_s
        tick = min(1.0, interval / 4)
        while True:
            with trio.move_on_after(tick):
                await self._sync_wanted.wait()
                await trio.sleep(0.05)  # gather a burst of triggers into one round
            everyone = self._sync_wanted.is_set()
            self._sync_wanted = trio.Event()
            now = trio.current_time()
            for peer, state in list(self.peers.items()):
                if state.next_sync is None:
                    state.next_sync = now + interval * random.uniform(0.2, 1.2)  # noqa: S311 - jitter
                if everyone or now >= state.next_sync:
                    state.next_sync = now + interval * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
                    self._start_sync(peer)

    async def _dial_loop(self) -> None:
        """Keep bootstrap peers and relays connected: each target that is not connected is
        dialed when its backoff allows (at once when it drops, then `FIRST_REDIAL_S` after a
        failure, doubling after each further failure up to `MAX_REDIAL_S`, or at most
        `RECENTLY_LOST_REDIAL_S` in the first minutes after it dropped: `redial_backoff`;
        with jitter so that a relay that comes back is not hit by every member at the same
        second)."""
        while True:
            now = trio.current_time()
            self._remember_circle_relays()
            targets = self.dial_targets()
            for gone in [a for a in self.reach if a not in targets]:
                del self.reach[gone]
            due: dict[str, list[str]] = {}  # one dial per peer, with all its due addresses
            for target in targets:
                if self._dial_due(target, now):
                    due.setdefault(target.rsplit("/p2p/", 1)[-1], []).append(target)
            if due:
                async with trio.open_nursery() as dials:
                    for addresses in due.values():
                        dials.start_soon(self._dial_target, addresses)
            await trio.sleep(min(self.config.redial_interval_s, 1.0))

    def _dial_due(self, address: str, now: float) -> bool:
        peer = address.rsplit("/p2p/", 1)[-1]
        if peer in self.peers or peer == self.runtime.net.peer_id or self.is_banned(peer):
            return False
        record = self.reach.get(address)
        return record is None or now >= record.next_try

    async def _dial_target(self, addresses: list[str]) -> None:
        """Dial one peer at its due addresses; each address's record follows the outcome."""
        records = [self.reach.setdefault(a, Reach()) for a in addresses]
        try:
            await self.connect(addresses[0], also=addresses[1:], timeout=10)
        except (NetError, UsageError) as exc:
            now = trio.current_time()
            for record in records:
                record.failures += 1
                record.error = str(exc)
                backoff = redial_backoff(record.failures, None if record.lost is None else now - record.lost)
                record.next_try = now + backoff * random.uniform(0.75, 1.25)  # noqa: S311 - jitter
            log.debug("dial %s failed (%d in a row): %s", addresses[0], records[0].failures, exc)
        else:
            for record in records:
                record.failures = 0
                record.error = None
                record.lost = None
                record.reached = self.clock()
                record.next_try = trio.current_time() + self.config.redial_interval_s

    def dial_targets(self) -> list[str]:
        """Whom to keep connected: configured bootstrap peers, relays and inviters we were
        given, and the relays each of our circles lists (relay.add)."""
        targets = list(self.config.bootstrap)
        circles = self.circles
        if circles is not None:
            for circle in circles.circles.values():
                targets += [r for r in sorted(circle.replica.state.relays) if r not in targets]
        targets += [r for r in self.keystore.data.relays if r not in targets]
        return targets

    async def connect(self, address: str, *, also: Sequence[str] = (), timeout: float = 10.0) -> str:
        target = address.rsplit("/p2p/", 1)[-1]
        if self.is_banned(target):
            raise UsageError(f"peer {target[:12]}... is blocked for now; unblock it first")
        peer = await self.runtime.net.connect(address, also=also, timeout=timeout)
        if peer not in self.peers:
            self.peers[peer] = PeerState(peer, self.clock())
        record = self.reach.setdefault(address, Reach()) if address in self.reach else None
        if record is not None:
            record.failures, record.error, record.reached, record.lost = 0, None, self.clock(), None
        return peer

    def relay_reach(self, circle: Any) -> list[dict[str, Any]]:
        """Each relay the circle lists: connected now, when last reached, why the last dial failed."""
        listing = []
        for address in sorted(circle.replica.state.relays):
            record = self.reach.get(address)
            listing.append(
                {
                    "address": address,
                    "connected": address.rsplit("/p2p/", 1)[-1] in self.peers,
                    "reached": record.reached if record else None,
                    "failures": record.failures if record else 0,
                    "error": record.error if record else None,
                }
            )
        return listing

    def _remember_circle_relays(self) -> None:
        """Keep the keystore's relay list (what a backup carries, and what a restored node
        first dials) led by the relays our circles list now: a relay a circle added goes
        in, one it removed goes out (addresses from invites that no circle lists stay)."""
        circles = self.circles
        if circles is None:
            return
        listed = [a for c in circles.circles.values() for a in sorted(c.replica.state.relays)]
        current = list(dict.fromkeys(listed))
        dropped = self._circle_relays - set(current)
        kept = [a for a in self.keystore.data.relays if a not in current and a not in dropped]
        wanted = current + kept
        self._circle_relays = set(current)
        if wanted != self.keystore.data.relays:
            self.keystore.data.relays[:] = wanted
            try:
                self.keystore.save()
            except StorageError as exc:
                log.warning("could not save the circles' relay list: %s", exc)

    # --- snapshots ----------------------------------------------------------------

    async def _checkpoint_loop(self, cache: StateCache) -> None:
        """Make the state cache's commits durable in a worker thread: they do not fsync on
        the loop (statecache.py says why that is safe)."""
        while True:
            await trio.sleep(CACHE_CHECKPOINT_S)
            if cache.needs_checkpoint:
                try:
                    await trio.to_thread.run_sync(cache.checkpoint)
                except StorageError as exc:
                    log.error("could not make the circles' state durable: %s", exc)

    async def _snapshot_loop(self, member: MemberParts) -> None:
        while True:
            await trio.sleep(self.config.snapshot_interval_s)
            try:
                member.circles.save_snapshots()
            except KithError as exc:
                log.error("saving circle state failed: %s", exc)
