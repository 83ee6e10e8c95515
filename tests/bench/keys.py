"""Membership figures: rotating a big circle's key, and joining with an invite."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import Figures, register


@register("rekey_1000_ms")
def bench_rekey() -> Figures:
    """A rotation in a circle of 1,000 members: new keys, sealed to 999 others, announced in
    signed ops (key.rotate + key.share chunks), sealed in envelopes, stored and folded."""
    from kith.identity.keys import MemberIdentity
    from kith.identity.keystore import TEST_KDF, KeystoreData
    from kith.p2pnet.circles import MemberCircles
    from kith.p2pnet.keyfile import Keystore
    from kith.p2pnet.statecache import StateCache
    from kith.p2pnet.store import EnvelopeStore
    from kith.sync.envelope import epoch_id
    from kith.sync.invites import seal_epoch_key
    from kith.sync.kinds.keys import MAX_SEALED_PER_OP
    from kith.sync.kinds.membership import member_add_body

    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        root = Path(tmp)
        founder = MemberIdentity.generate("founder", now=1)
        keystore = Keystore.create(root / "keystore.kith", "bench passphrase", KeystoreData.generate(founder), TEST_KDF)
        store = EnvelopeStore(root / "envelopes.sqlite")
        cache = StateCache(root / "state.sqlite", keystore.data.storage_key)
        circles = MemberCircles(keystore, store, cache, clock=time.time)
        circle, _ = circles.create_circle("Big circle")
        cards = [MemberIdentity.generate(f"m{i}", now=1).card().to_bytes() for i in range(999)]
        for start in range(0, len(cards), 200):
            items = [("member.add", member_add_body(card)) for card in cards[start : start + 200]]
            circles.author_many(circle, items)
        state = circle.replica.state
        assert len(state.members) == 1000
        began = time.perf_counter()
        new_key, new_content = circles.rand(32), circles.rand(32)
        new_epoch = epoch_id(new_key)
        recipients = [m for m in sorted(state.members) if m != founder.member_id]
        sealed = {m: seal_epoch_key(state.cards[m], new_key, new_content) for m in recipients}
        entries = list(sealed.items())
        chunks = [dict(entries[i : i + MAX_SEALED_PER_OP]) for i in range(0, len(entries), MAX_SEALED_PER_OP)]
        items = [("key.rotate", {"epoch": new_epoch, "previous": state.info["epoch"], "sealed": chunks[0]})]
        items += [("key.share", {"epoch": new_epoch, "sealed": chunk}) for chunk in chunks[1:]]
        envelopes, result = circles.author_many(circle, items)
        elapsed = time.perf_counter() - began
        assert not result.rejected and state.info["epoch"] == new_epoch
        assert len(state.holders[new_epoch]) == 1000
        cache.close()
        store.close()
    return {"rekey_1000_ms": round(elapsed * 1000, 1), "rekey_ops": len(envelopes)}


@register("join_ms")
def bench_join() -> Figures:
    """From creating an invite to the newcomer holding the circle: welcomed, every op folded
    (its state hash equals the inviter's), the current key installed. Two local nodes,
    already running, cheap KDF costs (the passphrase KDF is not counted)."""
    import trio

    from kith.identity.keys import MemberIdentity
    from kith.identity.keystore import TEST_KDF, KeystoreData
    from kith.p2pnet.api import build_methods
    from kith.p2pnet.config import NodeConfig
    from kith.p2pnet.home import Home
    from kith.p2pnet.keyfile import Keystore
    from kith.p2pnet.node import Node

    def make(root: Path, name: str) -> Node:
        home = Home(root / name)
        home.ensure()
        data = KeystoreData.generate(MemberIdentity.generate(name, now=int(time.time())))
        keystore = Keystore.create(home.keystore, "bench passphrase", data, TEST_KDF)
        return Node(home, keystore, NodeConfig(listen=["/ip4/127.0.0.1/tcp/0"], sync_interval_s=5.0))

    result: dict[str, float] = {}

    async def main(root: Path) -> None:
        alice, bob = make(root, "alice"), make(root, "bob")
        async with trio.open_nursery() as nursery:
            await nursery.start(alice.run)
            await nursery.start(bob.run)
            a, b = build_methods(alice), build_methods(bob)
            circle = (await a["circle.create"]({"name": "Welcome"}))["id"]
            for i in range(20):
                await a["post"]({"circle": circle, "text": f"conversation so far {i}"})
            start = time.perf_counter()
            code = (await a["invite.create"]({"circle": circle}))["code"]
            assert alice.net is not None
            await bob.connect(alice.net.listen_addresses()[0])
            await b["join"]({"code": code})
            with trio.fail_after(30):
                while True:
                    if bob.circles is not None and bob.circles.circles:
                        mine, theirs = (
                            await b["state_hash"]({"circle": circle}),
                            await a["state_hash"]({"circle": circle}),
                        )
                        if mine == theirs:
                            break
                    await trio.sleep(0.005)
            result["join_ms"] = round((time.perf_counter() - start) * 1000, 1)
            alice.stop()
            bob.stop()

    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        trio.run(main, Path(tmp))
    return result
