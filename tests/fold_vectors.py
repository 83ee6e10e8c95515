"""Conformance vectors for the fold (docs/OPS.md, "Test vectors"), computed by the real code.

Each vector is an op set, listed in a causal order (every op after its parents), with the
`state_hash` a conforming fold reaches and the ops it rejects or strikes, with the exact
reasons. Several are attacks by a modified client. `python tests/fold_vectors.py` prints
the section; tests/test_fold_vectors.py checks that the document holds exactly it.

Everything is deterministic: fixed keys, fixed timestamps, fixed nonces for sealed content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kith.identity.keys import MemberIdentity
from kith.sync.content import seal_content
from kith.sync.kinds import alloc
from kith.sync.kinds.circle import amend_charter, genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.reviews import review_details

EPOCH = bytes([0x42]) * 16
CONTENT_KEY = bytes([0x11]) * 32
PEOPLE = {
    name: MemberIdentity(name.capitalize(), bytes([i + 1]) * 32, bytes([i + 101]) * 32, 1_700_000_000)
    for i, name in enumerate(["alice", "bob", "carol", "dana", "mallory"])
}


class Builder:
    """A circle built op by op, honestly (``act``) or as a modified client would (``forge``)."""

    def __init__(self) -> None:
        self.genesis = genesis_op(PEOPLE["alice"], name="Vectors", salt=bytes(range(16)), ts=1_700_000_000, epoch=EPOCH)
        self.circle = self.genesis.op.circle
        self.replica = CircleReplica(self.circle)
        self.ops: list[SignedOp] = []
        self.ts = 1_700_000_000
        self._take(self.genesis)

    def _take(self, signed: SignedOp) -> SignedOp:
        self.replica.ingest(signed)
        self.ops.append(signed)
        return signed

    def body(self, who: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind != "msg.post":
            return body
        fields = {"text": body["text"], "content_warning": None}
        nonce = bytes([len(self.ops)]) * 24
        blob = seal_content(
            fields,
            circle=self.circle,
            author=PEOPLE[who].member_id,
            kind=kind,
            epoch=EPOCH,
            key=CONTENT_KEY,
            rand=lambda n: nonce[:n],
        )
        return {"content": blob, "reply_to": None, "urgent": body.get("urgent", False)}

    def act(self, who: str, kind: str, body: dict[str, Any]) -> SignedOp:
        self.ts += 60
        signed = self.replica.author_op(PEOPLE[who], kind, self.body(who, kind, body), ts=self.ts)
        return self._take(signed)

    def forge(self, who: str, kind: str, body: dict[str, Any], parents: list[bytes], seq: int, ts: int) -> SignedOp:
        lamport = 1 + max(self.replica.dag.lamport_of(p) or 0 for p in parents)
        op = Op(self.circle, PEOPLE[who].member_id, tuple(sorted(set(parents))), lamport, ts, kind,
                self.body(who, kind, body), seq=seq)  # fmt: skip
        return self._take(SignedOp.decode(SignedOp.create(op, PEOPLE[who]).data))

    def last(self, who: str) -> tuple[int, bytes]:
        return self.replica.state.chains[PEOPLE[who].member_id]

    def add(self, who: str, by: str = "alice", **extra: Any) -> SignedOp:
        return self.act(by, "member.add", member_add_body(PEOPLE[who].card().to_bytes(), **extra))

    def member(self, who: str) -> bytes:
        return PEOPLE[who].member_id


def removed_organizer_backdates(b: Builder) -> None:
    """bob, an organizer, is removed; his client then signs a member.add of a sock puppet
    continuing his chain from before the removal, so it sorts before it."""
    b.add("bob")
    grant = b.act("alice", "role.grant", {"member": b.member("bob"), "role": "organizer"})
    b.act("bob", "msg.post", {"text": "hello"})
    seq, last = b.last("bob")
    b.act("alice", "member.remove", {"member": b.member("bob"), "reason": None})
    b.forge("bob", "member.add", member_add_body(PEOPLE["mallory"].card().to_bytes()), [last, grant.id], seq + 1, 1)


def mutual_removal(b: Builder) -> None:
    """bob and carol, both organizers (bob appointed first), remove each other concurrently."""
    b.add("bob")
    b.add("carol")
    b.act("alice", "role.grant", {"member": b.member("bob"), "role": "organizer"})
    b.act("alice", "role.grant", {"member": b.member("carol"), "role": "organizer"})
    b.act("bob", "msg.post", {"text": "bob here"})
    b.act("carol", "msg.post", {"text": "carol here"})
    heads = b.replica.dag.heads()
    bob_seq, bob_last = b.last("bob")
    carol_seq, carol_last = b.last("carol")
    others = [h for h in heads if h not in (bob_last, carol_last)]
    b.forge("carol", "member.remove", {"member": b.member("bob"), "reason": None}, [*others, carol_last, bob_last],
            carol_seq + 1, 2)  # fmt: skip
    b.forge("bob", "member.remove", {"member": b.member("carol"), "reason": None}, [*others, bob_last, carol_last],
            bob_seq + 1, 2)  # fmt: skip


def fork_and_unacknowledged(b: Builder) -> None:
    """dana forks her chain (two ops with seq 2); carol's first op does not cite her admission."""
    b.add("dana")
    add_carol = b.add("carol")
    first = b.act("dana", "msg.post", {"text": "one"})
    b.forge("dana", "msg.post", {"text": "two, to some"}, [first.id], 2, 5)
    b.forge("dana", "msg.post", {"text": "two, to others"}, [first.id], 2, 6)
    b.forge("carol", "msg.post", {"text": "I never saw my welcome"}, [first.id], 1, 7)
    b.forge("carol", "msg.post", {"text": "now I have"}, [add_carol.id, b.ops[-1].id], 2, 8)


