"""The encrypted state cache (p2pnet/statecache.py, tested here next to the fold fixtures it
uses): round trips, nothing readable on disk, tamper detection, reopening."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sync_support import sealed_body

from kith.identity.errors import Undecryptable
from kith.p2pnet.statecache import StateCache
from kith.sync.causal import meta_of
from kith.sync.replica import CircleReplica
from kith.sync.state import fold_circle_state, fold_key

KEY = bytes(range(32))
SECRET_TEXT = "my landlord threatened me again"


def _story(circle: Any) -> None:
    circle.post("bob", SECRET_TEXT)
    contribution = circle.contribute("carol", 4000)
    circle.act("bob", "fund.receipt", {"contribution": contribution.id})
    proposal = circle.propose("alice", "spend", {"amount": 1500, "currency": "EUR", "recipient": "x", "purpose": "y"})
    for voter in ("alice", "bob", "carol"):
        circle.vote(voter, proposal, "approve")
    circle.act("bob", "fund.disburse", {"proposal": proposal.id, "note": None})
    circle.act("dana", "checkin", {"status": "need-help", "note": "bad night"})


@pytest.fixture
def story(circle: Any) -> Any:
    _story(circle)
    return circle


def _cached_replica(tmp_path: Path, story: Any, **options: Any) -> tuple[StateCache, CircleReplica]:
    cache = StateCache(tmp_path / "state.sqlite", KEY)
    replica = CircleReplica(story.genesis.op.circle, cache=cache, **options)
    replica.ingest_many(story.replica.ops())
    return cache, replica


def test_ops_round_trip_in_fold_order(tmp_path: Path, story: Any) -> None:
    circle_id = story.genesis.op.circle
    ops = sorted(story.replica.ops(), key=fold_key)
    with StateCache(tmp_path / "state.sqlite", KEY) as cache:
        cache.put_ops(circle_id, reversed(ops))
        cache.put_ops(circle_id, ops[:3])  # idempotent
        assert cache.op_count(circle_id) == len(ops)
        assert list(cache.iter_ops(circle_id)) == ops
        assert list(cache.iter_ops(circle_id, after=fold_key(ops[2]), upto=fold_key(ops[5]))) == ops[3:6]
        assert cache.meta_of(circle_id, ops[4].id) == meta_of(ops[4])
        assert cache.meta_of(circle_id, bytes(32)) is None
        assert cache.ops_since(circle_id, 0) == list(reversed(ops))
        assert cache.op_count(bytes(16)) == 0


def test_nothing_readable_on_disk(tmp_path: Path, story: Any) -> None:
    cache, replica = _cached_replica(tmp_path, story)
    replica.save(cursor=7)
    cache.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    circle_id = story.genesis.op.circle
    for secret in (SECRET_TEXT.encode(), b"Night owls", b"bad night", circle_id, story.member("bob")):
        assert secret not in raw


def test_wrong_key_or_swapped_rows_do_not_decrypt(tmp_path: Path, story: Any) -> None:
    cache, replica = _cached_replica(tmp_path, story)
    replica.save(cursor=1)
    cache.close()
    circle_id = story.genesis.op.circle
    with StateCache(tmp_path / "state.sqlite", bytes(32)) as wrong:
        assert wrong.load_snapshot(circle_id) is None  # another key cannot even find the circle's rows
        assert wrong.op_count(circle_id) == 0
    with StateCache(tmp_path / "state.sqlite", KEY) as cache:
        nonce, ciphertext = cache._db.execute("SELECT nonce, ct FROM snapshots").fetchone()
        flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
        cache._db.execute("UPDATE snapshots SET ct = ?", (flipped,))
        with pytest.raises(Undecryptable):
            cache.load_snapshot(circle_id)
    with StateCache(tmp_path / "state.sqlite", KEY) as cache:
        rows = cache._db.execute("SELECT seq, nonce, ct FROM ops ORDER BY seq LIMIT 2").fetchall()
        (seq_a, nonce_a, ct_a), (seq_b, nonce_b, ct_b) = rows
        cache._db.execute("UPDATE ops SET nonce = ?, ct = ? WHERE seq = ?", (nonce_b, ct_b, seq_a))
        with pytest.raises(Undecryptable):
            list(cache.iter_ops(circle_id))


def test_reopen_from_snapshot_gives_the_same_state_and_cursor(tmp_path: Path, story: Any) -> None:
    cache, replica = _cached_replica(tmp_path, story)
    replica.save(cursor=42, tail=3)
    cache.close()
    with StateCache(tmp_path / "state.sqlite", KEY) as cache:
        reopened, cursor = CircleReplica.open(cache, story.genesis.op.circle)
        assert cursor == 42
        assert reopened.state_hash() == story.replica.state_hash()
        assert reopened.dag.heads() == story.replica.dag.heads()
        assert reopened.views() == story.replica.views()


def test_ops_written_after_the_snapshot_are_folded_on_open(tmp_path: Path, story: Any) -> None:
    cache, replica = _cached_replica(tmp_path, story)
    replica.save(cursor=1)
    later = story.post("carol", "after the snapshot")
    replica.ingest(later)
    cache.close()  # "crash" before the next snapshot
    with StateCache(tmp_path / "state.sqlite", KEY) as cache:
        reopened, _cursor = CircleReplica.open(cache, story.genesis.op.circle)
        assert later.id in reopened.state.messages
        assert reopened.state_hash() == story.replica.state_hash()
        assert reopened.dag.heads() == (later.id,)


def test_open_without_a_snapshot_folds_the_cached_ops(tmp_path: Path, story: Any) -> None:
    cache, _replica = _cached_replica(tmp_path, story)
    reopened, cursor = CircleReplica.open(cache, story.genesis.op.circle)
    assert cursor == 0 and reopened.state_hash() == story.replica.state_hash()
    cache.close()


def test_a_late_op_sorting_before_the_snapshot_refolds_from_the_cache(tmp_path: Path, story: Any) -> None:
    """An op signed long ago on a stale replica arrives after a restart."""
    stale = CircleReplica(story.genesis.op.circle)
    stale.ingest_many(list(story.replica.ops())[:6])
    body = sealed_body("msg.post", {"text": "sent from the bus", "reply_to": None, "content_warning": None,
                                    "urgent": False}, story.member("carol"), story.state.circle_id)  # fmt: skip
    old_post = stale.author_op(story.people["carol"], "msg.post", body, ts=3)
    cache, replica = _cached_replica(tmp_path, story, undo_window=2)
    replica.save(cursor=1, tail=1)
    cache.close()
    with StateCache(tmp_path / "state.sqlite", KEY) as cache:
        reopened, _cursor = CircleReplica.open(cache, story.genesis.op.circle, undo_window=2)
        assert fold_key(old_post) < reopened.state.window_start
        result = reopened.ingest(old_post)
        assert result.applied == (old_post,)
        assert reopened.state.full_refolds == 1
        expected = fold_circle_state(story.genesis.op.circle, [*story.replica.ops(), old_post])
        assert reopened.state.encode() == expected.encode()
        assert [s.id for s in reopened.ops()] == [s.id for s in expected.ops_in_fold_order()]


def test_durability_settings_and_injected_nonces(tmp_path: Path, story: Any) -> None:
    calls = []

    def rand(n: int) -> bytes:
        calls.append(n)
        return bytes([len(calls) % 256]) * n

    with StateCache(tmp_path / "state.sqlite", KEY, rand=rand) as cache:
        assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # NORMAL, and no automatic checkpoint: commits on the loop never fsync; `checkpoint` does.
        assert cache._db.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert cache._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        cache.put_ops(story.genesis.op.circle, story.replica.ops())
        assert calls and set(calls) == {24}


def _ops_in_file(path: Path) -> int:
    """What the database file alone holds (its WAL left aside), as a reader opening it sees."""
    copy = path.parent / "copy" / path.name
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(path.read_bytes())
    db = sqlite3.connect(copy)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ops'").fetchall():
            return 0  # not even the schema has reached the file yet
        return db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]
    finally:
        db.close()
        for leftover in copy.parent.iterdir():
            leftover.unlink()


def test_commits_reach_the_file_at_a_checkpoint_run_in_another_thread(tmp_path: Path, story: Any) -> None:
    """A commit lives in the WAL until `checkpoint` (which the node runs in a worker thread)
    copies it into the file; meanwhile reads on the owner's connection see it."""
    path = tmp_path / "state.sqlite"
    circle_id = story.genesis.op.circle
    ops = list(story.replica.ops())
    with StateCache(path, KEY) as cache:
        cache.put_ops(circle_id, ops[:4])
        assert cache.needs_checkpoint and cache.op_count(circle_id) == 4
        assert _ops_in_file(path) == 0
        worker = threading.Thread(target=cache.checkpoint)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive() and not cache.needs_checkpoint
        assert _ops_in_file(path) == 4
        cache.put_ops(circle_id, ops[4:])
        assert cache.needs_checkpoint and _ops_in_file(path) == 4
        assert cache.op_count(circle_id) == len(ops)


