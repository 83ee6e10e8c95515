"""Network namespaces, veth links, NAT routers and a connection watch: a small internet on one machine.

Everything here shells out to iproute2 (`ip`) and to nftables (`nft`) or, where only that
exists, iptables: the kernel does the routing, the NAT and the counting, so what the tests
observe is what a real network would do, seen from outside the processes under test.

Names: every namespace of one run starts with ``kithnet-<pid>-`` (`PREFIX`), so a later run
can tell a stale namespace (its pid is gone) from a live one and sweep it (`sweep_stale`).
Veth pairs are created directly inside their namespaces (``ip link add ... netns``), so
their short names only need to be unique within a namespace and never touch the host's.

Teardown: `Internet.close` kills every process left in its namespaces, then deletes them;
it runs from ``finally`` blocks, from ``atexit``, and (for a run killed with SIGKILL) from
the next run's sweep.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "kithnet-"
_NAME = re.compile(r"^kithnet-(\d+)-")
_counter = itertools.count()


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no iproute2, no netfilter tool, a sandbox)."""


def _run(*args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


def unavailable_reason() -> str | None:
    """Why this machine cannot build a namespace world, or None if it can."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is missing (apt-get install iproute2)"
    if firewall_tool() is None:
        return "neither nft nor iptables is installed (apt-get install nftables; .ci/run does)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def firewall_tool() -> str | None:
    """``nft`` if present, else ``iptables``, else None."""
    for tool in ("nft", "iptables"):
        if shutil.which(tool):
            return tool
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _list_namespaces() -> list[str]:
    listed = _run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def _kill_and_delete(namespace: str) -> None:
    pids = _run("ip", "netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _run("ip", "netns", "del", namespace, check=False)


def sweep_stale() -> list[str]:
    """Delete the namespaces (and kill their processes) of earlier runs whose process is gone."""
    swept = []
    for namespace in _list_namespaces():
        match = _NAME.match(namespace)
        if match and not _pid_alive(int(match.group(1))):
            _kill_and_delete(namespace)
            swept.append(namespace)
    return swept


@dataclass
class Internet:
    """The namespaces of one world, with links between them; `close` undoes all of it."""

    tool: str
    prefix: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{next(_counter)}-")
    namespaces: dict[str, str] = field(default_factory=dict)
    """role -> namespace name"""

    def __post_init__(self) -> None:
        atexit.register(self.close)

    # --- building ------------------------------------------------------------------

    def add(self, role: str, *, forward: bool = False) -> str:
        name = self.prefix + role
        _run("ip", "netns", "add", name)
        self.namespaces[role] = name
        self.ip(role, "link", "set", "lo", "up")
        if forward:
            self.sysctl(role, "net.ipv4.ip_forward", "1")
        return name

    def ip(self, role: str, *args: str) -> str:
        return _run("ip", "-n", self.namespaces[role], *args).stdout

    def sysctl(self, role: str, key: str, value: str) -> None:
        self.exec(role, "sysctl", "-q", "-w", f"{key}={value}")

    def exec(self, role: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.namespaces[role], *args, check=check)

    def wrap(self, role: str) -> list[str]:
        """The argv prefix that runs a command inside ``role``'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[role]]

    def link(self, left: str, left_if: str, right: str, right_if: str) -> None:
        """A veth pair between two namespaces, both ends up and without addresses."""
        _run(
            "ip", "link", "add", left_if, "netns", self.namespaces[left], "type", "veth",
            "peer", "name", right_if, "netns", self.namespaces[right],
        )  # fmt: skip
        self.ip(left, "link", "set", left_if, "up")
        self.ip(right, "link", "set", right_if, "up")

    def address(self, role: str, interface: str, cidr: str) -> None:
        self.ip(role, "addr", "add", cidr, "dev", interface)

    def default_route(self, role: str, via: str) -> None:
        self.ip(role, "route", "replace", "default", "via", via)

    def bridge(self, role: str, name: str, cidr: str, ports: list[str]) -> None:
        self.ip(role, "link", "add", name, "type", "bridge")
        self.ip(role, "link", "set", name, "up")
        self.address(role, name, cidr)
        for port in ports:
            self.ip(role, "link", "set", port, "master", name)

    def masquerade(self, role: str, out_interface: str) -> None:
        """Source NAT for everything leaving through ``out_interface`` (a home router)."""
        if self.tool == "nft":
            self._nft(
                role,
                f"""
                table ip kithnat {{
                    chain post {{ type nat hook postrouting priority srcnat; policy accept;
                        oifname "{out_interface}" masquerade
                    }}
                }}""",
            )
        else:
            self.exec(role, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", out_interface, "-j", "MASQUERADE")

    def _nft(self, role: str, ruleset: str) -> None:
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespaces[role], "nft", "-f", "-"],
            input=ruleset, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"nft in {role}: {done.stderr.strip()}")

    # --- teardown ------------------------------------------------------------------

    def close(self) -> None:
        for name in list(self.namespaces.values()):
            _kill_and_delete(name)
        self.namespaces.clear()
        atexit.unregister(self.close)


