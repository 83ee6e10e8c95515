"""Connections the machine can no longer carry: a laptop that moved to another network.

When a node's address changes (home Wi-Fi to a cafe's, or to mobile data) its open TCP
connections do not fail. Their packets leave from an address that no longer exists or is
no longer routed back, the answers go nowhere, and TCP retries for about fifteen minutes
while the node still counts its relay as connected, so it neither redials nor receives.
Nothing comes back from the peer to tell it; its own kernel can: for every connection,
which local address would a packet to that peer leave from *now*? A connected UDP socket
answers that without sending anything. When the answer differs from the one given when
the connection was made (or the route is gone), the connection's path is gone: the node
drops it and dials again at once. For a connection this node dialed, "when it was made" is
exact: its socket stays bound to the address the kernel chose then. For one a peer dialed,
it is the route first seen, as the connection opened.

This does not notice a path that dies elsewhere (a NAT forgetting its mapping, a peer's
machine losing power); only a change on this machine.

`PathWatch` is the bookkeeping (the route lookup is passed in, so it is tested without a
network); `route_source` is the lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping

RouteLookup = Callable[[str, int], "str | None"]
Endpoint = tuple[str, int]
Sources = Mapping[tuple[str, Endpoint], str]
"""(peer, remote endpoint) -> the local address the connection's socket is bound to, for
the connections this node dialed (`NetStack.dialed_sources`)."""


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
    """Remembers the local address each connection was made from (its socket's, for the ones
    this node dialed; else the route when first seen); reports the peers all of whose
    connections now route from elsewhere."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, Endpoint], str | None] = {}

    def observe(
        self, connections: dict[str, list[Endpoint]], lookup: RouteLookup, sources: Sources | None = None
    ) -> None:
        """Record where each connection not seen before was made from. Called as soon as a
        connection opens, so a move right after connecting is judged against the route it
        was made on; ``sources`` makes that exact for the connections this node dialed."""
        for peer, endpoints in connections.items():
            for endpoint in endpoints:
                if (peer, endpoint) not in self._first:
                    self._first[(peer, endpoint)] = self._made_from(peer, endpoint, lookup, sources)

    def stale(
        self, connections: dict[str, list[Endpoint]], lookup: RouteLookup, sources: Sources | None = None
    ) -> list[str]:
        """Peers (of ``connections``: peer -> remote endpoints of its open connections) whose
        every connection's route changed since it was made. A reported peer is forgotten, so
        its next connection is judged afresh."""
        seen: set[tuple[str, Endpoint]] = set()
        stale = []
        for peer, endpoints in sorted(connections.items()):
            moved = 0
            for endpoint in endpoints:
                key = (peer, endpoint)
                seen.add(key)
                if key not in self._first:
                    self._first[key] = self._made_from(peer, endpoint, lookup, sources)
                now = lookup(*endpoint)
                if now != self._first[key] and (now is not None or self._first[key] is not None):
                    moved += 1
            if endpoints and moved == len(endpoints):
                stale.append(peer)
        for key in [k for k in self._first if k not in seen or k[0] in stale]:
            del self._first[key]
        return stale

    @staticmethod
    def _made_from(peer: str, endpoint: Endpoint, lookup: RouteLookup, sources: Sources | None) -> str | None:
        bound = (sources or {}).get((peer, endpoint))
        return bound if bound is not None else lookup(*endpoint)
