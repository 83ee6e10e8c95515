"""The one place kith touches py-libp2p's construction API, with every setting deliberate.

py-libp2p 0.8.1 has sharp edges (see the research notes in docs/NETWORK.md); each
non-default setting below says why it is there. Nothing outside p2pnet/ sees a libp2p
type: the rest of the node talks to `NetStack` in terms of bytes and peer-id strings.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import libp2p  # noqa: F401  (importing resets the "libp2p" logger; reclaim_logging() undoes it)
import libp2p.pubsub.gossipsub as _gossipsub_module
import libp2p.pubsub.pubsub as _pubsub_module
import multiaddr
import trio
import trio.lowlevel
from google.protobuf.message import DecodeError
from libp2p import new_host
from libp2p.abc import IHost, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import ParseError
from libp2p.host.exceptions import HostException
from libp2p.io.exceptions import IncompleteReadError
from libp2p.network.config import RetryConfig
from libp2p.network.exceptions import SwarmException
from libp2p.network.stream.exceptions import StreamClosed, StreamError
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID as MESHSUB_V10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as MESHSUB_V11
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.tools.anyio_service import background_trio_service
from libp2p.tools.anyio_service.exceptions import LifecycleError
from libp2p.transport.tcp.tcp import TCP

from kith.identity.errors import KithError, UsageError
from kith.identity.keys import NetworkKey
from kith.p2pnet.addresses import AddressBook, expand_unspecified, interface_addresses, is_unspecified
from kith.p2pnet.framing import BufferedStream, WriteTurns
from kith.p2pnet.limits import PeerLimits, peer_limits
from kith.p2pnet.yamux import KithMuxerMultistream, KithYamux

log = logging.getLogger("kith.net")

GOSSIP_MAX_MESSAGE_BYTES = 1024 * 1024
"""py-libp2p's default RPC size cap (1 MiB); our gossip batches stay well below it."""

MERGED_RPC_BYTES = GOSSIP_MAX_MESSAGE_BYTES // 2
"""The most one RPC of merged gossip messages may hold (`_OutboundQueue`)."""

PEER_QUEUE_SIZE = 1024
"""Per-peer outbound RPC queue (default 32, which drops silently under any burst)."""

SUBSCRIPTION_QUEUE_SIZE = 1024
"""Per-subscription delivery channel (default 32, also drops silently)."""

HELD_BACK_IDS = 4096
"""How many ids of messages not to forward the router remembers (`NetStack.hold_back`);
an id is needed only while its message is being taken in, so any few thousand will do."""

PEER_STREAM_RETRY_S = (0.5, 10.0)
"""The first and the longest wait between tries at opening our gossip stream to a connected
peer (py-libp2p's own schedule; `_GuardedPubsub.handle_peer_queue`)."""
HELD_SUBSCRIPTIONS_PER_PEER = 256
"""Subscriptions a peer sent before proving the topic, kept until it proves it."""

HAPPY_EYEBALLS_STAGGER_S = 0.25
"""How long a dial waits for one address before also trying the next (RFC 8305's 250 ms)."""


def _why(exc: BaseException) -> str:
    """The innermost reason a dial failed (py-libp2p wraps the socket error two or three
    times, each wrapper repeating the address), in one short line."""
    while True:
        if exc.__cause__ is not None:
            exc = exc.__cause__
        elif isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]  # trio's connect: one error per address it resolved to
        else:
            break
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception as exc:  # noqa: BLE001 - closing a spare connection; nothing to do if it fails
        log.debug("closing a spare connection: %r", exc)


def advertised(transports: list[Any], announce: list[str]) -> list[Any]:
    """What the host tells peers (identify) and users (status, invites): the ``announce``
    addresses if any, else the listening ones with 0.0.0.0/:: expanded to this host's
    interface addresses (read again each time: interfaces come and go)."""
    if announce:
        return [multiaddr.Multiaddr(a) for a in announce]
    listening = [str(a).rsplit("/p2p/", 1)[0] for a in transports]
    return [multiaddr.Multiaddr(a) for a in expand_unspecified(listening, interface_addresses())]


