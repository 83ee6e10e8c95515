"""Real nodes on loopback for tests: homes with cheap KDF costs, and helpers to drive them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from kith.identity.errors import UsageError
from kith.identity.keys import MemberIdentity
from kith.identity.keystore import TEST_KDF, KeystoreData
from kith.p2pnet.api import allow_relay_topic, build_methods
from kith.p2pnet.config import NodeConfig
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.node import Node
from kith.sync.kinds.keys import kept_epoch
from kith.sync.relaytoken import RelayToken

PASS = "test passphrase"
_names = itertools.count()


def make_home(root: Path, name: str, *, relay: bool = False) -> Home:
    home = Home(root / f"{name}-{next(_names)}")
    home.ensure()
    identity = None if relay else MemberIdentity.generate(name, now=1_700_000_000)
    Keystore.create(home.keystore, PASS, KeystoreData.generate(identity), TEST_KDF)
    return home


def loopback_config(**changes: Any) -> NodeConfig:
    # fsync off: these homes are throwaway (commits stay atomic; the crash tests run real
    # `kith node` processes, whose homes are always durable).
    config = NodeConfig(
        listen=["/ip4/127.0.0.1/tcp/0"], sync_interval_s=2.0, redial_interval_s=0.5, private_delay_s=0.0, fsync=False
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@asynccontextmanager
async def running(
    home: Home, *, relay: bool = False, clock: Callable[[], float] | None = None, **config: Any
) -> AsyncIterator[Node]:
    """A node on loopback for the test's lifetime (``clock``: its wall clock, if not the real one)."""
    keystore = Keystore.unlock(home.keystore, PASS)
    extra = {} if clock is None else {"clock": clock}
    node = Node(home, keystore, loopback_config(**config), relay=relay, control_api=build_methods, **extra)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        try:
            yield node
        finally:
            node.stop()


async def call(node: Node, method: str, **params: Any) -> Any:
    return await build_methods(node)[method](params)


def address(node: Node) -> str:
    return node.net.listen_addresses()[0]


async def share_circle(owner: Node, circle_id: str, *members: Node) -> None:
    """Bring members into the circle the real way: an invite, a join request, a welcome."""
    code = (await call(owner, "invite.create", circle=circle_id, uses=len(members)))["code"]
    for member in members:
        await member.connect(address(owner))
        await call(member, "join", code=code)
    for member in members:
        await wait_until(lambda m=member: is_member(m, circle_id), timeout=30)


def is_member(member: Node, circle_id: str) -> bool:
    """Whether ``member`` has folded its own admission to the circle."""
    assert member.circles is not None
    try:
        circle = member.circles.get(circle_id)
    except Exception:  # noqa: BLE001 - not there yet
        return False
    return member.circles.identity.member_id in circle.replica.state.members


def allow_on_relay(relay_home: Home, token: str) -> None:
    keystore = Keystore.unlock(relay_home.keystore, PASS)
    allow_relay_topic(keystore.data.extra, RelayToken.decode(token))
    keystore.save()


async def wait_until(
    predicate: Any, *, timeout: float = 60.0, interval: float = 0.05, explain: Callable[[], str] | None = None
) -> None:
    """Wait for ``predicate``; on timeout the error carries ``explain()`` (what each node holds).

    The default bound is generous: it only matters when something is wrong, and a test
    that fails because a busy machine (CI runs test files in parallel) took 25 s for what
    takes 2 s on a quiet one would be a false alarm."""
    try:
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(interval)
    except trio.TooSlowError as exc:
        if explain is None:
            raise
        raise trio.TooSlowError(f"not reached in {timeout} s:\n{explain()}") from exc


def explain_circle(nodes: Any, circle_id: str) -> Callable[[], str]:
    """For a failed convergence: per node, what it folded, what waits, which keys it holds."""

    def explain() -> str:
        lines = []
        for node in nodes:
            circle = node.circles.get(circle_id)
            replica = circle.replica
            state = replica.state
            lines.append(
                f"{node.circles.identity.name}: hash {replica.state_hash().hex()[:12]} "
                f"ops {sum(1 for _ in replica.ops())} missing {len(replica.missing())} "
                f"waiting {len(circle.waiting)} held {len(circle.held)} "
                f"members {sorted(m.hex()[:6] for m in state.members)} "
                f"epoch {state.info.get('epoch', b'').hex()[:8]} due {state.info.get('rotation_due')} "
                f"keys {sorted(e.hex()[:8] for e in circle.keys.epochs)} "
                f"folded epochs {_epochs(state)} "
                f"stored {node.circles.store.count()} peers {len(node.peers)} "
                f"counters {dict(node.circles.counters)} refused {dict(node.stats.refused)} "
                f"banned {sorted(p[-6:] for p in node.guard.banned)} "
                f"syncs {[(p[-6:], s.last_sync.error if s.last_sync else None) for p, s in node.peers.items()]}"
            )
        return "\n".join(lines)

    return explain


def _epochs(state: Any) -> dict[str, int]:
    """epoch (``*`` if kept from a rotation that did not count) -> how many hold it, as the fold sees it."""
    return {
        e.hex()[:8] + ("*" if kept_epoch(state, e) else ""): len(state.holders.get(e, {})) for e in sorted(state.epochs)
    }


def state_hash(node: Node, circle_id: str) -> str:
    assert node.circles is not None
    return node.circles.get(circle_id).replica.state_hash().hex()


async def call_when_ready(node: Node, method: str, **params: Any) -> Any:
    """Call once the node may author ops (a rotation in flight makes it wait)."""
    with trio.fail_after(30):
        while True:
            try:
                return await call(node, method, **params)
            except UsageError as exc:
                if "waiting for the circle's new key" not in str(exc):
                    raise
                await trio.sleep(0.1)


async def post_when_ready(node: Node, circle_id: str, text: str) -> str:
    """Post once the node may (a rotation in flight makes it wait); returns the op id."""
    return (await call_when_ready(node, "post", circle=circle_id, text=text))["id"]
