"""The envelope store: idempotent, ordered for reconciliation, and loses nothing it acknowledged."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio

from kith.p2pnet.store import EnvelopeStore, StoreError
from kith.sync.envelope import seal, topic_of_epoch_key

KEY = bytes([3]) * 32
OTHER_KEY = bytes([4]) * 32
TOPIC = topic_of_epoch_key(KEY)
OTHER = topic_of_epoch_key(OTHER_KEY)


def _envelopes(count: int, topic: bytes = TOPIC, ts0: int = 1000) -> list:
    key = KEY if topic == TOPIC else OTHER_KEY  # an envelope's topic is its epoch's
    return [seal(f"op {i}".encode(), epoch_key=key, ts=ts0 + i % 7) for i in range(count)]


def test_insert_is_idempotent_and_reports_new(tmp_path: Path) -> None:
    with EnvelopeStore(tmp_path / "s.sqlite") as store:
        batch = _envelopes(20)
        assert store.add_batch(batch) == batch
        assert store.add_batch(batch) == []
        assert store.add_batch(batch[:5] + _envelopes(1, ts0=5000)) != []
        assert store.count() == 21 and store.count(TOPIC) == 21
        assert store.get(batch[3].id) == batch[3].data
        assert store.has(batch[3].id) and not store.has(b"\x00" * 32)


def test_items_are_in_reconciliation_order(tmp_path: Path) -> None:
    with EnvelopeStore(tmp_path / "s.sqlite") as store:
        store.add_batch(_envelopes(50) + _envelopes(10, OTHER))
        items = store.items(TOPIC)
        assert len(items) == 50 and items == sorted(items)
        lower, upper = items[10], items[30]
        assert store.item_range(TOPIC, lower, upper) == items[10:30]
        assert store.item_range(TOPIC, None, upper) == items[:30]
        assert store.item_range(TOPIC, lower, None, limit=5) == items[10:15]
        assert sorted(store.topics()) == sorted([TOPIC, OTHER])


def test_since_is_a_resumable_cursor(tmp_path: Path) -> None:
    with EnvelopeStore(tmp_path / "s.sqlite") as store:
        first = _envelopes(10)
        store.add_batch(first)
        rows = store.since(0)
        assert [data for _seq, data in rows] == [e.data for e in first]
        store.add_batch(_envelopes(3, OTHER))
        later = store.since(rows[-1][0])
        assert len(later) == 3
        assert len(list(store.iter_topic(TOPIC, batch=3))) == 10
        assert store.get_many([e.id for e in first[:4]]) == {e.id: e.data for e in first[:4]}


def test_plaintext_never_reaches_the_database(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with EnvelopeStore(path) as store:
        store.add_batch([seal(b"my rent is overdue and I am scared", epoch_key=KEY, ts=1)])
    for file in tmp_path.iterdir():
        assert b"my rent is overdue" not in file.read_bytes()


def test_damaged_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="damaged"):
        EnvelopeStore(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    EnvelopeStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 99 WHERE key = 'schema'")
    with pytest.raises(StoreError, match="newer kith"):
        EnvelopeStore(path)


@pytest.mark.slow
@pytest.mark.parametrize(("kill_after_acks", "mode"), [(3, "loop"), (17, "loop"), (3, "thread"), (17, "thread")])
def test_acknowledged_batches_survive_kill_9(tmp_path: Path, kill_after_acks: int, mode: str) -> None:
    """Also when each batch is written by `add_batch_in_thread`, as the node writes."""
    path = tmp_path / "crash.sqlite"
    writer = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("store_writer.py")), str(path), "7", mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        assert writer.stdout is not None
        while len(acknowledged) < kill_after_acks * 50:
            assert time.monotonic() < deadline, "the writer stopped acknowledging (a liveness bound)"
            line = writer.stdout.readline()
            assert line.startswith("ack "), line
            acknowledged += [bytes.fromhex(h) for h in line.split()[2:]]
        os.kill(writer.pid, signal.SIGKILL)  # mid-stream: it is already writing the next batch
    finally:
        writer.kill()
        writer.wait(timeout=10)
    with EnvelopeStore(path) as store:
        assert store.integrity_ok()
        missing = [i for i in acknowledged if not store.has(i)]
        assert missing == []
        assert store.count() >= len(acknowledged)


def test_marker_envelopes_are_found_by_the_kind_they_were_stored_as(tmp_path: Path) -> None:
    from kith.identity.errors import LocalProtocolError
    from kith.sync.envelope import Kind

    with EnvelopeStore(tmp_path / "s.sqlite") as store:
        ops, marker = _envelopes(20), _envelopes(1, ts0=99)[0]
        store.add_batch([*ops, marker], {marker.id: Kind.JOIN})
        assert store.by_kind(TOPIC, Kind.JOIN) == [marker.data]
        assert store.by_kind(TOPIC, Kind.WELCOME) == []
        assert store.by_kind(OTHER, Kind.JOIN) == []
        with pytest.raises(LocalProtocolError):
            store.by_kind(TOPIC, Kind.OP)


def test_a_store_from_before_per_epoch_topics_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema', 1)")
    db.execute("CREATE TABLE envelopes (seq INTEGER PRIMARY KEY, id BLOB, topic BLOB, epoch BLOB, data BLOB)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="older kith.*move the kith home aside"):
        EnvelopeStore(path)


def test_moved_to_memory_the_store_never_touches_its_file_again(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = EnvelopeStore(path)
    store.add_batch(_envelopes(5))
    store.move_to_memory()
    on_disk = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(store.add_batch(_envelopes(3, ts0=5000))) == 3 and store.count() == 3
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == on_disk
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_write_in_a_worker_thread_leaves_the_loop_free(tmp_path: Path) -> None:
    """While `add_batch_in_thread` writes, trio tasks run and read what has committed (and
    nothing of the batch in flight); when it returns, the batch is there. If the write ran on
    the loop's thread, the loop could never release it and the wait below would fail."""
    store = EnvelopeStore(tmp_path / "s.sqlite")
    first, batch = _envelopes(4), _envelopes(30, ts0=5000)
    store.add_batch(first)
    writing, release = threading.Event(), threading.Event()
    writer_threads: list[int] = []
    insert = store._insert

    def held_insert(db, envelopes, kinds):  # type: ignore[no-untyped-def]
        writer_threads.append(threading.get_ident())
        writing.set()
        if not release.wait(timeout=60):
            raise AssertionError("the trio loop did not run while the batch was being written")
        return insert(db, envelopes, kinds)

    store._insert = held_insert  # type: ignore[method-assign]
    stored: list[list] = []

    async def main() -> None:
        async def write() -> None:
            stored.append(await store.add_batch_in_thread(batch))

        with trio.fail_after(120):  # a liveness bound
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                await trio.to_thread.run_sync(writing.wait)
                assert store.count() == len(first)  # a read on the loop, mid-write
                release.set()

    try:
        trio.run(main)
        assert writer_threads and writer_threads[0] != threading.get_ident()
        assert stored == [batch]
        assert store.count() == len(first) + len(batch)
    finally:
        release.set()
        store.close()


def test_concurrent_writes_in_threads_store_each_envelope_once(tmp_path: Path) -> None:
    """Overlapping batches written from many tasks at once: every envelope is reported new by
    exactly one of them, and every read after they return sees all of them."""
    store = EnvelopeStore(tmp_path / "s.sqlite")
    everything = _envelopes(120)
    batches = [everything[i : i + 40] for i in range(0, 120, 10)]  # each envelope in up to 4 batches
    reported: list[list] = []

    async def main() -> None:
        async def write(batch: list) -> None:
            reported.append(await store.add_batch_in_thread(batch))

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for batch in batches:
                    nursery.start_soon(write, batch)

    try:
        trio.run(main)
        new_ids = [e.id for new in reported for e in new]
        assert sorted(new_ids) == sorted(e.id for e in everything)
        assert store.count() == len(everything) and store.integrity_ok()
        assert store.get_many([e.id for e in everything]) == {e.id: e.data for e in everything}
    finally:
        store.close()
