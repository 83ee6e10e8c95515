"""How many peers a node holds at once, and py-libp2p's connection limits set to match.

py-libp2p 0.8 caps connections in four places, each with its own default:

* the swarm (`ConnectionConfig`): ``max_connections`` 300 minus ``min_connections`` 50, so
  the 251st inbound connection is closed before its handshake, silently (the dialer sees
  "failed to negotiate the secure protocol");
* the resource manager's connection tracker: 256 established inbound, 8 per peer;
* the resource manager itself: 1,000 connections, 10,000 streams;
* the process's open-file limit (one descriptor per TCP connection), often 1,024.

A member's node talks to its relays and a few peers: py-libp2p's defaults suit it. A relay
is the hub every member of its circles connects to (a relay for 100 circles of 20 is 2,000
members): with the defaults it held 250 and refused the rest.

One rule for both, whatever the defaults: the tracker's per-peer cap is off. kith keeps one
connection per peer itself (``max_connections_per_peer=1``, `NetStack.close_abandoned`), and
the tracker leaks a slot for some connections torn down while they were being set up (it
prunes them only 30 s later): in soaks with restarts and partitions, members were refused by
their relay for seconds at a time with "Established per peer limit exceeded: 8 >= 8".
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from libp2p.network.config import ConnectionConfig
from libp2p.rcmgr import ResourceManager
from libp2p.rcmgr.connection_limits import ConnectionLimits
from libp2p.rcmgr.manager import ResourceLimits

log = logging.getLogger(__name__)

RELAY_MAX_PEERS = 4096
"""Peers a relay holds at once (members, other relays, strangers being refused)."""
MEMBER_MAX_PEERS = 250
"""py-libp2p's own inbound cap (300 - 50), kept for members: they hold a handful."""
SPARE_FILES = 256
"""Descriptors beyond the peers' (one each): databases, logs, the control socket, listeners."""
STREAMS_PER_PEER = 8
"""Gossip both ways, a sync session or two, a private request: 8 is generous."""


@dataclass(frozen=True)
class PeerLimits:
    max_peers: int

    def connection_config(self) -> ConnectionConfig:
        return ConnectionConfig(
            # One connection per peer. With the default (3) every successful dial waits out a
            # 250 ms happy-eyeballs timer; with 1 a loopback connect takes ~5 ms.
            max_connections_per_peer=1,
            # The swarm admits max_connections - min_connections inbound connections.
            max_connections=self.max_peers + 50,
            min_connections=50,
            # The pruner closes idle connections above high_watermark (down towards low):
            # never below what we mean to hold.
            high_watermark=self.max_peers + 50,
            low_watermark=min(100, self.max_peers),
        )

    def resource_manager(self) -> ResourceManager:
        return ResourceManager(
            limits=ResourceLimits(
                max_connections=self.max_peers + 64,
                max_streams=(self.max_peers + 64) * STREAMS_PER_PEER,
            ),
            connection_limits=ConnectionLimits(
                max_pending_inbound=64,
                max_pending_outbound=64,
                max_established_inbound=self.max_peers,
                max_established_outbound=256,
                max_established_per_peer=None,  # see the module's docstring
                max_established_total=self.max_peers + 256,
            ),
            # These two rewrite the limits above at run time (degradation shrinks them by a
            # fifth per level when one is reached; the breaker refuses every connection for
            # 60 s after 5 errors in admission): a relay full of members would start
            # refusing the members it already serves. The caps above are the policy.
            enable_circuit_breaker=False,
            enable_graceful_degradation=False,
        )


def peer_limits(*, relay: bool) -> PeerLimits:
    """The limits for a relay or a member; a relay also raises the process's open-file limit
    as far as it needs (up to the hard limit) and, if the hard limit is lower, holds fewer
    peers and says how to allow more."""
    if not relay:
        return PeerLimits(MEMBER_MAX_PEERS)
    wanted = RELAY_MAX_PEERS + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        allowed = max(MEMBER_MAX_PEERS, hard - SPARE_FILES)
        log.warning(
            "this relay can hold %d members at once, not %d: the open-file limit is %d; raise it "
            "(ulimit -n %d, or LimitNOFILE=%d in a systemd unit)",
            allowed,
            RELAY_MAX_PEERS,
            hard,
            wanted,
            wanted,
        )
        wanted = hard
    else:
        allowed = RELAY_MAX_PEERS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return PeerLimits(allowed)