class CachedAddrs:
    """A host's ``get_addrs``, worked out again at most once per `ttl_s` seconds or when its
    listeners change (``key``). py-libp2p asks for the host's addresses on every gossip
    message it publishes or forwards, to attach a signed peer record that
    `_GuardedPubsub.write_msg` then strips; each answer reads every interface by ioctl
    (`advertised`) and parses and builds multiaddrs: about 5 % of a member's CPU in the soak."""

    def __init__(
        self,
        compute: Callable[[], list[Any]],
        key: Callable[[], tuple[str, ...]],
        *,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._key_of = key
        self._ttl_s = ttl_s
        self._clock = clock
        self._key: tuple[str, ...] | None = None
        self._at = 0.0
        self._value: list[Any] = []

    def __call__(self) -> list[Any]:
        key = self._key_of()
        now = self._clock()
        if key != self._key or now - self._at >= self._ttl_s:
            self._value = self._compute()
            self._key, self._at = key, now
        return list(self._value)


class NetError(KithError):
    """A network operation failed (peer unreachable, stream broken, timed out)."""


MAX_PEER_ID_CHARS = 128
"""Longer than any libp2p peer id in base58 (an Ed25519 key's is 52 characters, an RSA key's 46).
py-libp2p's base58 decoding is quadratic: a 70,000-character "peer id" from the control API held
the node's loop for 10 s."""
_BASE58 = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


def parse_peer_id(peer: str) -> ID:
    """A libp2p peer id from its base58 text; `NetError` if it cannot be one (checked before decoding)."""
    if not 1 <= len(peer) <= MAX_PEER_ID_CHARS or not _BASE58.issuperset(peer):
        raise NetError(f"not a peer id: {peer[:16]!r}{'...' if len(peer) > 16 else ''}")
    try:
        return ID.from_base58(peer)
    except ValueError as exc:
        raise NetError(f"not a peer id: {peer[:16]!r}") from exc


def reclaim_logging(level: int = logging.WARNING) -> None:
    """Undo what ``import libp2p`` does to logging, so its records go through ours."""
    logger = logging.getLogger("libp2p")
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(level)


GossipPolicy = Callable[[str, str], bool]
"""``may_gossip(peer id, topic name)``: whether that peer proved it holds a key of the topic."""


def _content_id(message: Any) -> bytes:
    """Message ids are content hashes: with no origin or sequence number (below), the
    same batch re-published is recognised as seen, and ids reveal nothing but content."""
    return hashlib.sha256(bytes(message.data)).digest()


def _refused(exc: BaseException) -> bool:
    """Whether a failed stream negotiation was the peer answering that it speaks none of the
    protocols (py-libp2p's multistream client says "protocols not supported"), rather than
    an answer that never came."""
    seen: BaseException | None = exc
    while seen is not None:
        if "protocols not supported" in str(seen):
            return True
        seen = seen.__cause__
    return False


class _NoValidationCache(_pubsub_module.ValidationCache):
    """py-libp2p's validation cache, remembering nothing (`_GuardedPubsub`)."""

    def get(self, msg_id: bytes) -> None:
        return None

    def put(self, msg_id: bytes, result: _pubsub_module.ValidationResult) -> None:
        return None

    def clear_expired(self) -> None:
        return None


class _GuardedPubsub(Pubsub):
    """Pubsub that tells nothing to peers that did not prove a key, and signs nothing.

    **Subscriptions only to peers that proved the topic.** py-libp2p announces every topic
    a node follows to every peer that connects, and forwards a topic's messages to anyone
    who says it subscribes. Here our subscriptions go only to peers that proved a key of
    the topic in a sync session (`sync.access`; the node calls `announce_to` then), and a
    peer's subscription (or GRAFT, IHAVE, IWANT) for a topic it has not proved is set
    aside, so the router never sends it that topic's messages. A stranger who knows a
    topic's name from elsewhere learns nothing by subscribing to it.

    **No origin (StrictNoSign).** Messages are published without the origin's peer id,
    sequence number, key or signature, and messages that carry any of them are refused
    (by `NetStack`'s validator). Envelopes are authenticated inside; an origin field would
    only tell every member which peer first sent a (private) envelope.

    **Whole messages.** Several of py-libp2p's tasks write to one peer's stream, and its
    yamux may interleave their pieces: each message is written in its turn
    (`framing.WriteTurns`).

    **Robustness.** A gossip RPC which is not protobuf takes py-libp2p's ``ParseError`` path
    (reset the stream, forget the peer) instead of ending the node, and so does a message
    that arrives while the service stops.
    """

    may_gossip: GossipPolicy = staticmethod(lambda peer, topic: False)
    on_unproved: Callable[[str, str], None] = staticmethod(lambda peer, topic: None)
    _held_subscriptions: dict[Any, set[str]]
    """Subscriptions peers sent for topics they had not proved yet."""
    _due_announces: dict[Any, set[str]]
    """Our subscriptions owed to peers that proved a topic before their stream was up."""
    _registration_kicks: dict[Any, trio.Event]
    """Peers whose gossip stream is being opened, each with the event that wakes its retry."""
    _held_grafts: dict[Any, set[str]]
    """GRAFTs peers sent for topics they had not proved yet (see `_GatedGossipSub`)."""
    _inbound: dict[Any, list[Any]]
    """Each peer's gossip streams to us that are being read: one, or two for the moment
    between a peer's new stream (a new connection) and the end of its old one."""
    _reannounce: set[Any]
    """Peers whose gossip stream we lost while they stayed connected: the next stream we
    open to them announces every topic of ours they proved (`_handle_new_peer`)."""
    router: _GatedGossipSub  # (the only router make_host gives it)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_turns = WriteTurns()
        self._registration_kicks = {}
        self._inbound = {}
        self._reannounce = set()
        # py-libp2p caches each validation's outcome by message id (the batch's content)
        # for 5 minutes. Our refusals often depend on who forwarded it and how (a peer that
        # has not proved the topic, one over its rate, a message naming other topics), so a
        # cached refusal let anyone holding a batch's bytes get the honest copy refused for
        # minutes; and a cached refusal of junk skipped our validator, which counts junk
        # against every peer that sends it again. What it saved is nothing: a message that
        # passed is in the seen-cache, and our validator is cheap.
        self.validation_cache = _NoValidationCache()

    def _allowed(self, peer_id: Any, topic: str) -> bool:
        return peer_id == self.my_id or bool(self.may_gossip(peer_id.to_base58(), topic))

    async def continuously_read_stream(self, stream: Any) -> None:
        try:
            # Read in large pieces, not a byte of the length at a time: each read answers
            # with a yamux window update (framing.BufferedStream).
            await super().continuously_read_stream(cast(Any, BufferedStream(stream)))
        except DecodeError as exc:
            log.info("dropping a gossip stream that sent an RPC which is not protobuf: %s", exc)
            raise ParseError(str(exc)) from exc
        except RuntimeError as exc:
            # A message that arrives while the service stops: py-libp2p checks that its
            # manager runs, then schedules on a task nursery that may already be closed,
            # and the RuntimeError ends the host with a crash instead of a clean stop.
            if "closed to new arrivals" not in str(exc):
                raise
            log.debug("gossip stream from %s ended with the pubsub service", stream.muxed_conn.peer_id)

    def get_hello_packet(self) -> Any:
        """The first RPC to a new peer: our signed peer record, no subscriptions."""
        packet = super().get_hello_packet()
        del packet.subscriptions[:]
        return packet

    async def write_msg(self, stream: Any, rpc_msg: Any) -> bool:
        """Every RPC but the hello goes without our signed peer record.

        py-libp2p 0.8 attaches the record (~150 bytes, signed) to every publish and control
        RPC it writes, and the receiver checks its signature and rewrites its address book for
        each one: one signature check per gossip message per hop, for a record the peer already
        has from the hello packet (`get_hello_packet`) and from identify, which kith does not
        read from gossip anyway (addresses come from `AddressBook`)."""
        rpc_msg.ClearField("senderRecord")
        # One message at a time per stream, whole (framing.WriteTurns).
        async with self._write_turns.of(stream):
            return bool(await super().write_msg(stream, rpc_msg))

    async def message_all_peers(self, raw_msg: bytes, announce: Any = None) -> None:
        """A (un)subscription goes only to peers that proved the topic."""
        if announce is None:
            await super().message_all_peers(raw_msg, announce)
            return
        rpc = _pubsub_module.rpc_pb2.RPC()
        rpc.ParseFromString(raw_msg)
        for peer_id in tuple(self.peers):
            queue = self.peer_queues.get(peer_id)
            if queue is not None and self._allowed(peer_id, announce.topicid):
                self._enqueue_or_retry_announce(peer_id, queue, rpc, announce)

    def announce_to(self, peer: str, topic: str) -> None:
        """``peer`` just proved ``topic``: tell it we follow the topic (if we do), and take
        the subscription it sent before it had proved it."""
        peer_id = ID.from_base58(peer)
        held = getattr(self, "_held_subscriptions", {}).get(peer_id, set())
        if topic in held:
            held.discard(topic)
            super().handle_subscription(peer_id, _pubsub_module.rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic))
        grafts = getattr(self, "_held_grafts", {}).get(peer_id, set())
        if topic in grafts:
            grafts.discard(topic)
            graft = _pubsub_module.rpc_pb2.ControlGraft(topicID=topic)
            self.manager.run_task(self.router.handle_graft, graft, peer_id)
        queue = self.peer_queues.get(peer_id)
        if queue is None:
            # Proved before our gossip stream to it is up: announce once it is.
            if not hasattr(self, "_due_announces"):
                self._due_announces = {}
            due = self._due_announces.setdefault(peer_id, set())
            if len(due) < HELD_SUBSCRIPTIONS_PER_PEER:
                due.add(topic)
            return
        if topic in self.topic_ids:
            packet, subopt = self._build_announce_rpc(topic, True)
            self._enqueue_or_retry_announce(peer_id, queue, packet, subopt)

    async def _handle_new_peer(self, peer_id: Any) -> None:
        await super()._handle_new_peer(peer_id)
        due = getattr(self, "_due_announces", {}).pop(peer_id, set())
        queue = self.peer_queues.get(peer_id)
        if queue is not None and peer_id in self._reannounce:
            # Our last stream to it died while it stayed connected (`_handle_dead_peer`):
            # it forgot what we follow with it (py-libp2p forgets a peer's subscriptions
            # whenever its stream dies), and nothing else would tell it again.
            self._reannounce.discard(peer_id)
            due |= {topic for topic in self.topic_ids if self._allowed(peer_id, topic)}
        for topic in sorted(due):
            if queue is not None and topic in self.topic_ids:
                packet, subopt = self._build_announce_rpc(topic, True)
                self._enqueue_or_retry_announce(peer_id, queue, packet, subopt)

    async def handle_peer_queue(self) -> None:
        """One gossip-stream registration per peer at a time, not one per connection event.

        py-libp2p starts a registration loop for every "connected" event, and each loop
        retries (every 0.5 s, growing to 10 s) for as long as *any* connection to the peer
        exists. Around a partition's heal a peer connects, is dropped and connects again,
        and the loops can pile up (in a default soak a relay's log shows 82 negotiations of
        a gossip stream to one member time out, 10 s each, within 13 s of a heal, on a peer
        such negotiations keep busy). Here a new connection wakes the peer's loop (it tries
        again at once) instead of adding another: at most one attempt per peer in flight."""
        async with self.peer_receive_channel:
            self.event_handle_peer_queue_started.set()
            async for peer_id in self.peer_receive_channel:
                self._schedule_peer_stream_retry(peer_id)

    def _schedule_peer_stream_retry(self, peer_id: Any) -> None:
        kicks = self._registration_kicks
        if peer_id in kicks:
            kicks[peer_id].set()
        elif self.manager.is_running:
            kicks[peer_id] = trio.Event()
            self.manager.run_task(self._register_peer, peer_id)

    async def _register_peer(self, peer_id: Any) -> None:
        """Open our gossip stream to ``peer_id``, retrying while it stays connected."""
        kicks = self._registration_kicks
        delay = PEER_STREAM_RETRY_S[0]
        try:
            while peer_id not in self.peers:
                before = self._live_connections(peer_id)
                try:
                    await self._handle_new_peer(peer_id)
                except (SwarmException, StreamClosed) as exc:
                    # No connection yet, or the hello not written: again while connected.
                    if not self._peer_is_connected(peer_id):
                        return
                    log.debug("gossip stream to %s failed (retrying): %s", peer_id, exc)
                except HostException as exc:
                    # The negotiation failed. If the peer answered that it does not speak
                    # gossipsub, asking again on the same connections is not worth it
                    # (py-libp2p gives up on every failed negotiation). If a connection
                    # closed under it or a new one came meanwhile (a member that moved: the
                    # relay closes the connection it abandoned), or the answer never came
                    # (a stream or connection that failed under it, a timeout), try again:
                    # py-libp2p counts on the next connection's event to start another loop,
                    # here that event only wakes this one, and a member whose try failed
                    # while it redialed got no gossip from its relay for good (a CPU-hog CI
                    # run of the NAT world's move test, on unchanged connections).
                    if not self._peer_is_connected(peer_id):
                        return
                    if _refused(exc) and self._live_connections(peer_id) == before:
                        return
                    log.debug("gossip stream to %s failed (retrying): %s", peer_id, exc)
                except Exception as exc:  # noqa: BLE001 - anything else: only a new connection retries
                    log.debug("gossip stream to %s failed: %r", peer_id, exc)
                    if not kicks[peer_id].is_set():
                        return
                else:
                    return
                with trio.move_on_after(delay):
                    await kicks[peer_id].wait()
                if kicks[peer_id].is_set():
                    kicks[peer_id] = trio.Event()
                    delay = PEER_STREAM_RETRY_S[0]
                else:
                    delay = min(delay * 2, PEER_STREAM_RETRY_S[1])
        finally:
            kicks.pop(peer_id, None)

    async def stream_handler(self, stream: Any) -> None:
        """Read a peer's gossip stream (py-libp2p's handler), keeping count of which streams
        each peer has open to us (`_handle_dead_peer`)."""
        peer_id = stream.muxed_conn.peer_id
        streams = self._inbound.setdefault(peer_id, [])
        streams.append(stream)
        try:
            await self.continuously_read_stream(stream)
        except (StreamError, ParseError, IncompleteReadError) as exc:
            log.debug("gossip stream from %s failed (dropping it): %s", peer_id, exc)
            self._end_inbound(peer_id, stream)
            await stream.reset()
            self._handle_dead_peer(peer_id)
        finally:
            self._end_inbound(peer_id, stream)

    def _end_inbound(self, peer_id: Any, stream: Any) -> None:
        streams = self._inbound.get(peer_id, [])
        if stream in streams:
            streams.remove(stream)
        if not streams:
            self._inbound.pop(peer_id, None)

    def _handle_dead_peer(self, peer_id: Any) -> None:
        """Our gossip stream to a peer died (or, from py-libp2p's reader, theirs to us).

        py-libp2p then forgets every topic the peer said it follows. But a peer says that on
        *its* stream to us, and when ours dies while it is still connected its stream may be
        alive: a member that moved networks opens new streams on its new connection and
        announces its topics there, and the relay's write to the stream on the abandoned
        connection failing a moment later wiped what the new one had just said. The relay
        then sent it nothing (likely how the NAT world's move test failed under a CPU hog,
        no gossip for 150 s and everything by reconciliation; not shown). So while one of
        the peer's streams to us is being read, what it said stands; and the stream we open
        to it again announces our topics afresh (`_reannounce`)."""
        connected = self._peer_is_connected(peer_id)
        kept = [t for t, peers in self.peer_topics.items() if peer_id in peers] if self._inbound.get(peer_id) else []
        super()._handle_dead_peer(peer_id)
        if not connected:
            return
        self._reannounce.add(peer_id)
        for topic in kept:
            self.handle_subscription(peer_id, _pubsub_module.rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic))

    def _live_connections(self, peer_id: Any) -> frozenset[int]:
        """Which of the peer's connections are open (by identity)."""
        try:
            connections = self.host.get_network().get_connections(peer_id)
        except Exception:  # noqa: BLE001 - as py-libp2p's own check: no answer is no connection
            return frozenset()
        return frozenset(id(c) for c in connections if not getattr(c.muxed_conn, "is_closed", False))

    def handle_subscription(self, origin_id: Any, sub_message: Any) -> None:
        if not sub_message.subscribe or self._allowed(origin_id, sub_message.topicid):
            if not sub_message.subscribe:
                getattr(self, "_held_subscriptions", {}).get(origin_id, set()).discard(sub_message.topicid)
            super().handle_subscription(origin_id, sub_message)
            return
        # Not proved yet (its proof may be a moment away in a sync session that is still
        # running): remember it, bounded, and apply it in `announce_to`.
        if not hasattr(self, "_held_subscriptions"):
            self._held_subscriptions = {}
        held = self._held_subscriptions.setdefault(origin_id, set())
        if len(held) < HELD_SUBSCRIPTIONS_PER_PEER:
            held.add(sub_message.topicid)
        self.on_unproved(origin_id.to_base58(), sub_message.topicid)

    def hold_graft(self, peer_id: Any, topic: str) -> None:
        """Keep a GRAFT for a topic the peer has not proved yet (bounded), for `announce_to`."""
        if not hasattr(self, "_held_grafts"):
            self._held_grafts = {}
        held = self._held_grafts.setdefault(peer_id, set())
        if len(held) < HELD_SUBSCRIPTIONS_PER_PEER:
            held.add(topic)

    async def publish(self, topic_id: str | list[str], data: bytes) -> None:
        """Publish with no origin, sequence number or signature (StrictNoSign)."""
        topics = [topic_id] if isinstance(topic_id, str) else list(topic_id)
        message = _pubsub_module.rpc_pb2.Message(data=data, topicIDs=topics)
        await self.push_msg(self.my_id, message)


