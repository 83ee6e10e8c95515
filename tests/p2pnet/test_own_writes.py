"""A member's own ops are written in a worker thread, one author step per circle at a time.

The hazard: the step that reads the author's chain head (``seq``, parents) and the fold that
moves it are separated by the threaded write, so two actions that overlap in one circle
could both build on the same head and fork the author's own chain (OPS.md: equivocation,
which every node records against the author). These tests start many actions at once and
check that the author's ops still form one chain, that none is lost, and that the node
keeps working.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio
import trio.testing
from p2pnet_harness import call, make_home, running, wait_until

from kith.identity.errors import LocalProtocolError
from kith.p2pnet.node import Node
from kith.sync.lifecycle import Introduce
from kith.sync.ops import SignedOp

pytestmark = pytest.mark.trio


def _own_chain(node: Node, circle_id: str) -> list[SignedOp]:
    assert node.circles is not None
    circle = node.circles.get(circle_id)
    me = node.circles.identity.member_id
    return sorted((op for op in circle.replica.ops() if op.op.author == me), key=lambda op: op.op.seq)


def _assert_one_chain(node: Node, circle_id: str) -> list[SignedOp]:
    """The author's ops are numbered 1..n, each citing the one before, and nothing forked."""
    assert node.circles is not None
    chain = _own_chain(node, circle_id)
    assert [op.op.seq for op in chain] == list(range(1, len(chain) + 1))
    for previous, op in zip(chain, chain[1:], strict=False):
        assert previous.id in op.op.parents, f"op {op.op.seq} does not sit on op {previous.op.seq}"
    assert not node.circles.get(circle_id).replica.state.forks
    return chain


async def test_concurrent_actions_in_one_circle_end_as_one_chain(tmp_path: Path) -> None:
    """Posts, pledges and a batch started together from the control API: every one is
    answered with its op, all of them sit on one linear chain, all are stored, and the
    node still takes the next post."""
    home = make_home(tmp_path, "alice")
    with trio.fail_after(120):  # a liveness bound
        async with running(home) as alice:
            circle_id = (await call(alice, "circle.create", name="Riverside"))["id"]
            answers: list[dict] = []

            async def act(method: str, **params: object) -> None:
                answers.append(await call(alice, method, circle=circle_id, **params))

            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(lambda i=i: act("post", text=f"at once {i}"))
                    if i % 8 == 0:
                        nursery.start_soon(lambda i=i: act("pledge", category="food", description=f"soup {i}"))
                        nursery.start_soon(lambda i=i: act("post_many", texts=[f"batch {i} a", f"batch {i} b"]))
            ids = [answer["id"] for answer in answers if "id" in answer]
            ids += [op_id for answer in answers for op_id in answer.get("ids", [])]
            assert len(ids) == 40 + 5 + 10 and None not in ids
            rejected = [answer["rejected"] for answer in answers if "id" in answer]
            rejected += [reason for answer in answers if "ids" in answer for reason in answer["rejected"]]
            assert rejected == [None] * len(ids)
            chain = _assert_one_chain(alice, circle_id)
            assert set(ids) <= {op.id.hex() for op in chain}
            assert alice.circles is not None
            assert alice.circles.store.count(alice.circles.get(circle_id).current_topic) == len(chain)
            after = await call(alice, "post", circle=circle_id, text="still here")
            assert after["rejected"] is None and _own_chain(alice, circle_id)[-1].id.hex() == after["id"]
        # What was stored is what a restart opens: the same one chain.
        async with running(home) as alice:
            assert [op.id for op in _assert_one_chain(alice, circle_id)] == [op.id for op in chain] + [
                bytes.fromhex(after["id"])
            ]


async def test_organizer_actions_through_the_lifecycle_take_the_same_turn(tmp_path: Path) -> None:
    """Invites and rotations author synchronously, inside the membership lifecycle; from the
    control API they hold the circle's author turn, so posts in flight at the same time
    still end as one chain with them."""
    home = make_home(tmp_path, "alice")
    with trio.fail_after(120):  # a liveness bound
        async with running(home) as alice:
            circle_id = (await call(alice, "circle.create", name="Riverside"))["id"]

            async def post(i: int) -> None:
                assert (await call(alice, "post", circle=circle_id, text=f"around {i}"))["rejected"] is None

            async with trio.open_nursery() as nursery:
                for i in range(30):
                    nursery.start_soon(post, i)
                    if i in (5, 20):
                        nursery.start_soon(lambda: call(alice, "invite.create", circle=circle_id))
                    if i == 12:
                        nursery.start_soon(lambda: call(alice, "rotate", circle=circle_id))
            kinds = [op.op.kind for op in _assert_one_chain(alice, circle_id)]
            assert kinds.count("msg.post") == 30 and kinds.count("invite.create") == 2
            assert kinds.count("key.rotate") == 1


