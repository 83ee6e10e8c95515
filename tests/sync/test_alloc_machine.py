"""Allocation rules as a stateful property: three replicas of a circle with a fund, asks,
closes, reveals, draws and payments made concurrently, synced partially, with attackers.

The attackers: a member posting an ask themselves (not the committee), reveals with guessed
secrets and replays, closes and draws dated early, asks dated around a period's end on a
replica that has not seen its close, a non-treasurer paying. After every step each
replica's allocations are checked against an independent re-implementation of the rules
(seed, ranks, cool-downs, caps, budgets) and its books must balance; at the end everyone
syncs and must hold byte-identical state, equal to a fresh fold of all ops.
"""

from __future__ import annotations

import hashlib
from typing import Any

from alloc_support import HOUR, RULES, FundCircle
from circle_support import PEOPLE
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kith.sync import allocation
from kith.sync.kinds import alloc
from kith.sync.ops import SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import CircleState, fold_circle_state

REPLICAS = 3
MACHINE_RULES = {**RULES, "categories": {"rent": 700, "legal": 300}, "cap": 600}
"""Tight budgets, so that draws often decide."""
ASKERS = ["alice", "carol", "dana", "eve", "mallory"]
replicas = st.integers(min_value=0, max_value=REPLICAS - 1)


def _h(data: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


def expected_draws(state: CircleState) -> dict[bytes, tuple[int, str]]:
    """The rules of docs/OPS.md, written again from the text: ask id -> (rank, outcome)."""
    helped: dict[bytes, int] = {}
    result: dict[bytes, tuple[int, str]] = {}
    for number in sorted(state.periods):
        period = state.periods[number]
        if period.drawn_by is None:
            continue
        rules = period.rules
        reveals = {state.asks[a].reveal: a for a in period.counted if state.asks[a].reveal is not None}
        revealed = {reveals[r] for r in state.causal.which_in_past(list(reveals), period.drawn_by)}
        seed = _h(b"".join(a + state.asks[a].secret for a in sorted(revealed)), b"kith-alloc-seed")

        def key(a: bytes, seed: bytes = seed, revealed: set[bytes] = revealed, first: bool = rules.priority) -> Any:
            last = helped.get(state.asks[a].pseudonym, -1) if first else -1
            return (a not in revealed, last, _h(seed + a, b"kith-alloc-rank"), a)

        spent: dict[str, int] = {}
        got: dict[bytes, int] = {}
        budgets = dict(rules.categories)
        now_helped = {}
        for place, a in enumerate(sorted(period.counted, key=key), 1):
            ask = state.asks[a]
            last = helped.get(ask.pseudonym)
            if rules.cooldown and last is not None and number - last <= rules.cooldown:
                outcome = "cooldown"
            elif ask.category not in budgets:
                outcome = "no-category"
            elif got.get(ask.pseudonym, 0) + ask.amount > rules.cap:
                outcome = "over-cap"
            elif spent.get(ask.category, 0) + ask.amount > budgets[ask.category]:
                outcome = "over-budget"
            else:
                outcome = "allocated"
                spent[ask.category] = spent.get(ask.category, 0) + ask.amount
                got[ask.pseudonym] = got.get(ask.pseudonym, 0) + ask.amount
                now_helped[ask.pseudonym] = number
            result[a] = (place, outcome)
        helped.update(now_helped)
    return result


class AllocationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = FundCircle(MACHINE_RULES)
        self.circle = self.base.state.circle_id
        ops = list(self.base.state.ops_in_fold_order())
        self.replicas = [CircleReplica(self.circle, undo_window=w) for w in (8, 10_000, 64)]
        for replica in self.replicas:
            replica.ingest_many(ops)
        self.everything: dict[bytes, SignedOp] = {op.id: op for op in ops}
        self.secrets: dict[bytes, bytes] = {}
        self.ts = self.base.ts
        self.counter = 0

    def _sign(self, index: int, who: str, kind: str, body: dict[str, Any], ts: int | None = None) -> SignedOp:
        replica = self.replicas[index]
        if kind == "alloc.ask":
            # Sealed boxes take fresh randomness; the fold treats them as opaque bytes, and
            # Hypothesis needs the same ops every time it replays a case.
            self.counter += 1
            box = hashlib.blake2b(self.counter.to_bytes(4, "big"), digest_size=64).digest()
            body["private"]["boxes"] = {member: box for member in body["private"]["boxes"]}
        signed = replica.author_op(PEOPLE[who], kind, body, ts=self.ts if ts is None else ts)
        replica.ingest(signed)
        self.everything[signed.id] = signed
        return signed

    def _reason(self, index: int, signed: SignedOp) -> str | None:
        return self.replicas[index].state.is_rejected(signed.id)

    @rule(seconds=st.sampled_from([1, 60, 599, 600, 1800, HOUR]))
    def advance(self, seconds: int) -> None:
        self.ts += seconds

    @rule(
        index=replicas,
        names=st.lists(st.sampled_from(ASKERS), min_size=1, max_size=3, unique=True),
        category=st.sampled_from(["rent", "legal", "food"]),
        amount=st.sampled_from([100, 300, 400, 600, 700]),
        back=st.sampled_from([0, 0, 0, 5, HOUR]),
    )
    def ask(self, index: int, names: list[str], category: str, amount: int, back: int) -> None:
        """Bob posts asks for some people; ``back`` > 0: a modified client dates them earlier
        (just before the period's end, or into the previous period)."""
        for name in names:
            self._ask(index, name, category, amount, back)

    def _ask(self, index: int, name: str, category: str, amount: int, back: int) -> None:
        self.counter += 1
        secret = hashlib.blake2b(self.counter.to_bytes(4, "big"), digest_size=32).digest()
        ts = max(1, self.ts - back)
        state = self.replicas[index].state
        body = allocation.ask_body(state, member=PEOPLE[name].member_id, pseudonym=FundCircle.pseud(name),
                                   commit=alloc.commitment(secret), category=category, amount=amount, ts=ts,
                                   ref=secret)  # fmt: skip
        signed = self._sign(index, "bob", "alloc.ask", body, ts=ts)
        self.secrets[signed.id] = secret
        reason = self._reason(index, signed)
        if amount > MACHINE_RULES["cap"] and category != "food":
            assert reason == alloc.OVER_THE_CAP
        if category == "food":
            assert reason == alloc.NO_SUCH_CATEGORY

    @rule(index=replicas)
    def member_posts_an_ask_themselves(self, index: int) -> None:
        state = self.replicas[index].state
        mallory = PEOPLE["mallory"].member_id
        body = allocation.ask_body(state, member=mallory, pseudonym=FundCircle.pseud("mallory"), commit=bytes(32),
                                   category="rent", amount=100, ts=self.ts, ref=bytes(32))  # fmt: skip
        signed = self._sign(index, "mallory", "alloc.ask", body)
        assert self._reason(index, signed) == alloc.NOT_COMMITTEE

    @rule(index=replicas, who=st.sampled_from(["carol", "eve", "mallory"]), back=st.sampled_from([0, 1]))
    def close(self, index: int, who: str, back: int) -> None:
        period = self.ts // HOUR - back
        if period < 0:
            return
        signed = self._sign(index, who, "alloc.close", {"period": period})
        if back == 0:  # the period has not ended yet
            assert self._reason(index, signed) == alloc.CLOSE_TOO_EARLY

    @rule(index=replicas, who=st.sampled_from(["bob", "dana", "mallory"]), pick=st.integers(0, 50),
          forged=st.booleans())  # fmt: skip
    def reveal(self, index: int, who: str, pick: int, forged: bool) -> None:
        asks = sorted(self.replicas[index].state.asks)
        if not asks:
            return
        ask = asks[pick % len(asks)]
        secret = bytes(32) if forged else self.secrets[ask]
        signed = self._sign(index, who, "alloc.reveal", {"ask": ask, "secret": secret})
        if forged:
            assert self._reason(index, signed) is not None

    @rule(index=replicas, who=st.sampled_from(["carol", "mallory"]), back=st.sampled_from([1, 2]))
    def draw(self, index: int, who: str, back: int) -> None:
        period = (self.ts - RULES["reveal_s"]) // HOUR - back
        if period >= 0:
            signed = self._sign(index, who, "alloc.draw", {"period": period})
            if self._reason(index, signed) is None:
                outcomes = {self.replicas[index].state.asks[a].outcome
                            for a in self.replicas[index].state.periods[period].order}  # fmt: skip
                for outcome in outcomes:
                    event(f"a draw had an ask {outcome}")

    @rule(index=replicas, jump=st.sampled_from([0, HOUR, HOUR + 600]))
    def honest_node_catches_up(self, index: int, jump: int) -> None:
        """What an honest node does once its clock passes a period's end (and the reveal
        window): close the last ended period, reveal the secrets of counted asks (the
        committee relays them from the askers' nodes), and draw."""
        self.ts += jump
        state = self.replicas[index].state
        ended = self.ts // HOUR - 1
        if ended >= 0 and ended not in state.periods and not any(p > ended for p in state.periods):
            self._sign(index, "dana", "alloc.close", {"period": ended})
        for number, period in sorted(state.periods.items()):
            if period.drawn_by is not None:
                continue
            for ask_id in period.counted:
                if state.asks[ask_id].secret is None:
                    self._sign(index, "bob", "alloc.reveal", {"ask": ask_id, "secret": self.secrets[ask_id]})
            if self.ts >= (number + 1) * HOUR + RULES["reveal_s"]:
                signed = self._sign(index, "eve", "alloc.draw", {"period": number})
                if self._reason(index, signed) is None:
                    outcomes = {state.asks[a].outcome for a in state.periods[number].order}
                    for outcome in outcomes:
                        event(f"a draw had an ask {outcome}")

    @rule(index=replicas, who=st.sampled_from(["bob", "carol"]), pick=st.integers(0, 50))
    def pay(self, index: int, who: str, pick: int) -> None:
        asks = sorted(self.replicas[index].state.asks)
        if asks:
            signed = self._sign(index, who, "alloc.pay", {"ask": asks[pick % len(asks)], "note": None})
            if who != "bob":
                assert self._reason(index, signed) == "only a treasurer may do this"

    @rule(source=replicas, to=replicas, data=st.data())
    def sync(self, source: int, to: int, data: st.DataObject) -> None:
        if source == to:
            return
        have = self.replicas[source]
        missing = [op for op in self.everything.values() if have.has(op.id) and not self.replicas[to].has(op.id)]
        if missing:
            part = data.draw(st.lists(st.sampled_from(missing), max_size=len(missing)))
            self.replicas[to].ingest_many(part)

    @invariant()
    def rules_hold_on_every_replica(self) -> None:
        for replica in self.replicas:
            state = replica.state
            expected = expected_draws(state)
            got = {a: (ask.rank, ask.outcome) for a, ask in state.asks.items() if ask.rank is not None}
            assert got == expected
            assert allocation.report(state)["problems"] == []
            paid = [entry for entry in state.ledger if entry.entry == "allocation"]
            assert len({entry.ref for entry in paid}) == len(paid)
            assert all(state.asks[entry.ref].outcome == alloc.ALLOCATED for entry in paid)
            flow: dict[str, int] = {}
            for entry in state.ledger:
                sign = {"receipt": 1, "disbursement": -1, "allocation": -1}.get(entry.entry, 0)
                flow[entry.currency] = flow.get(entry.currency, 0) + sign * entry.amount
            assert {k: v for k, v in flow.items() if v or k in state.balances} == state.balances
            assert all(amount >= 0 for amount in state.balances.values())

    def teardown(self) -> None:
        everything = list(self.everything.values())
        for replica in self.replicas:
            replica.ingest_many(everything)
        hashes = {replica.state_hash() for replica in self.replicas}
        assert len(hashes) == 1
        assert fold_circle_state(self.circle, everything).state_hash() in hashes


AllocationMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestAllocationMachine = AllocationMachine.TestCase