class _GatedGossipSub(GossipSub):
    """GossipSub that serves a topic's control messages only to peers that proved it, and
    that works without origins: message ids are content hashes everywhere (py-libp2p's
    message cache and equivocation check key on origin and sequence number, which are
    empty here), and peer exchange never makes us dial peers someone else names."""

    pubsub: _GuardedPubsub | None  # (the only Pubsub make_host attaches it to)
    hub = False
    """A relay's router (`_make_router`): it forwards every message to every peer that follows
    the topic, not only to its mesh."""
    held_back: OrderedDict[bytes, None]
    """Ids of received messages we do not forward (`NetStack.hold_back`), the latest
    `HELD_BACK_IDS` (set by `_make_router`)."""

    def _allowed(self, peer_id: Any, topic: str) -> bool:
        pubsub = self.pubsub
        return pubsub is not None and pubsub._allowed(peer_id, topic)

    async def publish(self, msg_forwarder: Any, pubsub_msg: Any) -> None:
        """Pass a validated message on, unless it brought us nothing new (`NetStack.hold_back`):
        then it is neither sent, nor queued for peers not subscribed yet, nor cached for
        IHAVE gossip; we passed its envelopes on when they first came."""
        pubsub = self.pubsub
        if pubsub is None or msg_forwarder == pubsub.my_id or pubsub.get_message_id(pubsub_msg) not in self.held_back:
            await super().publish(msg_forwarder, pubsub_msg)

    def _get_peers_to_send(
        self, topic_ids: Iterable[str], msg_forwarder: Any, origin: Any, msg_id: bytes | None = None
    ) -> Iterator[Any]:
        """The mesh (py-libp2p's choice), and also every peer that follows the topic when we
        publish our own message (gossipsub v1.1's flood publishing, which go-libp2p does by
        default and py-libp2p 0.8 lacks) or when we are a relay.

        A peer joins a topic's mesh at the next heartbeat after it subscribes, and a message
        sent in between reaches it only through IHAVE gossip, a heartbeat later, or the
        next reconciliation: after a partition healed, a default soak's posts to members
        who had just reconnected to a relay arrived 1-2 s late that way (and the
        recipients' parents waited with them). Only peers that follow the topic are added,
        and a subscription counts only once the peer proved the topic (`_GuardedPubsub`)."""
        pubsub = self.pubsub
        topics = list(topic_ids)
        chosen = set(super()._get_peers_to_send(topics, msg_forwarder, origin, msg_id))
        if pubsub is not None and (self.hub or msg_forwarder == pubsub.my_id):
            unwanted = self.dont_send_message_ids
            for topic in topics:
                for peer_id in pubsub.peer_topics.get(topic, ()):
                    if (
                        peer_id not in (msg_forwarder, origin)
                        and self._allowed(peer_id, topic)
                        and (msg_id is None or msg_id not in unwanted.get(peer_id, ()))
                    ):
                        chosen.add(peer_id)
        yield from chosen

    async def handle_graft(self, graft_msg: Any, sender_peer_id: Any) -> None:
        if not self._allowed(sender_peer_id, graft_msg.topicID):
            # Not proved yet: its proof may be a moment away, in a sync session still
            # running. A PRUNE here made the peer back off for a minute, and its GRAFT once
            # proved then tripped py-libp2p's GRAFT-flood check (a GRAFT within 10 s of a
            # PRUNE from us: penalised and pruned again), so a new topic's mesh stayed empty
            # for a minute or more and its first posts went by reconciliation. The GRAFT is
            # held instead and applied when the proof arrives (`announce_to`); until then
            # the router sends the peer nothing of the topic.
            pubsub = self.pubsub
            if pubsub is not None:
                pubsub.hold_graft(sender_peer_id, graft_msg.topicID)
                pubsub.on_unproved(sender_peer_id.to_base58(), graft_msg.topicID)
            return
        await super().handle_graft(graft_msg, sender_peer_id)

    async def handle_ihave(self, ihave_msg: Any, sender_peer_id: Any) -> None:
        if self._allowed(sender_peer_id, ihave_msg.topicID):
            await super().handle_ihave(ihave_msg, sender_peer_id)

    async def handle_iwant(self, iwant_msg: Any, sender_peer_id: Any) -> None:
        # Serve only messages of topics the peer proved: filter the ids through the cache.
        wanted = []
        for mid in iwant_msg.messageIDs:
            raw = _gossipsub_module.safe_bytes_from_hex(mid)
            message = self.mcache.get(raw) if raw is not None else None
            if message is not None and all(self._allowed(sender_peer_id, t) for t in message.topicIDs):
                wanted.append(mid)
        if wanted:
            await super().handle_iwant(_pubsub_module.rpc_pb2.ControlIWant(messageIDs=wanted), sender_peer_id)

    def _check_equivocation(self, msg: Any) -> bool:
        return True  # no origin, no sequence numbers: content-addressed, nothing to equivocate

    async def _do_px(self, px_peers: Any) -> None:
        return None


