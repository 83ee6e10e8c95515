"""The membership lifecycle end to end, with real nodes and stores on loopback."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
from p2pnet_harness import address, call, make_home, post_when_ready, running, share_circle, state_hash, wait_until

from kith.identity.errors import RemoteProtocolError, UsageError
from kith.p2pnet.node import Node
from kith.sync.envelope import Envelope, open_envelope

pytestmark = pytest.mark.trio


def _circle(node: Node, circle_id: str):  # type: ignore[no-untyped-def]
    assert node.circles is not None
    return node.circles.get(circle_id)


def _feed_texts(node: Node, circle_id: str) -> dict[str, tuple[str, bool]]:
    circle = _circle(node, circle_id)
    views = circle.replica.views(reader=node.circles.reader(circle), feed_limit=None)
    return {item.id.hex(): (item.text, item.readable) for item in views.feed}


async def test_a_removed_member_cannot_read_anything_sealed_after_removal(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, carol = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Trust"))["id"]
            await share_circle(alice, circle, bob, carol)
            await post_when_ready(alice, circle, "before carol leaves")
            await wait_until(lambda: state_hash(carol, circle) == state_hash(alice, circle))
            carol_id = carol.circles.identity.member_id.hex()
            await call(alice, "member.remove", circle=circle, member=carol_id)
            # The remover's node rotated before it answered: alice can post at once, with
            # no "waiting for the circle's new key".
            assert not _circle(alice, circle).replica.state.info["rotation_due"]
            secret_posts = [(await call(alice, "post", circle=circle, text="after carol left"))["id"]]
            secret_posts += [await post_when_ready(alice, circle, f"after carol left {i}") for i in range(2)]
            # Bob posts once he knows carol left (a post he sealed before hearing of it is
            # concurrent with her removal, and readable by her: the README says so).
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            secret_posts.append(await post_when_ready(bob, circle, "bob, also after"))
            await wait_until(lambda: set(secret_posts) <= set(_feed_texts(bob, circle)))
            await wait_until(lambda: set(secret_posts) <= set(_feed_texts(alice, circle)))
            assert all(_feed_texts(bob, circle)[p][1] for p in secret_posts)
            # Carol keeps every byte she ever had, and we hand her every envelope there is.
            keys = dict(_circle(carol, circle).keys.epochs)
            current = _circle(alice, circle).replica.state.info["epoch"]
            assert current not in keys
            after = [
                Envelope.decode(data)
                for data in alice.store.iter_topic(_circle(alice, circle).current_topic)
                if Envelope.decode(data).epoch == current
            ]
            assert len(after) >= len(secret_posts)
            for envelope in after:
                for key in keys.values():
                    with pytest.raises(RemoteProtocolError):
                        open_envelope(envelope, key)
            assert not set(secret_posts) & set(_feed_texts(carol, circle))
            # Carol can no longer post: the circle refuses her ops.
            with pytest.raises(UsageError):
                await call(carol, "post", circle=circle, text="let me back in")


@pytest.mark.parametrize("history", [False, True])
async def test_newcomers_read_the_past_only_if_the_charter_says_so(tmp_path: Path, history: bool) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "dana")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, dana = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Past"))["id"]
            if history:
                charter = _circle(alice, circle).replica.state.info["charter"]
                assert charter.history is False  # the default keeps the past from newcomers
                from kith.sync.kinds.circle import charter_body

                body = charter_body("Newcomers may read everything.", history=True)
                proposal = await call(
                    alice, "propose", circle=circle, kind="charter", title="Open history", charter=body
                )
                await call(alice, "vote", circle=circle, proposal=proposal["id"], choice="approve")
                assert _circle(alice, circle).replica.state.info["charter"].history is True
            await share_circle(alice, circle, bob)
            early = await post_when_ready(bob, circle, "said before dana came")
            await wait_until(lambda: early in _feed_texts(alice, circle))
            await share_circle(alice, circle, dana)
            await wait_until(lambda: state_hash(dana, circle) == state_hash(alice, circle))
            texts = _feed_texts(dana, circle)
            assert early in texts  # dana folds the same state and sees that it was said...
            if history:
                assert texts[early] == ("said before dana came", True)
            else:
                assert texts[early] == ("", False)  # ...but cannot read it
            # Bob must have seen dana's arrival (and the rotation before it) first: a post he
            # sealed before that is, to him, said before she came.
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            later = await post_when_ready(bob, circle, "said after dana came")
            await wait_until(lambda: _feed_texts(dana, circle).get(later) == ("said after dana came", True))


async def test_a_member_added_by_card_gets_the_keys_with_an_invite(tmp_path: Path) -> None:
    """`kith member add CIRCLE CARD` makes someone a member, but nothing can reach their
    node: they come in with an invite code, which sends them the keys without a second
    member.add (the circle refused that: already a member) and without using the code up."""
    homes = [make_home(tmp_path, n) for n in ("alice", "bob")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="By card"))["id"]
            card = bob.circles.identity.card().to_bytes().hex()
            await call(alice, "member.add", circle=circle, card=card)
            assert bob.circles.identity.member_id in _circle(alice, circle).replica.state.members
            code = (await call(alice, "invite.create", circle=circle, uses=1))["code"]
            await bob.connect(address(alice))
            await call(bob, "join", code=code)
            await wait_until(lambda: bool(bob.circles.circles), timeout=30)
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle), timeout=30)
            current = _circle(alice, circle).replica.state.info["epoch"]
            await wait_until(lambda: _circle(bob, circle).keys.current == current, timeout=30)
            said = await post_when_ready(bob, circle, "in by card, then by code")
            await wait_until(lambda: _feed_texts(alice, circle).get(said) == ("in by card, then by code", True))
            invites = await call(alice, "invites", circle=circle)
            assert [i["used"] for i in invites] == [0]  # nobody new came in with it


async def test_a_leaked_code_and_a_members_card_do_not_bring_mallory_the_keys(tmp_path: Path) -> None:
    """The attack on the welcome for members added by card: Mallory holds a leaked code and
    Bob's public card, and sends a join request carrying Bob's card (a join request is not
    signed; anyone can name any card). Alice's node answers with a welcome, but it is sealed
    to Bob's card: Mallory cannot open it and gets no key; Bob could."""
    from p2pnet_harness import PASS

    from kith.p2pnet.keyfile import Keystore
    from kith.sync.envelope import Kind
    from kith.sync.invites import InviteCode, invite_hints, open_welcome, seal_join_request

    homes = [make_home(tmp_path, n) for n in ("alice", "mallory", "bob")]
    bob = Keystore.unlock(homes[2].keystore, PASS).data.identity
    assert bob is not None
    with trio.fail_after(60):
        async with AsyncExitStack() as stack:
            alice, mallory = [await stack.enter_async_context(running(h)) for h in homes[:2]]
            circle = (await call(alice, "circle.create", name="By card"))["id"]
            await call(alice, "member.add", circle=circle, card=bob.card().to_bytes().hex())
            code = InviteCode.decode((await call(alice, "invite.create", circle=circle, uses=1))["code"])
            await mallory.connect(address(alice))
            request, nonce = seal_join_request(code, bob, ts=int(time.time()))
            mallory.gate.add_key(code.topic, code.epoch, code.mac_key, invite_hints(code.secret))
            await mallory.serve_topic(code.topic)
            await mallory.accept(code.topic, [request], "self")
            mallory.publish_nowait(request)
            await wait_until(lambda: list(mallory.store.by_kind(code.topic, Kind.WELCOME)), timeout=30)
            (welcome,) = [Envelope.decode(d) for d in mallory.store.by_kind(code.topic, Kind.WELCOME)]
            with pytest.raises(RemoteProtocolError):
                open_welcome(welcome, mallory.circles.identity, nonce, code)
            assert open_welcome(welcome, bob, nonce, code).circle.hex() == circle  # sealed to Bob alone
            assert not mallory.circles.circles
            invites = await call(alice, "invites", circle=circle)
            assert [i["used"] for i in invites] == [0]