def junk_rotation_and_requests(b: Builder) -> None:
    """bob, an organizer, rotates with a junk box for carol; only acknowledgements count as
    holding. A join request's nonce admits once: dana, removed, cannot be re-added by it."""
    b.add("bob")
    b.add("carol")
    b.act("alice", "role.grant", {"member": b.member("bob"), "role": "organizer"})
    new = bytes([0x43]) * 16
    b.act("bob", "key.rotate", {"epoch": new, "previous": EPOCH, "sealed": {b.member("carol"): bytes(112)}})
    b.act("alice", "key.ack", {"epochs": [new]})
    nonce = bytes([0x77]) * 16
    b.add("dana", request=nonce)
    b.act("alice", "member.remove", {"member": b.member("dana"), "reason": None})
    b.add("dana", request=nonce)


def puppets_after_opening(b: Builder) -> None:
    """alice opens a general proposal; bob, an organizer, then adds mallory with a member.add
    that does not cite it (so it sorts before it); mallory's vote is refused: the proposal's
    author had not seen her admission, so she is not in its electorate."""
    b.add("bob")
    b.act("alice", "role.grant", {"member": b.member("bob"), "role": "organizer"})
    b.act("bob", "msg.post", {"text": "bob here"})
    seq, last = b.last("bob")
    proposal = b.act("alice", "proposal.create", {"kind": "general", "title": "Picnic", "text": "", "details": {}})
    add = b.forge("bob", "member.add", member_add_body(PEOPLE["mallory"].card().to_bytes()), [last], seq + 1, b.ts)
    vote = {"proposal": proposal.id, "choice": "approve", "reason": None}
    b.forge("mallory", "proposal.vote", vote, [add.id, proposal.id], 1, b.ts + 1)


def votes_around_the_closing(b: Builder) -> None:
    """A spend proposal (quorum 50, threshold 60) closing 600 s after it opens: alice and
    carol approve, bob objects; bob then signs a close dated before the closing time
    (refused), mallory (not a member) one after it (refused); alice's node closes it at
    the closing time and it is approved 2:1. dana's objection, signed concurrently with the
    close (neither had seen the other), is not counted (2:2 would fail the threshold): it
    sorts after the close and is refused (sorting before it, it would be listed, uncounted);
    so is her vote after seeing the close."""
    added = {who: b.add(who) for who in ("bob", "carol", "dana")}
    spend = {"amount": 5000, "currency": "EUR", "recipient": "Clinic", "purpose": "fees"}
    body = {"kind": "spend", "title": "Clinic fees", "text": "", "details": spend, "closes": 600}
    proposal = b.act("alice", "proposal.create", body)
    for who, choice in (("alice", "approve"), ("carol", "approve"), ("bob", "object")):
        b.act(who, "proposal.vote", {"proposal": proposal.id, "choice": choice, "reason": None})
    b.act("bob", "proposal.close", {"proposal": proposal.id})
    heads = b.replica.dag.heads()
    b.ts = proposal.op.ts + 600 - 60
    b.act("alice", "proposal.close", {"proposal": proposal.id})
    b.forge("mallory", "proposal.close", {"proposal": proposal.id}, heads, 1, b.ts)
    vote = {"proposal": proposal.id, "choice": "object", "reason": None}
    b.forge("dana", "proposal.vote", vote, [*heads, added["dana"].id], 1, proposal.op.ts + 300)
    b.act("dana", "proposal.vote", {"proposal": proposal.id, "choice": "object", "reason": "too late?"})