class _ContentMessageCache(MessageCache):
    """py-libp2p's gossip window keyed by content hash (its own key is origin + seqno)."""

    def put(self, msg: Any) -> None:
        mid = _content_id(msg)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))


class _Room:
    """Wakes publishers waiting for room in the outbound gossip queues."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def wake(self) -> None:
        if self._event.statistics().tasks_waiting:
            self._event.set()
            self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


_ROOM = _Room()
"""Process-wide like the queues' class: a wake-up is only a prompt to look at the backlog again."""


def _publish_only(rpc: Any) -> bool:
    return not rpc.subscriptions and not rpc.HasField("control") and len(rpc.publish) > 0


class _OutboundQueue(RpcQueue):
    """py-libp2p's per-peer outbound gossip queue, with three changes: it holds
    PEER_QUEUE_SIZE RPCs (its default drops bursts of ordinary size); every RPC it hands
    to the sender wakes publishers waiting for room, so back-pressure waits on an event;
    and messages already waiting behind the one the sender takes go with it, in one RPC.

    **Merging.** A relay forwards every gossip message to each member as its own RPC: one
    protobuf, one yamux frame, one Noise frame, one `send` and a wake-up of the receiving
    node per message per member (a third of a relay's time under load went to writing).
    When the sender gets to a peer's queue and several publish-only RPCs wait there, it
    takes them as one RPC whose `publish` lists their messages in order (gossipsub allows
    any number per RPC; py-libp2p's reader handles each as it would alone). Nothing waits
    to be merged, so a quiet queue sends each message at once as before; RPCs with
    subscriptions or control stay whole and keep their place, and priority (control) RPCs
    still go first. A merged RPC stays under `MERGED_RPC_BYTES`, half of what a receiver
    accepts (`GOSSIP_MAX_MESSAGE_BYTES`)."""

    def __init__(self, max_size: int = PEER_QUEUE_SIZE, **kwargs: Any) -> None:
        super().__init__(max(max_size, PEER_QUEUE_SIZE), **kwargs)

    async def pop(self) -> Any:
        rpc = await super().pop()
        if rpc is not None and _publish_only(rpc):
            rpc = self._merge_waiting(rpc)
        _ROOM.wake()
        return rpc

    def _merge_waiting(self, rpc: Any) -> Any:
        # py-libp2p's PriorityQueue has no peek; its two deques are read here directly
        # (`pop` above prefers `_priority`, so nothing is merged while one is waiting there).
        queue = self._queue
        waiting = queue._non_priority
        if not waiting or queue._priority:
            return rpc
        taken = []
        size = rpc.ByteSize()
        while waiting and _publish_only(waiting[0]) and size + waiting[0].ByteSize() <= MERGED_RPC_BYTES:
            size += waiting[0].ByteSize()
            taken.append(waiting.popleft())
        if not taken:
            return rpc
        # A fresh RPC: py-libp2p may hand one RPC object to several peers' queues.
        merged = _pubsub_module.rpc_pb2.RPC()
        for part in (rpc, *taken):
            merged.publish.extend(part.publish)
        return merged


