"""A deterministic adversarial simulation of one circle (issue: causal authority).

Honest nodes run the real pure core (`CircleReplica`: DAG, causal index, fold) and the
real membership lifecycle (`MembershipLifecycle`), with real keys sealed to real X25519
keys; only the network, the clock and crashes are simulated. Adversaries run modified
clients:

* **mallory**, an organizer who is removed and then signs ops that sort before her
  removal (old parents, ``ts`` ground to win the id tie): a sock puppet added and made
  organizer, the removal of a less senior organizer, an urgent post, and a fork of her
  chain;
* **eq**, a member who forks her chain (two ops with one ``seq``, one to each half);
* **jay**, an organizer whose client rotates with junk boxes;
* **rex**, who joined with an invite and is removed; a **replayer** sends his stored join
  request to every node again and again;
* around governance (docs/OPS.md §6a): honest members open membership reviews of eq (the
  reason sealed to the organizers); jay's puppets try to vote on them; eq back-dates an
  election of herself so that its closing time is now, votes and closes it at once.

The network delays, reorders, duplicates and drops messages, partitions the nodes and
heals; nodes crash and restart from their op set (their keys survive: the keystore is on
disk); anti-entropy (reconciliation) runs between random pairs. Everything comes from one
seed: `run(seed)` replays a failure exactly.

After the run the network heals, adversaries stop, honest nodes settle, and the
invariants are checked (`Violation` names the first that fails):

1. every honest node has the same ``state_hash``;
2. no op of a removed member that its removal had not seen takes effect (decisions, which
   are never struck, aside);
3. no removed member gets a key sealed by an honest node that had seen the removal;
4. no honest member is left unable to post (each holds the current key, no rotation is
   due, and a post by each is accepted everywhere);
5. every op is either in effect or listed with a reason; the puppet and the removed never
   end up members;
6. votes are fair (electorates fixed at opening, closes counted causally, never early); a
   review that expired was closed and removed nobody; eq never becomes an organizer.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from kith.identity.errors import RemoteProtocolError, Undecryptable
from kith.identity.keys import MemberIdentity
from kith.sync.content import seal_content
from kith.sync.envelope import epoch_id
from kith.sync.invites import InviteCode, circle_check, open_epoch_key, seal_epoch_key, seal_join_request
from kith.sync.kinds import keys
from kith.sync.kinds.circle import genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.kinds.records import ELECTION, EXPIRED, ORGANIZER, REJECTED, REVIEW
from kith.sync.lifecycle import Ack, Approve, CircleView, Close, MembershipLifecycle, Refuse, Rotate, Share
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.reviews import review_details

KEY_KINDS = ("key.rotate", "key.share")
DECISIONS = frozenset({"proposal.create", "proposal.vote", "proposal.withdraw", "proposal.close"})


class Violation(AssertionError):
    """An invariant failed; the message names it and the seed."""


@dataclass(frozen=True)
class Config:
    honest: int = 5
    steps: int = 60
    """Rounds of activity (each: deliveries, a few actions, lifecycle ticks)."""
    drop: float = 0.1
    duplicate: float = 0.1
    max_delay: float = 6.0
    crash: float = 0.02
    partition: float = 0.05


@cache
def person(name: str) -> MemberIdentity:
    seed = name.encode().ljust(32, b".")[:32]
    return MemberIdentity(name, seed, bytes(reversed(seed)), 0)


@dataclass
class Node:
    """An honest member's node: replica, lifecycle, keys, and what it has seen."""

    name: str
    replica: CircleReplica
    lifecycle: MembershipLifecycle
    keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    """epoch id -> (epoch key, content key): the keystore, which survives a crash."""
    ops: dict[bytes, SignedOp] = field(default_factory=dict)
    """Every op it stored (its disk)."""
    up: bool = True

    @property
    def me(self) -> MemberIdentity:
        return person(self.name)

    @property
    def state(self) -> Any:
        return self.replica.state

    def view(self) -> CircleView:
        return CircleView(self.state.circle_id, self.state, frozenset(self.keys))


