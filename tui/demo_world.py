"""The demo world: a relay and four member nodes in one process, one trio loop, on loopback.

`kith demo` runs this as a child process (``python -m kith.tui.demo_world ROOT``) and opens the
terminal client on the fourth member's control socket. One process instead of five keeps
startup inside a few seconds (libp2p takes ~0.6 s to import); the nodes are ordinary
`kith.p2pnet.node.Node`s with their own homes, keys, stores and sockets, talking libp2p to
each other through the relay exactly as separate machines would.

Everyone joins with a real invite (the organizer's node approves and welcomes them). The
world seeds one circle (a conversation, check-ins, pledges and requests, a fund with
contributions and an open spending proposal, an event), then, unless ``--static``, its
three scripted members keep acting every few seconds (a post, a vote, an RSVP, a check-in).

It reports on stdout, one JSON object per line: ``{"event": "user", "socket": ...}`` once
the fourth member's node listens, ``{"event": "ready", ...}`` once the seed has reached it,
``{"event": "acted", ...}`` after each scripted action. It exits when its stdin closes (so
it never outlives `kith demo`), on SIGTERM, or on SIGINT. Every home uses deliberately weak
KDF costs: demo keys are throwaway.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from kith.identity.errors import KithError, LocalProtocolError
from kith.identity.keys import MemberIdentity
from kith.identity.keystore import TEST_KDF, KeystoreData
from kith.p2pnet.api import build_methods
from kith.p2pnet.config import NodeConfig
from kith.p2pnet.hardening import harden_process
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.node import Node

PASSPHRASE = "demo passphrase (throwaway)"  # noqa: S105 - the demo's throwaway homes, said so on screen
CIRCLE_NAME = "Riverside Mutual Aid"
CIRCLE_DESCRIPTION = "Peer support and mutual aid for queer and trans folks around Riverside."
USER_NAME = "Sam"
HARDSHIP_RULES = {
    "period_s": 604800,
    "reveal_s": 86400,
    "currency": "EUR",
    "categories": {"food": 15000, "transport": 5000, "phone credit": 3000},
    "cap": 6000,
    "cooldown": 0,
    "priority": True,
}
"""The circle's allocation rules: README's peer-support example ("Writing your circle's rules")."""
SCRIPTED = ("Ash", "Bea", "Cal")
PROFILES = {
    "Ash": ("they/them", ["organizing", "cooking"]),
    "Bea": ("she/her", ["driving", "listening"]),
    "Cal": ("he/him", ["forms and paperwork"]),
    USER_NAME: ("they/them", []),
}
SCRIPTED_POSTS = (
    "Just got back from the clinic run. Everyone got where they needed to be.",
    "Reminder: the potluck is this Sunday, bring a dish if you can, or just yourself.",
    "Thinking of everyone having a hard week. You are not on your own.",
    "I can do another grocery drop on Thursday if anyone needs one.",
    "Small win: my name change paperwork came through today!",
    "Quiet evening here. Happy to chat if anyone wants company.",
)
"""What the scripted members say after the seed (tests wait for one of these)."""
SETTLE_S = 5.0


class Changes:
    """Wakes whoever waits for the world's state whenever one of its nodes emits an event (ops
    folded or refused, a member joined, a peer came or went): waits check again on a change
    instead of polling."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


@dataclass
class World:
    root: Path
    relay: Node | None = None
    members: dict[str, Node] = field(default_factory=dict)
    circle: str = ""
    methods: dict[int, dict[str, Any]] = field(default_factory=dict)
    changes: Changes = field(default_factory=Changes)

    def watch(self, node: Node) -> Node:
        """Have ``node``'s events wake `changes`; returns it."""
        node.listeners.append(self.changes.notify)
        return node

    @property
    def user(self) -> Node:
        return self.members[USER_NAME]

    async def call(self, node: Node, method: str, **params: Any) -> Any:
        """A control API call, through the same handlers the socket serves."""
        table = self.methods.setdefault(id(node), build_methods(node))
        return await table[method](params)

    def state_hash(self, node: Node) -> str | None:
        if node.circles is None:
            return None
        try:
            return node.circles.get(self.circle).replica.state_hash().hex()
        except KithError:  # the circle is not there yet
            return None

    async def settle(self, names: tuple[str, ...] | None = None, timeout: float = SETTLE_S) -> bool:
        """Wait until the named members (default: all) hold identical circle state.

        Gossip is the fast path and may drop a message; when state lags for a moment, ask
        every node to reconcile now instead of waiting for the periodic round.
        """
        nodes = [self.members[n] for n in names] if names else list(self.members.values())
        with trio.move_on_after(timeout):
            while True:
                with trio.move_on_after(0.3):
                    while len({self.state_hash(n) for n in nodes}) != 1 or self.state_hash(nodes[0]) is None:
                        await self.changes.wait()
                    return True
                for node in nodes:
                    node.request_sync()
        return False


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def make_member_home(root: Path, name: str, *, relay: bool = False) -> tuple[Home, Keystore]:
    home = Home(root / name.lower())
    home.ensure()
    identity = None if relay else MemberIdentity.generate(name, now=int(time.time()))
    keystore = Keystore.create(home.keystore, PASSPHRASE, KeystoreData.generate(identity), TEST_KDF)
    return home, keystore


