"""Addresses a node can give out, and the book of where each peer was last reached.

Theory of operation
-------------------
A node listens on the unspecified address (``0.0.0.0`` or ``::``) so that it can be
reached on every interface, but that address means "any of mine" only to the listener:
given to another machine it means *that* machine. So it is never advertised. What a node
gives out (in ``kith status``, the relay's banner, invites, welcomes and libp2p's identify)
is either what its operator announced (``--announce``, for a relay behind a public IP or
DNS name) or every listen address with the unspecified host replaced by each of this
host's own interface addresses, public-looking ones first and loopback last.

Where a peer can be reached changes (a restart on a new port, a laptop on another
network), so the `AddressBook` keeps, per peer, the addresses that last worked, newest
first, and forgets an address as soon as a dial to it fails. Addresses given explicitly
(a relay the circle lists, ``kith connect``) are always tried first, then what the peer
announced when it last connected (libp2p's identify, which replaces the peer's previous
announcement each time), then what the book learned. Nothing here does I/O except `interface_addresses`, which reads the
host's interfaces with the standard library (no subprocess, no new dependency).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import sys
from collections import OrderedDict
from collections.abc import Iterable

from kith.identity.errors import UsageError

UNSPECIFIED_HOSTS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - recognised in addresses, not bound
MAX_ADDRESSES_PER_PEER = 8
"""Addresses the book keeps for one peer (the newest that worked)."""
MAX_PEERS = 4096
"""Peers the book remembers; the least recently used is forgotten first."""

_SIOCGIFADDR = 0x8915
"""Linux ioctl: the IPv4 address of one interface (how `ifconfig` reads it)."""

_TRANSPORT = re.compile(r"^/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d{1,5})$")


def _split(address: str) -> tuple[str, str, int, str] | None:
    """(protocol, host, port, '/p2p/<id>' or '') of a TCP multiaddr, or None."""
    transport, sep, peer = address.partition("/p2p/")
    match = _TRANSPORT.match(transport)
    if match is None or (sep and (not peer or "/" in peer)):
        return None
    port = int(match.group(3))
    if port > 65535:
        return None
    return match.group(1), match.group(2), port, f"/p2p/{peer}" if sep else ""


def is_unspecified(address: str) -> bool:
    """Does this multiaddr name the unspecified host (0.0.0.0 or ::)? Such an address means
    "this machine" to whoever reads it, so it must never be given to another node."""
    parts = _split(address)
    return parts is not None and parts[1] in UNSPECIFIED_HOSTS


def is_public(address: str) -> bool:
    """Does this multiaddr name a DNS name or a globally routable IP (what members on other
    networks can dial), rather than a private, link-local or loopback one?"""
    parts = _split(address)
    return parts is not None and _rank(parts[1]) == 0


def check_announce(address: str) -> str:
    """An ``--announce`` address: ``/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT`` (no /p2p/: the node
    adds its own). `UsageError` with what is wrong, else the address as given."""
    parts = _split(address)
    if parts is None or parts[3]:
        raise UsageError(
            f"--announce {address!r}: expected /ip4/HOST/tcp/PORT, /ip6/HOST/tcp/PORT or /dns4/NAME/tcp/PORT"
            " (without /p2p/; the node adds its own id)"
        )
    proto, host, port, _ = parts
    if port == 0:
        raise UsageError(f"--announce {address!r}: give the port peers should dial, not 0")
    if proto in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--announce {address!r}: {host!r} is not an IP{proto[-1]} address") from None
        if ip.version != int(proto[-1]) or ip.is_unspecified:
            raise UsageError(f"--announce {address!r}: announce an address others can dial, not {host}")
    elif not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
        raise UsageError(f"--announce {address!r}: {host!r} is not a DNS name")
    return address


def _rank(host: str) -> int:
    """Order in which to list a host's addresses: global, then private (LAN), then the rest
    (link-local), then loopback: what a peer on another machine most likely reaches first."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return 0  # a DNS name: it was announced on purpose
    if ip.is_loopback:
        return 3
    if ip.is_link_local:
        return 2
    return 1 if ip.is_private else 0


