"""The soak's load: circles set up the real way, then random actions at a steady rate.

Every action is one control-API call on a live member's node, chosen with weights from
what a circle does (posts and replies most, then reactions, aid, check-ins, the fund and
votes, events), plus membership churn every few seconds: joins with real invites (and
re-joins of people who were removed), removals, leaving, and key rotations.

An op counts as *sent* when its node acknowledged it (the reply named its id): the node
has stored it durably by then, so it must reach every current member. Refusals are not
failures when they are the node being careful: "waiting for the circle's new key" (a
rotation is due or on its way) is retried, and the other refusals are counted by reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import wait_for
from bench.soak_world import CircleModel, Peer, World
from kith.identity.errors import KithError
from kith.tui.rpc import NodeError

RETRY_WINDOW_S = 30.0
WAITING_FOR_KEY = "waiting for the circle's new key"


@dataclass
class OpRecord:
    id: str
    circle: str
    author: str
    kind: str
    sent: float
    acked: float
    members: frozenset[str]
    """Who the driver knew as members when it was sent (the latency's recipients)."""
    retries: int = 0
    """How often the author's node refused it first because it waited for the circle's
    current key (after a rotation); the latency counts from the first try."""


@dataclass
class LoadStats:
    sent: list[OpRecord] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    retried: int = 0
    skipped: int = 0
    joins_requested: int = 0
    joins_completed: int = 0
    removals: int = 0
    rotations: int = 0


def _reason(exc: Exception) -> str:
    text = str(exc)
    for cut in (":", ";", "("):
        text = text.split(cut, 1)[0]
    return text.strip()[:80]


class Load:
    def __init__(self, world: World, *, rate: float, churn_every_s: float, workers: int = 6) -> None:
        self.world = world
        self.rate = rate
        self.churn_every_s = churn_every_s
        self.workers = workers
        self.stats = LoadStats()
        self.rand = world.rand
        self._inflight = 0
        self._lock = threading.Lock()
        self.paused: set[str] = set()
        """Members the fault injector is busy with (e.g. the full disk): no load there."""

    # --- setting up ---------------------------------------------------------------

    def setup_circles(self, count: int, *, joined_share: float = 0.7) -> None:
        """Create circles (two organizers each, the first, their creator, also treasurer), let the relays
        serve them, and bring most members in with invites; the rest join during the soak."""
        world = self.world
        members = world.members
        for k in range(count):
            first, second = members[(2 * k) % len(members)], members[(2 * k + 1) % len(members)]
            name = ("Riverside", "Night owls", "Rent fund", "Garden", "Rides")[k % 5] + (f" {k}" if k >= 5 else "")
            circle_id = world.call(first, "circle.create", name=name)["id"]
            model = CircleModel(circle_id, name, [first.name, second.name], first.name, {first.name})
            model.joined_at[first.name] = time.time()
            world.circles[circle_id] = model
            token = world.call(first, "circle.relay_token", circle=circle_id)["token"]
            for relay in world.relays:
                world.call(relay, "relay.allow", token=token)
                world.call(first, "connect", address=relay.address)
                world.call(first, "relay.add", circle=circle_id, address=relay.address)
            if k == 1:
                self._open_history(first, circle_id)
            others = [m for m in members if m is not first and m is not second]
            self.rand.shuffle(others)
            newcomers = [second] + others[: max(1, int(joined_share * len(others)))]
            code = world.call(first, "invite.create", circle=circle_id, uses=len(newcomers))["code"]
            for newcomer in newcomers:
                world.call(newcomer, "join", code=code)
                model.joining[newcomer.name] = time.time()
            self.stats.joins_requested += len(newcomers)
        deadline = time.time() + 60 + 10 * len(members)
        while any(c.joining for c in world.circles.values()):
            if time.time() > deadline:
                raise AssertionError("the initial joins did not complete: " + str(self._joining()))
            self.check_joins()
            time.sleep(0.5)
        for model in world.circles.values():
            first, second = world.by_name(model.organizers[0]), world.by_name(model.organizers[1])
            self._call_retrying(first, "role.grant", circle=model.id, member=second.member_id, role="organizer")
        sizes = ", ".join(f"{c.name} ({len(c.members)})" for c in world.circles.values())
        world.note(f"set up {count} circles: {sizes}")

    def _open_history(self, organizer: Peer, circle_id: str) -> None:
        """One circle lets newcomers read the past, so both kinds of circle are soaked."""
        from kith.sync.kinds.circle import charter_body

        body = charter_body("Newcomers may read everything.", history=True)
        proposal = self.world.call(organizer, "propose", circle=circle_id, kind="charter", title="Open", charter=body)
        self.world.call(organizer, "vote", circle=circle_id, proposal=proposal["id"], choice="approve")

    def _joining(self) -> dict[str, list[str]]:
        return {c.name: sorted(c.joining) for c in self.world.circles.values() if c.joining}

    def check_joins(self) -> None:
        """Move newcomers whose node says they are in from `joining` to `members`."""
        world = self.world
        for model in world.circles.values():
            for name in list(model.joining):
                peer = world.by_name(name)
                if not peer.up:
                    continue
                try:
                    listing = world.call(peer, "circles", timeout=10)
                except KithError:
                    continue
                if any(c["id"] == model.id and c["am_member"] for c in listing):
                    with world.lock:
                        model.joining.pop(name, None)
                        model.members.add(name)
                        model.removed.discard(name)
                        model.joined_at[name] = time.time()
                    self.stats.joins_completed += 1

    def _call_retrying(self, peer: Peer, method: str, **params: Any) -> Any:
        return self._call_counting(peer, method, **params)[0]

    def _call_counting(self, peer: Peer, method: str, **params: Any) -> tuple[Any, int]:
        """The call's result, retried while the node waits for the circle's current key, and
        how many times it was refused for that first."""
        deadline = time.time() + RETRY_WINDOW_S
        retries = 0
        while True:
            try:
                return self.world.call(peer, method, **params), retries
            except NodeError as exc:
                if WAITING_FOR_KEY not in str(exc) or time.time() > deadline:
                    raise
                self.stats.retried += 1
                retries += 1
                time.sleep(0.3)

    # --- running ------------------------------------------------------------------

    def run(self, until: float, stop: threading.Event) -> None:
        next_tick = time.time()
        next_churn = time.time() + self.churn_every_s
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            while time.time() < until and not stop.is_set():
                next_tick += 1.0 / self.rate
                pause = next_tick - time.time()
                if pause > 0:
                    time.sleep(pause)
                if time.time() >= next_churn:
                    next_churn += self.churn_every_s
                    pool.submit(self._guarded, self._churn)
                    continue
                with self._lock:
                    if self._inflight >= 2 * self.workers:
                        self.stats.skipped += 1
                        continue
                    self._inflight += 1
                pool.submit(self._guarded, self._one_action, counted=True)

    def _guarded(self, action: Any, counted: bool = False) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a driver bug must not stop the soak silently
            self.stats.failures.append(f"driver error in {getattr(action, '__name__', action)}: {exc!r}")
        finally:
            if counted:
                with self._lock:
                    self._inflight -= 1

    def _pick_member(self) -> tuple[Peer, CircleModel] | None:
        world = self.world
        with world.lock:
            choices = [
                (world.by_name(name), model)
                for model in world.circles.values()
                for name in model.members
                if world.by_name(name).up and name not in self.paused
            ]
        return self.rand.choice(choices) if choices else None

    def _one_action(self) -> None:
        picked = self._pick_member()
        if picked is None:
            return
        peer, model = picked
        method, params, remember = self._choose(peer, model)
        self.act(peer, model, method, params, remember)

    def act(self, peer: Peer, model: CircleModel, method: str, params: dict[str, Any], remember: Any = None) -> None:
        """One action; refusals are counted by reason, never raised."""
        try:
            self.send(peer, model, method, params, remember)
        except NodeError as exc:
            self.stats.refused[f"{method}: {_reason(exc)}"] += 1
        except KithError as exc:  # the node went away under us (a fault), or did not answer
            self.stats.refused[f"{method}: node unavailable ({_reason(exc)})"] += 1

    def send(self, peer: Peer, model: CircleModel, method: str, params: dict[str, Any], remember: Any = None) -> None:
        """One action, recorded as sent once the node acknowledges it; raises if refused."""
        with self.world.lock:
            members = frozenset(model.members)
        sent = time.time()
        result, retries = self._call_counting(peer, method, circle=model.id, **params)
        acked = time.time()
        ids = result.get("ids") or ([result["id"]] if result.get("id") else [])
        with self.world.lock:
            for op_id in ids:
                self.stats.sent.append(OpRecord(op_id, model.id, peer.name, method, sent, acked, members, retries))
            if remember is not None and ids:
                model.remember(remember, ids[0])

    def _choose(self, peer: Peer, model: CircleModel) -> tuple[str, dict[str, Any], list[str] | None]:
        r = self.rand
        text = " ".join(r.choice(_WORDS) for _ in range(r.randint(3, 60)))
        roll = r.random()
        if roll < 0.30 or not model.posts:
            return "post", {"text": text, "urgent": r.random() < 0.03}, model.posts
        if roll < 0.45:
            return "post", {"text": text, "reply_to": r.choice(model.posts)}, None
        if roll < 0.52:
            return "react", {"target": r.choice(model.posts), "emoji": r.choice(["💜", "🙏", "👍", "🌱"])}, None
        if roll < 0.58:
            kind = r.choice(["pledge", "request"])
            category = r.choice(["money", "housing", "ride", "food", "time", "skill"])
            return kind, {"category": category, "description": text[:200], "amount": r.randint(1, 50)}, model.items
        if roll < 0.63:
            return "checkin", {"status": r.choice(["ok", "ok", "struggling", "need-help"]), "note": text[:100]}, None
        if roll < 0.68:
            return "contribute", {"amount": r.randint(100, 5000), "currency": "EUR"}, model.contributions
        if roll < 0.71 and peer.name == model.treasurer and model.contributions:
            return "receipt", {"contribution": r.choice(model.contributions)}, None
        if roll < 0.74:
            with self.world.lock:
                recipient = self.world.by_name(r.choice(sorted(model.members))).member_id
            return "propose", {"kind": "spend", "title": text[:60], "amount": r.randint(100, 3000), "currency": "EUR",
                               "recipient": recipient, "purpose": text[:100]}, model.proposals  # fmt: skip
        if roll < 0.86 and model.proposals:
            choice = r.choice(["approve", "approve", "approve", "object", "abstain"])
            return "vote", {"proposal": r.choice(model.proposals), "choice": choice}, None
        if roll < 0.88 and peer.name == model.treasurer and model.proposals:
            return "disburse", {"proposal": r.choice(model.proposals)}, None
        if roll < 0.91:
            return "event.create", {"title": text[:60], "starts": int(time.time()) + 86400}, model.events
        if roll < 0.95 and model.events:
            return "rsvp", {"event": r.choice(model.events), "answer": r.choice(["yes", "no", "maybe"])}, None
        pronouns = r.choice(["she", "they", "he"])
        return "profile", {"display_name": f"{peer.name} {r.choice(_WORDS)}", "pronouns": pronouns}, None

    # --- membership churn ---------------------------------------------------------

    def _churn(self) -> None:
        self.check_joins()
        world = self.world
        roll = self.rand.random()
        models = list(world.circles.values())
        model = self.rand.choice(models)
        with world.lock:
            organizers = [world.by_name(n) for n in model.organizers if world.by_name(n).up and n not in self.paused]
            ordinary = sorted(model.members - set(model.organizers))
            outsiders = [p for p in world.members if p.up and p.name not in model.members
                         and p.name not in model.joining and p.name not in self.paused]  # fmt: skip
        if not organizers:
            return
        organizer = self.rand.choice(organizers)
        if roll < 0.45 and outsiders:
            newcomer = self.rand.choice(outsiders)
            try:
                code = world.call(organizer, "invite.create", circle=model.id)["code"]
                world.call(newcomer, "join", code=code)
            except KithError as exc:
                self.stats.refused[f"join: {_reason(exc)}"] += 1
                return
            with world.lock:
                model.joining[newcomer.name] = time.time()
            self.stats.joins_requested += 1
            world.note(f"{newcomer.name} asked to join {model.name} (invited by {organizer.name})")
        elif roll < 0.75 and len(ordinary) > 3:
            target = world.by_name(self.rand.choice(ordinary))
            leaving = self.rand.random() < 0.3 and target.up and target.name not in self.paused
            actor = target if leaving else organizer
            try:
                self._call_retrying(actor, "member.remove", circle=model.id, member=target.member_id)
            except KithError as exc:
                self.stats.refused[f"member.remove: {_reason(exc)}"] += 1
                return
            with world.lock:
                model.members.discard(target.name)
                model.removed.add(target.name)
            self.stats.removals += 1
            world.note(f"{target.name} {'left' if leaving else 'was removed from'} {model.name}")
        else:
            try:
                self._call_retrying(organizer, "rotate", circle=model.id)
            except KithError as exc:
                self.stats.refused[f"rotate: {_reason(exc)}"] += 1
                return
            self.stats.rotations += 1
            world.note(f"{organizer.name} rotated the key of {model.name}")


def wait_until_joined(load: Load, timeout: float) -> None:
    """Let pending joins finish (used once faults and load have stopped)."""

    def settled() -> bool:
        load.check_joins()
        return not any(c.joining for c in load.world.circles.values())

    try:
        wait_for(settled, timeout=timeout, interval=1.0)
    except AssertionError:
        pass


_WORDS = (
    "soup",
    "thursday",
    "spare",
    "room",
    "ride",
    "clinic",
    "rent",
    "hello",
    "thanks",
    "love",
    "checking",
    "in",
    "tonight",
    "anyone",
    "around",
    "need",
    "help",
    "with",
    "groceries",
    "can",
    "bring",
    "blankets",
    "meeting",
    "park",
    "bench",
    "coffee",
    "bus",
    "fare",
    "tired",
    "hopeful",
    "safe",
    "home",
    "text",
    "me",
    "later",
    "proud",
    "of",
    "you",
    "garden",
    "tools",
    "phone",
    "charger",
    "🌈",
    "💜",
    "ünïcödé",
)
