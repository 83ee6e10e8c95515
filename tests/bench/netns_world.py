"""A circle across a simulated internet: a public relay, two NATed homes, a member elsewhere.

```
              relay 10.0.1.2:4747 (public)
                      |
   +-------------- core (the internet: routes 10.0.0.0/16 public subnets) -------------+
   |                          |                          |                             |
 router A (NAT)             router B (NAT)            member e 10.0.4.2           (cafe 10.0.5.0/24,
 wan 10.0.2.2               wan 10.0.3.2              (another subnet, no NAT)      where a2 moves)
 lan 10.1.0.1/24            lan 10.2.0.1/24
  |- a1 10.1.0.2             |- b1 10.2.0.2
  |- a2 10.1.0.3             |- b2 10.2.0.3
```

Each box is a network namespace; links are veth pairs; the homes' LANs are bridges inside
their routers, which masquerade (source NAT) what leaves through ``wan``. The core has no
route to the homes' private subnets, as the internet has none to anyone's 192.168.x.

Every node is a real ``kith node`` / ``kith relay run`` process started with
``ip netns exec`` (cluster.NodeProcess with a wrap prefix); the driver, in the root
namespace, talks to each through its control socket, a Unix socket in its home
directory, which network namespaces do not separate.

Members listen on loopback only (private by default, as the design says) and are told
only the relay: the invite passed between homes is cut down to the relay's address
(`relay_only`), because today invites and welcomes also carry the inviter's or
approver's own listen addresses (`lifecycle._addresses`). Every member namespace has a
`netns.ConnectionWatch`, so the kernel records every TCP connection a member attempts
and every one that reaches it; the routers and the core count connection attempts
towards any member's address.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.cluster import KITH, EventListener, NodeProcess, make_home, passphrase_file, wait_for
from bench.netns import ConnectionWatch, Internet, firewall_tool, sweep_stale
from kith.sync.invites import InviteCode

RELAY_IP = "10.0.1.2"
RELAY_PORT = 4747
MEMBERS = {"a1": "10.1.0.2", "a2": "10.1.0.3", "b1": "10.2.0.2", "b2": "10.2.0.3", "e": "10.0.4.2"}
HOMES = {"a1": "rta", "a2": "rta", "b1": "rtb", "b2": "rtb"}
CAFE = {"core": "10.0.5.1", "member": "10.0.5.2"}
MEMBER_ADDRESSES = [*MEMBERS.values(), CAFE["member"]]


def relay_only(code: str, relay: str) -> str:
    """The same invite carrying only the relay's address (see the module docstring)."""
    parsed = InviteCode.decode(code)
    return InviteCode(parsed.secret, parsed.check, (relay,), parsed.expires).encode()