def config(bootstrap: list[str]) -> NodeConfig:
    # Loopback only; quick redials and reconciliation so a demo heals in seconds.
    # The demo's organizers post private requests' placeholders within 2 s, not 10 min.
    # Throwaway homes: no fsync per commit (five nodes share one event loop here, and each
    # op would otherwise wait for the disk ten times).
    return NodeConfig(
        listen=["/ip4/127.0.0.1/tcp/0"],
        bootstrap=bootstrap,
        sync_interval_s=5.0,
        redial_interval_s=1.0,
        private_delay_s=2.0,
        fsync=False,
    )


def address(node: Node) -> str:
    return node.net.listen_addresses()[0]


async def admit(world: World, members: list[Node], code: str) -> None:
    """Bring members into the circle the real way: each joins with the invite code, the
    inviting organizer's node approves and sends a welcome with the circle's keys."""
    for node in members:
        await world.call(node, "join", code=code)
    with trio.fail_after(30):
        while waiting := [node for node in members if not _is_member(world, node)]:
            # Gossip is lossy while a new node's mesh forms: reconcile now rather than at the
            # next periodic round, so the request and the welcome arrive within milliseconds.
            with trio.move_on_after(0.25):
                while not all(_is_member(world, node) for node in waiting):
                    await world.changes.wait()
            for node in waiting + [world.members["Ash"]]:
                if node.peers:
                    await world.call(node, "sync")


def _is_member(world: World, node: Node) -> bool:
    if node.circles is None:
        return False
    try:
        circle = node.circles.get(world.circle)
    except KithError:
        return False
    return node.circles.identity.member_id in circle.replica.state.members


async def build(world: World, nursery: trio.Nursery) -> None:
    """Start the relay and the members, create the circle, invite everyone in."""
    relay_home, relay_keys = make_member_home(world.root, "relay", relay=True)
    homes = {name: make_member_home(world.root, name) for name in (*SCRIPTED, USER_NAME)}
    world.relay = world.watch(Node(relay_home, relay_keys, config([]), relay=True, control_api=build_methods))
    await nursery.start(world.relay.run)
    bootstrap = [address(world.relay)]
    ash = world.watch(Node(*homes["Ash"], config(bootstrap), control_api=build_methods))
    await nursery.start(ash.run)
    world.members["Ash"] = ash
    created = await world.call(ash, "circle.create", name=CIRCLE_NAME, description=CIRCLE_DESCRIPTION)
    world.circle = created["id"]
    token = await world.call(ash, "circle.relay_token", circle=world.circle, label="demo circle")
    await world.call(world.relay, "relay.allow", token=token["token"])
    # The circle lists its relay, as an organizer's `kith relay add` does: invites carry it.
    await world.call(ash, "relay.add", circle=world.circle, address=bootstrap[0])
    invite = await world.call(ash, "invite.create", circle=world.circle, uses=3)
    for name in (USER_NAME, *SCRIPTED[1:]):
        node = world.watch(Node(*homes[name], config(bootstrap), control_api=build_methods))
        await nursery.start(node.run)
        world.members[name] = node
    say("user", socket=str(world.user.home.socket), home=str(world.user.home.root), circle=world.circle)
    await admit(world, [world.members[n] for n in (USER_NAME, *SCRIPTED[1:])], invite["code"])


class _Act(Protocol):
    async def __call__(self, node: Node, method: str, label: str | None = None, **params: Any) -> str: ...


