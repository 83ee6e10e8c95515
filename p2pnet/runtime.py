"""What a node holds only while it runs, each part built whole before anything uses it.

Theory of operation
-------------------
`Node.run` opens the disk first: a `Disk` holds the envelope store and, on a member's
node, the `MemberParts` (the encrypted state cache, the circles and the membership
lifecycle), all constructed before any of them is used. The node then loads what the disk
holds (a relay's topics, the circles' keys and pending work), opens the network, and once
its nursery is open builds the `Runtime` (host, gossip, the sync protocol's host, the
control server, the nursery) in one step, before it starts any task. So a node's code
never meets a half-built part: `Node.disk` and `Node.runtime` raise `LocalProtocolError`
before `run` got that far, and everything on them is there. A relay is a node whose disk
has no member parts; that is a mode, known from the start, not a stage of start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from kith.identity.errors import KithError
from kith.p2pnet.circles import MemberCircles
from kith.p2pnet.control import ControlServer
from kith.p2pnet.gossip import GossipService
from kith.p2pnet.lifecycle import Lifecycle
from kith.p2pnet.netstack import NetStack
from kith.p2pnet.statecache import StateCache
from kith.p2pnet.store import EnvelopeStore
from kith.p2pnet.syncproto import SyncPeer

log = logging.getLogger("kith.node")


@dataclass(frozen=True, slots=True)
class MemberParts:
    """A member's node's own storage and services (a relay has none of them)."""

    cache: StateCache
    circles: MemberCircles
    lifecycle: Lifecycle


@dataclass(frozen=True, slots=True)
class Disk:
    """What a running node keeps on disk."""

    store: EnvelopeStore
    member: MemberParts | None
    """None on a relay."""

    def close(self) -> None:
        """Save the circles' state (best effort: it is rebuilt from the store) and close both stores."""
        if self.member is not None:
            try:
                self.member.circles.save_snapshots(force=True)
            except KithError as exc:
                log.error("could not save circle state on shutdown: %s", exc)
            self.member.cache.close()
        self.store.close()


@dataclass(frozen=True, slots=True)
class Runtime:
    """The network side of a running node, and the nursery that owns its tasks."""

    net: NetStack
    gossip: GossipService
    sync_host: SyncPeer
    control: ControlServer | None
    """None when the node was made without a control API (`Node`'s ``control_api``)."""
    nursery: trio.Nursery