def _raise_queue_sizes() -> None:
    # Both are process-wide: the subscription size is a module constant read at subscribe()
    # time, and pubsub builds each peer's outbound queue from its module's RpcQueue name.
    # Gossip stays lossy under overload anyway (reconciliation repairs it); this just stops
    # it losing the ordinary bursts.
    _pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_QUEUE_SIZE
    _pubsub_module.RpcQueue = _OutboundQueue  # type: ignore[misc, assignment]  # a deliberate patch


def parse_peer_address(text: str) -> tuple[str, list[str]]:
    """(peer id, [transport addrs]) from ``/ip4/…/tcp/…/p2p/<id>``; `UsageError` if malformed."""
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(text))
    except Exception as exc:  # noqa: BLE001 - multiaddr raises assorted types for bad text
        raise UsageError(f"not a peer address (expected /ip4/HOST/tcp/PORT/p2p/PEERID): {text}") from exc
    return info.peer_id.to_base58(), [str(a) for a in info.addrs]


class _ConnectionEvents(INotifee):
    """Forwards connects and disconnects to the node without ever blocking libp2p."""

    def __init__(self, send: trio.MemorySendChannel[tuple[str, str]]) -> None:
        self._send = send
        self.dropped = 0
        self.emitted = 0

    def _emit(self, kind: str, conn: Any) -> None:
        try:
            self._send.send_nowait((kind, conn.muxed_conn.peer_id.to_base58()))
            self.emitted += 1
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError, AttributeError):
            self.dropped += 1

    async def connected(self, network: Any, conn: Any) -> None:
        self._emit("connected", conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._emit("disconnected", conn)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


StreamHandler = Callable[[Any, str], Awaitable[None]]


@dataclass
class NetStack:
    """A running libp2p host with gossipsub, seen only through kith-shaped methods."""

    host: Any
    router: Any
    pubsub: Any
    events: trio.MemoryReceiveChannel[tuple[str, str]]
    notifee: _ConnectionEvents
    handler_errors: int = 0
    refused_signed: int = 0
    """Gossip messages refused for naming an origin or carrying a signature."""
    refused_unproved: int = 0
    """Gossip messages refused from a peer that had not proved the topic."""
    refused_topics: int = 0
    """Gossip messages refused for naming more than the one topic they came on (kith's name one)."""
    _subscriptions: dict[str, Any] = field(default_factory=dict)
    book: AddressBook = field(default_factory=AddressBook)
    """Where each peer was last reached (`connect` keeps it)."""
    _dialing: dict[str, trio.Event] = field(default_factory=dict)
    """Peers a `connect` is dialling now, set when it ends."""

    @property
    def peer_id(self) -> str:
        return self.host.get_id().to_base58()

    def hold_back(self, message_id: bytes) -> None:
        """Do not forward the gossip message with this id (`_content_id`; call it from the
        topic's validator, which runs before the router forwards): it is still taken in,
        marked seen and handed to our subscription, just not passed on."""
        held = self.router.held_back
        held[message_id] = None
        while len(held) > HELD_BACK_IDS:
            held.popitem(last=False)

    def listen_addresses(self) -> list[str]:
        """Full dialable addresses, with the /p2p/<peer id> suffix: the announced ones, or the
        listening ones with an unspecified host expanded to this host's interface addresses
        (`p2pnet.addresses`). Never 0.0.0.0 or ::, which would mean the reader's own machine."""
        return [str(a) for a in self.host.get_addrs()]

    def has_connection(self, peer: str) -> bool:
        """Whether an open connection to ``peer`` remains (libp2p reports each connection's
        close, and a peer can have two for a moment: both ends dialling at once, a redial)."""
        return self.connection_count(peer) > 0

    def connection_count(self, peer: str) -> int:
        """Open connections to ``peer`` (0, 1, or briefly 2)."""
        try:
            peer_id = parse_peer_id(peer)
        except NetError:
            return 0
        return sum(not c.is_closed for c in self.host.get_network().connections.get(peer_id, ()))

    def connected_peers(self) -> list[str]:
        return sorted(p.to_base58() for p in self.host.get_connected_peers())

    def connection_endpoints(self) -> dict[str, list[tuple[str, int]]]:
        """Peer -> the remote (address, port) of each open connection, as its socket has it."""
        found: dict[str, list[tuple[str, int]]] = {}
        for conn in self.host.get_network().get_connections():
            try:
                peer = conn.muxed_conn.peer_id.to_base58()
                remote = conn.muxed_conn.get_remote_address()
            except (AttributeError, OSError):
                continue  # a connection being torn down
            if remote is not None and len(remote) >= 2:
                found.setdefault(peer, []).append((str(remote[0]), int(remote[1])))
        return found

    def dialed_sources(self) -> dict[tuple[str, tuple[str, int]], str]:
        """(peer, remote endpoint) -> the local address the socket of each connection this
        node dialed is bound to. The kernel chose it from the route when the connection was
        made, and it never changes, so `pathwatch.PathWatch` judges such a connection against
        it: a move right after the dial, before the node first looked, still shows.
        Connections a peer dialed are left out: their local address is the one the peer
        dialed, which on a host with two addresses need not be the one its route leaves from."""
        found: dict[tuple[str, tuple[str, int]], str] = {}
        for conn in self.host.get_network().get_connections():
            muxed = conn.muxed_conn
            if getattr(muxed, "is_initiator_value", False) is not True:
                continue
            local = _socket_local_address(muxed)
            try:
                peer = muxed.peer_id.to_base58()
                remote = muxed.get_remote_address()
            except (AttributeError, OSError):
                continue  # a connection being torn down
            if local is not None and remote is not None and len(remote) >= 2:
                found[(peer, (str(remote[0]), int(remote[1])))] = local
        return found

    async def connect(self, address: str, *, also: Sequence[str] = (), timeout: float = 10.0) -> str:
        """Reach the peer a full address names; returns its peer id. Raises `NetError`.

        Dials ``address`` first, then ``also`` (more addresses of the same peer, as an invite
        lists them), then every other address the book or the peer itself
        (libp2p's identify) gave for that peer, each `HAPPY_EYEBALLS_STAGGER_S` after the
        previous one unless it failed sooner; the first connection wins and the others are
        cancelled. An address that works goes first in the book; one that fails is forgotten.
        (py-libp2p's own ``host.connect`` dials only one TCP address per peer, the oldest it
        knows, so a peer that came back on a new port could never be reached again.)"""
        peer, _addrs = parse_peer_address(address)
        if is_unspecified(address):
            raise UsageError(
                f"{address} names no host (0.0.0.0 or :: means 'this machine' only to the node that listens);"
                " use an address from that node's 'kith status'"
            )
        peer_id = parse_peer_id(peer)
        if self.has_connection(peer):
            return peer
        under_way = self._dialing.get(peer)
        if under_way is not None:
            # Another task is dialling this peer (a join and the dial loop at once): share
            # its outcome rather than open a second connection, whose close later looks
            # like the peer leaving.
            with trio.move_on_after(timeout):
                await under_way.wait()
            if self.has_connection(peer):
                return peer
        done = trio.Event()
        self._dialing[peer] = done
        try:
            return await self._dial(peer, peer_id, address, also, timeout)
        finally:
            done.set()
            if self._dialing.get(peer) is done:
                del self._dialing[peer]

    async def _dial(self, peer: str, peer_id: Any, address: str, also: Sequence[str], timeout: float) -> str:
        """`connect`'s dialling: the addresses staggered, the first connection wins."""
        network = self.host.get_network()
        suffix = f"/p2p/{peer}"
        announced = [f"{a}{suffix}" for a in self._announced_transports(peer_id)]
        same_peer = [a for a in also if a.rsplit("/p2p/", 1)[-1] == peer]
        candidates = self.book.dial_order(peer, [address, *same_peer, *announced])
        errors: dict[str, str] = {}
        won: list[str] = []

        async def attempt(candidate: str, failed: trio.Event, done: trio.CancelScope) -> None:
            try:
                transport = multiaddr.Multiaddr(candidate.rsplit("/p2p/", 1)[0])
                conn = await network.dial_addr(transport, peer_id)
            except Exception as exc:  # noqa: BLE001 - libp2p raises many unrelated types on dial failure
                errors[candidate] = _why(exc)
                self.book.failed(peer, candidate)
                failed.set()
                return
            if won:  # another address connected at the same moment: one connection per peer
                with trio.CancelScope(shield=True):
                    await _close_quietly(conn)
                return
            won.append(candidate)
            self.book.worked(peer, candidate)
            done.cancel()

        with trio.move_on_after(timeout) as deadline:
            async with trio.open_nursery() as nursery:
                for candidate in candidates:
                    failed = trio.Event()
                    nursery.start_soon(attempt, candidate, failed, nursery.cancel_scope)
                    with trio.move_on_after(HAPPY_EYEBALLS_STAGGER_S):
                        await failed.wait()
        if won:
            schedule = getattr(self.host, "_schedule_identify", None)
            if schedule is not None:  # what host.connect does after a dial: learn its protocols
                schedule(peer_id, reason="connect")
            return peer
        if deadline.cancelled_caught and not errors:
            raise NetError(f"timed out connecting to {address}")
        reasons = "; ".join(f"{a.rsplit('/p2p/', 1)[0]}: {e}" for a, e in list(errors.items())[:3])
        if deadline.cancelled_caught:
            reasons += "; the rest timed out"
        raise NetError(f"cannot reach peer {peer[:12]}... ({len(candidates)} address(es) tried; {reasons})")

    def _announced_transports(self, peer_id: Any) -> list[str]:
        """The transport addresses the peer announced (identify keeps them in the peerstore,
        replacing the old ones each time it connects), minus any unspecified one."""
        try:
            addrs = self.host.get_peerstore().addrs(peer_id)
        except Exception:  # noqa: BLE001 - PeerStoreError when nothing is known
            return []
        out = []
        for addr in addrs:
            text = str(addr).rsplit("/p2p/", 1)[0]
            if not is_unspecified(text):
                out.append(text)
        return out

    async def close_abandoned(self, peer: str) -> int:
        """Close all but the newest of the connections ``peer`` opened to us; returns how many.

        A peer dials again only once it has given up its earlier connection (its address
        changed: pathwatch.py), and that connection's path may be dead without this end
        being told: our gossip stream to the peer would stay on it, silent, until TCP gives
        up. libp2p itself trims a second connection only after a 20 s grace period.
        Connections we opened are left alone, so two peers dialling each other at once
        never close both."""
        connections = self.host.get_network().get_connections(parse_peer_id(peer))
        theirs = [c for c in connections if getattr(c.muxed_conn, "is_initiator_value", True) is False]
        for conn in theirs[:-1]:
            with trio.move_on_after(5):
                try:
                    await conn.close()
                except Exception as exc:  # noqa: BLE001 - libp2p raises many types closing a dead socket
                    log.debug("closing an abandoned connection of %s: %r", peer[:12], exc)
        return max(0, len(theirs) - 1)

    async def disconnect(self, peer: str) -> None:
        try:
            await self.host.disconnect(parse_peer_id(peer))
        except Exception as exc:  # noqa: BLE001
            log.debug("disconnect %s failed: %s", peer[:12], exc)

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Register ``handler(stream, peer_id)``. Nothing it raises can reach libp2p,
        because an exception escaping a stream handler shuts the whole host down."""

        async def guarded(stream: Any) -> None:
            peer = stream.muxed_conn.peer_id.to_base58()
            try:
                await handler(stream, peer)
            except Exception as exc:  # noqa: BLE001 - the boundary that keeps the host alive
                self.handler_errors += 1
                log.warning("stream handler %s failed for peer %s: %r", protocol, peer[:12], exc)
                try:
                    await stream.reset()
                except Exception:  # noqa: BLE001, S110 - the failure above is logged; the stream is gone either way
                    pass

        self.host.set_stream_handler(TProtocol(protocol), guarded)

    async def open_stream(self, peer: str, protocol: str, *, timeout: float = 10.0) -> Any:
        """A new stream on our connection to ``peer``; never a dial (py-libp2p's
        ``new_stream`` dials a peer it is not connected to, so a reconciliation begun just
        before the node blocked a peer reconnected it: the node alone decides whom to dial)."""
        if not self.has_connection(peer):
            raise NetError(f"cannot open {protocol} to {peer[:12]}: not connected")
        try:
            with trio.fail_after(timeout):
                return await self.host.new_stream(parse_peer_id(peer), [TProtocol(protocol)])
        except trio.TooSlowError:
            raise NetError(f"timed out opening {protocol} to {peer[:12]}") from None
        except Exception as exc:  # noqa: BLE001
            raise NetError(f"cannot open {protocol} to {peer[:12]}: {exc}") from exc

    # --- gossip -------------------------------------------------------------------

    def set_gossip_policy(
        self, may_gossip: GossipPolicy, *, on_unproved: Callable[[str, str], None] | None = None
    ) -> None:
        """Which peers may exchange a topic's gossip (see `_GuardedPubsub`); ``on_unproved``
        hears of a peer announcing a topic it has not proved (the node may sync with it)."""
        self.pubsub.may_gossip = may_gossip
        if on_unproved is not None:
            self.pubsub.on_unproved = on_unproved

    def allow_gossip(self, peer: str, topic: str) -> None:
        """``peer`` has just proved ``topic`` (the policy now says so): start gossiping it."""
        try:
            self.pubsub.announce_to(peer, topic)
        except LifecycleError:
            log.debug("not announcing %s to %s: the gossip service is stopping", topic, peer[:12])

    def forget_peer(self, peer: str) -> None:
        """A peer left: drop what we held for it."""
        try:
            peer_id = parse_peer_id(peer)
        except NetError:
            return  # not a peer id: nothing was held for it
        tables = ("_held_subscriptions", "_due_announces", "_held_grafts")
        for table in (getattr(self.pubsub, name, None) for name in tables):
            if table is not None:
                table.pop(peer_id, None)
        self.pubsub._reannounce.discard(peer_id)

    def set_topic_validator(self, topic: str, validate: Callable[[str, bytes], bool]) -> None:
        """``validate(forwarder peer id, data)``; it must not raise, and is wrapped so it cannot.

        Before it runs: a message that names an origin, sequence number, key or signature
        is refused (StrictNoSign), and so are one that names any topic but this one (once),
        and one forwarded by a peer that did not prove the topic."""

        def guarded(forwarder: Any, message: Any) -> bool:
            try:
                if message.from_id or message.seqno or message.signature or message.key:
                    self.refused_signed += 1
                    return False
                if list(message.topicIDs) != [topic]:
                    # py-libp2p runs a validator per topic named, repeats included; ours
                    # are for one topic each and keep state (`GossipService._validate`).
                    self.refused_topics += 1
                    return False
                if not self.pubsub._allowed(forwarder, topic):
                    self.refused_unproved += 1
                    return False
                return bool(validate(forwarder.to_base58(), bytes(message.data)))
            except Exception as exc:  # noqa: BLE001 - a raising sync validator kills pubsub
                log.warning("gossip validator failed: %r", exc)
                return False

        self.pubsub.set_topic_validator(topic, guarded, False)

    async def subscribe(self, topic: str) -> Any:
        if topic not in self._subscriptions:
            self._subscriptions[topic] = await self.pubsub.subscribe(topic)
        return self._subscriptions[topic]

    async def unsubscribe(self, topic: str) -> None:
        if self._subscriptions.pop(topic, None) is not None:
            await self.pubsub.unsubscribe(topic)

    async def next_message(self, topic: str) -> bytes:
        """The data of the next gossip message (messages carry no origin)."""
        message = await self._subscriptions[topic].get()
        return bytes(message.data)

    async def publish(self, topic: str, data: bytes) -> None:
        await self.pubsub.publish(topic, data)
        # publish() has no checkpoint; a loop of publishes would starve the per-peer
        # sender tasks and overflow their queues. Yield once per message.
        await trio.lowlevel.checkpoint()

    async def wait_for_room(self, high_water: int) -> None:
        """Return once every peer's outbound gossip queue is shorter than ``high_water``."""
        while self.outbound_backlog() >= high_water:
            await _ROOM.wait()

    def outbound_queue(self, peer: str) -> int | None:
        """Gossip RPCs queued for ``peer`` (None: no gossip stream to it)."""
        try:
            queue = (getattr(self.pubsub, "peer_queues", {}) or {}).get(parse_peer_id(peer))
            return None if queue is None else len(queue)
        except (NetError, TypeError):
            return None

    def outbound_backlog(self) -> int:
        """The longest per-peer outbound gossip queue (for back-pressure)."""
        queues = getattr(self.pubsub, "peer_queues", {}) or {}
        longest = 0
        for queue in queues.values():
            try:
                longest = max(longest, len(queue))
            except TypeError:
                continue
        return longest

    def mesh_peers(self, topic: str) -> list[str]:
        mesh = getattr(self.router, "mesh", {}) or {}
        return sorted(p.to_base58() for p in mesh.get(topic, ()))


def _socket_local_address(muxed: Any) -> str | None:
    """The local address of the TCP socket under a py-libp2p connection (muxer -> secure
    session -> Noise reader/writer -> raw connection -> TrioTCPStream -> trio.SocketStream;
    py-libp2p exposes only the remote end), or None when the chain is not that shape."""
    try:
        stream = muxed.secured_conn.conn.conn.stream.stream
        return str(stream.socket.getsockname()[0])
    except (AttributeError, OSError, IndexError, TypeError):
        return None


@asynccontextmanager
async def open_netstack(
    network_key: NetworkKey, listen: list[str], announce: list[str] | None = None, *, hub: bool = False
) -> AsyncIterator[NetStack]:
    """Start a host (TCP, Noise, Yamux/Mplex) with gossipsub, listening on ``listen`` and
    telling peers ``announce`` (or, without it, its expanded listen addresses: `advertised`);
    ``hub`` for a relay (its gossip mesh: `_make_router`; how many peers it holds: limits.py)."""
    _raise_queue_sizes()
    host = _make_host(network_key, list(announce or []), peer_limits(relay=hub))
    router = _make_router(hub=hub)
    pubsub = _make_pubsub(host, router)
    send, receive = trio.open_memory_channel[tuple[str, str]](1024)
    notifee = _ConnectionEvents(send)
    host.get_network().register_notifee(notifee)
    addresses = [multiaddr.Multiaddr(a) for a in listen]
    async with host.run(listen_addrs=addresses):
        try:
            # The pubsub services must run before any connection is made: a constructed but
            # stopped Pubsub makes connect() hang uncancellably.
            if not host.get_transport_addrs():
                # py-libp2p logs a failed bind and carries on without listening; a node
                # nobody can reach must say so instead of pretending to run.
                raise NetError(f"cannot listen on {', '.join(listen)}: the address is in use or not available")
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                reclaim_logging()
                yield NetStack(host, router, pubsub, receive, notifee)
        finally:
            with trio.CancelScope(shield=True):
                # Leaving run() alone does not close the TCP listener.
                try:
                    await host.close()
                except Exception as exc:  # noqa: BLE001
                    log.debug("host close: %r", exc)


def _make_host(network_key: NetworkKey, announced: list[str], limits: PeerLimits) -> IHost:
    """A py-libp2p host with our transport choices; not listening yet."""
    key_pair = create_new_key_pair(network_key.seed)
    host = new_host(
        key_pair=key_pair,
        # Noise only: the default also offers TLS, SECIO and *plaintext*. Noise is what
        # js-libp2p and go-libp2p peers speak.
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)},
        # Yamux first, Mplex as a fallback for older peers; both are standard. Our yamux is
        # py-libp2p's with a reader that never waits on the socket (yamux.py: without it two
        # nodes sending hard to each other could wedge their connection for good).
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): KithYamux, TProtocol(MPLEX_PROTOCOL_ID): Mplex},
        transports=[TCP()],
        # One connection per peer, and as many peers as a member or a relay needs (limits.py).
        connection_config=limits.connection_config(),
        resource_manager=limits.resource_manager(),
        # Never advertise 0.0.0.0 (it means "this machine" to whoever reads it): the
        # announced addresses, or the listening ones expanded to our interface addresses.
        addrs_factory=lambda listening: advertised(listening, announced),
        # Addresses peers observed us at are our outbound connections' ephemeral ports,
        # which nobody can dial back (no port reuse): do not add them to what we advertise.
        disable_identify_address_discovery=True,
    )
    # The default retries a dead address for ~0.7 s inside one connect(); the node has
    # its own reconnect schedule, so fail fast and let it decide.
    swarm = cast(Swarm, host.get_network())  # (new_host's network is a Swarm; its interface omits these)
    # muxer_opt names KithYamux, but py-libp2p's negotiation builds its own Yamux by name.
    muxers = swarm.upgrader.muxer_multistream
    swarm.upgrader.muxer_multistream = KithMuxerMultistream(muxers.transports, muxers.negotiate_timeout)
    swarm.retry_config = RetryConfig(max_retries=1, initial_delay=0.05)
    # Worked out at most once a second (CachedAddrs): py-libp2p asks on every gossip message.
    host.get_addrs = CachedAddrs(host.get_addrs, lambda: tuple(swarm.listeners))  # type: ignore[method-assign]

    # The swarm's AutoConnector re-dials every peer it ever saw, every 10 s: the node
    # decides whom to talk to (bootstrap, relays, circle peers), so turn it off.
    async def _no_auto_connect() -> None:
        return None

    swarm.auto_connector.maybe_connect = _no_auto_connect  # type: ignore[method-assign]
    return host


