"""A node's parts exist only once `run` built them whole; services get only what they use.

The first tests check `Node` against real loopback networking; the others drive the
membership lifecycle and a relay's topics with no node at all (a recording `Mesh`, plain
callables), which is the point of giving them narrow interfaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from p2pnet_harness import PASS, loopback_config, make_home, running

from kith.identity.errors import LocalProtocolError
from kith.identity.keyring import RelayTopic
from kith.p2pnet.circles import Circle, MemberCircles
from kith.p2pnet.control import socket_in_use
from kith.p2pnet.gate import Gate
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.lifecycle import Lifecycle, Mesh
from kith.p2pnet.netstack import NetError
from kith.p2pnet.node import Node
from kith.p2pnet.relaying import RelayTopics
from kith.p2pnet.statecache import StateCache
from kith.p2pnet.store import EnvelopeStore
from kith.p2pnet.syncproto import AcceptResult
from kith.sync.envelope import Envelope, circle_handle, epoch_id, relay_key
from kith.sync.invites import grant_signing_keypair, invite_topic, seal_invite_grant

pytestmark = pytest.mark.trio


async def test_a_node_has_its_running_parts_only_once_run_built_them(tmp_path: Path) -> None:
    home = make_home(tmp_path, "alice")
    node = Node(home, Keystore.unlock(home.keystore, PASS), loopback_config())
    with pytest.raises(LocalProtocolError, match="not running"):
        _ = node.runtime
    with pytest.raises(LocalProtocolError, match="storage is not open"):
        _ = node.store
    assert node.listen_addresses() == []
    heard: list[str] = []
    node.listeners.append(lambda event, _payload: heard.append(event))
    node.emit("before-run", {})  # no control server yet: in-process listeners still hear it
    assert heard == ["before-run"]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            runtime = node.runtime
            assert (runtime.net, runtime.gossip, runtime.control) == (node.net, node.gossip, node.control)
            assert node.listen_addresses() == runtime.net.listen_addresses() != []
            member = node.disk.member
            assert member is not None
            assert (member.circles, member.lifecycle, member.cache) == (node.circles, node.lifecycle, node.cache)
            # Made without a control API: it serves no control socket.
            assert node.control is None and not socket_in_use(home.socket)
            node.stop()


async def test_a_node_with_a_control_api_serves_it_and_a_relay_has_no_member_parts(tmp_path: Path) -> None:
    member_home, relay_home = make_home(tmp_path, "alice"), make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(60):
        async with running(member_home) as member, running(relay_home, relay=True) as relay:
            assert member.control is not None and socket_in_use(member_home.socket)
            assert relay.control is not None and socket_in_use(relay_home.socket)
            assert relay.disk.member is None
            assert (relay.circles, relay.lifecycle, relay.cache) == (None, None, None)
            with pytest.raises(LocalProtocolError, match="relay"):
                relay.fold_stored(b"\0" * 32, [])


class RecordingMesh:
    """A `Mesh` with no network: it records what the lifecycle asks of it."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.served: list[bytes] = []
        self.dropped: list[bytes] = []
        self.published: list[Envelope] = []
        self.folded: list[tuple[bytes, int]] = []
        self.sync_requests = 0

    def serve_topic_nowait(self, topic: bytes) -> None:
        self.served.append(topic)

    async def serve_topic(self, topic: bytes) -> None:
        self.served.append(topic)

    def drop_topic(self, topic: bytes) -> None:
        self.dropped.append(topic)

    def topic_size(self, topic: bytes) -> int:
        return 0

    def publish_nowait(self, envelope: Envelope) -> None:
        self.published.append(envelope)

    async def accept(
        self, topic: bytes, envelopes: list[Envelope], source: str, *, via_gossip: bool = False
    ) -> AcceptResult:
        raise AssertionError("nothing in this test accepts envelopes")

    def fold_stored(self, topic: bytes, envelopes: list[Envelope]) -> None:
        self.folded.append((topic, len(envelopes)))

    def fold_held(self, circle: Circle) -> None:
        return None

    async def connect(self, address: str, *, also: Sequence[str] = (), timeout: float = 10.0) -> str:
        raise NetError("no network in this test")

    def request_sync(self) -> None:
        self.sync_requests += 1

    def peer_count(self) -> int:
        return 0

    def listen_addresses(self) -> list[str]:
        return list(self.addresses)