def test_whatever_part_of_the_wal_survives_the_cache_opens_as_a_state_it_was_in(tmp_path: Path, story: Any) -> None:
    """A power loss before a checkpoint keeps some prefix of the WAL's bytes. Cut it
    anywhere: the cache opens, and a snapshot it holds comes with every op it covers (so the
    node reads the envelope store again from that snapshot's cursor and loses nothing)."""
    path = tmp_path / "state.sqlite"
    circle_id = story.genesis.op.circle
    ops = sorted(story.replica.ops(), key=fold_key)
    cache = StateCache(path, KEY)
    replica = CircleReplica(circle_id, cache=cache)
    replica.ingest_many(ops[:5])
    cache.checkpoint()
    replica.save(cursor=5)
    for signed in ops[5:]:
        replica.ingest_many([signed])  # one commit per op
    replica.save(cursor=len(ops))
    wal = path.with_name(path.name + "-wal").read_bytes()
    base = path.read_bytes()
    seen: set[tuple[int, int | None]] = set()
    for cut in [*range(0, len(wal), 997), len(wal)]:
        crashed = tmp_path / f"cut-{cut}"
        crashed.mkdir()
        (crashed / path.name).write_bytes(base)
        (crashed / (path.name + "-wal")).write_bytes(wal[:cut])
        with StateCache(crashed / path.name, KEY) as survivor:
            snapshot = survivor.load_snapshot(circle_id)
            count = survivor.op_count(circle_id)
            if snapshot is not None:
                assert snapshot.cursor in (5, len(ops))
                assert count >= snapshot.watermark and (snapshot.cursor == 5 or count == len(ops))
                reopened, _cursor = CircleReplica.open(survivor, circle_id)
                assert reopened.state.applied_count == count
            seen.add((count, None if snapshot is None else snapshot.cursor))
    cache.close()
    assert (5, None) in seen and (len(ops), len(ops)) in seen  # the cuts reached both ends


def test_deleting_a_circle_forgets_it(tmp_path: Path, story: Any) -> None:
    cache, replica = _cached_replica(tmp_path, story)
    replica.save(cursor=1)
    cache.delete_circle(story.genesis.op.circle)
    assert cache.load_snapshot(story.genesis.op.circle) is None
    assert cache.op_count(story.genesis.op.circle) == 0
    cache.close()
