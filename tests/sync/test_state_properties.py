"""Order independence: any permutation and duplication of one op set folds to the same bytes.

The op set comes from three replicas acting concurrently (equal lamports, competing
removals, votes on both sides of a partition), so the orders hypothesis picks exercise
late ops, rollback, full re-folds and the causal buffer.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sync_support import sealed_body

from kith.identity.keys import MemberIdentity
from kith.sync.causal import CausalIndex, meta_of
from kith.sync.kinds.circle import genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import CircleState, fold_circle_state, fold_key

NAMES = ["alice", "bob", "carol", "dana", "eve"]
PEOPLE = {name: MemberIdentity(name, bytes([i + 1]) * 32, bytes([i + 101]) * 32, 0) for i, name in enumerate(NAMES)}


def _concurrent_history(seed: int, rounds: int) -> tuple[bytes, list[SignedOp]]:
    """A deterministic history written by three replicas with partial syncs between rounds."""
    rng = random.Random(seed)
    genesis = genesis_op(PEOPLE["alice"], name="Night owls", salt=bytes(16), ts=1, epoch=bytes([0x42]) * 16)
    circle = genesis.op.circle
    replicas = [CircleReplica(circle) for _ in range(3)]
    ops: list[SignedOp] = [genesis]
    ts = 1

    def act(index: int, who: str, kind: str, body: dict[str, Any]) -> None:
        nonlocal ts
        ts += 1
        body = sealed_body(kind, body, PEOPLE[who].member_id, circle)
        signed = replicas[index].author_op(PEOPLE[who], kind, body, ts=ts)
        replicas[index].ingest(signed)
        ops.append(signed)

    def member(name: str) -> bytes:
        return PEOPLE[name].member_id

    replicas[0].ingest(genesis)
    for name in ("bob", "carol", "dana"):
        act(0, "alice", "member.add", member_add_body(PEOPLE[name].card().to_bytes()))
    act(0, "alice", "role.grant", {"member": member("bob"), "role": "treasurer"})
    act(0, "alice", "role.grant", {"member": member("carol"), "role": "organizer"})
    for replica in replicas[1:]:
        replica.ingest_many(ops)
    for _ in range(rounds):
        for index, replica in enumerate(replicas):
            state = replica.state
            names = [n for n in NAMES if member(n) in state.members] or NAMES
            who = rng.choice(names)
            messages = sorted(state.messages)
            proposals = sorted(state.proposals)
            contributions = sorted(state.contributions)
            story = rng.choices(["post", "edit", "propose", "vote", "give", "receipt", "pay", "remove", "add"],
                                [3, 1, 2, 4, 2, 2, 1, 1, 1])[0]  # fmt: skip
            if story == "post" or not messages:
                body = {
                    "text": "hi",
                    "reply_to": rng.choice([None, *messages]),
                    "content_warning": None,
                    "urgent": False,
                }
                act(index, who, "msg.post", body)
            elif story == "edit":
                act(index, who, "msg.edit", {"target": rng.choice(messages), "text": "edited", "content_warning": None})
            elif story == "propose":
                details = {"amount": 700, "currency": "EUR", "recipient": "Clinic", "purpose": "fees"}
                act(index, who, "proposal.create", {"kind": "spend", "title": "Fees", "text": "", "details": details})
            elif story == "vote" and proposals:
                choice = rng.choice(["approve", "approve", "object"])
                act(index, who, "proposal.vote", {"proposal": rng.choice(proposals), "choice": choice, "reason": None})
            elif story == "give":
                act(index, who, "fund.contribute", {"amount": 1000, "currency": "EUR", "note": None})
            elif story == "receipt" and contributions:
                act(index, "bob", "fund.receipt", {"contribution": rng.choice(contributions)})
            elif story == "pay" and proposals:
                approved = [p for p in proposals if state.proposals[p].status == "approved"]
                act(index, "bob", "fund.disburse", {"proposal": rng.choice(approved or proposals), "note": None})
            elif story == "remove":
                body = {"member": member(rng.choice(["dana", "eve"])), "reason": None}
                act(index, rng.choice(["alice", "carol"]), "member.remove", body)
            else:
                act(
                    index,
                    rng.choice(["alice", "carol"]),
                    "member.add",
                    member_add_body(PEOPLE[rng.choice(NAMES)].card().to_bytes()),
                )
        source, target = rng.sample(range(3), 2)
        replicas[target].ingest_many(replicas[source].ops())
    return circle, ops


def _is_interesting(ops: list[SignedOp], state: CircleState) -> bool:
    lamports = [signed.op.lamport for signed in ops]
    return (
        len(set(lamports)) < len(lamports)
        and bool(state.rejected and state.messages and state.ledger)
        and {"approved", "rejected", "open"} <= {proposal.status for proposal in state.proposals.values()}
        and any(entry.entry == "disbursement" for entry in state.ledger)
    )


def _interesting_history() -> tuple[bytes, list[SignedOp]]:
    """The first seed whose history has concurrency, rejections and every proposal outcome
    (which seed that is depends on the fold's rules; the search is deterministic)."""
    for seed in range(1, 200):
        circle, ops = _concurrent_history(seed=seed, rounds=40)
        if _is_interesting(ops, fold_circle_state(circle, ops)):
            return circle, ops
    raise AssertionError("no seed gives an interesting history")


CIRCLE, HISTORY = _interesting_history()
REFERENCE = fold_circle_state(CIRCLE, HISTORY).encode()


def test_the_history_is_interesting() -> None:
    assert _is_interesting(HISTORY, fold_circle_state(CIRCLE, HISTORY))


orders = st.permutations(range(len(HISTORY)))
duplicates = st.lists(st.integers(0, len(HISTORY) - 1), max_size=30)


@settings(max_examples=60, deadline=None)
@given(order=orders, repeats=duplicates, window=st.sampled_from([1, 3, 50, 10_000]))
def test_any_order_with_duplicates_folds_to_the_same_bytes(order: list[int], repeats: list[int], window: int) -> None:
    """The fold alone, fed ops in any causal order (parents first, as the DAG delivers them,
    which is rarely fold order): rollback, replay, strikes and re-folds agree."""
    state = CircleState(CIRCLE, undo_window=window)
    seen: set[bytes] = set()
    sequence = [HISTORY[i] for i in order]
    for position, index in enumerate(repeats):
        sequence.insert(position * 3 % (len(sequence) + 1), HISTORY[index])
    waiting = list(sequence)
    while waiting:
        later = []
        for signed in waiting:
            if signed.id in seen:
                continue  # the DAG deduplicates before the fold; do the same here
            if all(parent in seen for parent in signed.op.parents):
                seen.add(signed.id)
                state.add(signed)
            else:
                later.append(signed)
        waiting = later
    assert state.encode() == REFERENCE


@settings(max_examples=40, deadline=None)
@given(order=orders, repeats=duplicates, buffer=st.sampled_from([2, 16, 10_000]))
def test_replicas_fed_any_order_with_duplicates_agree(order: list[int], repeats: list[int], buffer: int) -> None:
    """Through the causal DAG: out-of-order ops wait for parents; evicted ones are sent again."""
    replica = CircleReplica(CIRCLE, max_buffered=buffer, undo_window=20)
    replica.ingest_many([HISTORY[i] for i in order] + [HISTORY[i] for i in repeats])
    while replica.dag.buffered_count or len(list(replica.ops())) < len(HISTORY):
        replica.ingest_many([signed for signed in HISTORY if not replica.has(signed.id)])
    assert replica.state.encode() == REFERENCE
    assert replica.state_hash() == fold_circle_state(CIRCLE, HISTORY).state_hash()


def test_fold_order_is_lamport_then_id() -> None:
    state = fold_circle_state(CIRCLE, reversed(HISTORY))
    assert list(state.ops_in_fold_order()) == sorted(HISTORY, key=fold_key)


def _causal(ops: list[SignedOp], present: set[bytes]) -> list[SignedOp]:
    """``ops`` reordered as a DAG would deliver them: each after its parents (in ``present``
    or earlier in the result), otherwise keeping the given order as far as possible."""
    result, seen, waiting = [], set(present), list(ops)
    while waiting:
        later = []
        for signed in waiting:
            if all(parent in seen for parent in signed.op.parents):
                seen.add(signed.id)
                result.append(signed)
            else:
                later.append(signed)
        waiting = later
    return result


@settings(max_examples=20, deadline=None)
@given(held=st.sets(st.integers(0, len(HISTORY) - 1)), tail=st.integers(0, 40), window=st.sampled_from([8, 40]))
def test_snapshot_restore_then_late_ops_give_the_same_state(held: set[int], tail: int, window: int) -> None:
    """Snapshot a replica holding a subset; restore it; the rest arrives, much of it sorting before the snapshot."""
    by_id = {signed.id: signed for signed in HISTORY}
    closed: dict[bytes, SignedOp] = {}
    stack = [HISTORY[i] for i in held]
    while stack:  # what a replica holds is closed under parents
        signed = stack.pop()
        if signed.id not in closed:
            closed[signed.id] = signed
            stack.extend(by_id[parent] for parent in signed.op.parents)
    first = sorted(closed.values(), key=fold_key)
    live = fold_circle_state(CIRCLE, first)
    before = live.encode()
    picture, tail_ops = live.snapshot(tail)
    assert live.encode() == before  # taking the snapshot left the state unchanged
    stored = list(first)  # what a state cache would hold: every op handed to the state

    def history(upto: tuple[int, bytes]) -> list[SignedOp]:
        return [signed for signed in sorted(stored, key=fold_key) if fold_key(signed) <= upto]

    # As a replica opens from its state cache: an index that looks ops up in the cache and
    # knows where each author's chain stood; the DAG indexes each op before the fold sees it.
    cached = {signed.id: signed for signed in stored}
    index = CausalIndex(lambda op_id: meta_of(cached[op_id]) if op_id in cached else None)
    index.restore_chains(live.chains, live.forks)
    restored = CircleState.restore(
        CIRCLE, picture, undo_window=window, history=history, causal=index, causal_order=True
    )
    for signed in tail_ops:
        restored.add(signed)
    assert restored.encode() == before
    rest = [signed for signed in reversed(HISTORY) if signed.id not in closed]
    for signed in _causal(rest, set(closed)):
        stored.append(signed)
        cached[signed.id] = signed
        index.add(signed)
        restored.add(signed)
    assert restored.encode() == REFERENCE
