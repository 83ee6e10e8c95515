"""Proposals close at their closing time on real nodes, without anyone acting (issue 14 Build 4).

Two real nodes on loopback, each with its own clock (the node's injectable clock: real time
plus an offset the test moves, so a one-minute window does not take a minute). Alice's clock
reaches the closing time first: her node signs the close by itself. Bob's clock is behind,
so the close is dated in his future: his node stores it but holds it back until his clock
gets there, then both hold the same decided proposal.
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


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _proposal(node: Node, circle_id: str, proposal_id: str) -> Any:
    assert node.circles is not None
    return node.circles.get(circle_id).replica.state.proposals[bytes.fromhex(proposal_id)]


def _held(node: Node, circle_id: str) -> int:
    assert node.circles is not None
    return len(node.circles.get(circle_id).held)


async def test_a_proposal_closes_at_both_nodes_with_the_same_result_without_anyone_acting(tmp_path: Path) -> None:
    clocks = {"alice": Clock(), "bob": Clock()}
    homes = {name: make_home(tmp_path, name) for name in clocks}
    with trio.fail_after(120):
        async with AsyncExitStack() as stack:
            alice, bob = [await stack.enter_async_context(running(homes[n], clock=clocks[n])) for n in clocks]
            circle = (await call(alice, "circle.create", name="Votes"))["id"]
            await share_circle(alice, circle, bob)
            spend = {"amount": 2500, "currency": "EUR", "recipient": "Clinic", "purpose": "fees"}
            proposal = await call(
                alice, "propose", circle=circle, kind="spend", title="Clinic fees", closes_s=60, **spend
            )
            proposal_id = proposal["id"]
            await call(alice, "vote", circle=circle, proposal=proposal_id, choice="approve")
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            # spend (quorum 50, threshold 60): 1 of 2 approves; bob objecting would sink it.
            assert _proposal(bob, circle, proposal_id).status == "open"
            closes_at = _proposal(alice, circle, proposal_id).closes_at
            clocks["alice"].offset = closes_at - time.time() + 1
            await wait_until(lambda: _proposal(alice, circle, proposal_id).status != "open", timeout=30)
            closed = _proposal(alice, circle, proposal_id)
            assert (closed.status, closed.approve, closed.object) == ("approved", 1, 0)
            # Bob's node stores the close but does not fold it: it is dated in his future.
            await wait_until(lambda: _held(bob, circle) == 1, timeout=30)
            assert _proposal(bob, circle, proposal_id).status == "open"
            # Bob's clock reaches the closing time: his node folds the held close.
            clocks["bob"].offset = clocks["alice"].offset
            await wait_until(lambda: _proposal(bob, circle, proposal_id).status != "open", timeout=30)
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle), timeout=30)
            assert _proposal(bob, circle, proposal_id) == _proposal(alice, circle, proposal_id)
            assert _held(bob, circle) == 0
            # Nobody signs a second close: the proposal is decided, and its result says who voted.
            views = await call(bob, "views", circle=circle)
            (shown,) = [p for p in views["proposals"] if p["id"] == proposal_id]
            expected = ("approved", closed.decided_by.hex(), 2)
            assert (shown["status"], shown["decided_by"], len(shown["voters"])) == expected
