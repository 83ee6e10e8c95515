"""A builder of forged op sets, as modified clients would sign them, and ways to deliver
them (tests/sync/test_fold_termination.py). Written by an adversarial review of the fold.

`B.op` signs any op: chosen parents (``cite``), chain position (``prev``/``seq``: forks
and back-dating), ``before`` grinds ``ts`` until the op sorts before a given op.
"""

from __future__ import annotations

import random

from circle_support import PEOPLE
from sync_support import FIRST_EPOCH, sealed_body

from kith.sync.kinds.circle import genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import fold_key

M = {n: p.member_id for n, p in PEOPLE.items()}
NAMES = {v: k for k, v in M.items()}


class B:
    def __init__(self, charter=None):
        self.g = genesis_op(
            PEOPLE["alice"], name="Night owls", salt=bytes(range(16)), ts=1, epoch=FIRST_EPOCH, charter=charter
        )
        self.cid = self.g.op.circle
        self.ops = [self.g]
        self.lam = {self.g.id: 1}
        self.last = {"alice": (1, self.g.id)}
        self.by_id = {self.g.id: self.g}
        self.labels = {self.g.id: "genesis"}

    def op(self, who, kind, body, *, cite=(), chain=True, seq=None, prev=None, label=None, ts=5, before=None):
        person = PEOPLE[who]
        parents = set(cite)
        if prev is None and chain and who in self.last:
            prev = self.last[who][1]
        if prev is not None:
            parents.add(prev)
        if seq is None:
            seq = 1 if prev is None else self.seq_of(prev) + 1
        if not parents:
            parents = {self.g.id}
        body = sealed_body(kind, body, person.member_id, self.cid)
        lam = 1 + max(self.lam[p] for p in parents)
        for t in range(ts, ts + 5000):
            o = Op(self.cid, person.member_id, tuple(sorted(parents)), lam, t, kind, body, seq=seq)
            s = SignedOp.decode(SignedOp.create(o, person).data)
            if before is None or fold_key(s) < fold_key(before):
                break
        else:
            raise AssertionError("could not grind")
        self.ops.append(s)
        self.lam[s.id] = lam
        self.by_id[s.id] = s
        self.labels[s.id] = label or f"{who}:{kind}#{seq}"
        if who not in self.last or seq > self.last[who][0]:
            self.last[who] = (seq, s.id)
        return s

    def seq_of(self, op_id):
        return self.by_id[op_id].op.seq

    # convenience
    def add(self, who, by="alice", **kw):
        return self.op(by, "member.add", member_add_body(PEOPLE[who].card().to_bytes()), **kw)

    def grant(self, who, role="organizer", by="alice", **kw):
        return self.op(by, "role.grant", {"member": M[who], "role": role}, **kw)

    def revoke(self, who, role="organizer", by="alice", **kw):
        return self.op(by, "role.revoke", {"member": M[who], "role": role}, **kw)

    def remove(self, who, by="alice", **kw):
        return self.op(by, "member.remove", {"member": M[who], "reason": None}, **kw)

    def post(self, who, text="hi", **kw):
        return self.op(
            who, "msg.post", {"text": text, "reply_to": None, "content_warning": None, "urgent": False}, **kw
        )


def causal_orders(ops: list[SignedOp], rnd: random.Random, n: int) -> list[list[SignedOp]]:
    """n random topological orders of ops (parents first)."""
    ids = {o.id for o in ops}
    out = []
    for _ in range(n):
        done, order, pending = set(), [], list(ops)
        while pending:
            ready = [o for o in pending if all(p in done or p not in ids for p in o.op.parents)]
            o = rnd.choice(ready)
            pending.remove(o)
            done.add(o.id)
            order.append(o)
        out.append(order)
    return out


def feed(cid: bytes, order: list[SignedOp], *, undo_window: int = 20000, batch: int = 1) -> CircleReplica:
    r = CircleReplica(cid, undo_window=undo_window)
    for i in range(0, len(order), batch):
        r.ingest_many(order[i : i + batch])
    return r


PEOPLE_N = ["alice", "bob", "carol", "dana", "eve"]


def gen(rnd, n):
    b = B()
    adds = {who: b.add(who) for who in ("bob", "carol", "dana", "eve")}
    grants = {who: b.grant(who) for who in ("bob", "carol")}
    grants["dana"] = b.grant("dana", by="bob", cite=(b.post("bob", cite=(adds["bob"].id, grants["bob"].id)).id,))
    grants["eve"] = b.grant("eve", "treasurer")
    for who in ("carol", "dana", "eve"):
        b.post(who, cite=(adds[who].id, grants[who].id))
    mine = {}
    for _ in range(n):
        who = rnd.choice(PEOPLE_N)
        cite = set()
        for x in mine.get(who, []):
            if rnd.random() < 0.6:
                cite.add(x)
        for _ in range(rnd.choice([0, 1, 1, 2])):
            cite.add(rnd.choice(b.ops[-12:]).id if rnd.random() < 0.5 else rnd.choice(b.ops).id)
        prev = None
        own = [o for o in b.ops if o.op.author == M[who]]
        if own and rnd.random() < 0.12:
            prev = rnd.choice(own).id  # fork (or back-dating continuation)
        tgt = rnd.choice(PEOPLE_N)
        k = rnd.random()
        try:
            if k < 0.25:
                s = b.post(who, cite=cite, prev=prev)
            elif k < 0.4:
                s = b.grant(tgt, rnd.choice(["organizer", "organizer", "treasurer"]), by=who, cite=cite, prev=prev)
                mine.setdefault(tgt, []).append(s.id)
            elif k < 0.55:
                s = b.revoke(tgt, rnd.choice(["organizer", "treasurer"]), by=who, cite=cite, prev=prev)
            elif k < 0.72:
                s = b.remove(tgt, by=who, cite=cite, prev=prev)
            elif k < 0.82:
                s = b.add(tgt, by=who, cite=cite, prev=prev)
                mine.setdefault(tgt, []).append(s.id)
            else:
                s = b.op(who, "fund.receipt", {"contribution": bytes(32)}, cite=cite, prev=prev)
        except KeyError:
            continue
    return b