ALLOC_RULES = {
    "period_s": 3600,
    "reveal_s": 600,
    "currency": "EUR",
    "categories": {"legal": 500, "rent": 800},
    "cap": 600,
    "cooldown": 1,
    "priority": True,
}


def allocation_draw(b: Builder) -> None:
    """The circle adopts allocation rules by a charter proposal (hour-long periods, a
    10-minute reveal window, rent 800 and legal 500 EUR a period, a cap of 600 a person, a
    cool-down of one period). bob, the treasurer, posts three rent asks of 400 for three
    pseudonyms (who asked is in the boxes, opaque bytes to the fold); mallory posts one
    herself (refused: not the committee). dana closes the period at its end; an ask bob
    signed concurrently, dated just before the end, is not in the close's past: it sorts
    after the close and is refused (sorting before it, it would be listed as late,
    uncounted). mallory reveals a guessed secret (refused); bob reveals two of the three; a draw
    dated inside the reveal window is refused; carol's draw ranks the unrevealed ask last
    and allocates the first two (800 of the budget). bob pays the first once from the
    confirmed balance (a second payment and mallory's are refused); the ledger names the
    ask, never the person."""
    for who in ("bob", "carol", "dana", "mallory"):
        b.add(who)
    grant = b.act("alice", "role.grant", {"member": b.member("bob"), "role": "treasurer"})
    charter = amend_charter(b.replica.state.info["charter"], {"alloc": ALLOC_RULES})
    body = {"kind": "charter", "title": "Rent rules", "text": "", "details": charter}
    proposal = b.act("alice", "proposal.create", body)
    for who in ("alice", "bob", "carol", "dana", "mallory"):
        b.act(who, "proposal.vote", {"proposal": proposal.id, "choice": "approve", "reason": None})
    gift = b.act("carol", "fund.contribute", {"amount": 2000, "currency": "EUR", "note": None})
    b.act("bob", "fund.receipt", {"contribution": gift.id})
    assert grant.id in b.replica.dag
    period = b.ts // 3600
    end = (period + 1) * 3600

    def ask(n: int) -> dict[str, Any]:
        private = {"ref": bytes([n]) * 32, "boxes": {b.member("bob"): bytes([0x5A + n]) * 80}}
        return {"period": period, "category": "rent", "amount": 400, "pseudonym": bytes([n]) * 16,
                "commit": alloc.commitment(bytes([n]) * 32), "private": private}  # fmt: skip

    asks = [b.act("bob", "alloc.ask", ask(n)) for n in (1, 2, 3)]
    b.act("mallory", "alloc.ask", ask(4))
    heads = b.replica.dag.heads()
    seq, previous = b.last("bob")
    b.ts = end - 60
    b.act("dana", "alloc.close", {"period": period})
    b.forge("bob", "alloc.ask", ask(5), [previous, *heads], seq + 1, end - 30)
    b.act("mallory", "alloc.reveal", {"ask": asks[0].id, "secret": bytes([9]) * 32})
    for n in (1, 2):
        b.act("bob", "alloc.reveal", {"ask": asks[n - 1].id, "secret": bytes([n]) * 32})
    b.act("carol", "alloc.draw", {"period": period})
    b.ts = end + 600 - 60
    b.act("carol", "alloc.draw", {"period": period})
    first = b.replica.state.periods[period].order[0]
    for who in ("bob", "bob", "mallory"):
        b.act(who, "alloc.pay", {"ask": first, "note": None})


def _edit_body(b: Builder, who: str, target: bytes, text: str) -> dict[str, Any]:
    nonce = bytes([len(b.ops)]) * 24
    blob = seal_content({"text": text, "content_warning": None}, circle=b.circle, author=PEOPLE[who].member_id,
                        kind="msg.edit", epoch=EPOCH, key=CONTENT_KEY, rand=lambda n: nonce[:n])  # fmt: skip
    return {"target": target, "content": blob}