class ConnectionWatch:
    """Kernel-side counters of new TCP connections in one namespace (a member's machine).

    Counts every connection attempt (a SYN without ACK) the namespace sends, by destination
    address and port, every attempt that reaches it from outside (not loopback), and, on a
    router, every attempt it forwards towards one of the ``watched`` addresses. With nft the
    destinations go into a dynamic set; with iptables each destination of interest gets a
    counting rule, and anything else is counted under ``other``.
    """

    def __init__(self, net: Internet, role: str, *, watched: list[str]) -> None:
        self.net = net
        self.role = role
        self.watched = list(dict.fromkeys(watched))
        if net.tool == "nft":
            towards = ", ".join(self.watched) or "0.0.0.0"  # noqa: S104 - a firewall rule's address, not a bind
            net._nft(role, f"""
                table inet kithwatch {{
                    set dialed {{ type ipv4_addr . inet_service; flags dynamic; size 4096; }}
                    counter inbound {{}}
                    counter forwarded {{}}
                    chain out {{ type filter hook output priority 0; policy accept;
                        tcp flags & (syn | ack) == syn add @dialed {{ ip daddr . tcp dport }}
                    }}
                    chain in {{ type filter hook input priority 0; policy accept;
                        iifname != "lo" tcp flags & (syn | ack) == syn counter name inbound
                    }}
                    chain towards {{ type filter hook forward priority 0; policy accept;
                        tcp flags & (syn | ack) == syn ip daddr {{ {towards} }} counter name forwarded
                    }}
                }}""")  # fmt: skip
        else:
            net.exec(role, "iptables", "-N", "KITHWATCH")
            net.exec(role, "iptables", "-A", "OUTPUT", "-p", "tcp", "--syn", "-j", "KITHWATCH")
            for address in self.watched:
                net.exec(role, "iptables", "-A", "KITHWATCH", "-d", address, "-j", "RETURN")
                net.exec(role, "iptables", "-A", "FORWARD", "-p", "tcp", "--syn", "-d", address)
            net.exec(role, "iptables", "-A", "KITHWATCH", "-j", "RETURN")
            net.exec(role, "iptables", "-A", "INPUT", "!", "-i", "lo", "-p", "tcp", "--syn")

    def dialed(self) -> dict[str, int]:
        """Destinations this namespace tried to connect to: ``"ADDR:PORT"`` (nft) or
        ``"ADDR"``/``"other"`` (iptables) -> attempts (1 per destination with nft, which
        records each destination once)."""
        if self.net.tool == "nft":
            out = self.net.exec(self.role, "nft", "-j", "list", "set", "inet", "kithwatch", "dialed").stdout
            found: dict[str, int] = {}
            for item in json.loads(out)["nftables"]:
                for element in item.get("set", {}).get("elem", []):
                    value = element.get("elem", {}).get("val", element) if isinstance(element, dict) else element
                    address, port = value["concat"]
                    found[f"{address}:{port}"] = 1
            return found
        rules = self.net.exec(self.role, "iptables", "-L", "KITHWATCH", "-v", "-n", "-x").stdout.splitlines()[2:]
        counts: dict[str, int] = {}
        for rule in rules:
            parts = rule.split()
            packets, destination = int(parts[0]), parts[-1]
            key = "other" if destination == "0.0.0.0/0" else destination
            if packets:
                counts[key] = counts.get(key, 0) + packets
        return counts

    def inbound(self) -> int:
        """Connection attempts that reached this namespace from another machine."""
        return self._counter("inbound", "INPUT")

    def forwarded(self) -> int:
        """Connection attempts this namespace (a router) forwarded towards a watched address."""
        return self._counter("forwarded", "FORWARD")

    def _counter(self, name: str, chain: str) -> int:
        if self.net.tool == "nft":
            out = self.net.exec(self.role, "nft", "-j", "list", "counter", "inet", "kithwatch", name).stdout
            for item in json.loads(out)["nftables"]:
                if "counter" in item:
                    return int(item["counter"]["packets"])
            raise RuntimeError(f"the {name} counter is missing")
        rules = self.net.exec(self.role, "iptables", "-L", chain, "-v", "-n", "-x").stdout.splitlines()[2:]
        return sum(int(rule.split()[0]) for rule in rules if rule.split())