async def seed(world: World) -> dict[str, str]:
    """The circle's history so far, authored in turn (each author has seen what came before,
    so the order is the same every run)."""
    sam = world.members[USER_NAME]
    ids: dict[str, str] = {}

    async def act(node: Node, method: str, label: str | None = None, **params: Any) -> str:
        result = await world.call(node, method, circle=world.circle, **params)
        if label:
            ids[label] = result["id"]
        await world.settle(tuple(n for n in (*SCRIPTED, USER_NAME) if world.members[n] is not sam) or None)
        return result["id"]

    for step in (_seed_people, _seed_talk, _seed_aid, _seed_fund, _seed_events_and_rules):
        await step(world, act, ids)
    return ids


async def _seed_people(world: World, act: _Act, ids: dict[str, str]) -> None:
    """Profiles, and Sam (the person at the keyboard) as treasurer and organizer."""
    ash, bea, cal, sam = (world.members[n] for n in (*SCRIPTED, USER_NAME))
    for name in (*SCRIPTED, USER_NAME):
        pronouns, skills = PROFILES[name]
        await act(world.members[name], "profile", display_name=name, pronouns=pronouns, skills=skills)
    await act(ash, "role.grant", member=_member_id(sam), role="treasurer")
    await act(ash, "role.grant", member=_member_id(sam), role="organizer")


async def _seed_talk(world: World, act: _Act, ids: dict[str, str]) -> None:
    """Posts, replies, reactions, a check-in and an urgent request."""
    ash, bea, cal, sam = (world.members[n] for n in (*SCRIPTED, USER_NAME))
    welcome = await act(
        ash,
        "post",
        text="Welcome, everyone. This circle is for checking in, asking for help and sharing what we can. "
        "Be gentle with each other.",
    )
    await act(bea, "post", text="Thank you for setting this up 💜", reply_to=welcome)
    await act(bea, "react", target=welcome, emoji="💜")
    checkin = await act(cal, "checkin", status="struggling", note="Rough week at work. Could use some company.")
    await act(bea, "post", text="I'm free Saturday afternoon, want to get tea?", reply_to=checkin)
    await act(cal, "post", text="Yes please. Thank you, Bea.", reply_to=checkin)
    vent = await act(
        cal,
        "post",
        text="Got misgendered three times in one meeting and nobody said anything. Venting, no advice needed.",
        content_warning="misgendering at work",
    )
    await act(ash, "react", target=vent, emoji="🤗")
    await act(bea, "react", target=vent, emoji="🤗")
    await act(
        bea,
        "post",
        label="urgent",
        text="My ride to the clinic tomorrow at 9 fell through. Can anyone drive me?",
        urgent=True,
    )


async def _seed_aid(world: World, act: _Act, ids: dict[str, str]) -> None:
    """The mutual-aid board: pledges, requests and a match."""
    ash, bea, cal, sam = (world.members[n] for n in (*SCRIPTED, USER_NAME))
    await act(bea, "pledge", label="pledge_ride", category="ride", description="Weekday evening rides across town")
    await act(ash, "pledge", label="pledge_food", category="food", description="Batch-cooked meals on Sundays")
    await act(cal, "request", label="request_food", category="food", description="Groceries for the week")
    await act(
        cal,
        "request",
        category="money",
        description="Short on this month's rent: 120 EUR would close the gap",
        amount=120,
        unit="EUR",
    )
    await act(ash, "match", pledge=ids["pledge_food"], request=ids["request_food"])


async def _seed_fund(world: World, act: _Act, ids: dict[str, str]) -> None:
    """Contributions with receipts and a spend proposal for Cal's rent."""
    ash, bea, cal, sam = (world.members[n] for n in (*SCRIPTED, USER_NAME))
    for name, cents in (("Ash", 5000), ("Bea", 2500), ("Cal", 1500)):
        contribution = await act(world.members[name], "contribute", amount=cents, currency="EUR")
        if name != "Cal":
            await act(ash, "receipt", contribution=contribution)
    proposal = await act(
        ash,
        "propose",
        label="proposal",
        kind="spend",
        title="Rent help for Cal",
        amount=6000,
        currency="EUR",
        recipient=_member_id(cal),
        purpose="Half of the 120 EUR Cal is short on rent",
    )
    await act(ash, "vote", proposal=proposal, choice="approve")