class NatWorld:
    """The namespaces, the processes in them and one circle they all belong to."""

    def __init__(
        self,
        root: Path,
        *,
        member_config: str | None = None,
        member_listen: str = "/ip4/127.0.0.1/tcp/0",
        relay_announce: bool = False,
    ) -> None:
        self.root = root
        self.secret = passphrase_file(root)
        self.net = Internet(_tool())
        self.nodes: dict[str, NodeProcess] = {}
        self.listeners: dict[str, EventListener] = {}
        self.watches: dict[str, ConnectionWatch] = {}
        self.circle = ""
        self.relay_address = ""
        self.moved: set[str] = set()
        self.member_config = member_config
        """Optional config.json text for every member (e.g. a shorter redial interval)."""
        self.member_listen = member_listen
        self.relay_announce = relay_announce
        """Listen on every interface and announce the public address (branch net's --announce)."""

    # --- the network ---------------------------------------------------------------

    def build(self) -> NatWorld:
        net = self.net
        net.add("core", forward=True)
        net.add("relay")
        net.link("core", "r0", "relay", "eth0")
        net.address("core", "r0", "10.0.1.1/24")
        net.address("relay", "eth0", f"{RELAY_IP}/24")
        net.default_route("relay", "10.0.1.1")
        for router, number, lan in (("rta", 2, "10.1.0"), ("rtb", 3, "10.2.0")):
            net.add(router, forward=True)
            net.link("core", f"h{number}", router, "wan")
            net.address("core", f"h{number}", f"10.0.{number}.1/24")
            net.address(router, "wan", f"10.0.{number}.2/24")
            net.default_route(router, f"10.0.{number}.1")
            people = [m for m, r in HOMES.items() if r == router]
            for member in people:
                net.add(member)
                net.link(router, f"p{member}", member, "eth0")
                net.address(member, "eth0", f"{MEMBERS[member]}/24")
                net.default_route(member, f"{lan}.1")
            net.bridge(router, "lan", f"{lan}.1/24", [f"p{m}" for m in people])
            net.masquerade(router, "wan")
        net.add("e")
        net.link("core", "s4", "e", "eth0")
        net.address("core", "s4", "10.0.4.1/24")
        net.address("e", "eth0", f"{MEMBERS['e']}/24")
        net.default_route("e", "10.0.4.1")
        for member in MEMBERS:
            self.watches[member] = ConnectionWatch(net, member, watched=[RELAY_IP, *MEMBER_ADDRESSES])
        for router in ("core", "rta", "rtb"):
            self.watches[router] = ConnectionWatch(net, router, watched=MEMBER_ADDRESSES)
        return self

    def move(self, member: str) -> None:
        """``member`` leaves its network for the cafe: the old link is gone, a new address."""
        home = HOMES[member]
        self.net.ip(home, "link", "del", f"p{member}")  # deletes both ends of the veth
        self.net.link("core", "cafe", member, "eth1")
        self.net.address("core", "cafe", f"{CAFE['core']}/24")
        self.net.address(member, "eth1", f"{CAFE['member']}/24")
        self.net.default_route(member, CAFE["core"])
        self.moved.add(member)

    # --- the processes -------------------------------------------------------------

    def start(self) -> NatWorld:
        relay_home = make_home(self.root, "relay", relay=True)
        public = f"/ip4/{RELAY_IP}/tcp/{RELAY_PORT}"
        if self.relay_announce:
            listen, extra = f"/ip4/0.0.0.0/tcp/{RELAY_PORT}", ["--announce", public]
        else:
            listen, extra = public, []
        self.nodes["relay"] = self._process(relay_home, "relay", relay=True, listen=listen, extra=extra)
        for member in MEMBERS:
            home = make_home(self.root, member)
            if self.member_config is not None:
                home.config.write_text(self.member_config)
            self.nodes[member] = self._process(home, member, listen=self.member_listen)
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda n: n.start(timeout=120), self.nodes.values()))
        self.relay_address = self.nodes["relay"].address
        for member in MEMBERS:
            self.listeners[member] = EventListener(self.nodes[member].home, ["ops"])
        return self

    def _process(
        self, home: Any, role: str, *, relay: bool = False, listen: str, extra: list[str] | None = None
    ) -> NodeProcess:
        stderr = self.root / f"{role}.stderr"
        return NodeProcess(
            home, self.secret, relay=relay, listen=listen, stderr=stderr, wrap=self.net.wrap(role), extra=extra
        )

    def kith(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A `kith` command against ``who``'s running node (from the driver: it reaches the
        node through its control socket, so it needs no namespace)."""
        node = self.nodes[who]
        argv = [KITH, "--home", str(node.home.root), "--passphrase-file", str(self.secret), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **node.env})

    def call(self, who: str, method: str, **params: Any) -> Any:
        return self.nodes[who].call(method, **params)

    def restart_relay(self) -> float:
        """Stop the relay and start it again on the same public address; returns when it listens."""
        relay = self.nodes["relay"]
        relay.stop()
        relay.start(timeout=120)
        if relay.address != self.relay_address:
            raise AssertionError(f"the relay came back at {relay.address}, not {self.relay_address}")
        return time.time()

    # --- the circle ----------------------------------------------------------------

    def make_circle(self, *, invite_filter: bool = True, relay_cli: bool = False, timeout: float = 90.0) -> str:
        """a1 (home A) creates the circle and attaches the relay; b1 (home B) joins with the
        invite first, then a2, b2 and e; returns when all five hold the same state.

        ``invite_filter``: pass on the invite cut down to the relay's address (see the module
        docstring); ``relay_cli``: attach the relay with `kith relay add` (branch net) rather
        than the control API's ``relay.add``."""
        circle = self.call("a1", "circle.create", name="Across the internet")["id"]
        token = self.call("a1", "circle.relay_token", circle=circle)["token"]
        self.call("relay", "relay.allow", token=token)
        if relay_cli:
            done = self.kith("a1", "relay", "add", circle, self.relay_address)
            if done.returncode != 0:
                raise AssertionError(f"kith relay add failed: {done.stderr.strip()}")
        else:
            self.call("a1", "relay.add", circle=circle, address=self.relay_address)
            self.call("a1", "connect", address=self.relay_address)
        code = self.call("a1", "invite.create", circle=circle, uses=4)["code"]
        if invite_filter:
            code = relay_only(code, self.relay_address)
        self.circle = circle
        for member in ("b1", "a2", "b2", "e"):
            self.call(member, "join", code=code)
            if member == "b1":  # the first join, from the other home, before the rest
                wait_for(lambda: self.state_hash("b1") == self.state_hash("a1"), timeout=timeout)
        wait_for(lambda: len({self.state_hash(m) for m in MEMBERS}) == 1, timeout=timeout)
        return circle

    def state_hash(self, who: str) -> str | None:
        try:
            return self.call(who, "state_hash", circle=self.circle)["state_hash"]
        except Exception:  # noqa: BLE001 - not a member yet, or the node is between answers
            return None

    def post(self, who: str, text: str) -> str:
        return self.call(who, "post", circle=self.circle, text=text)["id"]

    def arrival(self, who: str, op_id: str) -> float | None:
        """When ``who``'s node reported ``op_id`` folded (its control API's ops event)."""
        for at, params in list(self.listeners[who].arrivals):
            if any(op["id"] == op_id for op in params.get("ops", ())):
                return at
        return None

    def gossip_carries(self, sender: str, receiver: str, timeout: float) -> str:
        """``sender`` posts every 2 s until one post reaches ``receiver`` by gossip (its ops
        event says ``via: gossip``); returns that post's id. Reconciliation would deliver
        the posts anyway, so this is how a test tells a live gossip path from a dead one
        without a clock: a dead path never carries one, however long it waits."""
        sent: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent.append(self.post(sender, f"gossip check {len(sent) + 1} from {sender}"))
            posted = time.monotonic()
            while time.monotonic() < min(posted + 2.0, deadline):
                for _at, params in list(self.listeners[receiver].arrivals):
                    if params.get("via") == "gossip" and any(op["id"] in sent for op in params.get("ops", ())):
                        return next(op["id"] for op in params["ops"] if op["id"] in sent)
                time.sleep(0.05)
        raise AssertionError(f"none of {len(sent)} posts from {sender} reached {receiver} by gossip in {timeout} s")

    def wait_delivered(self, op_id: str, to: list[str], timeout: float) -> float:
        """Wait until every member in ``to`` folded ``op_id``; returns the last arrival time."""
        return self.wait_delivered_all({op_id: to}, timeout)

    def wait_delivered_all(self, wanted: dict[str, list[str]], timeout: float) -> float:
        """Wait until each op in ``wanted`` reached each of its members; returns the last arrival."""

        def arrivals() -> list[float | None]:
            return [self.arrival(m, op) for op, to in wanted.items() for m in to]

        wait_for(lambda: None not in arrivals(), timeout=timeout, interval=0.02)
        return max(t for t in arrivals() if t is not None)

    # --- who connected to whom -----------------------------------------------------

    def dials(self) -> dict[str, dict[str, int]]:
        """Per member: every destination its machine tried to open a TCP connection to."""
        return {member: self.watches[member].dialed() for member in MEMBERS}

    def forbidden_dials(self) -> dict[str, dict[str, int]]:
        """Per member: connection attempts to anything but the relay, leaving the machine
        (loopback is reported by `loopback_dials`: it never leaves the machine)."""
        relay = f"{RELAY_IP}:{RELAY_PORT}"
        found = {}
        for member, dialed in self.dials().items():
            bad = {d: n for d, n in dialed.items() if d not in (relay, RELAY_IP) and not d.startswith("127.")}
            if bad:
                found[member] = bad
        return found

    def loopback_dials(self) -> dict[str, dict[str, int]]:
        found = {}
        for member, dialed in self.dials().items():
            local = {d: n for d, n in dialed.items() if d.startswith("127.")}
            if local:
                found[member] = local
        return found

    def inbound(self) -> dict[str, int]:
        """Connection attempts that reached each member's machine, and that each router or
        the core forwarded towards a member's address (all should stay 0)."""
        counts = {member: self.watches[member].inbound() for member in MEMBERS}
        for router in ("core", "rta", "rtb"):
            counts[f"{router} forwarded"] = self.watches[router].forwarded()
        return counts

    # --- teardown ------------------------------------------------------------------

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                list(pool.map(lambda n: n.stop(), self.nodes.values()))
        finally:
            self.net.close()