def expand_unspecified(listening: Iterable[str], interfaces: Iterable[str]) -> list[str]:
    """``listening`` (transport addresses, without /p2p/) with each unspecified host replaced
    by every interface address of its family; sorted globally reachable first, loopback last.
    Link-local IPv6 addresses need a zone to be dialed and are left out."""
    v4 = [ip for ip in interfaces if ":" not in ip]
    v6 = [ip for ip in interfaces if ":" in ip and not ipaddress.ip_address(ip).is_link_local]
    out: list[str] = []
    for address in listening:
        parts = _split(address)
        if parts is None:
            continue
        proto, host, port, _ = parts
        if host == "0.0.0.0":  # noqa: S104 - expanding a listen address, not binding
            out += [f"/ip4/{ip}/tcp/{port}" for ip in v4]
        elif host == "::":
            out += [f"/ip6/{ip}/tcp/{port}" for ip in v6]
        else:
            out.append(f"/{proto}/{host}/tcp/{port}")
    unique = list(dict.fromkeys(out))
    return sorted(unique, key=lambda a: _rank(a.split("/")[2]))


def interface_addresses() -> list[str]:
    """This host's IP addresses (IPv4 and IPv6, loopback included), read with the standard
    library only: on Linux each interface's IPv4 address by ioctl and IPv6 addresses from
    /proc/net/if_inet6; elsewhere, the address a UDP socket would send from (no packet is
    sent) plus loopback."""
    found: list[str] = []
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        names = []
    if sys.platform.startswith("linux"):
        import fcntl  # POSIX only; this branch runs on Linux

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for name in names:
                try:
                    raw = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(socket.inet_ntoa(raw[20:24]))
        try:
            with open("/proc/net/if_inet6", encoding="ascii") as table:
                for line in table:
                    hexed = line.split()[0]
                    found.append(str(ipaddress.IPv6Address(bytes.fromhex(hexed))))
        except (OSError, ValueError, IndexError):
            pass
    else:
        for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as probe:
                    probe.connect((target, 9))  # UDP connect sends nothing; it picks a route
                    found.append(probe.getsockname()[0])
            except OSError:
                continue
        found += ["127.0.0.1", "::1"]
    return list(dict.fromkeys(found))


class AddressBook:
    """Per peer, the addresses that last worked, newest first; a failed one is forgotten.

    Bounded: `MAX_ADDRESSES_PER_PEER` per peer, `MAX_PEERS` peers (least recently used
    forgotten first). Unspecified addresses are never kept."""

    def __init__(self) -> None:
        self._book: OrderedDict[str, list[str]] = OrderedDict()

    def known(self, peer: str) -> list[str]:
        return list(self._book.get(peer, ()))

    def dial_order(self, peer: str, given: Iterable[str] = ()) -> list[str]:
        """What to dial for ``peer``: the ``given`` addresses first, then what the book knows."""
        wanted = [a for a in given if not is_unspecified(a)] + self.known(peer)
        return list(dict.fromkeys(wanted))

    def worked(self, peer: str, address: str) -> None:
        """``address`` reached ``peer`` just now: it goes first."""
        if is_unspecified(address):
            return
        addresses = [address] + [a for a in self._book.pop(peer, []) if a != address]
        self._book[peer] = addresses[:MAX_ADDRESSES_PER_PEER]
        while len(self._book) > MAX_PEERS:
            self._book.popitem(last=False)

    def failed(self, peer: str, address: str) -> None:
        """A dial to ``address`` failed: forget it (an address given again is tried again)."""
        addresses = self._book.get(peer)
        if addresses is not None and address in addresses:
            addresses.remove(address)
            if not addresses:
                del self._book[peer]