HUB_MESH_DEGREE = 1000
"""A relay's gossip mesh degree (target, low and high alike): every member that proved a topic,
up to this many per topic (a circle holds at most 1,000 members), never pruned. With
py-libp2p's bounds (6, 4, 12) a relay serving a circle of 20 pruned 14 members, and its
PRUNE put each in a 60 s back-off in which neither side sends the other even IHAVEs: their
posts reached them only by reconciliation, 15-50 s later (`kith bench
relay_100_circles_forward_p99_ms`), or seconds later in the soak."""


def _make_router(*, hub: bool = False) -> _GatedGossipSub:
    """Gossipsub with the settings a small, private mesh needs (each one says why); ``hub``
    for a relay."""
    # A member keeps gossipsub's usual mesh of 6 (4-12) per topic. A relay is the hub its
    # circles' members connect to (often their only peer), so its mesh is *everyone* who
    # proved the topic: with 6-12, a relay of an 18-member circle pruned all but 6 every
    # heartbeat, and a member left out by both relays heard of a post only through IHAVE
    # gossip or the next reconciliation (the soak's seconds-long median; the pruned members
    # re-GRAFTing within their back-off also tripped py-libp2p's GRAFT-flood penalty).
    degree, low, high = (HUB_MESH_DEGREE,) * 3 if hub else (6, 4, 12)
    router = _GatedGossipSub(
        # meshsub 1.1 (and 1.0 for old peers): 1.2's IDONTWANT doubles CPU per message here.
        protocols=[MESHSUB_V11, MESHSUB_V10],
        degree=degree,
        degree_low=low,
        degree_high=high,
        heartbeat_initial_delay=0.1,
        # Default 120 s leaves meshes empty for minutes after a (re)connect; 1 s heals fast.
        heartbeat_interval=1,
        # Default spam protection allows 10 messages/s per forwarder and topic and silently
        # drops the rest, our own publishes included. Every envelope is validated by our
        # own validator, and peers are rate-limited by the node, so it is off.
        spam_protection_enabled=False,
        # Adaptive gossip rewrites the 1 s heartbeat to 30-60 s after ~30 s.
        adaptive_gossip_enabled=False,
        # Eclipse protection wants peers from >= 3 distinct IPs; loopback meshes and small
        # circles on one LAN would be starved of mesh peers.
        eclipse_protection_enabled=False,
    )
    router.hub = hub
    router.held_back = OrderedDict()
    router.mcache = _ContentMessageCache(router.mcache.window_size, router.mcache.history_size)
    # py-libp2p's queue of gossip for connected peers not (yet) subscribed to its topic
    # (`_pending_messages`, sent when they subscribe) stays, although it costs a relay of many
    # circles CPU (7 % at 100 circles): emptying it made both default soaks that ran without
    # it end with members who never got an epoch key, so some key delivery still rests on it
    # (docs/RELIABILITY.md, "Not yet explained").
    return router


def _make_pubsub(host: IHost, router: _GatedGossipSub) -> _GuardedPubsub:
    """Pubsub over ``router`` without origin signatures and with content-addressed ids."""
    return _GuardedPubsub(
        host,
        router,
        # StrictNoSign (see _GuardedPubsub): no origin signatures to make or check; the
        # validator refuses messages that carry one. js-libp2p's equivalent settings are
        # globalSignaturePolicy: 'StrictNoSign' and a msgIdFn of SHA-256 over the data.
        strict_signing=False,
        # Content-addressed ids: the same batch re-published is recognised as seen.
        msg_id_constructor=_content_id,
    )
