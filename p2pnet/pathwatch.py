"""Connections the machine can no longer carry: a laptop that moved to another network.

When a node's address changes (home Wi-Fi to a cafe's, or to mobile data) its open TCP
connections do not fail. Their packets leave from an address that no longer exists or is
no longer routed back, the answers go nowhere, and TCP retries for about fifteen minutes
while the node still counts its relay as connected, so it neither redials nor receives.
Nothing comes back from the peer to tell it; its own kernel can: for every connection,
which local address would a packet to that peer leave from *now*? A connected UDP socket
answers that without sending anything. When the answer differs from the one given when
the connection was first seen (or the route is gone), the connection's path is gone:
the node drops it and dials again at once.

This does not notice a path that dies elsewhere (a NAT forgetting its mapping, a peer's
machine losing power); only a change on this machine.

`PathWatch` is the bookkeeping (the route lookup is passed in, so it is tested without a
network); `route_source` is the lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

RouteLookup = Callable[[str, int], "str | None"]
Endpoint = tuple[str, int]


def route_source(host: str, port: int) -> str | None:
    """The local address this machine would send from to reach ``host:port`` now, or None
    if it has no route there. Connecting a UDP socket picks a route and sends nothing."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET  # never a DNS lookup
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
    except (OSError, ValueError, OverflowError):  # no route, no such family, no descriptor left
        return None


class PathWatch:
    """Remembers the local address each connection's route had when first seen; reports the
    peers all of whose connections now route from elsewhere."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, Endpoint], str | None] = {}

    def observe(self, connections: dict[str, list[Endpoint]], lookup: RouteLookup) -> None:
        """Record the route of each connection not seen before. Called as soon as a connection
        opens, so a move right after connecting is judged against the route it was made on."""
        for peer, endpoints in connections.items():
            for endpoint in endpoints:
                if (peer, endpoint) not in self._first:
                    self._first[(peer, endpoint)] = lookup(*endpoint)

    def stale(self, connections: dict[str, list[Endpoint]], lookup: RouteLookup) -> list[str]:
        """Peers (of ``connections``: peer -> remote endpoints of its open connections) whose
        every connection's route changed since first seen. A reported peer is forgotten, so
        its next connection is judged afresh."""
        seen: set[tuple[str, Endpoint]] = set()
        stale = []
        for peer, endpoints in sorted(connections.items()):
            moved = 0
            for endpoint in endpoints:
                key = (peer, endpoint)
                seen.add(key)
                now = lookup(*endpoint)
                if key not in self._first:
                    self._first[key] = now
                elif now != self._first[key] and (now is not None or self._first[key] is not None):
                    moved += 1
            if endpoints and moved == len(endpoints):
                stale.append(peer)
        for key in [k for k in self._first if k not in seen or k[0] in stale]:
            del self._first[key]
        return stale