async def test_used_up_and_expired_invites_are_refused(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "eve", "finn")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, eve, finn = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Small"))["id"]
            once = (await call(alice, "invite.create", circle=circle, uses=1))["code"]
            for member in (bob, eve):
                await member.connect(address(alice))
            await call(bob, "join", code=once)
            await wait_until(lambda: bob.circles.circles and bob.circles.identity.member_id
                             in _circle(bob, circle).replica.state.members)  # fmt: skip
            await call(eve, "join", code=once)
            await wait_until(lambda: (eve.lifecycle.pending_joins() or [{}])[0].get("refused") is not None)
            assert "used up" in eve.lifecycle.pending_joins()[0]["refused"]
            assert not eve.circles.circles
            # An invite that expired after it was handed out: the inviter refuses it.
            brief = (await call(alice, "invite.create", circle=circle, uses=5, expires_s=0.5))["code"]
            await trio.sleep(1.0)
            await finn.connect(address(alice))
            with pytest.raises(UsageError, match="expired"):
                await call(finn, "join", code=brief)  # the code itself says so
            invites = await call(alice, "invites", circle=circle)
            assert [i["used"] for i in invites] == [1, 0]


async def test_concurrent_removals_by_two_organizers_converge(tmp_path: Path) -> None:
    names = ("alice", "carol", "bob", "dana", "eli")
    homes = [make_home(tmp_path, n) for n in names]
    with trio.fail_after(120):
        async with AsyncExitStack() as stack:
            alice, carol, bob, dana, eli = nodes = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Two leads"))["id"]
            await share_circle(alice, circle, carol, bob, dana, eli)
            await call(
                alice, "role.grant", circle=circle, member=carol.circles.identity.member_id.hex(), role="organizer"
            )
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1)
            # Cut the circle in two (alice+bob+eli | carol+dana), each organizer removes someone.
            for node in (carol, dana):
                node.keystore.data.relays.clear()
            # Blocks on both sides, not disconnects: a dial already under way would reconnect.
            for node in (carol, dana):
                for other in (alice, bob, eli):
                    await call(node, "block", peer=other.net.peer_id, seconds=600)
                    await call(other, "block", peer=node.net.peer_id, seconds=600)
            await wait_until(
                lambda: not any(p in n.peers for n in (alice, bob, eli) for p in (carol.net.peer_id, dana.net.peer_id))
            )
            await dana.connect(address(carol))
            await call(alice, "member.remove", circle=circle, member=bob.circles.identity.member_id.hex())
            await call(carol, "member.remove", circle=circle, member=dana.circles.identity.member_id.hex())
            await wait_until(lambda: not _circle(alice, circle).replica.state.info["rotation_due"])
            await wait_until(lambda: not _circle(carol, circle).replica.state.info["rotation_due"])
            for node in (carol, dana):  # heal
                for other in (alice, bob, eli):
                    await call(node, "unblock", peer=other.net.peer_id)
                    await call(other, "unblock", peer=node.net.peer_id)
            await carol.connect(address(alice))
            remaining = (alice, carol, eli)
            # (Bob and Dana may not get that far: each side's rotation reached the other's
            # removed member, so another rotation follows, sealed to the remaining ones only.)
            await wait_until(lambda: len({state_hash(n, circle) for n in remaining}) == 1, timeout=60)
            state = _circle(alice, circle).replica.state
            members = set(state.members)
            assert bob.circles.identity.member_id not in members and dana.circles.identity.member_id not in members

            # One current epoch everywhere, held by every remaining member, by neither removed one.
            def holds_current(n: Node) -> bool:
                return _circle(n, circle).replica.state.info["epoch"] in _circle(n, circle).keys.epochs

            await wait_until(lambda: all(holds_current(n) for n in remaining), timeout=60)
            current = state.info["epoch"]
            assert current not in _circle(bob, circle).keys.epochs
            assert current not in _circle(dana, circle).keys.epochs
            final = await post_when_ready(eli, circle, "we are still here")
            await wait_until(lambda: all(_feed_texts(n, circle).get(final, ("", False))[1] for n in remaining))