def hide_races_and_refusals(b: Builder) -> None:
    """carol posts; bob, a member, tries to hide it (refused); dana, an organizer demoted by
    alice, signs a hide citing only the post, so it sorts before her demotion (struck); alice
    hides it with a reason; carol's edit, signed without seeing the hide (it cites bob's
    concurrent post), sorts after it and is refused: the text cannot come back. A hide of a
    contribution is refused."""
    for who in ("bob", "carol", "dana"):
        b.add(who)
    b.act("alice", "role.grant", {"member": b.member("dana"), "role": "organizer"})
    b.act("dana", "msg.post", {"text": "dana here"})
    dana_seq, dana_last = b.last("dana")
    post = b.act("carol", "msg.post", {"text": "a post that names someone's address"})
    carol_seq, carol_last = b.last("carol")
    b.act("bob", "msg.hide", {"target": post.id, "reason": "I dislike it"})
    b.act("alice", "msg.post", {"text": "news"})
    b.act("alice", "role.revoke", {"member": b.member("dana"), "role": "organizer"})
    b.forge("dana", "msg.hide", {"target": post.id, "reason": "rude"}, [dana_last, post.id], dana_seq + 1, b.ts)
    heads = list(b.replica.dag.heads())
    b.act("alice", "msg.hide", {"target": post.id, "reason": "it gives out a home address"})
    bob_seq, bob_last = b.last("bob")
    aside = b.forge("bob", "msg.post", {"text": "meanwhile"}, [*heads, bob_last], bob_seq + 1, b.ts + 1)
    edit = _edit_body(b, "carol", post.id, "reworded")
    b.forge("carol", "msg.edit", edit, [aside.id, carol_last], carol_seq + 1, b.ts + 2)
    contribution = b.act("bob", "fund.contribute", {"amount": 500, "currency": "EUR", "note": None})
    b.act("alice", "msg.hide", {"target": contribution.id, "reason": "not a post"})


def monthly_installments(b: Builder) -> None:
    """carol contributes 25.00 EUR monthly from 2026-12; bob (treasurer) confirms December,
    then December again (refused), November (before the first month: refused) and a month
    with no "month" key (refused); carol confirming her own (refused: not a treasurer); carol
    stops after January; bob confirms January (sent before the stop) and February (refused)."""
    for who in ("bob", "carol"):
        b.add(who)
    b.act("alice", "role.grant", {"member": b.member("bob"), "role": "treasurer"})
    monthly = b.act("carol", "fund.contribute", {"amount": 2500, "currency": "EUR", "note": None,
                                                 "monthly": "2026-12"})  # fmt: skip
    for month in ("2026-12", "2026-12", "2026-11", None):
        b.act("bob", "fund.receipt", {"contribution": monthly.id, **({"month": month} if month else {})})
    b.act("carol", "fund.receipt", {"contribution": monthly.id, "month": "2027-01"})
    b.act("carol", "fund.stop", {"contribution": monthly.id, "last": "2027-01"})
    b.act("bob", "fund.receipt", {"contribution": monthly.id, "month": "2027-01"})
    b.act("bob", "fund.receipt", {"contribution": monthly.id, "month": "2027-02"})


def handover_and_raced_demotion(b: Builder) -> None:
    """bob, an organizer, hands his role to mallory concurrently with alice demoting him
    (his client cites only his own chain, and the handover sorts first). A handover gives
    the author's role up, so like leaving it is never struck: it stands and the demotion
    finds nothing to revoke. mallory's place is below bob's, so alice demotes her; bob's
    handover to carol after seeing the demotion is refused. carol's handover from alice,
    last, makes carol the organizer and alice a member."""
    for who in ("bob", "carol", "mallory"):
        b.add(who)
    b.act("alice", "role.grant", {"member": b.member("bob"), "role": "organizer"})
    b.act("bob", "msg.post", {"text": "bob here"})
    seq, last = b.last("bob")
    demotion = b.act("alice", "role.revoke", {"member": b.member("bob"), "role": "organizer"})
    b.forge("bob", "role.handover", {"member": b.member("mallory")}, [last], seq + 1, demotion.op.ts - 1)
    b.act("alice", "role.revoke", {"member": b.member("mallory"), "role": "organizer"})
    b.act("bob", "role.handover", {"member": b.member("carol")})
    b.act("alice", "role.handover", {"member": b.member("carol")})


