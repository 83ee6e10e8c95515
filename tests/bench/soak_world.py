"""The soak's world: real member and relay processes on loopback, and what the driver knows.

Every node is a real `kith node` / `kith relay run` process (`cluster.NodeProcess`) with a
fixed loopback port, so a node killed with SIGKILL comes back at the same address and its
peers' redial finds it. The driver talks to nodes only through their control sockets.

`World` also keeps the driver's picture of each circle (organizers, treasurer, who has
joined, who was removed, recent items to reply to or vote on). That picture is only used
to choose plausible actions; the proof at the end (soak_check.py) trusts nothing but the
nodes' own stores and states.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import EventListener, NodeProcess, make_home, passphrase_file
from kith.p2pnet.home import Home
from kith.tui.commands.node_cmds import CLOCK_SKEW_ENV
from kith.tui.rpc import NodeClient

RPC_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(eq=False)
class Peer:
    """One node process and what the driver tracks about it."""

    name: str
    proc: NodeProcess
    relay: bool = False
    skew_s: float = 0.0
    peer_id: str = ""
    member_id: str = ""
    up: bool = False
    restarts: int = 0
    peak_rss_mb: float = 0.0
    listener: EventListener | None = None
    down_since: float | None = None
    downtime: list[tuple[float, float]] = field(default_factory=list)
    """(from, to) wall-clock intervals when the node was down or not yet listened to again."""
    listeners: list[EventListener] = field(default_factory=list)

    @property
    def home(self) -> Home:
        return self.proc.home

    @property
    def address(self) -> str:
        return self.proc.address

    def sample_rss(self) -> None:
        rss = self.proc.peak_rss_mb()
        if rss is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, rss)

    def was_down(self, start: float, end: float) -> bool:
        spans = list(self.downtime)
        if self.down_since is not None:
            spans.append((self.down_since, float("inf")))
        return any(a < end and start < b for a, b in spans)


@dataclass
class CircleModel:
    """The driver's picture of one circle (for choosing actions, never for judging)."""

    id: str
    name: str
    organizers: list[str]
    treasurer: str
    members: set[str] = field(default_factory=set)
    joined_at: dict[str, float] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    joining: dict[str, float] = field(default_factory=dict)
    posts: list[str] = field(default_factory=list)
    contributions: list[str] = field(default_factory=list)
    proposals: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)

    def remember(self, table: list[str], item: str, keep: int = 50) -> None:
        table.append(item)
        del table[:-keep]


class World:
    """Relays and members on loopback, started in parallel, with listeners on every member."""

    def __init__(
        self,
        root: Path,
        *,
        members: int,
        relays: int,
        skews: dict[int, float] | None = None,
        config: dict[str, Any] | None = None,
        homes: dict[int, Path] | None = None,
        seed: int = 1,
    ) -> None:
        self.root = root
        self.secret = passphrase_file(root)
        self.rand = random.Random(seed)
        self.lock = threading.RLock()
        self.relays: list[Peer] = []
        self.members: list[Peer] = []
        self.circles: dict[str, CircleModel] = {}
        self.log: list[str] = []
        self.started = time.time()
        for i in range(relays):
            home = make_home(root, f"relay{i}", relay=True)
            self.relays.append(Peer(f"relay{i}", self._proc(home, relay=True), relay=True))
        for i in range(members):
            parent = (homes or {}).get(i, root)
            home = make_home(parent, f"m{i:02d}")
            skew = (skews or {}).get(i, 0.0)
            env = {CLOCK_SKEW_ENV: str(skew)} if skew else {}
            self.members.append(Peer(f"m{i:02d}", self._proc(home, env=env), skew_s=skew))
        for peer in self.everyone():
            if config:
                peer.home.config.write_text(json.dumps(config))

    def _proc(self, home: Home, *, relay: bool = False, env: dict[str, str] | None = None) -> NodeProcess:
        listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
        stderr = self.root / f"{home.root.name}.stderr"
        return NodeProcess(home, self.secret, relay=relay, listen=listen, env=env, stderr=stderr)

    def note(self, text: str) -> None:
        with self.lock:
            self.log.append(f"{time.time() - self.started:7.1f}s  {text}")

    def everyone(self) -> list[Peer]:
        return self.relays + self.members

    def by_name(self, name: str) -> Peer:
        return next(p for p in self.everyone() if p.name == name)

    # --- processes ----------------------------------------------------------------

    def start_all(self) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self._start, self.everyone()))
        for peer in self.members:
            peer.member_id = self.call(peer, "whoami")["member_id"]
        # Relays know each other (config bootstrap), so they keep reconnecting after restarts.
        for relay in self.relays:
            others = [r.address for r in self.relays if r is not relay]
            config = json.loads(relay.home.config.read_text()) if relay.home.config.exists() else {}
            relay.home.config.write_text(json.dumps({**config, "bootstrap": others}))
            for address in others:
                self.call(relay, "connect", address=address)

    def _start(self, peer: Peer) -> None:
        peer.proc.start(timeout=120)
        peer.peer_id = peer.address.rsplit("/p2p/", 1)[1]
        if not peer.relay:
            listener = EventListener(peer.home, ["ops"])
            peer.listeners.append(listener)
            peer.listener = listener
        with self.lock:
            peer.up = True
            if peer.down_since is not None:
                peer.downtime.append((peer.down_since, time.time()))
                peer.down_since = None

    def kill(self, peer: Peer) -> None:
        with self.lock:
            peer.up = False
            peer.down_since = time.time()
        peer.sample_rss()
        if peer.listener is not None:
            peer.listener.close()
            peer.listener = None
        peer.proc.kill9()

    def restart(self, peer: Peer) -> None:
        peer.restarts += 1
        self._start(peer)

    def sample_rss(self) -> None:
        for peer in self.everyone():
            if peer.up:
                peer.sample_rss()

    def stop_all(self) -> None:
        self.sample_rss()
        for peer in self.everyone():
            if peer.listener is not None:
                peer.listener.close()
                peer.listener = None
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda p: p.proc.stop(), self.everyone()))
        for peer in self.everyone():
            peer.up = False

    # --- control API --------------------------------------------------------------

    def call(self, node: Peer, method: str, /, *, timeout: float = RPC_TIMEOUT_S, **params: Any) -> Any:
        with NodeClient(node.home.socket, timeout=timeout) as client:
            return client.call(method, **params)

    def live_members(self) -> list[Peer]:
        with self.lock:
            return [p for p in self.members if p.up]

    def members_of(self, circle: CircleModel) -> list[Peer]:
        with self.lock:
            return [self.by_name(n) for n in sorted(circle.members)]
