"""Addresses that work between machines: what a node gives out, and reaching a peer again.

The pure parts (expanding 0.0.0.0, checking --announce, the address book) are tested
directly; then real nodes on loopback: a node listening on every interface never gives
out 0.0.0.0, an announced address is what it gives out, and a peer that comes back on a
new port is reached at once (py-libp2p alone kept dialing the old port forever).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from p2pnet_harness import address, make_home, running, wait_until

from kith.identity.errors import UsageError
from kith.p2pnet.addresses import (
    MAX_ADDRESSES_PER_PEER,
    AddressBook,
    check_announce,
    expand_unspecified,
    interface_addresses,
    is_public,
    is_unspecified,
)
from kith.p2pnet.config import NodeConfig
from kith.p2pnet.netstack import CachedAddrs, NetError
from kith.p2pnet.node import MAX_REDIAL_S, RECENTLY_LOST_REDIAL_S, RECENTLY_LOST_S, redial_backoff

PEER = "12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm"


def test_unspecified_hosts_expand_to_interfaces_loopback_last() -> None:
    interfaces = ["127.0.0.1", "192.168.1.20", "203.0.113.7", "::1", "fe80::1", "2001:db8::5"]
    expanded = expand_unspecified(["/ip4/0.0.0.0/tcp/4747", "/ip6/::/tcp/4747", "/ip4/10.0.0.1/tcp/9"], interfaces)
    assert not any(is_unspecified(a) for a in expanded)
    assert expanded[-2:] == ["/ip4/127.0.0.1/tcp/4747", "/ip6/::1/tcp/4747"]
    assert set(expanded) == {
        "/ip4/127.0.0.1/tcp/4747", "/ip4/192.168.1.20/tcp/4747", "/ip4/203.0.113.7/tcp/4747",
        "/ip6/::1/tcp/4747", "/ip6/2001:db8::5/tcp/4747", "/ip4/10.0.0.1/tcp/9",
    }  # fmt: skip
    assert "fe80" not in " ".join(expanded)  # link-local needs a zone to be dialed


def test_public_means_a_dns_name_or_a_globally_routable_ip() -> None:
    assert is_public("/dns4/relay.example.org/tcp/4747") and is_public(f"/ip4/8.8.8.8/tcp/4747/p2p/{PEER}")
    for private in ("/ip4/192.168.1.20/tcp/4747", "/ip4/127.0.0.1/tcp/1", "/ip6/fe80::1/tcp/1", "/ip4/10.0.0.1/tcp/1"):
        assert not is_public(private)


def test_this_host_has_at_least_loopback() -> None:
    assert "127.0.0.1" in interface_addresses()


@pytest.mark.parametrize(
    "text",
    ["/ip4/203.0.113.7/tcp/4747", "/dns4/relay.example.org/tcp/4747", "/dns6/relay.example.org/tcp/443",
     "/ip6/2001:db8::5/tcp/4747", "/dns/relay.example.org/tcp/4747"],
)  # fmt: skip
def test_announce_accepts_dialable_addresses(text: str) -> None:
    assert check_announce(text) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("/ip4/0.0.0.0/tcp/4747", "not 0.0.0.0"),
        ("/ip6/::/tcp/4747", "not ::"),
        ("/ip4/203.0.113.7/tcp/0", "not 0"),
        ("/ip4/203.0.113.7/tcp/4747/p2p/" + PEER, "without /p2p/"),
        ("/ip4/300.1.1.1/tcp/4747", "not an IP4"),
        ("/ip6/203.0.113.7/tcp/4747", "announce an address"),
        ("/dns4/-bad-/tcp/4747", "not a DNS name"),
        ("relay.example.org:4747", "expected /ip4/"),
        ("/ip4/203.0.113.7/udp/4747", "expected /ip4/"),
        ("/ip4/203.0.113.7/tcp/99999", "expected /ip4/"),
    ],
)
def test_announce_refuses_what_nobody_can_dial(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        check_announce(text)


def test_config_file_announce_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"announce": ["/ip4/0.0.0.0/tcp/4747"]}')
    with pytest.raises(UsageError, match="not 0.0.0.0"):
        NodeConfig.load(path, relay=True)
    path.write_text('{"announce": ["/dns4/relay.example.org/tcp/4747"]}')
    assert NodeConfig.load(path, relay=True).announce == ["/dns4/relay.example.org/tcp/4747"]
    # A real home is always durable: turning off fsync is for throwaway homes only.
    path.write_text('{"fsync": false}')
    with pytest.raises(UsageError, match="unknown setting 'fsync'"):
        NodeConfig.load(path)
    assert NodeConfig.load(tmp_path / "absent.json").fsync is True


def test_address_book_newest_working_first_failed_forgotten_bounded() -> None:
    book = AddressBook()
    old, new = f"/ip4/127.0.0.1/tcp/1000/p2p/{PEER}", f"/ip4/127.0.0.1/tcp/2000/p2p/{PEER}"
    book.worked(PEER, old)
    assert book.dial_order(PEER, [new]) == [new, old]  # what the user gave goes first
    book.failed(PEER, old)
    book.worked(PEER, new)
    assert book.known(PEER) == [new]
    book.worked(PEER, f"/ip4/0.0.0.0/tcp/3000/p2p/{PEER}")  # never kept
    assert book.dial_order(PEER, [f"/ip4/0.0.0.0/tcp/3000/p2p/{PEER}"]) == [new]
    for port in range(3000, 3000 + 3 * MAX_ADDRESSES_PER_PEER):
        book.worked(PEER, f"/ip4/127.0.0.1/tcp/{port}/p2p/{PEER}")
    assert len(book.known(PEER)) == MAX_ADDRESSES_PER_PEER


pytestmark_trio = pytest.mark.trio


@pytestmark_trio
async def test_a_node_on_every_interface_never_gives_out_0_0_0_0(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with running(make_home(tmp_path, "alice"), listen=["/ip4/0.0.0.0/tcp/0"]) as alice:
            given = alice.net.listen_addresses()
            assert given and not any("/ip4/0.0.0.0/" in a for a in given)
            assert any(a.startswith("/ip4/127.0.0.1/tcp/") for a in given)
            assert all(a.endswith(f"/p2p/{alice.net.peer_id}") for a in given)
            # And another node reaches it at what it gives out.
            async with running(make_home(tmp_path, "bob")) as bob:
                loopback = next(a for a in given if a.startswith("/ip4/127.0.0.1/"))
                assert await bob.connect(loopback) == alice.net.peer_id


@pytestmark_trio
async def test_announced_addresses_are_what_a_relay_gives_out(tmp_path: Path) -> None:
    announce = ["/dns4/relay.example.org/tcp/4747", "/ip4/203.0.113.7/tcp/4747"]
    with trio.fail_after(60):
        async with running(make_home(tmp_path, "relay", relay=True), relay=True, announce=announce) as relay:
            assert relay.net.listen_addresses() == [f"{a}/p2p/{relay.net.peer_id}" for a in announce]


@pytestmark_trio
async def test_a_peer_back_on_a_new_port_is_reached_again(tmp_path: Path) -> None:
    alice_home = make_home(tmp_path, "alice")
    with trio.fail_after(90):
        async with running(make_home(tmp_path, "bob")) as bob:
            async with running(alice_home) as alice:
                first = address(alice)
                peer = await bob.connect(first)
            # Alice is gone; bob notices, and the old address no longer answers.
            await wait_until(lambda: peer not in bob.peers, timeout=30)
            async with running(alice_home) as alice:
                second = address(alice)
                assert second != first and alice.net is not None and alice.net.peer_id == peer
                assert await bob.connect(second) == peer
                assert bob.net.book.known(peer)[0] == second
                await wait_until(lambda: bob.net is not None and peer in bob.net.connected_peers())
            await wait_until(lambda: peer not in bob.peers, timeout=30)
            # 0.0.0.0 names no host: refused at once, with what to use instead.
            with pytest.raises(UsageError, match="kith status"):
                await bob.connect(f"/ip4/0.0.0.0/tcp/{second.split('/tcp/')[1]}")
            # Nobody there now: a dial fails with the reason, and the dead address is forgotten.
            with pytest.raises(NetError, match="cannot reach peer"):
                await bob.connect(second)
            assert second not in bob.net.book.known(peer)


@pytestmark_trio
async def test_a_relay_that_restarts_is_dialed_again_on_its_own(tmp_path: Path) -> None:
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(90):
        async with running(relay_home, relay=True) as relay:
            port = address(relay).split("/tcp/")[1].split("/")[0]
            fixed = f"/ip4/127.0.0.1/tcp/{port}"
        # The relay is down: the member keeps trying it (with backoff) and says why it fails.
        async with running(make_home(tmp_path, "alice"), bootstrap=[f"{fixed}/p2p/{relay.net.peer_id}"]) as alice:
            target = alice.dial_targets()[0]
            await wait_until(lambda: alice.reach.get(target) is not None and alice.reach[target].failures >= 1)
            assert alice.reach[target].error
            # Back on the same (stable) port: the member reaches it without being told to.
            async with running(relay_home, relay=True, listen=[fixed]) as relay:
                await wait_until(lambda: relay.net.peer_id in alice.peers, timeout=60)
                await wait_until(lambda: alice.reach[target].failures == 0)


@pytestmark_trio
async def test_a_relay_that_dropped_is_tried_every_few_seconds_not_after_a_growing_backoff(tmp_path: Path) -> None:
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(90):
        async with running(make_home(tmp_path, "carol")) as carol:
            async with running(relay_home, relay=True) as relay:
                where = f"{address(relay)}/p2p/{relay.net.peer_id}"
                carol.config.bootstrap.append(where)
                await wait_until(lambda: relay.net.peer_id in carol.peers)
            # The relay is gone (stopped); carol keeps dialing it.
            await wait_until(lambda: carol.reach[where].failures >= 4, timeout=60)
            record = carol.reach[where]
            assert record.lost is not None
            # After 4 failures the backoff would be 8 s (6-10 with jitter); dropped just
            # now, it stays at RECENTLY_LOST_REDIAL_S (3-5 s).
            assert record.next_try - trio.current_time() <= RECENTLY_LOST_REDIAL_S * 1.25


def test_redial_backoff_grows_but_not_in_the_minutes_after_a_target_dropped() -> None:
    never = [redial_backoff(n, None) for n in range(1, 12)]
    assert never[:5] == [1.0, 2.0, 4.0, 8.0, 16.0] and never[-1] == MAX_REDIAL_S
    assert [redial_backoff(n, 30.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert redial_backoff(10, RECENTLY_LOST_S + 1) == MAX_REDIAL_S


def test_advertised_addresses_are_worked_out_again_after_the_ttl_or_a_new_listener() -> None:
    now = [0.0]
    listeners = ["/ip4/127.0.0.1/tcp/1"]
    computed: list[str] = []

    def compute() -> list[Any]:
        computed.append(listeners[-1])
        return [f"{listeners[-1]} #{len(computed)}"]

    cache = CachedAddrs(compute, lambda: tuple(listeners), ttl_s=1.0, clock=lambda: now[0])
    assert cache() == ["/ip4/127.0.0.1/tcp/1 #1"]
    now[0] = 0.9
    assert cache() == ["/ip4/127.0.0.1/tcp/1 #1"]  # cached
    listeners.append("/ip4/127.0.0.1/tcp/2")
    assert cache() == ["/ip4/127.0.0.1/tcp/2 #2"]  # a new listener
    now[0] = 1.95
    assert cache() == ["/ip4/127.0.0.1/tcp/2 #3"]  # a second passed
    assert len(computed) == 3