async def _seed_events_and_rules(world: World, act: _Act, ids: dict[str, str]) -> None:
    """An event with answers, and the hardship pot's rules adopted by a vote."""
    ash, bea, cal, sam = (world.members[n] for n in (*SCRIPTED, USER_NAME))
    starts = (int(time.time()) // 86400 + 3) * 86400 + 17 * 3600
    event = await act(
        ash,
        "event.create",
        label="event",
        title="Sunday potluck and craft afternoon",
        starts=starts,
        place_hint="community centre, room 2",
    )
    await act(bea, "rsvp", event=event, answer="yes")
    await act(cal, "rsvp", event=event, answer="maybe")
    # The circle shares its hardship pot by the charter's allocation rules, adopted by a vote.
    rules = await act(ash, "propose", label="rules", kind="charter", title="Hardship pot rules",
                      charter={"alloc": HARDSHIP_RULES})  # fmt: skip
    for node in (ash, bea, cal, sam):
        await act(node, "vote", proposal=rules, choice="approve")


def _member_id(node: Node) -> str:
    if node.circles is None:
        raise LocalProtocolError("the demo's members are not relays")
    return node.circles.identity.member_id.hex()


async def keep_acting(world: World, pace: float, rng: random.Random) -> None:
    """The scripted members go on living: a post, a vote, an RSVP, a check-in."""
    posts = itertools.cycle(SCRIPTED_POSTS)
    first = True
    while True:
        await trio.sleep(min(2.0, pace) if first else pace * rng.uniform(0.7, 1.3))
        name = SCRIPTED[rng.randrange(len(SCRIPTED))]
        node = world.members[name]
        action = "post" if first else rng.choice(("post", "post", "vote", "rsvp", "react", "checkin"))
        first = False
        try:
            done = await _scripted_action(world, node, action, next(posts), rng)
        except KithError as exc:  # a demo actor must not take the world down
            done = f"failed: {exc}"
        say("acted", member=name, action=action, detail=done)


async def _scripted_action(world: World, node: Node, action: str, text: str, rng: random.Random) -> str:
    views = await world.call(node, "views", circle=world.circle, feed_limit=20)
    me = views["me"]
    if action == "vote":
        for proposal in views["proposals"]:
            if proposal["status"] == "open" and all(v["voter"] != me for v in proposal["votes"]):
                await world.call(node, "vote", circle=world.circle, proposal=proposal["id"], choice="approve")
                return f"voted on {proposal['title']}"
    if action == "rsvp":
        for event in views["events"]:
            if all(r[0] != me for r in event["rsvps"]):
                await world.call(node, "rsvp", circle=world.circle, event=event["id"], answer="yes")
                return f"rsvp to {event['title']}"
    if action == "react" and views["feed"]:
        target = views["feed"][-1]["id"]
        await world.call(node, "react", circle=world.circle, target=target, emoji=rng.choice(("💜", "🤗", "👍")))
        return "reacted"
    if action == "checkin":
        await world.call(node, "checkin", circle=world.circle, status=rng.choice(("ok", "ok", "struggling")))
        return "checked in"
    await world.call(node, "post", circle=world.circle, text=text)
    return f"posted {text!r}"


async def run_world(root: Path, *, static: bool, pace: float, on_ready: Callable[[], None] | None = None) -> None:
    world = World(root)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_exit_on_stdin_eof, nursery.cancel_scope)
        await build(world, nursery)
        nursery.start_soon(_exit_on_signal, nursery.cancel_scope)
        ids = await seed(world)
        await world.settle(timeout=30)
        say(
            "ready",
            circle=world.circle,
            ids=ids,
            homes={name: str(node.home.root) for name, node in world.members.items()},
            passphrase=PASSPHRASE,
        )
        if on_ready is not None:
            on_ready()
        if not static:
            nursery.start_soon(keep_acting, world, pace, random.Random())  # noqa: S311 - scripted demo members' pacing, not secrets


async def _exit_on_stdin_eof(scope: trio.CancelScope) -> None:
    await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
    scope.cancel()


async def _exit_on_signal(scope: trio.CancelScope) -> None:
    # Opened after the nodes' own receivers (the newest receiver is the one a signal reaches).
    await trio.sleep(0.1)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _signum in signals:
            scope.cancel()
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kith.tui.demo_world")
    parser.add_argument("root", help="an empty directory for the demo homes (removed on exit with --cleanup)")
    parser.add_argument("--static", action="store_true", help="seed, then keep still (tests)")
    parser.add_argument("--pace", type=float, default=5.0, help="seconds between scripted actions")
    parser.add_argument("--cleanup", action="store_true", help="remove ROOT on exit")
    args = parser.parse_args(argv)
    harden_process()
    root = Path(args.root)
    try:
        trio.run(lambda: run_world(root, static=args.static, pace=args.pace))
    except KeyboardInterrupt:
        pass
    finally:
        if args.cleanup:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
