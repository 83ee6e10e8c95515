"""Private requests and check-ins: organizers learn who asked and why; the circle does not."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
from p2pnet_harness import call, make_home, running, share_circle, state_hash, wait_until

pytestmark = pytest.mark.trio


async def test_a_private_request_shows_only_that_it_exists(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, carol = nodes = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Quiet help"))["id"]
            await share_circle(alice, circle, bob, carol)
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1)
            why = "I was evicted and need two nights somewhere safe"
            sent = await call(carol, "request", circle=circle, category="housing", description=why, private=True)
            assert sent["private"] and sent["id"] is None

            def board(node):  # type: ignore[no-untyped-def]
                return [r for r in node.circles.get(circle).replica.views(
                    reader=node.circles.reader(node.circles.get(circle))).aid.open_requests]  # fmt: skip

            await wait_until(lambda: all(board(n) for n in nodes), timeout=30)
            carol_id = carol.circles.identity.member_id
            (on_alice,), (on_bob,), (on_carol,) = board(alice), board(bob), board(carol)
            assert on_alice.description == why and on_alice.requester == carol_id
            assert on_bob.category == "housing" and on_bob.description == "" and on_bob.requester is None
            assert on_bob.author == alice.circles.identity.member_id  # posted by an organizer, not by carol
            assert on_carol.description == why
            # Nothing in bob's or the relays' bytes names carol as the one who asked.
            for envelope_data in bob.store.iter_topic(bob.circles.get(circle).topic):
                assert why.encode() not in envelope_data
            # Exactly one organizer posted it.
            await trio.sleep(0.5)
            assert len(board(bob)) == 1


async def test_a_private_check_in_reaches_organizers_only(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, carol = nodes = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Check-ins"))["id"]
            await share_circle(alice, circle, bob, carol)
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1)
            before = state_hash(alice, circle)
            await call(carol, "checkin", circle=circle, status="need-help", note="please call me", private=True)
            await wait_until(lambda: bool(alice.lifecycle.private_checkins.get(alice.circles.get(circle).id)))
            (note,) = (await call(alice, "views", circle=circle))["private_checkins"]
            assert (note["member"], note["status"], note["note"]) == (
                carol.circles.identity.member_id.hex(),
                "need-help",
                "please call me",
            )
            await trio.sleep(0.5)
            assert (await call(bob, "views", circle=circle))["private_checkins"] == []
            assert state_hash(alice, circle) == before  # no op: the circle's record does not change