async def test_the_lifecycle_runs_on_its_narrow_interface_without_a_node(tmp_path: Path) -> None:
    home = make_home(tmp_path, "alice")
    keystore = Keystore.unlock(home.keystore, PASS)
    store = EnvelopeStore(home.store, fsync=False)
    cache = StateCache(home.root / "state.sqlite", keystore.data.storage_key, fsync=False)
    try:
        circles = MemberCircles(keystore, store, cache, clock=lambda: 1_700_000_000.0)
        gate = Gate()
        here = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExampleExampleExampleExampleExampleExample"
        mesh = RecordingMesh([here])
        events: list[tuple[str, dict[str, Any]]] = []
        checked: Mesh = mesh  # the recorder is a Mesh, as far as the type checker can tell
        lifecycle = Lifecycle(
            circles,
            store=store,
            gate=gate,
            keystore=keystore,
            mesh=checked,
            emit=lambda event, payload: events.append((event, payload)),
            clock=lambda: 1_700_000_000.0,
            private_delay_s=0.0,
        )
        circle, _genesis = circles.create_circle("Riverside")
        lifecycle.install_keys(circle)
        assert circle.current_topic in mesh.served and gate.serves(circle.current_topic)

        code = lifecycle.create_invite(circle, uses=1, expires_s=3600)
        # The invite's topic is served (the gate holds its key), and relays are told so
        # with a grant that was stored, then handed to the mesh to gossip.
        topic = invite_topic(code.secret)
        assert topic in mesh.served and gate.serves(topic)
        grants = [e for e in mesh.published if e.topic == circle.current_topic]
        assert grants and all(store.get_many([e.id]) for e in grants)
        # A private node with no relay gives its own (loopback) address, from the mesh.
        assert code.addresses == (here,)
        assert lifecycle.pending_joins() == []
    finally:
        cache.close()
        store.close()


async def test_relay_topics_serve_an_invite_until_its_grant_ends_and_keep_a_circle_in_its_quota(
    tmp_path: Path,
) -> None:
    keystore = Keystore.unlock(make_home(tmp_path, "relay", relay=True).keystore, PASS)
    gate = Gate()
    now = [1_700_000_000.0]
    served: list[bytes] = []
    dropped: list[bytes] = []
    relaying = RelayTopics(
        keystore,
        gate,
        clock=lambda: now[0],
        serve_topic=served.append,
        drop_topic=dropped.append,
        storage_failed=lambda exc: pytest.fail(f"no write fails here: {exc}"),
    )
    epoch_key = bytes(range(32))
    epoch = epoch_id(epoch_key)
    handle = circle_handle(bytes(16))
    grant_key = grant_signing_keypair(epoch_key)[0]
    entry = RelayTopic(handle, "Riverside", {epoch: relay_key(epoch_key)}, 1000, {epoch: grant_key})
    (wire,) = relaying.serve(entry)
    assert gate.serves(wire) and relaying.wires_of(handle) == [wire]

    # A grant sealed with a key the relay does not hold for this epoch is ignored.
    forged = seal_invite_grant(epoch_key=bytes(32), secret=b"\1" * 32, until=int(now[0]) + 60, ts=int(now[0]))
    relaying.on_grant(wire, forged)
    assert served == [] and relaying.invites == {}

    secret = b"\2" * 32
    grant = seal_invite_grant(epoch_key=epoch_key, secret=secret, until=int(now[0]) + 60, ts=int(now[0]))
    relaying.on_grant(wire, grant)
    topic = invite_topic(secret)
    assert served == [topic] and topic in relaying.invites and gate.serves(topic)
    relaying.expire_invites()
    assert dropped == []
    now[0] += 61
    relaying.expire_invites()
    assert dropped == [topic] and topic not in relaying.invites

    # The quota covers the circle's topics together: room for one more grant, not two.
    second = seal_invite_grant(epoch_key=epoch_key, secret=b"\3" * 32, until=0, ts=int(now[0]))
    stored: Counter[bytes] = Counter({wire: 1000 - len(grant.data)})
    result, refused = AcceptResult(), Counter[str]()
    kept = relaying.within_quota(wire, [grant, second], stored, result, refused)
    assert kept == [grant] and result.rejected == 1 and refused == Counter({"topic over quota": 1})
    # A topic the relay does not serve has no room at all.
    assert relaying.within_quota(b"\0" * 32, [grant], stored, AcceptResult(), refused) == []