async def test_a_key_the_approver_lacks_reaches_the_newcomer_from_another_holder(tmp_path: Path) -> None:
    """A welcome carries the keys its approver holds. The fold counts a member as holding a
    key only once they acknowledge it (``key.ack``), so a key the approver lacked (a share
    still on its way) shows as missing, and an organizer who holds it sends it: the newcomer
    ends up able to open every op, and their state matches everyone's."""
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "dana")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, dana = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Keys first"))["id"]
            await share_circle(alice, circle, bob)
            await call(
                alice, "role.grant", circle=circle, member=bob.circles.identity.member_id.hex(), role="organizer"
            )
            await call(alice, "rotate", circle=circle)
            current = _circle(alice, circle).replica.state.info["epoch"]
            await wait_until(lambda: _circle(bob, circle).keys.current == current)
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            # Bob lacks the genesis epoch key, as if the share carrying it were still on its way.
            keys = _circle(bob, circle).keys
            first = _circle(bob, circle).replica.state.epochs[current].previous
            keys.epochs.pop(first)
            keys.contents.pop(first, None)
            code = (await call(bob, "invite.create", circle=circle))["code"]
            await dana.connect(address(bob))
            await dana.connect(address(alice))
            await call(dana, "join", code=code)
            await wait_until(lambda: _joined_here(dana, circle), timeout=30)
            # Alice sees Dana has not acknowledged the genesis key and sends it.
            await wait_until(lambda: first in _circle(dana, circle).keys.epochs, timeout=45)
            await wait_until(lambda: state_hash(dana, circle) == state_hash(alice, circle), timeout=30)
            state = _circle(dana, circle).replica.state
            me = dana.circles.identity.member_id
            credited = {epoch for epoch, holders in state.holders.items() if me in holders}
            assert first in credited and credited <= set(_circle(dana, circle).keys.epochs)


def _joined_here(node: Node, circle_id: str) -> bool:
    assert node.circles is not None
    return (
        bool(node.circles.circles) and node.circles.identity.member_id in _circle(node, circle_id).replica.state.members
    )