class Simulation:
    def __init__(self, seed: int, config: Config = Config()) -> None:
        self.seed = seed
        self.config = config
        self.rng = random.Random(seed)
        self.now = 2_000_000.0  # past an idle period (14 days) after the epoch: elections can be back-dated
        self.ts = 1000
        self.honest = ["alice", "hana", *[f"h{i}" for i in range(config.honest - 2)]]
        founder = person("alice")
        first_key, first_content = self.secret(), self.secret()
        self.genesis = genesis_op(
            founder, name="Sim", salt=self.rng.randbytes(16), ts=self.ts, epoch=epoch_id(first_key)
        )
        self.circle = self.genesis.op.circle
        self.setup = CircleReplica(self.circle)
        self.setup.ingest(self.genesis)
        self.setup_keys = {epoch_id(first_key): (first_key, first_content)}
        self.queue: list[tuple[float, int, str, str, Any]] = []
        self.counter = 0
        self.partition: dict[str, int] | None = None
        self.adversary_ops: dict[bytes, SignedOp] = {}
        self.honest_key_ops: list[SignedOp] = []
        self._build()

    # --- helpers ------------------------------------------------------------------------

    def secret(self) -> bytes:
        return self.rng.randbytes(32)

    def tick_ts(self) -> int:
        self.ts += 1
        return self.ts

    def _setup_act(self, who: str, kind: str, body: dict[str, Any]) -> SignedOp:
        signed = self.setup.author_op(person(who), kind, self._seal(self.setup, who, kind, body), ts=self.tick_ts())
        result = self.setup.ingest(signed)
        assert not result.rejected, result.rejected
        return signed

    def _seal(
        self, replica: CircleReplica, who: str, kind: str, body: dict[str, Any], keyring: Any = None
    ) -> dict[str, Any]:
        if kind != "msg.post":
            return body
        keyring = keyring if keyring is not None else self.setup_keys
        epoch = replica.state.info["epoch"]
        if epoch not in keyring:  # only a modified client gets here: it seals with a key it has
            epoch = next(e for e in sorted(keyring) if e in replica.state.epochs)
        _key, content_key = keyring[epoch]
        fields = {"text": body["text"], "content_warning": None}
        blob = seal_content(
            fields, circle=self.circle, author=person(who).member_id, kind=kind, epoch=epoch, key=content_key,
            rand=self.rng.randbytes,
        )  # fmt: skip
        return {"content": blob, "reply_to": None, "urgent": body.get("urgent", False)}

    def _build(self) -> None:
        """The circle before the run: alice founds; mallory, then hana, then jay are
        organizers (so mallory is more senior than hana); eq and rex are members, rex by invite."""
        for name in ["mallory", "hana", "jay", "eq", *self.honest[2:]]:
            self._setup_act("alice", "member.add", member_add_body(person(name).card().to_bytes()))
        for name in ("mallory", "hana", "jay"):
            self._setup_act("alice", "role.grant", {"member": person(name).member_id, "role": ORGANIZER})
        secret = self.secret()
        self._setup_act(
            "alice", "invite.create", {"invite": keys.invite_id(secret), "secret": secret, "uses": 2, "expires": None}
        )
        epoch = self.setup.state.info["epoch"]
        code = InviteCode(secret, circle_check(self.circle, secret), (), None)
        self.rex_request, nonce = seal_join_request(code, person("rex"), ts=self.ts, rand=self.rng.randbytes)
        self._setup_act(
            "alice",
            "member.add",
            member_add_body(person("rex").card().to_bytes(), invite=code.invite_id, request=nonce),
        )
        everyone = [*self.honest, "mallory", "jay", "eq", "rex"]
        for name in everyone:
            if name != "alice":
                self._setup_act(name, "key.ack", {"epochs": [epoch]})
        self.nodes: dict[str, Node] = {}
        base = list(self.setup.ops())
        for name in self.honest:
            self.nodes[name] = self._fresh_node(name, base, dict(self.setup_keys))
        # Adversaries keep their own replicas (they see everything they are sent).
        self.adversaries: dict[str, Node] = {
            name: self._fresh_node(name, base, dict(self.setup_keys)) for name in ("mallory", "jay", "eq")
        }
        self.jay_strikes_at = -1
        self.mallory_last_seen: tuple[int, bytes] | None = None
        self.removed_mallory = False

    def _fresh_node(self, name: str, ops: list[SignedOp], keyring: dict[bytes, tuple[bytes, bytes]]) -> Node:
        replica = CircleReplica(self.circle)
        replica.ingest_many(ops)
        node = Node(name, replica, MembershipLifecycle(person(name).member_id), keyring, {op.id: op for op in ops})
        return node

    # --- network --------------------------------------------------------------------------

    def send(self, sender: str, signed: SignedOp, *, to: list[str] | None = None, reliable: bool = False) -> None:
        targets = to if to is not None else [n for n in [*self.nodes, *self.adversaries] if n != sender]
        for target in targets:
            if (
                not reliable
                and self.partition is not None
                and self.partition.get(sender, 0) != self.partition.get(target, 0)
            ):
                continue
            copies = 1
            if not reliable:
                if self.rng.random() < self.config.drop:
                    continue
                if self.rng.random() < self.config.duplicate:
                    copies = 2
            for _ in range(copies):
                delay = 0.0 if reliable else self.rng.uniform(0, self.config.max_delay)
                self.counter += 1
                heapq.heappush(self.queue, (self.now + delay, self.counter, sender, target, signed))

    def deliver_due(self) -> None:
        while self.queue and self.queue[0][0] <= self.now:
            _at, _n, sender, target, item = heapq.heappop(self.queue)
            node = self.nodes.get(target) or self.adversaries.get(target)
            if node is None or not node.up:
                continue
            if isinstance(item, SignedOp):
                self.receive(node, [item], sender)
            else:
                self.join_request(node, item)

    def receive(self, node: Node, ops: list[SignedOp], source: str) -> None:
        fresh = [op for op in ops if op.id not in node.ops]
        if not fresh:
            return
        for op in fresh:
            node.ops[op.id] = op
        result = node.replica.ingest_many(fresh, source)
        if node.name in self.adversaries:
            return
        kinds: set[str] = set()
        for op in result.applied:
            kinds.add(op.op.kind)
            if op.op.kind in KEY_KINDS:
                self.open_box(node, op)
        self.execute(node, node.lifecycle.folded(node.view(), kinds, self.now))
        if any(kind in kinds for kind in (*KEY_KINDS, "member.add")):
            self.execute(node, node.lifecycle.keys_installed(node.view()))

    def open_box(self, node: Node, signed: SignedOp) -> None:
        body = signed.op.body
        box = body.get("sealed", {}).get(node.me.member_id) if type(body.get("sealed")) is dict else None
        epoch = body.get("epoch")
        if box is None or type(epoch) is not bytes or epoch in node.keys:
            return
        try:
            key, content = open_epoch_key(box, node.me, epoch)
        except (Undecryptable, RemoteProtocolError):
            node.lifecycle.key_unusable(self.circle, epoch)
            return
        node.keys[epoch] = (key, content)

    def join_request(self, node: Node, envelope: Any) -> None:
        if node.name in self.adversaries:
            return
        self.execute(node, node.lifecycle.join_request(node.view(), envelope, self.now))

    def sync_pair(self, a: Node, b: Node) -> None:
        """Reconciliation: each ends with every op the other stored."""
        if not (a.up and b.up):
            return
        a_missing = [op for op_id, op in b.ops.items() if op_id not in a.ops]
        b_missing = [op for op_id, op in a.ops.items() if op_id not in b.ops]
        self.rng.shuffle(a_missing)
        self.rng.shuffle(b_missing)
        self.receive(a, a_missing, b.name)
        self.receive(b, b_missing, a.name)

    # --- honest behaviour ---------------------------------------------------------------

    def author(
        self, node: Node, kind: str, body: dict[str, Any], *, reliable: bool = False, ts: int | None = None
    ) -> SignedOp | None:
        state = node.state
        if node.me.member_id not in state.members:
            return None
        if kind == "msg.post":
            epoch = state.info.get("epoch")
            if epoch not in node.keys or state.info.get("rotation_due"):
                return None  # an honest client waits for the key
        signed = node.replica.author_op(
            node.me, kind, self._seal(node.replica, node.name, kind, body, node.keys), ts=ts or self.tick_ts()
        )
        node.ops[signed.id] = signed
        node.replica.ingest(signed)
        if kind in KEY_KINDS:
            self.honest_key_ops.append(signed)
        self.send(node.name, signed, reliable=reliable)
        return signed

    def execute(self, node: Node, actions: list[Any], *, reliable: bool = False) -> None:
        for action in actions:
            state = node.state
            if isinstance(action, Ack):
                self.author(node, "key.ack", {"epochs": list(action.epochs)}, reliable=reliable)
            elif isinstance(action, Rotate):
                key, content = self.secret(), self.secret()
                epoch = epoch_id(key)
                sealed = {
                    m: seal_epoch_key(state.cards[m], key, content, self.rng.randbytes)
                    for m in sorted(state.members)
                    if m != node.me.member_id and m in state.cards
                }
                node.keys[epoch] = (key, content)
                self.author(
                    node,
                    "key.rotate",
                    {"epoch": epoch, "previous": state.info["epoch"], "sealed": sealed},
                    reliable=reliable,
                )
            elif isinstance(action, Share):
                if action.epoch not in node.keys:
                    continue
                key, content = node.keys[action.epoch]
                sealed = {
                    m: seal_epoch_key(state.cards[m], key, content, self.rng.randbytes)
                    for m in action.members
                    if m in state.members
                }
                if sealed:
                    self.author(node, "key.share", {"epoch": action.epoch, "sealed": sealed}, reliable=reliable)
            elif isinstance(action, Approve):
                request = action.request
                body = member_add_body(request.card.to_bytes(), invite=request.invite, request=request.request)
                self.author(node, "member.add", body, reliable=reliable)
                node.lifecycle.approved(self.circle, request.card.member_id)
            elif isinstance(action, Refuse):
                pass  # a refusal is an envelope to the newcomer; nothing in the circle
            elif isinstance(action, Close):
                # Decisions claim the node's clock (the sim's ``now``), as a real node's do.
                for proposal in action.proposals:
                    self.author(node, "proposal.close", {"proposal": proposal}, reliable=reliable, ts=self.clock())

    def clock(self) -> int:
        return math.ceil(self.now)

    def honest_round(self) -> None:
        live = [n for n in self.nodes.values() if n.up]
        for node in self.rng.sample(live, k=min(2, len(live))):
            self.author(node, "msg.post", {"text": f"{node.name} at {self.now:.0f}"})
        if live and self.rng.random() < 0.08:
            kind = self.rng.choice(["general", "spend"])
            details = {} if kind == "general" else {"amount": 500, "currency": "EUR", "recipient": "x", "purpose": "y"}
            body = {"kind": kind, "title": "t", "text": "", "details": details, "closes": 60}
            self.author(self.rng.choice(live), "proposal.create", body, ts=self.clock())
        if live and self.rng.random() < 0.05:
            reviewer = self.rng.choice(live)
            eq = person("eq").member_id
            if eq in reviewer.state.members:
                details = review_details(reviewer.state, eq, "fake accounts", self.rng.randbytes)
                body = {"kind": "review", "title": "t", "text": "", "details": details, "closes": 60}
                self.author(reviewer, "proposal.create", body, ts=self.clock())
        for node in live:
            self.vote_honestly(node)
        for node in live:
            self.execute(node, node.lifecycle.tick(node.view(), self.now))

    def vote_honestly(self, node: Node) -> None:
        """Now and then, vote on an open proposal it may vote on, before its closing time
        (what the honest client's checks allow)."""
        state = node.state
        me = node.me.member_id
        open_ones = [
            pid for pid in sorted(state.open_proposals)
            if me in state.proposals[pid].electorate and me not in state.votes.get(pid, {})
            and self.clock() < state.proposals[pid].closes_at
        ]  # fmt: skip
        if open_ones and self.rng.random() < 0.3:
            choice = self.rng.choice(["approve", "approve", "object", "abstain"])
            body = {"proposal": self.rng.choice(open_ones), "choice": choice, "reason": None}
            self.author(node, "proposal.vote", body, ts=self.clock())

    # --- adversaries -------------------------------------------------------------------

    def forge(
        self, who: str, replica: CircleReplica, kind: str, body: dict[str, Any], parents: list[bytes], seq: int, ts: int
    ) -> SignedOp:
        lamport = 1 + max(replica.dag.lamport_of(p) or 0 for p in parents)
        op = Op(self.circle, person(who).member_id, tuple(sorted(set(parents))), lamport, ts, kind, body, seq=seq)
        return SignedOp.decode(SignedOp.create(op, person(who)).data)

    def adversary_round(self, step: int) -> None:
        config = self.config
        mallory = self.adversaries["mallory"]
        me = person("mallory").member_id
        if not self.removed_mallory:
            if me in mallory.state.chains:
                self.mallory_last_seen = mallory.state.chains[me]
            if self.rng.random() < 0.3:
                self.author_adversary(mallory, "msg.post", {"text": "organizing"})
        elif self.mallory_last_seen is not None and self.rng.random() < 0.4:
            self.mallory_backdates()
        eq = self.adversaries["eq"]
        if self.rng.random() < 0.15 and person("eq").member_id in eq.state.chains:
            self.equivocate(eq)
        jay = self.adversaries["jay"]
        if (self.rng.random() < 0.08 and step < config.steps - 5) or step == config.steps - 4:
            self.junk_rotation(jay)
        if step == self.jay_strikes_at:
            # A junior organizer removes a senior one: refused, whatever the order.
            self.author_adversary(jay, "member.remove", {"member": person("hana").member_id, "reason": None})
        if self.rng.random() < 0.15:
            self.vote_attacks(eq, jay)
        if self.rng.random() < 0.06:
            self.election_at_the_deadline(eq)
        if step > config.steps // 3 and self.rng.random() < 0.2:
            for name in self.nodes:
                self.counter += 1
                heapq.heappush(
                    self.queue, (self.now + self.rng.uniform(0, 3), self.counter, "replayer", name, self.rex_request)
                )

    def vote_attacks(self, eq: Node, jay: Node) -> None:
        """Modified clients around a vote: jay (an organizer) lets a sock puppet in with a
        member.add that does not cite an open proposal, and the puppet votes on it; eq closes
        it before its closing time, and votes claiming a time after it."""
        state = jay.state
        open_ones = sorted(state.open_proposals)
        if not open_ones:
            return
        proposal = self.rng.choice(open_ones)
        record = state.proposals[proposal]
        me = person("jay").member_id
        if me in state.chains and person("sock").member_id not in state.members:
            seq, last = state.chains[me]
            add = self.forge("jay", jay.replica, "member.add", member_add_body(person("sock").card().to_bytes()),
                             [last], seq + 1, self.clock())  # fmt: skip
            vote = self.forge("sock", jay.replica, "proposal.vote",
                              {"proposal": proposal, "choice": "approve", "reason": None}, [add.id, proposal], 1,
                              self.clock())  # fmt: skip
            for signed in (add, vote):
                jay.replica.ingest(signed)
                jay.ops[signed.id] = signed
                self.adversary_ops[signed.id] = signed
                self.send("jay", signed)
        if person("eq").member_id in eq.state.members and proposal in eq.state.proposals:
            early = record.closes_at - self.rng.randint(1, 30)
            self.author_adversary(eq, "proposal.close", {"proposal": proposal}, ts=early)
            if person("eq").member_id not in eq.state.votes.get(proposal, {}):
                late = {"proposal": proposal, "choice": "object", "reason": None}
                self.author_adversary(eq, "proposal.vote", late, ts=record.closes_at + self.rng.randint(0, 5))

    def election_at_the_deadline(self, eq: Node) -> None:
        """eq dates an election of herself an idle period in the past, so its closing time is
        now, votes on it just before and closes it just after: organizers who are there never
        got to see it. It is refused anyway: the quorum is a share of an electorate fixed at
        opening, and an organizer acting after seeing it ends it."""
        state = eq.state
        me = person("eq").member_id
        if me not in state.members or ORGANIZER in state.members[me].roles:
            return
        idle = state.info["charter"].settings.idle_s
        opened = self.clock() - idle
        body = {"kind": "organizer", "title": "me", "text": "", "details": {"member": me}}
        election = self.author_adversary(eq, "proposal.create", body, ts=opened)
        if election is None or election.id not in state.proposals:
            return
        vote = {"proposal": election.id, "choice": "approve", "reason": None}
        self.author_adversary(eq, "proposal.vote", vote, ts=opened + idle - 1)
        self.author_adversary(eq, "proposal.close", {"proposal": election.id}, ts=opened + idle)

    def junk_rotation(self, jay: Node) -> None:
        """A real new key for some (often the organizers, so nobody repairs it at once), junk
        boxes for the rest: only acknowledgements show who really holds it."""
        state = jay.state
        key, content = self.secret(), self.secret()
        sealed = {}
        for member in sorted(state.members):
            if member == person("jay").member_id or member not in state.cards:
                continue
            if ORGANIZER in state.members[member].roles or self.rng.random() < 0.3:
                sealed[member] = seal_epoch_key(state.cards[member], key, content, self.rng.randbytes)
            else:
                sealed[member] = self.rng.randbytes(keys.SEALED_KEY_BYTES)
        jay.keys[epoch_id(key)] = (key, content)
        self.author_adversary(
            jay, "key.rotate", {"epoch": epoch_id(key), "previous": state.info["epoch"], "sealed": sealed}
        )

    def author_adversary(self, node: Node, kind: str, body: dict[str, Any], ts: int | None = None) -> SignedOp | None:
        if node.me.member_id not in node.state.members:
            return None
        if kind == "msg.post" and node.state.info["epoch"] not in node.keys:
            return None
        signed = node.replica.author_op(
            node.me, kind, self._seal(node.replica, node.name, kind, body, node.keys), ts=ts or self.tick_ts()
        )
        node.ops[signed.id] = signed
        node.replica.ingest(signed)
        self.adversary_ops[signed.id] = signed
        self.send(node.name, signed)
        return signed

    def mallory_backdates(self) -> None:
        """Mallory's modified client: ops continuing her chain from before her removal
        (or forking it), ``ts`` ground so they sort as early as possible."""
        node = self.adversaries["mallory"]
        assert self.mallory_last_seen is not None
        seq, last = self.mallory_last_seen
        me = person("mallory").member_id
        chain = node.state.chains.get(me, (seq, last))
        if self.rng.random() < 0.3:
            seq, last = chain  # continue past whatever she already back-dated
        choice = self.rng.randrange(4)
        puppet = person("puppet")
        if choice == 0:
            kind, body = "member.add", member_add_body(puppet.card().to_bytes())
        elif choice == 1:
            kind, body = "role.grant", {"member": puppet.member_id, "role": ORGANIZER}
        elif choice == 2:
            kind, body = "member.remove", {"member": person("hana").member_id, "reason": None}
        else:
            kind, body = (
                "msg.post",
                self._seal(
                    node.replica, "mallory", "msg.post", {"text": "URGENT: old warehouse", "urgent": True}, node.keys
                ),
            )
        parents = [last]
        candidates = [h for h in node.replica.dag.heads() if node.replica.dag.meta(h).author != me]  # type: ignore[union-attr]
        if candidates and self.rng.random() < 0.5:
            parents.append(self.rng.choice(candidates))
        best = None
        for ts in range(1, 12):  # grind: the smallest id at this lamport
            signed = self.forge("mallory", node.replica, kind, body, parents, seq + 1, ts)
            if best is None or signed.id < best.id:
                best = signed
        assert best is not None
        if best.id in node.ops:
            return
        node.ops[best.id] = best
        node.replica.ingest(best)
        self.adversary_ops[best.id] = best
        targets = self.rng.sample(list(self.nodes), k=self.rng.randint(1, len(self.nodes)))
        self.send("mallory", best, to=targets)

    def equivocate(self, node: Node) -> None:
        me = person("eq").member_id
        seq, last = node.state.chains[me]
        if node.state.info["epoch"] not in node.keys:
            return
        parent_meta = node.replica.dag.meta(last)
        assert parent_meta is not None
        own = [p for p in parent_meta.parents if (m := node.replica.dag.meta(p)) is not None and m.author == me]
        others = [p for p in parent_meta.parents if p not in own]
        names = list(self.nodes)
        self.rng.shuffle(names)
        half = len(names) // 2
        for i, group in enumerate((names[:half], names[half:])):
            body = self._seal(node.replica, "eq", "msg.post", {"text": f"version {i}"}, node.keys)
            signed = self.forge(
                "eq", node.replica, "msg.post", body, own + others or [self.genesis.id], seq, self.tick_ts()
            )
            node.ops[signed.id] = signed
            self.adversary_ops[signed.id] = signed
            self.send("eq", signed, to=group)
        node.replica.ingest_many(
            [op for op in self.adversary_ops.values() if op.id not in node.replica.dag and op.op.author == me]
        )

    # --- faults --------------------------------------------------------------------------

    def faults(self) -> None:
        config = self.config
        for node in self.nodes.values():
            if node.up and self.rng.random() < config.crash:
                node.up = False
            elif not node.up and self.rng.random() < 0.3:
                self.restart(node)
        if self.partition is None and self.rng.random() < config.partition:
            names = [*self.nodes, *self.adversaries]
            self.partition = {name: self.rng.randrange(2) for name in names}
        elif self.partition is not None and self.rng.random() < 0.2:
            self.partition = None
        live = [n for n in self.nodes.values() if n.up]
        if len(live) >= 2 and self.rng.random() < 0.3:
            a, b = self.rng.sample(live, 2)
            if self.partition is None or self.partition.get(a.name) == self.partition.get(b.name):
                self.sync_pair(a, b)
        for adversary in self.adversaries.values():  # they reconcile too (and so hand out what they forged)
            if live and self.rng.random() < 0.3:
                honest = self.rng.choice(live)
                if self.partition is None or self.partition.get(adversary.name) == self.partition.get(honest.name):
                    self.sync_pair(adversary, honest)

    def restart(self, node: Node) -> None:
        """The process died: memory is gone, the op store and keystore remain."""
        fresh = self._fresh_node(node.name, sorted(node.ops.values(), key=lambda op: op.op.lamport), node.keys)
        fresh.ops = node.ops
        self.nodes[node.name] = fresh

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        config = self.config
        remove_mallory_at = self.rng.randrange(config.steps // 4, config.steps // 2)
        remove_rex_at = self.rng.randrange(1, config.steps // 3)
        self.jay_strikes_at = self.rng.randrange(config.steps // 2, config.steps)
        for step in range(config.steps):
            self.now += self.rng.uniform(1, 4)
            self.deliver_due()
            if step == remove_rex_at:
                self.author(self.nodes["alice"], "member.remove", {"member": person("rex").member_id, "reason": None})
            if step == remove_mallory_at and self.author(
                self.nodes["alice"], "member.remove", {"member": person("mallory").member_id, "reason": None}
            ):
                self.removed_mallory = True
            self.adversary_round(step)
            self.honest_round()
            self.faults()
        return self.settle()

    def settle(self) -> dict[str, Any]:
        """Heal the network, stop the adversaries, let honest nodes finish their duties."""
        self.partition = None
        for node in list(self.nodes.values()):
            if not node.up:
                self.restart(node)
        self.now += self.config.max_delay + 1
        self.deliver_due()
        self.queue.clear()
        for _round in range(60):
            self.full_sync()
            before = sum(len(n.ops) for n in self.nodes.values())
            self.now += 5
            for node in self.nodes.values():
                self.execute(node, node.lifecycle.tick(node.view(), self.now), reliable=True)
                self.execute(node, node.lifecycle.keys_installed(node.view()), reliable=True)
            self.deliver_due()
            self.full_sync()
            after = sum(len(n.ops) for n in self.nodes.values())
            if after == before and self._quiet():
                break
        return self.check()

    def full_sync(self) -> None:
        union: dict[bytes, SignedOp] = {}
        for node in self.nodes.values():
            union.update(node.ops)
        for node in self.nodes.values():
            missing = [op for op_id, op in union.items() if op_id not in node.ops]
            self.rng.shuffle(missing)
            self.receive(node, missing, "sync")

    def check_votes(self, state: Any, all_ops: dict[bytes, SignedOp], rejections: dict[bytes, Any]) -> None:
        def past(op_id: bytes) -> set[bytes]:
            seen, stack = set(), [op_id]
            while stack:
                for parent in all_ops[stack.pop()].op.parents:
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            return seen

        admissions: dict[bytes, list[bytes]] = {}
        for op in all_ops.values():
            if op.op.kind == "member.add" and op.id not in rejections:
                admissions.setdefault(op.op.body["member"], []).append(op.id)
            elif op.op.kind == "circle.create" and op.id not in rejections:
                admissions.setdefault(op.op.author, []).append(op.id)
        for proposal_id, proposal in state.proposals.items():
            before = past(proposal_id)
            if any(not set(admissions.get(m, ())) & before for m in proposal.electorate):
                self.fail("a member the proposer had not seen admitted is in its electorate")
            if person("sock").member_id in state.votes.get(proposal_id, {}):
                self.fail("a puppet let in after a proposal opened voted on it")
            closer = all_ops.get(proposal.decided_by) if proposal.decided_by else None
            # (A close of another proposal can decide this one early: a review it approved
            # removed a member, and every open proposal was evaluated again, §6.)
            if closer is not None and closer.op.kind == "proposal.close" and closer.op.body["proposal"] == proposal_id:
                seen = past(closer.id)
                in_past = [v for v in state.votes.get(proposal_id, {}).values() if v.op in seen]
                if proposal.approve + proposal.object + proposal.abstain > len(in_past):
                    self.fail("a close counted a vote it had not seen")
                if closer.op.ts < proposal.closes_at:
                    self.fail("a proposal was closed by a close dated before its closing time")
            if proposal.status == "open" and proposal.closes_at + 30 < self.now:
                self.fail("a proposal past its closing time was never closed")
            if proposal.status == EXPIRED and (closer is None or closer.op.kind != "proposal.close"):
                self.fail("a review expired without a close")
        for op in all_ops.values():
            if op.op.kind == "proposal.vote" and op.id not in rejections:
                target = state.proposals.get(op.op.body["proposal"])
                if target is not None and op.op.ts >= target.closes_at:
                    self.fail("a vote claiming a time after the closing counted")

    def _quiet(self) -> bool:
        for node in self.nodes.values():
            state = node.state
            if any(state.proposals[p].closes_at <= self.now for p in state.open_proposals):
                return False
            if node.me.member_id in state.members and (
                state.info["rotation_due"] or state.info["epoch"] not in node.keys
            ):
                return False
            if keys.members_missing_key(state):
                return False
        return True

    # --- invariants -----------------------------------------------------------------------

    def fail(self, what: str) -> None:
        raise Violation(f"seed {self.seed}: {what}")

    def check(self) -> dict[str, Any]:
        nodes = list(self.nodes.values())
        hashes = {node.replica.state_hash() for node in nodes}
        if len(hashes) != 1:
            self.fail(f"honest nodes disagree: {len(hashes)} state hashes")
        state = nodes[0].state
        index = state.causal
        members = state.members
        for name in ("mallory", "rex", "puppet"):
            if person(name).member_id in members:
                self.fail(f"{name} is a member at the end")
        eq = members.get(person("eq").member_id)
        if eq is not None and ORGANIZER in eq.roles:
            self.fail("eq's back-dated election made her an organizer")
        for node in nodes:
            if node.me.member_id not in members:
                self.fail(f"honest {node.name} was removed")
        rejections = state.all_rejections()
        all_ops = {op.id: op for op in nodes[0].replica.ops()}
        # 2. ops of removed members that their removal had not seen have no effect
        for target, records in state.removals.items():
            for record in records:
                if record.scope != "member":
                    continue
                start, end = (record.start_lamport, record.start_op), (record.end_lamport, record.end_op)
                for op in all_ops.values():
                    key = (op.op.lamport, op.id)
                    if op.op.author != target or not start < key < end or op.op.kind in DECISIONS:
                        continue
                    if not index.which_in_past((op.id,), record.end_op) and op.id not in rejections:
                        self.fail(f"an op of a removed member took effect unseen by the removal: {op.op.kind}")
        # 3. no removed member gets a key sealed by an honest node that had seen the removal
        for target, records in state.removals.items():
            if target in members:
                continue
            for record in records:
                if record.scope != "member":
                    continue
                for op in self.honest_key_ops:
                    if (
                        op.id in all_ops
                        and target in op.op.body["sealed"]
                        and index.which_in_past((record.end_op,), op.id)
                    ):
                        self.fail("an honest node sealed a key to a member it had seen removed")
        # 6. fair votes: eligibility fixed at opening, closes counted causally, never early
        self.check_votes(state, all_ops, rejections)
        # 5. every op is folded: in effect or listed with its reason
        if state.applied_count != len(all_ops):
            self.fail("the fold's count differs from the op set")
        if any(not reason.reason for reason in rejections.values()):
            self.fail("a rejection without a reason")
        # 4. every honest member can post
        current = state.info["epoch"]
        if state.info["rotation_due"]:
            self.fail("a rotation is still due after settling")
        for node in nodes:
            if node.me.member_id not in members:
                continue
            if current not in node.keys:
                self.fail(f"{node.name} lacks the current key after settling")
            post = self.author(node, "msg.post", {"text": "can I still post?"}, reliable=True)
            if post is None:
                self.fail(f"{node.name} cannot post")
            assert post is not None
            self.now += 1
            self.deliver_due()
            for other in nodes:
                if other.state.is_rejected(post.id) is not None or post.id not in other.state.messages:
                    self.fail(f"{node.name}'s post is refused: {other.state.is_rejected(post.id)}")
        return {
            "ops": len(all_ops),
            "struck": len(state.struck),
            "rejected": len(rejections),
            "forks": len(state.forks),
            "epochs": len(state.epochs),
            "adversary_ops": len(self.adversary_ops),
            "closed": sum(
                1
                for p in state.proposals.values()
                if p.decided_by in all_ops and all_ops[p.decided_by].op.kind == "proposal.close"
            ),
            "vote_refusals": sum(1 for r in rejections.values() if r.kind in ("proposal.vote", "proposal.close")),
            "reviews": sum(1 for p in state.proposals.values() if p.kind == REVIEW),
            "reviews_expired": sum(1 for p in state.proposals.values() if p.status == EXPIRED),
            "elections_refused": sum(
                1 for p in state.proposals.values() if p.kind == ELECTION and p.status == REJECTED
            ),
        }


def run(seed: int, config: Config = Config()) -> dict[str, Any]:
    """One simulation; raises `Violation` naming the seed if an invariant fails."""
    return Simulation(seed, config).run()


__all__ = ["Config", "Simulation", "Violation", "run"]