async def test_a_duty_that_falls_due_while_an_action_writes_waits_for_the_circles_turn(tmp_path: Path) -> None:
    """The lifecycle's duties author synchronously (key acks, shares, closes...). One that
    falls due while another task holds the circle's author turn is put off, and carried out
    in that turn once it is free: on top of the chain, not beside it."""
    home = make_home(tmp_path, "alice")
    with trio.fail_after(60):  # a liveness bound
        async with running(home) as alice:
            circle_id = (await call(alice, "circle.create", name="Riverside"))["id"]
            assert alice.circles is not None and alice.lifecycle is not None
            circle = alice.circles.get(circle_id)
            before = len(_own_chain(alice, circle_id))
            holding, release = trio.Event(), trio.Event()

            async def hold_the_turn() -> None:
                async with circle.authoring:
                    holding.set()
                    await release.wait()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hold_the_turn)
                await holding.wait()
                alice.lifecycle.carry_out([Introduce(circle.id)])  # a profile.set, due now
                with pytest.raises(LocalProtocolError):  # authoring beside the turn is a bug
                    alice.circles.author(circle, "profile.set", {"display_name": "x", "pronouns": None, "skills": []})
                # Barrier: every task (the lifecycle's loop included) has gone as far as it can
                # while the turn is held.
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert len(_own_chain(alice, circle_id)) == before  # put off, not lost
                release.set()
            await wait_until(lambda: len(_own_chain(alice, circle_id)) == before + 1)
            assert _assert_one_chain(alice, circle_id)[-1].op.kind == "profile.set"


async def test_a_snapshot_taken_while_an_own_write_is_in_flight_stays_below_it(tmp_path: Path) -> None:
    """Between the worker thread's commit and the fold, other tasks run; a snapshot taken
    then must not record the store's newest seq as processed, or a crash before the fold
    would never read that envelope again."""
    home = make_home(tmp_path, "alice")
    with trio.fail_after(60):  # a liveness bound
        async with running(home) as alice:
            circle_id = (await call(alice, "circle.create", name="Riverside"))["id"]
            assert alice.circles is not None and alice.cache is not None
            circles, store = alice.circles, alice.circles.store
            circle = circles.get(circle_id)
            insert = store._insert
            committed, release = threading.Event(), threading.Event()

            def insert_then_wait(db, envelopes, kinds):  # type: ignore[no-untyped-def]
                new = insert(db, envelopes, kinds)
                committed.set()
                if not release.wait(timeout=60):
                    raise AssertionError("the loop never released the write")
                return new

            store._insert = insert_then_wait  # type: ignore[method-assign]
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(lambda: call(alice, "post", circle=circle_id, text="in flight"))
                    await trio.to_thread.run_sync(committed.wait)
                    store._insert = insert  # type: ignore[method-assign]
                    in_flight = store.max_seq()
                    circle.unsaved_ops += 1
                    assert circles.save_snapshots(force=True) == 1
                    release.set()
            finally:
                release.set()
            snapshot = alice.cache.load_snapshot(circle.id)
            assert snapshot is not None and snapshot.cursor < in_flight


async def test_the_state_cache_is_made_durable_in_a_worker_thread(tmp_path: Path) -> None:
    """The state cache commits in the fold without an fsync; the node checkpoints it (the
    fsync) in a worker thread, about once a second, whenever something was committed."""
    home = make_home(tmp_path, "alice")
    with trio.fail_after(60):  # a liveness bound
        async with running(home) as alice:
            cache = alice.cache
            assert cache is not None
            checkpoint, threads = cache.checkpoint, []

            def recorded_checkpoint() -> None:
                threads.append(threading.get_ident())
                checkpoint()

            cache.checkpoint = recorded_checkpoint  # type: ignore[method-assign]
            circle_id = (await call(alice, "circle.create", name="Riverside"))["id"]
            await call(alice, "post", circle=circle_id, text="made durable off the loop")
            assert cache.needs_checkpoint
            await wait_until(lambda: bool(threads) and not cache.needs_checkpoint, timeout=30)
            assert threading.get_ident() not in threads
