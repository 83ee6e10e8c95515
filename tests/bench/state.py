"""Circle-state figures: a fresh fold, a late op, and opening a big circle from its cache.

The workload is a deterministic mix of every common op kind by 24 members (posts and
replies, reactions, check-ins, aid, proposals and votes, the fund, events), built once
per run and shared by the three benchmarks. Building and signing 100,000 ops is setup,
not measured.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Figures, register
from kith.identity.keys import MemberIdentity
from kith.p2pnet.statecache import StateCache
from kith.sync.kinds import seal_plain_body
from kith.sync.kinds.circle import charter_body, genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import fold_circle_state
from kith.sync.views import build_views

OPS = 100_000
LATE_BY = 1_000
BACKDATE_BY = 50_000
LATE_MEMBER = 5
"""Goes quiet for the last ``LATE_BY`` + 500 ops: an honest member who was offline."""
REMOVED_MEMBER = 22
"""Goes quiet for the last ``BACKDATE_BY`` + 5,000 ops: the member who is removed and back-dates."""
_WORKLOAD: list[SignedOp] = []


class _Silent(Exception):
    """The chosen author is offline at this point of the history."""


_WEIGHTS = {
    "post": 26, "reply": 16, "react": 10, "checkin": 5, "edit": 3, "delete": 1, "profile": 2,
    "pledge": 4, "request": 4, "match": 2, "fulfil": 1, "withdraw": 1,
    "propose": 1, "vote": 12, "contribute": 4, "receipt": 3, "disburse": 1, "event": 1, "rsvp": 3,
}  # fmt: skip


class _Workload:
    """Generates a plausible op history as one causal chain (each op cites the previous one,
    and its author's previous op: their chain), with two members who go quiet near the end."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.epoch, self.content_key = self.rng.randbytes(16), self.rng.randbytes(32)
        self.people = [
            MemberIdentity(f"member{i}", self.rng.randbytes(32), self.rng.randbytes(32), 0) for i in range(24)
        ]
        self.ops: list[SignedOp] = []
        first = genesis_op(
            self.people[0],
            name="Bench circle",
            salt=self.rng.randbytes(16),
            ts=1_700_000_000,
            epoch=self.epoch,
            charter=charter_body("Be kind.", members_can_invite=True),
        )
        self.circle = first.op.circle
        self.ops.append(first)
        self.lamports = {first.id: 1}
        self.chains: dict[bytes, tuple[int, bytes]] = {first.op.author: (1, first.id)}
        self.to_cite: dict[bytes, list[bytes]] = {}
        """What each member must acknowledge with their next op: their member.add, grants."""
        self.quiet: dict[int, int] = {}
        """person index -> the op count after which they say nothing."""
        self.posts: list[tuple[bytes, MemberIdentity]] = []
        self.pledges: list[tuple[bytes, MemberIdentity]] = []
        self.requests: list[tuple[bytes, MemberIdentity]] = []
        self.proposals: list[bytes] = []
        self.contributions: list[bytes] = []
        self.events: list[bytes] = []

    def emit(self, who: MemberIdentity, kind: str, body: dict[str, Any]) -> bytes:
        index = self.people.index(who)
        if index in self.quiet and len(self.ops) >= self.quiet[index]:
            raise _Silent
        signed = self.sign(who, kind, body, (self.ops[-1].id,), 1_700_000_000 + len(self.ops))
        self.ops.append(signed)
        self.lamports[signed.id] = signed.op.lamport
        self.chains[who.member_id] = (signed.op.seq, signed.id)
        if kind == "member.add":
            self.to_cite[body["member"]] = [signed.id]
        elif kind == "role.grant":
            self.to_cite.setdefault(body["member"], []).append(signed.id)
        return signed.id

    def sign(self, who: MemberIdentity, kind: str, body: dict[str, Any], cite: tuple[bytes, ...], ts: int) -> SignedOp:
        """An op by ``who`` citing ``cite``, their previous op and what they must acknowledge."""
        if kind == "aid.request":
            body = {**body, "private": None}
        body = seal_plain_body(kind, body, circle=self.circle, author=who.member_id, epoch=self.epoch,
                               key=self.content_key, rand=self.rng.randbytes)  # fmt: skip
        chain = self.chains.get(who.member_id)
        parents = {*cite, *self.to_cite.pop(who.member_id, [])}
        if chain is not None:
            parents.add(chain[1])
        lamport = 1 + max(self.lamports[parent] for parent in parents)
        seq = 1 if chain is None else chain[0] + 1
        op = Op(self.circle, who.member_id, tuple(sorted(parents)), lamport, ts, kind, body, seq=seq)
        return SignedOp.create(op, who)

    def build(self, count: int) -> list[SignedOp]:
        founder, rng = self.people[0], self.rng
        for person in self.people[1:]:
            self.emit(founder, "member.add", member_add_body(person.card().to_bytes()))
        for treasurer in self.people[1:3]:
            self.emit(founder, "role.grant", {"member": treasurer.member_id, "role": "treasurer"})
        self.quiet = {LATE_MEMBER: count - LATE_BY - 500, REMOVED_MEMBER: count - BACKDATE_BY - 5_000}
        kinds, weights = list(_WEIGHTS), list(_WEIGHTS.values())
        while len(self.ops) < count:
            try:
                getattr(self, f"_{rng.choices(kinds, weights)[0]}")(rng.choice(self.people))
            except _Silent:
                continue
        return self.ops[:count]

    def _post(self, who: MemberIdentity, reply_to: bytes | None = None) -> None:
        text = "Thinking of everyone tonight. " * self.rng.randint(1, 4)
        body = {"text": text, "reply_to": reply_to, "content_warning": None, "urgent": self.rng.random() < 0.03}
        self.posts.append((self.emit(who, "msg.post", body), who))

    def _reply(self, who: MemberIdentity) -> None:
        self._post(who, self.rng.choice(self.posts[-200:])[0] if self.posts else None)

    def _react(self, who: MemberIdentity) -> None:
        if self.posts:
            target = self.rng.choice(self.posts[-200:])[0]
            self.emit(who, "msg.react", {"target": target, "emoji": self.rng.choice("💜🌈🫂✨"), "on": True})

    def _checkin(self, who: MemberIdentity) -> None:
        status = self.rng.choice(["ok", "ok", "struggling", "need-help"])
        self.emit(who, "checkin", {"status": status, "note": "long week" if status != "ok" else None})

    def _edit(self, who: MemberIdentity) -> None:
        if self.posts:
            target, author = self.rng.choice(self.posts[-100:])
            self.emit(author, "msg.edit", {"target": target, "text": "Edited: thank you all.", "content_warning": None})

    def _delete(self, who: MemberIdentity) -> None:
        if self.posts:
            target, author = self.posts.pop(self.rng.randrange(max(0, len(self.posts) - 100), len(self.posts)))
            self.emit(author, "msg.delete", {"target": target})

    def _profile(self, who: MemberIdentity) -> None:
        body = {"display_name": who.name, "pronouns": "they/them", "skills": ["cooking", "listening"]}
        self.emit(who, "profile.set", body)

    def _item(self, who: MemberIdentity, kind: str) -> bytes:
        body = {"category": self.rng.choice(["money", "ride", "food", "housing"]), "description": "Can help this week",
                "amount": 2000, "unit": "EUR", "expires": None}  # fmt: skip
        return self.emit(who, kind, body)

    def _pledge(self, who: MemberIdentity) -> None:
        self.pledges.append((self._item(who, "aid.pledge"), who))

    def _request(self, who: MemberIdentity) -> None:
        self.requests.append((self._item(who, "aid.request"), who))

    def _match(self, who: MemberIdentity) -> None:
        if self.pledges and self.requests:
            pledge, author = self.pledges.pop()
            self.emit(author, "aid.match", {"pledge": pledge, "request": self.rng.choice(self.requests[-50:])[0]})

    def _fulfil(self, who: MemberIdentity) -> None:
        if self.requests:
            request, author = self.requests.pop(0)
            self.emit(author, "aid.fulfil", {"request": request})

    def _withdraw(self, who: MemberIdentity) -> None:
        if self.pledges:
            pledge, author = self.pledges.pop(0)
            self.emit(author, "aid.withdraw", {"item": pledge})

    def _propose(self, who: MemberIdentity) -> None:
        kind = self.rng.choice(["spend", "spend", "general"])
        details: dict[str, object] = {}
        if kind == "spend":
            details = {"amount": 1500, "currency": "EUR", "recipient": "Landlord", "purpose": "rent gap"}
        body = {"kind": kind, "title": "Help with rent", "text": "", "details": details}
        self.proposals = [*self.proposals[-2:], self.emit(who, "proposal.create", body)]

    def _vote(self, who: MemberIdentity) -> None:
        if self.proposals:
            choice = self.rng.choice(["approve", "approve", "approve", "object", "abstain"])
            body = {"proposal": self.rng.choice(self.proposals), "choice": choice, "reason": None}
            self.emit(who, "proposal.vote", body)

    def _contribute(self, who: MemberIdentity) -> None:
        body = {"amount": self.rng.randint(500, 5000), "currency": "EUR", "note": None}
        self.contributions.append(self.emit(who, "fund.contribute", body))

    def _receipt(self, who: MemberIdentity) -> None:
        if self.contributions:
            self.emit(self.people[1], "fund.receipt", {"contribution": self.contributions.pop(0)})

    def _disburse(self, who: MemberIdentity) -> None:
        if self.proposals:
            self.emit(self.people[2], "fund.disburse", {"proposal": self.rng.choice(self.proposals), "note": None})

    def _event(self, who: MemberIdentity) -> None:
        body = {"title": "Potluck", "starts": 1_800_000_000, "place_hint": "the usual place", "text": None}
        self.events.append(self.emit(who, "event.create", body))

    def _rsvp(self, who: MemberIdentity) -> None:
        if self.events:
            answer = self.rng.choice(["yes", "no", "maybe"])
            self.emit(who, "event.rsvp", {"event": self.rng.choice(self.events[-5:]), "answer": answer})


def workload() -> list[SignedOp]:
    """The shared 100,000-op history (built on first use)."""
    if not _WORKLOAD:
        _WORKLOAD.extend(_Workload(seed=2024).build(OPS))
    return _WORKLOAD


@register("fold_ops_per_s")
def bench_fold() -> Figures:
    ops = workload()
    circle = ops[0].op.circle
    start = time.perf_counter()
    state = fold_circle_state(circle, ops)
    elapsed = time.perf_counter() - start
    assert state.applied_count == len(ops)
    return {"fold_ops_per_s": round(len(ops) / elapsed)}


def _folded_workload() -> tuple[list[SignedOp], CircleReplica, _Workload]:
    """The workload folded into a replica, and a builder that continues its members' chains."""
    ops = workload()
    replica = CircleReplica(ops[0].op.circle)
    replica.ingest_many(ops)
    builder = _Workload(seed=2024)
    builder.chains = {m: (seq, op_id) for m, (seq, op_id) in replica.state.chains.items()}
    builder.lamports = {op.id: op.op.lamport for op in ops}
    return ops, replica, builder


@register("late_op_ms")
def bench_late_op() -> Figures:
    """A member back from being offline: their op cites the op 1,001 from the end (and their
    own last one, older still), so it sorts about 1,000 ops before the end."""
    ops, replica, builder = _folded_workload()
    anchor = ops[-LATE_BY - 1]
    body = {"text": "Sorry, I was offline: I can drive on Sunday.", "reply_to": None, "content_warning": None,
            "urgent": False}  # fmt: skip
    late = builder.sign(builder.people[LATE_MEMBER], "msg.post", body, (anchor.id,), anchor.op.ts)
    start = time.perf_counter()
    result = replica.ingest(late)
    elapsed = time.perf_counter() - start
    assert result.applied and result.replayed >= LATE_BY - 1, result
    return {"late_op_ms": round(elapsed * 1000, 1)}


@register("backdated_op_ms")
def bench_backdated_op() -> Figures:
    """A removed member signs an op whose lamport sorts 50,000 ops back in a 100,000-op circle
    (it cites the op 50,000 from the end and their own last op, older still). The removal
    had not seen it, so it is struck on arrival: nothing is folded again."""
    ops, replica, builder = _folded_workload()
    removed = builder.people[REMOVED_MEMBER]
    founder = builder.people[0]
    removal = replica.author_op(
        founder, "member.remove", {"member": removed.member_id, "reason": None}, ts=ops[-1].op.ts + 1
    )
    replica.ingest(removal)
    assert removed.member_id not in replica.state.members
    builder.lamports[removal.id] = removal.op.lamport
    anchor = ops[-BACKDATE_BY]
    body = {"text": "URGENT: meet tonight at the old warehouse", "reply_to": None, "content_warning": None,
            "urgent": True}  # fmt: skip
    backdated = builder.sign(removed, "msg.post", body, (anchor.id,), removal.op.ts + 1)
    start = time.perf_counter()
    result = replica.ingest(backdated)
    elapsed = time.perf_counter() - start
    assert result.applied and result.replayed == 0, result
    assert replica.state.is_rejected(backdated.id) == "its author was removed by an op that had not seen it"
    return {"backdated_op_ms": round(elapsed * 1000, 2)}


def _rss_mb() -> float:
    """This process's resident memory, from /proc (Linux), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@register("causal_buffer_mb_max")
def bench_causal_buffer() -> Figures:
    """A hostile peer sends 10,000 valid, signed ops of ~50 KB each, every one citing a
    parent that never comes (the attack that once held ~350 MiB for 3,000 ops). The buffer
    keeps at most 2 MiB per sender and 8 MiB per circle; the figure is the largest resident
    growth seen while they arrive."""
    rng = random.Random(7)
    founder = MemberIdentity("founder", rng.randbytes(32), rng.randbytes(32), 0)
    hostile = MemberIdentity("hostile", rng.randbytes(32), rng.randbytes(32), 0)
    genesis = genesis_op(founder, name="Bench", salt=rng.randbytes(16), ts=1, epoch=rng.randbytes(16))
    circle = genesis.op.circle
    replica = CircleReplica(circle)
    replica.ingest(genesis)
    pad = rng.randbytes(50_000)
    before = peak = _rss_mb()
    over_share = False
    for n in range(10_000):
        op = Op(circle, hostile.member_id, (rng.randbytes(32),), 2, n, "msg.post", {"pad": pad}, seq=2)
        result = replica.ingest(SignedOp.decode(SignedOp.create(op, hostile).data), "hostile-peer")
        over_share = over_share or result.over_share
        if n % 250 == 0:
            peak = max(peak, _rss_mb())
    peak = max(peak, _rss_mb())
    assert over_share and replica.dag.buffered_bytes <= replica.dag.max_source_bytes
    return {"causal_buffer_mb_max": round(peak - before, 1)}


_OPEN_SCRIPT = """
import sys
from pathlib import Path
from typing import Any
from kith.sync.replica import CircleReplica
from kith.p2pnet.statecache import StateCache
path, circle = sys.argv[1], bytes.fromhex(sys.argv[2])
key = bytes.fromhex(sys.stdin.readline().strip())
cache = StateCache(Path(path), key)
replica, cursor = CircleReplica.open(cache, circle)
views = replica.views()
print("ready", replica.state.applied_count, len(views.feed), flush=True)
"""


@register("state_open_s")
def bench_state_open() -> Figures:
    """A real process: start, import, open the cache, load the snapshot, build every view."""
    ops = workload()
    circle = ops[0].op.circle
    key = bytes(range(32))
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        path = Path(tmp) / "state.sqlite"
        with StateCache(path, key) as cache:
            replica = CircleReplica(circle, cache=cache)
            for offset in range(0, len(ops), 5_000):
                replica.ingest_many(ops[offset : offset + 5_000])
            replica.save(cursor=len(ops))
            expected = replica.state_hash()
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", _OPEN_SCRIPT, str(path), circle.hex()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(key.hex() + "\n")
        child.stdin.flush()
        line = child.stdout.readline()
        elapsed = time.perf_counter() - start
        child.wait(timeout=60)
        assert line.startswith(f"ready {len(ops)} "), line
        with StateCache(path, key) as cache:
            reopened, _cursor = CircleReplica.open(cache, circle)
            assert reopened.state_hash() == expected, "the reopened state differs from the saved one"
        build_views(reopened.state)
    return {"state_open_s": round(elapsed, 3)}
