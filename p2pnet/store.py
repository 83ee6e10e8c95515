"""The envelope store: SQLite in WAL mode, the one durable record of everything received.

Theory of operation
-------------------
Envelopes are stored exactly as received (ciphertext and clear header), keyed by their
id, so members and keyless relays share one schema. Each topic's envelopes are indexed
by ``(ts, id)``, the order range-based reconciliation walks. A local ``seq`` numbers
rows in arrival order so consumers (the circle-state fold, relays forwarding) can resume
from a cursor after a restart.

Writes are batched: `add_batch` inserts many envelopes in one transaction and returns
the ones that were new. When it returns, the batch is on disk: ``synchronous=FULL`` in
WAL mode fsyncs the log at each commit, so an acknowledged envelope survives ``kill -9``
and power loss. Inserting an envelope that is already present is a no-op (idempotent).

Writes and reads use two connections to the one file. Every write (`add_batch`,
`delete_topic`) goes through the writer connection, one at a time under a lock, so the node
can run it in a worker thread (`add_batch_in_thread`) and the trio loop keeps serving peers
while the commit fsyncs. Reads use the other connection, on the caller's thread; in WAL
mode they never wait for the writer and see exactly what has committed, so a write is
visible to every read that starts after it returned.

No clock, no randomness; trio only to hand a write to a worker thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import trio

from kith.identity.errors import LocalProtocolError, StorageError
from kith.p2pnet.atomic import create_private
from kith.sync.envelope import Envelope, Kind

SCHEMA_VERSION = 2
"""2: envelopes v3 (one topic per epoch) and the local ``kind`` column. A store of schema
1 holds envelopes this version cannot read."""
Item = tuple[int, bytes]
"""A reconciliation item: (ts, envelope id)."""


class StoreError(StorageError):
    """The store cannot be used: disk full, unreadable file, or a newer schema."""


_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS envelopes (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    topic BLOB NOT NULL,
    ts INTEGER NOT NULL,
    epoch BLOB NOT NULL,
    kind INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS envelopes_by_topic ON envelopes (topic, ts, id);
CREATE INDEX IF NOT EXISTS envelopes_markers ON envelopes (topic, kind, seq) WHERE kind != 0;
"""
"""``kind`` is what the storing node learned the envelope holds (`sync.envelope.Kind`, from
nonce hints only its keys read): local knowledge, never sent. Only markers are indexed."""


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc).lower()
    if "full" in text:
        return StoreError.disk_full(path)
    if "not a database" in text or "malformed" in text:
        return StoreError(f"{path} is damaged or not a kith store")
    if "locked" in text or "busy" in text:
        return StoreError(f"{path} is busy: another kith process is writing to it")
    return StoreError(f"store error on {path}: {exc}")


