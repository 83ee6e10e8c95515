"""Asking the fund under allocation rules on real nodes: asks sealed to the treasurer and
posted for the member, the period closed and drawn by the nodes themselves, the same
draw on every node, recipients seen only by the treasurer.

Three real nodes on loopback, each with its own clock (real time plus an offset the test
moves, as in test_votes_close.py), so a period's end does not take an hour.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio
from p2pnet_harness import call, make_home, running, share_circle, state_hash, wait_until

from kith.p2pnet.node import Node

pytestmark = pytest.mark.trio

RULES = {"period_s": 3600, "reveal_s": 600, "currency": "EUR", "categories": {"rent": 50_000}, "cap": 40_000}


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _state(node: Node, circle_id: str) -> Any:
    assert node.circles is not None
    return node.circles.get(circle_id).replica.state


def _held(node: Node, circle_id: str) -> int:
    assert node.circles is not None
    return len(node.circles.get(circle_id).held)


async def test_two_askers_one_budget_every_node_agrees_on_the_draw_and_only_the_treasurer_sees_who(
    tmp_path: Path,
) -> None:
    names = ("alice", "bob", "carol")
    clocks = {name: Clock() for name in names}
    homes = {name: make_home(tmp_path, name) for name in names}
    with trio.fail_after(180):
        async with AsyncExitStack() as stack:
            alice, bob, carol = [await stack.enter_async_context(running(homes[n], clock=clocks[n])) for n in names]
            nodes = {"alice": alice, "bob": bob, "carol": carol}
            circle = (await call(alice, "circle.create", name="Rent fund"))["id"]
            await share_circle(alice, circle, bob, carol)
            await carol.connect(alice.net.listen_addresses()[0])  # type: ignore[union-attr]
            # The circle adopts allocation rules (a charter proposal everyone approves).
            proposal = await call(alice, "propose", circle=circle, kind="charter", title="Rent rules",
                                  charter={"alloc": RULES})  # fmt: skip
            await wait_until(lambda: all(bytes.fromhex(proposal["id"]) in _state(n, circle).proposals
                                         for n in (bob, carol)), timeout=30)  # fmt: skip
            for node in nodes.values():
                await call(node, "vote", circle=circle, proposal=proposal["id"], choice="approve")
            await wait_until(lambda: all(_state(n, circle).info["charter"].alloc is not None for n in nodes.values()),
                             timeout=30)  # fmt: skip
            gift = await call(carol, "contribute", circle=circle, amount=100_000, currency="EUR", note=None)
            await wait_until(lambda: bytes.fromhex(gift["id"]) in _state(alice, circle).contributions, timeout=30)
            await call(alice, "receipt", circle=circle, contribution=gift["id"])
            # Bob and Carol ask (private: sealed to Alice, the treasurer, who posts them).
            for asker in (bob, carol):
                sent = await call(asker, "ask_fund", circle=circle, category="rent", amount=40_000, note="rent")
                assert sent["id"] is None and sent["private"]
            await wait_until(lambda: all(len(_state(n, circle).asks) == 2 for n in nodes.values()), timeout=30)
            me = {name: node.circles.identity.member_id for name, node in nodes.items()}  # type: ignore[union-attr]
            for ask in _state(bob, circle).asks.values():
                assert ask.author == me["alice"]  # the circle sees the treasurer post it, not who asked
            seen = {name: {row["member"] for row in (await call(node, "allocations", circle=circle))["asks"]}
                    for name, node in nodes.items()}  # fmt: skip
            assert seen["alice"] == {me["bob"].hex(), me["carol"].hex()}
            assert seen["bob"] == {None} and seen["carol"] == {None}
            period = next(iter(_state(alice, circle).asks.values())).period
            end = (period + 1) * RULES["period_s"]
            # Alice's clock passes the end first: nodes close by themselves; the others hold
            # the close until their own clocks get there.
            clocks["alice"].offset = end - time.time() + 1
            await wait_until(lambda: period in _state(alice, circle).periods, timeout=30)
            await wait_until(lambda: _held(bob, circle) >= 1, timeout=30)
            assert period not in _state(bob, circle).periods
            for name in ("bob", "carol"):
                clocks[name].offset = clocks["alice"].offset
            # Each asker's node reveals its secret to the treasurer, who publishes it.
            await wait_until(lambda: all(ask.secret is not None for ask in _state(alice, circle).asks.values()),
                             timeout=60)  # fmt: skip
            for clock in clocks.values():
                clock.offset = end + RULES["reveal_s"] - time.time() + 1
            await wait_until(lambda: all(_state(n, circle).periods.get(period) is not None
                                         and _state(n, circle).periods[period].drawn_by is not None
                                         for n in nodes.values()), timeout=60)  # fmt: skip
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes.values()}) == 1, timeout=30)
            orders = {name: _state(node, circle).periods[period].order for name, node in nodes.items()}
            assert len(set(orders.values())) == 1
            outcomes = sorted(ask.outcome for ask in _state(bob, circle).asks.values())
            assert outcomes == ["allocated", "over-budget"]  # 40,000 + 40,000 > the budget of 50,000
            report = await call(carol, "allocations", circle=circle)
            assert report["problems"] == []
            winner = orders["alice"][0].hex()
            paid = await call(alice, "pay_ask", circle=circle, ask=winner, note=None)
            assert paid["rejected"] is None
            await wait_until(lambda: _state(bob, circle).balances.get("EUR") == 60_000, timeout=30)
            entry = _state(bob, circle).ledger[-1]
            assert (entry.entry, entry.ref.hex()) == ("allocation", winner)
            assert me["bob"] not in entry and me["carol"] not in entry


async def test_a_modified_client_cannot_borrow_a_pseudonym_or_take_a_second_one(tmp_path: Path) -> None:
    """Mallory's modified client sends the treasurer asks under Carol's pseudonym (to spend
    Carol's cap, or make Carol look helped), under a fresh one after asking under her own
    (to pass the cap twice), and for a category the charter lacks (to make the treasurer sign
    an op every node lists as rejected). The treasurer's node posts none; the honest asks stand."""
    from kith.sync.kinds import alloc
    from kith.sync.private import make_statement, seal_private

    names = ("alice", "carol", "mallory")
    homes = {name: make_home(tmp_path, name) for name in names}
    with trio.fail_after(120):
        async with AsyncExitStack() as stack:
            alice, carol, mallory = [await stack.enter_async_context(running(homes[n])) for n in names]
            circle = (await call(alice, "circle.create", name="Rent fund"))["id"]
            await share_circle(alice, circle, carol, mallory)
            proposal = await call(alice, "propose", circle=circle, kind="charter", title="Rules",
                                  charter={"alloc": RULES})  # fmt: skip
            for node in (carol, mallory):
                await wait_until(lambda n=node: bytes.fromhex(proposal["id"]) in _state(n, circle).proposals)
            for node in (alice, carol, mallory):
                await call(node, "vote", circle=circle, proposal=proposal["id"], choice="approve")
            await wait_until(lambda: all(_state(n, circle).info["charter"].alloc is not None
                                         for n in (alice, carol, mallory)), timeout=30)  # fmt: skip
            await call(carol, "ask_fund", circle=circle, category="rent", amount=10_000, note=None)
            await call(mallory, "ask_fund", circle=circle, category="rent", amount=10_000, note=None)
            await wait_until(lambda: len(_state(mallory, circle).asks) == 2, timeout=30)
            assert mallory.circles is not None and carol.circles is not None
            state = _state(mallory, circle)
            carols = alloc.pseudonym(carol.circles.identity.dh_secret, bytes.fromhex(circle))
            theirs = mallory.circles.get(circle)
            committee = [state.cards[m] for m in alloc.committee(state, state.info["charter"].alloc)]
            own = alloc.pseudonym(mallory.circles.identity.dh_secret, bytes.fromhex(circle))
            # Carol's pseudonym; a second one of her own; her own one, asking what the fold refuses.
            for n, (pseud, category) in enumerate(((carols, "rent"), (b"\x99" * 16, "legal"), (own, "legal fees"))):
                body = {"category": category, "amount": 30_000, "pseudonym": pseud,
                        "commit": bytes([n]) * 32, "note": ""}  # fmt: skip
                now = int(time.time())
                statement = make_statement(mallory.circles.identity, theirs.id, "private.ask", body, ts=now)
                envelope = seal_private(statement, committee, epoch_key=theirs.keys.current_key, ts=now)
                mallory.lifecycle.send(theirs, envelope)  # type: ignore[union-attr]
            refused = alice.lifecycle.alloc.refused  # type: ignore[union-attr]
            await wait_until(lambda: sum(refused.values()) == 3, timeout=30)
            assert refused == {"that pseudonym is someone else's": 1, "they asked before under another pseudonym": 1,
                               "no such category": 1}  # fmt: skip
            assert len(_state(alice, circle).asks) == 2