def net_branch_features() -> dict[str, bool]:
    """Which of branch net's commands this kith has: `kith relay add` and `relay run --announce`.

    The parts of the namespace tests that need them switch on by themselves once they exist."""
    from kith.tui.cli import build_parser

    def subcommands(parser: Any) -> dict[str, Any]:
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                return dict(action.choices)
        return {}

    relay = subcommands(build_parser()).get("relay")
    relay_actions = subcommands(relay) if relay is not None else {}
    run = relay_actions.get("run")
    options = {o for a in (run._actions if run is not None else []) for o in a.option_strings}
    return {"relay_add": "add" in relay_actions, "announce": "--announce" in options}


def _tool() -> str:
    tool = firewall_tool()
    if tool is None:
        raise RuntimeError("neither nft nor iptables is installed")
    return tool


def open_world(root: Path | None = None, **options: Any) -> tuple[NatWorld, Any]:
    """Sweep what killed runs left, then build and start a world; returns it and a cleanup."""
    sweep_stale()
    tmp = None
    if root is None:
        tmp = tempfile.mkdtemp(prefix="kith-netns-")
        root = Path(tmp)
    world = NatWorld(root, **options)

    def cleanup() -> None:
        try:
            world.close()
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    try:
        world.build().start()
    except (OSError, RuntimeError, AssertionError, subprocess.SubprocessError):
        cleanup()
        raise
    return world, cleanup
