"""The state cache: every accepted op and a snapshot of each circle's state, encrypted.

Theory of operation
-------------------
A node must open a circle with years of history in about a second, without verifying
100,000 signatures and folding 100,000 ops again. So next to the envelope store (what
was received, as received) it keeps this SQLite file (WAL, ``synchronous=NORMAL``):

* ``ops``: every op that entered a circle's DAG, as its signed bytes encrypted with
  XChaCha20-Poly1305, keyed by op id, with its lamport in clear so ops can be read in
  fold order ``(lamport, id)`` and the DAG can look up a parent's lamport.
* ``snapshots``: one per circle, the encrypted canonical state a few thousand ops
  before the end (so the undo window can be rebuilt by re-applying those), the DAG
  heads, the highest op ``seq`` the snapshot covers (the watermark), and the caller's
  cursor (e.g. the envelope-store seq it has processed).

Everything that would name a circle is a keyed hash (the circle tag), and the AEAD's
associated data binds each ciphertext to its circle tag and op id, so rows cannot be
swapped between circles or ops. A seized disk shows counts, lamports and op ids, never
content, authors or which circle is which. Keys are derived from the keystore's 32-byte
storage key. Because the cache is authenticated with our own key, ops read back from it
are not re-verified: decrypting is the check.

Durability: commits here do not fsync (the node makes them on the trio loop, in the fold);
`checkpoint`, which the node runs in a worker thread every second or so, fsyncs the WAL and
copies it into the file. A power loss may undo the last commits, never part of one and
never an earlier one without the later (WAL frames are checksummed in a chain, so recovery
keeps a prefix of the commits): what is on disk is always a state the cache was in. That
is enough, because this file is never the only record: a snapshot is committed after the
ops it covers, so a surviving snapshot has its ops, and ops lost after it come again from
the envelope store (``synchronous=FULL``), which is read again from the snapshot's cursor.

This module is sqlite3 and crypto only: no clock; randomness (nonces) is injectable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kith.identity import codec
from kith.identity.crypto import NONCE_BYTES, RandomBytes, aead_decrypt, aead_encrypt, blake2b, random_bytes
from kith.identity.errors import LocalProtocolError, Malformed, StorageError
from kith.p2pnet.store import check_schema_version, open_private_db
from kith.sync import limits
from kith.sync.cache import Snapshot
from kith.sync.causal import OpMeta, meta_of
from kith.sync.ops import Op, SignedOp

if TYPE_CHECKING:
    from kith.sync.state import CircleState, FoldKey

SCHEMA_VERSION = 2
"""2: ops carry their author's ``seq`` (protocol op v2); a version-1 cache holds ops this kith cannot read."""
MAX_SNAPSHOT_BYTES = 1 << 30
_BATCH = 2_000
_OP_AD = b"kith/statecache/op/v1\x00"
_SNAPSHOT_AD = b"kith/statecache/snapshot/v1\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY,
    circle BLOB NOT NULL,
    id BLOB NOT NULL,
    lamport INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ct BLOB NOT NULL,
    UNIQUE (circle, id)
);
CREATE INDEX IF NOT EXISTS ops_in_fold_order ON ops (circle, lamport, id);
CREATE TABLE IF NOT EXISTS snapshots (circle BLOB PRIMARY KEY, nonce BLOB NOT NULL, ct BLOB NOT NULL);
"""


class StateCacheError(StorageError):
    """The state cache cannot be used: unreadable, damaged, locked, or from a newer kith."""


def _decode_cached_op(data: bytes, op_id: bytes) -> SignedOp:
    """Rebuild a signed op we wrote ourselves (authenticated by the AEAD, not re-verified)."""
    raw = codec.decode_unverified(data, max_size=limits.MAX_OP_BYTES, what="cached op")
    fields, signature = raw
    op = Op(
        fields["circle"],
        fields["author"],
        tuple(fields["parents"]),
        fields["lamport"],
        fields["ts"],
        fields["kind"],
        fields["body"],
        seq=fields["seq"],
    )
    return SignedOp(op, signature, data, op_id)


class StateCache:
    def __init__(self, path: Path, storage_key: bytes, *, rand: RandomBytes = random_bytes, fsync: bool = True) -> None:
        if type(storage_key) is not bytes or len(storage_key) != 32:
            raise LocalProtocolError("the storage key is 32 bytes")
        self.path = path
        self._rand = rand
        self._key = blake2b(b"kith/statecache/v1", key=storage_key, person=b"kith-statecache")
        self._tag_key = blake2b(b"kith/statecache/tag/v1", key=storage_key, person=b"kith-cache-tag")
        self._checkpoint_lock = threading.Lock()
        """Held by `checkpoint` (in a worker thread) and whatever replaces the connections."""
        self._unsynced = 0
        """Commits since the last checkpoint began (`needs_checkpoint`)."""
        try:
            self._db = open_private_db(path, fsync=fsync, sync_each_commit=False)
            # Never checkpoint on this connection (an automatic checkpoint fsyncs, on the
            # loop): `checkpoint` does it, on its own connection, in a worker thread.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.executescript(_SCHEMA)
            problem = check_schema_version(self._db, SCHEMA_VERSION, "ops")
            if problem is not None:
                raise StateCacheError(f"{path} {problem}")
            self._checkpointer: sqlite3.Connection | None = open_private_db(
                path, fsync=fsync, check_same_thread=False, sync_each_commit=False
            )
        except OSError as exc:
            raise StateCacheError(f"cannot create the state cache {path}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise StateCacheError(f"cannot open the state cache {path}: {exc}") from exc

    def close(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
            self._db.close()  # the last connection: SQLite checkpoints (and fsyncs) as it closes

    @property
    def needs_checkpoint(self) -> bool:
        """Has anything been committed since the last `checkpoint` began?"""
        return self._unsynced > 0

    def checkpoint(self) -> None:
        """Make every commit so far durable: fsync the WAL, copy it into the file, fsync that.

        Thread-safe, on a connection of its own, so the node runs it in a worker thread
        while the loop's connection keeps reading and writing (a passive checkpoint waits
        for neither, and neither waits for it)."""
        with self._checkpoint_lock:
            if self._checkpointer is None:  # moved to memory (panic): nothing to make durable
                return
            self._unsynced = 0
            try:
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                raise StateCacheError(f"cannot write the state cache {self.path}: {exc}") from exc

    def move_to_memory(self) -> None:
        """Panic: close the file and carry on in an empty in-memory database, so that
        nothing this process does from now on writes to the disk.

        The file's connection is left open, never closed: closing would checkpoint the
        WAL into the file and delete the WAL without overwriting it (its blocks would
        keep the pages). The panic wipe overwrites both; the process exits right after."""
        with self._checkpoint_lock:
            self._abandoned = (self._db, self._checkpointer)
            self._checkpointer = None
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def __enter__(self) -> StateCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _tag(self, circle_id: bytes) -> bytes:
        return blake2b(circle_id, key=self._tag_key, person=b"kith-circle-tag", size=16)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StateCacheError(f"state cache error on {self.path}: {exc}") from exc

    def _write(self, statements: Iterable[tuple[str, Any]]) -> None:
        """Run statements in one transaction (durable at the next `checkpoint`)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    if type(params) is list:
                        self._db.executemany(sql, params)
                    else:
                        self._db.execute(sql, params)
                self._db.execute("COMMIT")
                self._unsynced += 1
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if "full" in str(exc).lower():  # SQLITE_FULL: say it as the store and keystore do
                raise StateCacheError.disk_full(self.path) from exc
            raise StateCacheError(f"cannot write the state cache {self.path}: {exc}") from exc

    # --- ops -----------------------------------------------------------------------

    def put_ops(self, circle_id: bytes, ops: Iterable[SignedOp]) -> None:
        """Store ops (idempotent) in one transaction: read back at once, durable at the next
        `checkpoint` (until then the envelope store holds them: see the module's docstring)."""
        tag = self._tag(circle_id)
        rows = []
        for signed in ops:
            nonce = self._rand(NONCE_BYTES)
            ciphertext = aead_encrypt(self._key, nonce, signed.data, _OP_AD + tag + signed.id)
            rows.append((tag, signed.id, signed.op.lamport, nonce, ciphertext))
        if rows:
            self._write([("INSERT OR IGNORE INTO ops (circle, id, lamport, nonce, ct) VALUES (?, ?, ?, ?, ?)", rows)])

    def _open_op(self, tag: bytes, op_id: bytes, nonce: bytes, ciphertext: bytes) -> SignedOp:
        data = aead_decrypt(self._key, nonce, ciphertext, _OP_AD + tag + op_id)
        try:
            return _decode_cached_op(data, op_id)
        except (Malformed, KeyError, TypeError, ValueError) as exc:
            raise StateCacheError(f"the state cache {self.path} holds a damaged op") from exc

    def meta_of(self, circle_id: bytes, op_id: bytes) -> OpMeta | None:
        """(lamport, author, seq, parents) of a cached op, or None (decrypts the op)."""
        tag = self._tag(circle_id)
        rows = self._query("SELECT nonce, ct FROM ops WHERE circle = ? AND id = ?", (tag, op_id))
        if not rows:
            return None
        return meta_of(self._open_op(tag, op_id, rows[0][0], rows[0][1]))

    def op_count(self, circle_id: bytes) -> int:
        return self._query("SELECT COUNT(*) FROM ops WHERE circle = ?", (self._tag(circle_id),))[0][0]

    def max_seq(self, circle_id: bytes) -> int:
        return self._query("SELECT COALESCE(MAX(seq), 0) FROM ops WHERE circle = ?", (self._tag(circle_id),))[0][0]

    def iter_ops(
        self,
        circle_id: bytes,
        *,
        after: FoldKey | None = None,
        upto: FoldKey | None = None,
        max_seq: int | None = None,
    ) -> Iterator[SignedOp]:
        """Ops in fold order with ``after < (lamport, id) <= upto`` (and ``seq <= max_seq``).

        Reads in bounded batches (keyset pagination), so it may be consumed lazily.
        """
        tag = self._tag(circle_id)
        position = after
        while True:
            sql = "SELECT lamport, id, nonce, ct FROM ops WHERE circle = ?"
            params: list[Any] = [tag]
            if position is not None:
                sql += " AND (lamport, id) > (?, ?)"
                params += list(position)
            if upto is not None:
                sql += " AND (lamport, id) <= (?, ?)"
                params += list(upto)
            if max_seq is not None:
                sql += " AND seq <= ?"
                params.append(max_seq)
            sql += f" ORDER BY lamport, id LIMIT {_BATCH}"
            rows = self._query(sql, tuple(params))
            for _lamport, op_id, nonce, ciphertext in rows:
                yield self._open_op(tag, op_id, nonce, ciphertext)
            if len(rows) < _BATCH:
                return
            position = (rows[-1][0], rows[-1][1])

    def ops_since(self, circle_id: bytes, seq: int) -> list[SignedOp]:
        """Ops stored after ``seq``, in the order they were stored (a causal order)."""
        tag = self._tag(circle_id)
        rows = self._query("SELECT id, nonce, ct FROM ops WHERE circle = ? AND seq > ? ORDER BY seq", (tag, seq))
        return [self._open_op(tag, op_id, nonce, ciphertext) for op_id, nonce, ciphertext in rows]

    # --- snapshots -------------------------------------------------------------------

    def save_snapshot(
        self,
        circle_id: bytes,
        state: CircleState,
        heads: Iterable[tuple[bytes, int]],
        cursor: int,
        *,
        tail: int,
    ) -> None:
        """Snapshot ``state`` (which must have folded exactly this cache's ops of the circle)."""
        if type(cursor) is not int or cursor < 0:
            raise LocalProtocolError("the cursor is a non-negative integer")
        picture, _tail_ops = state.snapshot(tail)
        payload = {
            "v": 1,
            "state": picture,
            "heads": [[op_id, lamport] for op_id, lamport in sorted(heads)],
            "chains": [[author, seq, op_id] for author, (seq, op_id) in sorted(state.chains.items())],
            "forks": [list(fork) for fork in sorted(state.forks)],
            "watermark": self.max_seq(circle_id),
            "cursor": cursor,
        }
        tag = self._tag(circle_id)
        nonce = self._rand(NONCE_BYTES)
        ciphertext = aead_encrypt(self._key, nonce, codec.encode(payload), _SNAPSHOT_AD + tag)
        self._write(
            [("INSERT OR REPLACE INTO snapshots (circle, nonce, ct) VALUES (?, ?, ?)", (tag, nonce, ciphertext))]
        )

    def load_snapshot(self, circle_id: bytes) -> Snapshot | None:
        """The circle's snapshot, or None. Raises `Undecryptable` for a wrong key or altered bytes."""
        tag = self._tag(circle_id)
        rows = self._query("SELECT nonce, ct FROM snapshots WHERE circle = ?", (tag,))
        if not rows:
            return None
        nonce, ciphertext = rows[0]
        data = aead_decrypt(self._key, nonce, ciphertext, _SNAPSHOT_AD + tag)
        raw = codec.decode_unverified(data, max_size=MAX_SNAPSHOT_BYTES, what="state snapshot")
        keys = {"v", "state", "heads", "chains", "forks", "watermark", "cursor"}
        if type(raw) is not dict or raw.keys() != keys or raw["v"] != 1:
            raise StateCacheError(f"the state cache {self.path} holds a snapshot this kith cannot read")
        try:
            heads = tuple((op_id, lamport) for op_id, lamport in raw["heads"])
            chains = {author: (seq, op_id) for author, seq, op_id in raw["chains"]}
            forks = tuple((author, seq) for author, seq in raw["forks"])
        except (TypeError, ValueError) as exc:
            raise StateCacheError(f"the state cache {self.path} holds a damaged snapshot") from exc
        return Snapshot(raw["state"], heads, raw["watermark"], raw["cursor"], chains, forks)

    def delete_circle(self, circle_id: bytes) -> None:
        """Forget a circle's ops and snapshot (leaving it, or a panic wipe)."""
        tag = self._tag(circle_id)
        self._write([("DELETE FROM ops WHERE circle = ?", (tag,)), ("DELETE FROM snapshots WHERE circle = ?", (tag,))])
