"""Faults a node must survive: a full disk, and dying between two writes that belong together.

The full disk is real: a member's home on a small tmpfs that the test fills (mounting one
needs root, as the CI machine has; elsewhere that one test is skipped and says why). The
half-finished writes are made in one process, by failing a write on purpose or by undoing
the keystore write that a kill would have prevented.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import trio
from bench.cluster import NodeProcess
from bench.soak_faults import DiskFullHome
from p2pnet_harness import PASS, address, allow_on_relay, call, make_home, running, share_circle, state_hash, wait_until

from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.node import RELAY_TOPICS_KEY
from kith.p2pnet.statecache import StateCacheError
from kith.tui.rpc import NodeError


def _state(node: NodeProcess, circle: str) -> tuple[str, int] | None:
    try:
        result = node.call("state_hash", circle=circle)
    except Exception:  # noqa: BLE001 - not there yet
        return None
    return result["state_hash"], result["ops"]


@pytest.mark.slow
@pytest.mark.skipif(DiskFullHome.why_unavailable() is not None, reason=str(DiskFullHome.why_unavailable()))
def test_a_full_disk_is_a_clear_error_the_node_survives_and_recovers(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text(PASS)
    disk = DiskFullHome(tmp_path / "small", size_mb=16)
    disk.mount()
    alice = bob = None
    try:
        alice = NodeProcess(make_home(tmp_path, "alice"), secret).start()
        bob = NodeProcess(make_home(disk.mountpoint, "bob"), secret).start()
        circle = alice.call("circle.create", name="Full disk")["id"]
        bob.call("connect", address=alice.address)
        bob.call("join", code=alice.call("invite.create", circle=circle)["code"])
        deadline = time.monotonic() + 90
        while _state(bob, circle) != _state(alice, circle):
            assert time.monotonic() < deadline, "bob never joined"
            time.sleep(0.1)
        acknowledged = bob.call("post", circle=circle, text="before the disk filled")["id"]

        disk.fill()
        with pytest.raises(NodeError, match="disk .* is full"):
            bob.call("post", circle=circle, text="on a full disk")
        for i in range(5):  # alice keeps writing: bob receives it all and cannot store it
            alice.call("post_many", circle=circle, texts=[f"while bob's disk is full {i}-{j}" for j in range(40)])
            time.sleep(0.3)
        assert bob.proc is not None and bob.proc.poll() is None, "the node died on a full disk"
        assert bob.call("status")["refused"].get("not stored: storage error", 0) > 0

        disk.free()
        deadline = time.monotonic() + 60
        while _state(bob, circle) != _state(alice, circle):
            assert time.monotonic() < deadline, "bob did not catch up once the disk had room"
            bob.call("sync")
            time.sleep(0.5)
        after = bob.call("post", circle=circle, text="room again")["id"]
        feed = {item["id"] for item in bob.call("views", circle=circle, feed_limit=1000)["feed"]}
        assert {acknowledged, after} <= feed
        bob.stop()
        for name in ("envelopes.sqlite", "state.sqlite"):
            db = sqlite3.connect(bob.home.root / name)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.close()
        Keystore.unlock(bob.home.keystore, PASS)  # the keystore survived whole
    finally:
        for node in (alice, bob):
            if node is not None:
                node.stop()
        disk.unmount()


@pytest.mark.trio
async def test_a_write_failing_half_way_is_redone_from_the_store(tmp_path: Path) -> None:
    """The envelope was stored but its op could not be cached (the disk filled in between):
    the node folds nothing more until writes work, then rebuilds the circle from its files."""
    homes = [make_home(tmp_path, n) for n in ("alice", "bob")]
    with trio.fail_after(90):
        async with running(homes[0]) as alice, running(homes[1]) as bob:
            circle = (await call(alice, "circle.create", name="Half way"))["id"]
            await share_circle(alice, circle, bob)
            cache = bob.cache
            assert cache is not None
            real_put = cache.put_ops

            def full_disk(*args: object, **kwargs: object) -> None:
                raise StateCacheError("cannot write the state cache: database or disk is full")

            cache.put_ops = full_disk  # type: ignore[method-assign]
            for i in range(5):
                await call(alice, "post", circle=circle, text=f"while bob's cache is full {i}")
            await wait_until(lambda: bob.circles.write_error is not None)  # type: ignore[union-attr]
            with pytest.raises(Exception, match="full"):
                await call(bob, "post", circle=circle, text="not now")
            cache.put_ops = real_put  # type: ignore[method-assign]
            await wait_until(lambda: bob.circles.write_error is None, timeout=30)  # type: ignore[union-attr]
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle), timeout=30)
            await call(bob, "post", circle=circle, text="writing again")
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle), timeout=30)


@pytest.mark.trio
async def test_a_relay_killed_before_saving_a_granted_key_learns_it_again(tmp_path: Path) -> None:
    alice_home, relay_home = make_home(tmp_path, "alice"), make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(90):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Granted"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle))["token"]
        allow_on_relay(relay_home, token)
        (entry,) = Keystore.unlock(relay_home.keystore, PASS).data.extra[RELAY_TOPICS_KEY].values()
        granted_at_start = set(entry["relay_keys"])
        async with running(alice_home) as alice, running(relay_home, relay=True) as relay:
            await alice.connect(address(relay))
            await call(alice, "rotate", circle=circle)
            await call(alice, "post", circle=circle, text="under the new key")
            await call(alice, "sync")
            mine = alice.circles.get(circle)  # type: ignore[union-attr]
            topic, handle = mine.current_topic, mine.handle
            await wait_until(lambda: relay.gate.serves(topic))  # the new epoch's topic
        # The kill came between storing the grant and saving the keystore: undo the save.
        keystore = Keystore.unlock(relay_home.keystore, PASS)
        entry = keystore.data.extra[RELAY_TOPICS_KEY][handle]
        entry["relay_keys"] = {e: k for e, k in entry["relay_keys"].items() if e in granted_at_start}
        keystore.save()
        async with running(relay_home, relay=True) as relay:
            assert relay.gate.serves(topic)
            async with running(alice_home) as alice:
                await alice.connect(address(relay))
                later = await call(alice, "post", circle=circle, text="after the relay came back")
                await call(alice, "sync")
                await wait_until(lambda: relay.store.count(topic) == alice.store.count(topic))  # type: ignore[union-attr]
                assert later["rejected"] is None


@pytest.mark.trio
async def test_a_member_killed_before_saving_a_new_key_installs_it_on_start(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob")]
    with trio.fail_after(90):
        async with running(homes[0]) as alice:
            circle = (await call(alice, "circle.create", name="Kept"))["id"]
            async with running(homes[1]) as bob:
                await share_circle(alice, circle, bob)
                await call(alice, "rotate", circle=circle)
                current = alice.circles.get(circle).keys.current  # type: ignore[union-attr]
                await wait_until(lambda: current in bob.circles.get(circle).keys.epochs)  # type: ignore[union-attr]
            # The op that sealed the key to bob is stored and folded; the keystore save is undone.
            keystore = Keystore.unlock(homes[1].keystore, PASS)
            entry = keystore.data.circles[bytes.fromhex(circle)]
            del entry["epochs"][current]
            entry["contents"].pop(current, None)
            entry["current"] = next(iter(entry["epochs"]))
            keystore.save()
            async with running(homes[1]) as bob:
                assert current in bob.circles.get(circle).keys.epochs  # type: ignore[union-attr]
                await bob.connect(address(alice))
                posted = await call(bob, "post", circle=circle, text="I still have the key")
                await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
                assert posted["rejected"] is None
