"""Reports sealed to the organizers, through real nodes: who reported stays with them;
forged, replayed and oversized reports from a modified client are dropped and counted."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
from p2pnet_harness import call, make_home, running, share_circle, state_hash, wait_until

from kith.identity.errors import RemoteProtocolError, UsageError
from kith.sync.envelope import Envelope
from kith.sync.private import make_statement, open_private, seal_private
from kith.sync.reports import REPORT_KIND

pytestmark = pytest.mark.trio


async def test_reports_reach_organizers_only_and_junk_is_counted(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(120):
        async with AsyncExitStack() as stack:
            alice, bob, carol = nodes = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Moderated"))["id"]
            await share_circle(alice, circle, bob, carol)
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1, timeout=60)
            post = (await call(bob, "post", circle=circle, text="carol is a liar, here is her address"))["id"]
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1, timeout=30)
            before = state_hash(alice, circle)

            sent = await call(carol, "report", circle=circle, post=post[:8], reason="doxxing me")
            assert sent["id"] is None and sent["private"]
            book = alice.lifecycle.report_book(alice.circles.get(circle))
            await wait_until(lambda: len(book.reports) == 1, timeout=30)
            listed = await call(alice, "reports", circle=circle)
            (report,) = listed["reports"]
            assert report["reporter"] == carol.circles.identity.member_id.hex()
            assert (report["target"], report["target_id"], report["reason"]) == ("post", post, "doxxing me")
            assert report["post_text"] == "carol is a liar, here is her address" and listed["dropped"] == {}
            assert (await call(alice, "views", circle=circle))["reports"][0]["reason"] == "doxxing me"

            # bob holds the envelope (a barrier: he reconciled with alice) but cannot open it,
            # may not list reports, and the circle's state did not change: no op names carol.
            for peer in list(bob.peers):
                assert not (await bob.sync_now(peer)).error
            envelope_id = bytes.fromhex(sent["private"])
            (data,) = bob.store.get_many([envelope_id]).values()
            with pytest.raises(RemoteProtocolError):
                open_private(Envelope.decode(data), bob.circles.identity)
            with pytest.raises(UsageError):
                await call(bob, "reports", circle=circle)
            assert (await call(bob, "views", circle=circle))["reports"] == []
            assert state_hash(alice, circle) == before == state_hash(bob, circle)

            # carol's modified client: the same signed report again, one with a reason over the
            # limit, and one whose signature does not verify (a report "by bob").
            on_carol = carol.circles.get(circle)
            organizers = [alice.circles.identity.dh_public]
            me = carol.circles.identity

            def send(statement: object) -> None:
                envelope = seal_private(statement, organizers, epoch_key=on_carol.keys.current_key,  # type: ignore[arg-type]
                                        ts=int(carol.clock()))  # fmt: skip
                carol.lifecycle.send(on_carol, envelope)

            body = {"post": bytes.fromhex(post), "member": None, "reason": "doxxing me"}
            honest = make_statement(me, on_carol.id, REPORT_KIND, body, ts=5)
            send(honest)
            send(honest)
            long = {"post": bytes.fromhex(post), "member": None, "reason": "x" * 501}
            send(make_statement(me, on_carol.id, REPORT_KIND, long, ts=6))
            forged = bytearray(honest.data)
            forged[-1] ^= 1
            send(SimpleNamespace(data=bytes(forged)))
            await wait_until(lambda: sum(book.dropped.values()) == 3 and len(book.reports) == 2, timeout=30)
            assert book.dropped == {"replayed": 1, "oversized": 1, "forged": 1}
            # alice's node is still fine: she hides the post, everyone's feed loses its text.
            hidden = await call(alice, "hide", circle=circle, target=post, reason="it gives out an address")
            assert hidden["rejected"] is None
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1, timeout=30)
            feed = (await call(bob, "views", circle=circle))["feed"]
            (item,) = [i for i in feed if i["id"] == post]
            assert item["text"] == "" and item["hidden"] == "it gives out an address"
            log = (await call(carol, "views", circle=circle))["moderation"]
            assert [(e["target"], e["reason"]) for e in log] == [(post, "it gives out an address")]
            assert me.member_id.hex() not in str(log)  # the log never names the reporter
