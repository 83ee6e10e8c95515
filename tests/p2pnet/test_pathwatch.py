"""PathWatch: which connections' routes moved under them (the lookup is injected)."""

from __future__ import annotations

import pytest
import trio

from kith.identity.keys import NetworkKey
from kith.p2pnet.netstack import open_netstack
from kith.p2pnet.pathwatch import PathWatch, route_source

RELAY = ("10.0.1.2", 4747)
OTHER = ("10.0.9.9", 4747)


def test_a_route_that_keeps_its_source_is_never_stale() -> None:
    watch = PathWatch()
    routes = {RELAY: "10.1.0.3"}
    for _ in range(3):
        assert watch.stale({"relay": [RELAY]}, lambda h, p: routes[(h, p)]) == []


def test_a_route_that_now_leaves_from_another_address_is_stale_once() -> None:
    watch = PathWatch()
    routes = {RELAY: "10.1.0.3"}
    lookup = lambda h, p: routes[(h, p)]  # noqa: E731
    assert watch.stale({"relay": [RELAY]}, lookup) == []
    routes[RELAY] = "10.0.5.2"  # the machine moved networks
    assert watch.stale({"relay": [RELAY]}, lookup) == ["relay"]
    # Forgotten once reported: the new connection (same endpoint) is judged from its own route.
    assert watch.stale({"relay": [RELAY]}, lookup) == []
    assert watch.stale({"relay": [RELAY]}, lookup) == []


def test_a_route_that_vanished_is_stale_and_one_that_never_existed_is_left_alone() -> None:
    watch = PathWatch()
    routes: dict[tuple[str, int], str | None] = {RELAY: "10.1.0.3", OTHER: None}
    lookup = lambda h, p: routes[(h, p)]  # noqa: E731
    assert watch.stale({"relay": [RELAY], "other": [OTHER]}, lookup) == []
    routes[RELAY] = None  # no route at all any more
    assert watch.stale({"relay": [RELAY], "other": [OTHER]}, lookup) == ["relay"]


def test_a_peer_with_one_live_connection_left_is_kept() -> None:
    watch = PathWatch()
    routes = {RELAY: "10.1.0.3", OTHER: "10.1.0.3"}
    lookup = lambda h, p: routes[(h, p)]  # noqa: E731
    assert watch.stale({"relay": [RELAY, OTHER]}, lookup) == []
    routes[RELAY] = "10.0.5.2"
    assert watch.stale({"relay": [RELAY, OTHER]}, lookup) == []
    routes[OTHER] = "10.0.5.2"
    assert watch.stale({"relay": [RELAY, OTHER]}, lookup) == ["relay"]


def test_closed_connections_are_forgotten() -> None:
    watch = PathWatch()
    routes = {RELAY: "10.1.0.3"}
    lookup = lambda h, p: routes[(h, p)]  # noqa: E731
    watch.stale({"relay": [RELAY]}, lookup)
    watch.stale({}, lookup)  # the connection closed
    routes[RELAY] = "10.0.5.2"
    assert watch.stale({"relay": [RELAY]}, lookup) == []  # a new connection, first seen now


def test_route_source_asks_the_kernel_without_sending() -> None:
    assert route_source("127.0.0.1", 9) == "127.0.0.1"
    assert route_source("::1", 9) in ("::1", None)  # None where the machine has no IPv6


def test_route_source_answers_none_for_what_is_not_an_address() -> None:
    assert route_source("not an address", 9) is None
    assert route_source("127.0.0.1", 70000) is None


def test_a_connection_observed_when_it_opened_is_judged_by_that_route() -> None:
    """The node observes each connection as it opens: a move before the next tick still shows."""
    watch = PathWatch()
    routes = {RELAY: "10.1.0.3"}
    lookup = lambda h, p: routes[(h, p)]  # noqa: E731
    watch.observe({"relay": [RELAY]}, lookup)
    routes[RELAY] = "10.0.5.2"  # moved before the first tick
    assert watch.stale({"relay": [RELAY]}, lookup) == ["relay"]
    watch.observe({"relay": [RELAY]}, lookup)  # the new connection, observed as it opens
    assert watch.stale({"relay": [RELAY]}, lookup) == []


def test_a_connection_this_node_dialed_is_judged_by_its_socket_even_if_first_seen_after_a_move() -> None:
    """The race seen in CI: the machine moved before the node first looked at a connection it
    had just dialed. Its socket still says where it was made from, so it is stale at once."""
    watch = PathWatch()
    routes = {RELAY: "10.0.5.2", OTHER: "10.0.5.2"}  # already moved when first seen
    lookup = lambda h, p: routes[(h, p)]  # noqa: E731
    dialed = {("relay", RELAY): "10.1.0.3"}  # the socket, bound where the dial was made
    watch.observe({"relay": [RELAY], "other": [OTHER]}, lookup, dialed)
    assert watch.stale({"relay": [RELAY], "other": [OTHER]}, lookup, dialed) == ["relay"]
    # "other" dialed us: nothing but the route tells where it was made, judged from first sight.
    assert watch.stale({"other": [OTHER]}, lookup, {}) == []
    # The redial leaves from the new address: judged by its own socket, not stale.
    assert watch.stale({"relay": [RELAY]}, lookup, {("relay", RELAY): "10.0.5.2"}) == []


@pytest.mark.trio
async def test_dialed_sources_name_the_local_address_of_connections_this_node_opened_only() -> None:
    async with (
        open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as listener,
        open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as dialer,
    ):
        with trio.fail_after(30):
            peer = await dialer.connect(listener.listen_addresses()[0])
        dialed = dialer.dialed_sources()
        [(remote_peer, (host, port))] = dialed
        assert remote_peer == peer and host == "127.0.0.1"
        assert dialed[(remote_peer, (host, port))] == "127.0.0.1"
        assert dialer.connection_endpoints()[peer] == [(host, port)]
        assert listener.dialed_sources() == {}  # its connection was dialed by the other end