def election_while_organizers_idle(b: Builder) -> None:
    """The circle sets governance {organizers_at 3, idle_s 3600} by charter proposal. bob
    opens an election of carol; alice, the organizer, posts after seeing it, which ends it.
    bob opens another; everyone but alice approves, and it stays open (an election is
    decided only at its closing); dana's close an hour early is refused; alice's node
    closes it at the closing (a node's own close is not alice acting) and carol becomes an
    organizer, junior to alice."""
    for who in ("bob", "carol", "dana"):
        b.add(who)
    charter = amend_charter(b.replica.state.info["charter"], {"governance": {"organizers_at": 3, "idle_s": 3600}})
    body = {"kind": "charter", "title": "Elections", "text": "", "details": charter}
    change = b.act("alice", "proposal.create", body)
    for who in ("alice", "bob", "carol", "dana"):
        b.act(who, "proposal.vote", {"proposal": change.id, "choice": "approve", "reason": None})
    election = {"kind": "organizer", "title": "Carol", "text": "", "details": {"member": b.member("carol")}}
    first = b.act("bob", "proposal.create", election)
    b.act("alice", "msg.post", {"text": "still here"})
    second = b.act("bob", "proposal.create", election)
    for who in ("bob", "carol", "dana"):
        b.act(who, "proposal.vote", {"proposal": second.id, "choice": "approve", "reason": None})
    b.act("dana", "proposal.close", {"proposal": first.id})
    b.ts = second.op.ts + 3600 - 3660
    b.act("dana", "proposal.close", {"proposal": second.id})
    b.ts = second.op.ts + 3600 - 60
    b.act("alice", "proposal.close", {"proposal": second.id})


def review_expires(b: Builder) -> None:
    """carol opens a review of dana, its reason sealed to alice and bob (the organizers);
    mallory, added after it opened, cannot vote; only carol votes, so at its closing it
    expires and dana stays. A second review, approved by alice, bob and carol, removes
    dana, whose later post is refused."""
    for who in ("bob", "carol", "dana"):
        b.add(who)
    b.act("alice", "role.grant", {"member": b.member("bob"), "role": "organizer"})
    b.act("bob", "msg.post", {"text": "bob here"})
    b.act("dana", "msg.post", {"text": "dana here"})
    seeds = iter(range(1, 100))

    def sealed(reason: str) -> dict[str, Any]:
        seed = next(seeds)
        return review_details(b.replica.state, b.member("dana"), reason, lambda n: bytes([seed]) * n)

    review = {"kind": "review", "title": "Review", "text": "", "details": sealed("threats in DMs")}
    first = b.act("carol", "proposal.create", review)
    b.add("mallory")
    b.act("mallory", "proposal.vote", {"proposal": first.id, "choice": "approve", "reason": None})
    b.act("carol", "proposal.vote", {"proposal": first.id, "choice": "approve", "reason": None})
    b.ts = first.op.ts + 259200 - 60
    b.act("bob", "proposal.close", {"proposal": first.id})
    review = {**review, "details": sealed("it happened again")}
    second = b.act("carol", "proposal.create", review)
    for who in ("alice", "bob", "carol"):
        b.act(who, "proposal.vote", {"proposal": second.id, "choice": "approve", "reason": None})
    seq, last = b.last("dana")
    b.forge("dana", "msg.post", {"text": "still here?"}, sorted({b.ops[-1].id, last}), seq + 1, b.ts + 60)


VECTORS: dict[str, Callable[[Builder], None]] = {
    "removed-organizer-backdates": removed_organizer_backdates,
    "mutual-removal": mutual_removal,
    "fork-and-unacknowledged": fork_and_unacknowledged,
    "junk-rotation-and-requests": junk_rotation_and_requests,
    "puppets-after-opening": puppets_after_opening,
    "votes-around-the-closing": votes_around_the_closing,
    "allocation-draw": allocation_draw,
    "hide-races-and-refusals": hide_races_and_refusals,
    "monthly-installments": monthly_installments,
    "handover-and-raced-demotion": handover_and_raced_demotion,
    "election-while-organizers-idle": election_while_organizers_idle,
    "review-expires": review_expires,
}


def compute() -> dict[str, str]:
    """name -> the vector's text (ops, state hash, rejections)."""
    out = {}
    for name, build in VECTORS.items():
        builder = Builder()
        build(builder)
        state = builder.replica.state
        lines = [f"op {signed.data.hex()}" for signed in builder.ops]
        lines.append(f"state_hash {state.state_hash().hex()}")
        for op_id, row in sorted(state.all_rejections().items()):
            lines.append(f"rejected {op_id.hex()} {row.reason}")
        out[name] = "\n".join(lines)
    return out


def markdown() -> str:
    parts = []
    for name, text in compute().items():
        doc = (VECTORS[name].__doc__ or "").split("\n")
        parts.append(f"**{name}**: " + " ".join(line.strip() for line in doc).strip())
        parts.append("")
        parts.append("```text")
        parts.append(f"# fold-vector: {name}")
        parts.append(text)
        parts.append("```")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown())