def check_schema_version(db: sqlite3.Connection, version: int, holds: str) -> str | None:
    """Stamp a new database with ``version``, or say (after its path) why an existing one
    cannot be used; ``holds`` names what an older one held that this version cannot read."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None:
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (version,))
        return None
    if type(row[0]) is int and row[0] < version:
        return (
            f"was written by an older kith whose {holds} this version cannot read; "
            "move the kith home aside and join your circles again"
        )
    if row[0] != version:
        return f"was written by a newer kith (schema {row[0]}); upgrade kith"
    return None


def open_private_db(
    path: Path, *, fsync: bool, check_same_thread: bool = True, sync_each_commit: bool = True
) -> sqlite3.Connection:
    """A private (0600) SQLite file in WAL mode, as both of the node's stores use it.

    ``check_same_thread=False`` only for a connection its owner serialises itself (the
    envelope store's writer, used by one thread at a time under its lock).
    ``sync_each_commit=False``: commits do not fsync; checkpoints do (the state cache's)."""
    create_private(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=check_same_thread)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit fsyncs the WAL, so an acknowledged write survives power loss.
    # NORMAL: only checkpoints fsync; a power loss may undo the last commits, never half of one.
    # OFF (throwaway homes only) still commits atomically and survives the process being killed.
    db.execute(f"PRAGMA synchronous={('FULL' if sync_each_commit else 'NORMAL') if fsync else 'OFF'}")
    # Freed pages are zeroed, so deleted rows do not linger in the file's free list.
    db.execute("PRAGMA secure_delete=ON")
    return db


class EnvelopeStore:
    """Durable, idempotent storage of envelopes, by topic and (ts, id)."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        """``fsync=False`` only for throwaway homes (`NodeConfig.fsync`)."""
        self.path = path
        self._write_lock = threading.Lock()
        """Held for each write on ``_writer``, whichever thread runs it."""
        self._thread_limiter = trio.CapacityLimiter(1)
        """One worker thread at a time, so writes queue in trio (fairly, in call order)."""
        try:
            self._db = open_private_db(path, fsync=fsync)
            self._db.execute(_META)
            self._check_schema()
            self._db.executescript(_SCHEMA)
            self._writer = open_private_db(path, fsync=fsync, check_same_thread=False)
        except OSError as exc:
            raise StoreError(f"cannot create {path}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc

    def move_to_memory(self) -> None:
        """Panic: close the file and carry on in an empty in-memory database, so that
        nothing this process does from now on writes to the disk.

        The file's connection is left open, never closed: closing would checkpoint the
        WAL into the file and delete the WAL without overwriting it (its blocks would
        keep the pages). The panic wipe overwrites both; the process exits right after.
        From here on reads and writes share the one in-memory connection (a second
        connection would open a second, empty database)."""
        with self._write_lock:
            self._abandoned = (self._db, self._writer)
            memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            memory.execute(_META)
            self._db = memory
            self._check_schema()
            memory.executescript(_SCHEMA)
            self._writer = memory

    def _check_schema(self) -> None:
        problem = check_schema_version(self._db, SCHEMA_VERSION, "envelopes")
        if problem is not None:
            raise StoreError(f"{self.path} {problem}")

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
            self._db.close()

    def __enter__(self) -> EnvelopeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writes -------------------------------------------------------------------

    async def add_batch_in_thread(
        self, envelopes: list[Envelope], kinds: Mapping[bytes, Kind] | None = None
    ) -> list[Envelope]:
        """`add_batch` in a worker thread, so the commit's fsync does not stall the trio loop.

        Same guarantee: when it returns the batch is on disk. A cancelled caller still waits
        for the transaction to finish (the thread is never abandoned), so the caller never
        loses track of a batch that was stored."""
        return await trio.to_thread.run_sync(self.add_batch, envelopes, kinds, limiter=self._thread_limiter)

    def add_batch(self, envelopes: Iterable[Envelope], kinds: Mapping[bytes, Kind] | None = None) -> list[Envelope]:
        """Insert envelopes in one durable transaction; return those that were new.
        ``kinds``: envelope id -> what it holds, for the markers among them."""
        with self._write_lock:
            return self._insert(self._writer, envelopes, kinds or {})

    def _insert(
        self, db: sqlite3.Connection, envelopes: Iterable[Envelope], kinds: Mapping[bytes, Kind]
    ) -> list[Envelope]:
        new: list[Envelope] = []
        cursor = db.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for envelope in envelopes:
                    cursor.execute(
                        "INSERT OR IGNORE INTO envelopes (id, topic, ts, epoch, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            envelope.id,
                            envelope.topic,
                            envelope.ts,
                            envelope.epoch,
                            int(kinds.get(envelope.id, Kind.OP)),
                            envelope.data,
                        ),  # fmt: skip
                    )
                    if cursor.rowcount == 1:
                        new.append(envelope)
                cursor.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return new

    def delete_topic(self, topic: bytes) -> int:
        """Forget every envelope of a topic (a relay dropping a circle); returns the count."""
        try:
            with self._write_lock:
                cursor = self._writer.execute("DELETE FROM envelopes WHERE topic = ?", (topic,))
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return cursor.rowcount

    # --- reads --------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """The rows, as sqlite3 returns them: each column's type is the one the schema gives it."""
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def has(self, envelope_id: bytes) -> bool:
        return bool(self._query("SELECT 1 FROM envelopes WHERE id = ?", (envelope_id,)))

    def get(self, envelope_id: bytes) -> bytes | None:
        rows = self._query("SELECT data FROM envelopes WHERE id = ?", (envelope_id,))
        return rows[0][0] if rows else None

    def get_many(self, envelope_ids: Iterable[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        ids = list(envelope_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for envelope_id, data in self._query(f"SELECT id, data FROM envelopes WHERE id IN ({marks})", tuple(chunk)):  # noqa: S608 - only the '?' placeholders are formatted in; every value is bound
                found[envelope_id] = data
        return found

    def count(self, topic: bytes | None = None) -> int:
        if topic is None:
            return self._query("SELECT COUNT(*) FROM envelopes")[0][0]
        return self._query("SELECT COUNT(*) FROM envelopes WHERE topic = ?", (topic,))[0][0]

    def topics(self) -> list[bytes]:
        return [row[0] for row in self._query("SELECT DISTINCT topic FROM envelopes ORDER BY topic")]

    def items(self, topic: bytes) -> list[Item]:
        """Every (ts, id) of a topic in reconciliation order."""
        return self._query("SELECT ts, id FROM envelopes WHERE topic = ? ORDER BY ts, id", (topic,))

    def item_range(self, topic: bytes, lower: Item | None, upper: Item | None, limit: int = -1) -> list[Item]:
        """Items with ``lower <= (ts, id) < upper`` (either bound may be open)."""
        sql = "SELECT ts, id FROM envelopes WHERE topic = ?"
        params: list[object] = [topic]
        if lower is not None:
            sql += " AND (ts > ? OR (ts = ? AND id >= ?))"
            params += [lower[0], lower[0], lower[1]]
        if upper is not None:
            sql += " AND (ts < ? OR (ts = ? AND id < ?))"
            params += [upper[0], upper[0], upper[1]]
        sql += " ORDER BY ts, id LIMIT ?"
        params.append(limit)
        return self._query(sql, tuple(params))

    def since(self, seq: int, limit: int = 1000, topics: list[bytes] | None = None) -> list[tuple[int, bytes]]:
        """(seq, envelope bytes) received after ``seq``, in arrival order: a resumable feed
        (of every topic, or of ``topics``)."""
        if topics is None:
            return self._query("SELECT seq, data FROM envelopes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        if not topics:
            return []
        marks = ",".join("?" * len(topics))
        return self._query(
            f"SELECT seq, data FROM envelopes WHERE seq > ? AND topic IN ({marks}) ORDER BY seq LIMIT ?",  # noqa: S608 - only the '?' placeholders are formatted in; every value is bound
            (seq, *topics, limit),
        )

    def iter_topic(self, topic: bytes, batch: int = 2000) -> Iterator[bytes]:
        """Every envelope of a topic in arrival order, in bounded batches."""
        return self.iter_since(0, topics=[topic], batch=batch)

    def iter_since(self, seq: int, *, topics: list[bytes] | None = None, batch: int = 2000) -> Iterator[bytes]:
        """Envelopes stored after ``seq`` (optionally of some topics), in arrival order."""
        while True:
            rows = self.since(seq, batch, topics)
            if not rows:
                return
            for _seq, data in rows:
                yield data
            seq = rows[-1][0]

    def max_seq(self) -> int:
        """The highest arrival number so far (0 when empty): a cursor for "processed up to here"."""
        return self._query("SELECT COALESCE(MAX(seq), 0) FROM envelopes")[0][0]

    def by_kind(self, topic: bytes, kind: Kind) -> list[bytes]:
        """Every envelope of one topic stored as a marker of ``kind``, in arrival order."""
        if kind is Kind.OP:
            raise LocalProtocolError("only markers are indexed by kind")
        # "kind != 0" spelled out, so SQLite can use the partial index.
        sql = "SELECT data FROM envelopes WHERE topic = ? AND kind = ? AND kind != 0 ORDER BY seq"
        return [row[0] for row in self._query(sql, (topic, int(kind)))]

    def min_seq_of(self, envelope_ids: list[bytes]) -> int:
        """The lowest arrival number among these envelopes (max_seq + 1 if none is stored)."""
        lowest = self.max_seq() + 1
        for start in range(0, len(envelope_ids), 500):
            chunk = envelope_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            row = self._query(f"SELECT MIN(seq) FROM envelopes WHERE id IN ({marks})", tuple(chunk))[0][0]  # noqa: S608 - only the '?' placeholders are formatted in; every value is bound
            if row is not None:
                lowest = min(lowest, row)
        return lowest

    def bytes_in_topic(self, topic: bytes) -> int:
        return self._query("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM envelopes WHERE topic = ?", (topic,))[0][0]

    def integrity_ok(self) -> bool:
        return self._query("PRAGMA integrity_check")[0][0] == "ok"
