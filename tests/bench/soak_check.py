"""The soak's proof: convergence on the live nodes, then an audit of every store on disk.

**Convergence** (nodes running, faults and load stopped): for every circle, every member
the circle's own fold lists has the same ``state_hash``, and every relay holds as many
envelopes of the topic as the members do; and all of that stays unchanged for
``QUIET_S``, so key duties taken in turns (a due rotation, a key share) have been done.

**Audit** (nodes stopped; only their files are read, with their keystores):

* every store passes ``PRAGMA integrity_check``;
* the *op set* of a member for a circle is every op it can open from its own store;
  re-folding it from scratch must give the ``state_hash`` the live node reported;
* *lost*: an acknowledged op found in no store at all;
* *delivered*: (acknowledged op, current member at the end) pairs where the member's own
  store holds the op; the ratio is over all such pairs;
* *undecryptable* (``soak_undecryptable``): for each current member and circle, (a) the
  non-marker envelopes of the circle's topic held by any node (relays included) that the
  member cannot open with the epoch keys it holds (every member is given every epoch
  key, so any such envelope is a key that never reached them), plus (b) sealed content
  the member should read but cannot: content sealed with the epoch their welcome
  named, or with an epoch that began after they (last) joined, in fold order, or with
  any epoch when the charter shares history with newcomers. Content sealed before
  someone joined a circle that keeps history from newcomers is correctly unreadable
  and is not counted.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import PASSPHRASE
from bench.soak_load import Load
from bench.soak_world import Peer, World
from kith.identity.errors import KithError, RemoteProtocolError
from kith.identity.keyring import CircleKeys
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.lifecycle import TURN_DELAY_S
from kith.sync.content import blob_epoch, open_content
from kith.sync.envelope import Envelope, circle_handle, is_marker, open_envelope, topic_of_epoch_key
from kith.sync.kinds import CONTENT_KINDS
from kith.sync.kinds.keys import kept_epoch
from kith.sync.ops import SignedOp
from kith.sync.replica import CircleReplica


@dataclass
class Convergence:
    converged: bool
    seconds: float
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    """circle name -> member name -> state hash (at the last look)."""
    ops: dict[str, dict[str, int]] = field(default_factory=dict)
    """circle name -> member name -> ops folded (at the last look)."""
    members: dict[str, set[str]] = field(default_factory=dict)
    envelopes: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _safe(world: World, peer: Peer, method: str, **params: Any) -> Any:
    try:
        return world.call(peer, method, timeout=30, **params)
    except KithError:
        return None


def look(world: World) -> Convergence:
    """One look at every node: hashes, fold membership and envelope counts per circle."""
    result = Convergence(False, 0.0)
    ids = {p.member_id: p.name for p in world.members}
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = dict(zip(world.everyone(), pool.map(lambda p: _safe(world, p, "status"), world.everyone()),
                            strict=True))  # fmt: skip
    for model in world.circles.values():
        topic = circle_handle(bytes.fromhex(model.id)).hex()
        hashes = {}
        folded = {}
        counts = {}
        for peer, status in statuses.items():
            if status is None:
                continue
            for entry in status["circles"] if not peer.relay else status["relay_topics"]:
                if entry.get("id") == model.id or entry.get("topic") == topic:
                    counts[peer.name] = entry["envelopes"]
                    if not peer.relay:
                        hashes[peer.name] = entry["state_hash"]
                        folded[peer.name] = entry["ops"]
        if not hashes:
            result.problems.append(f"{model.name}: no member answered")
            continue
        common = Counter(hashes.values()).most_common(1)[0][0]
        holder = next(world.by_name(n) for n, h in hashes.items() if h == common)
        views = _safe(world, holder, "views", circle=model.id, only=["members"])
        members = {ids[m["id"]] for m in views["members"]} if views else set()
        result.members[model.name] = members
        result.hashes[model.name] = {n: hashes.get(n, "absent") for n in sorted(members)}
        result.ops[model.name] = {n: folded.get(n, -1) for n in sorted(members)}
        result.envelopes[model.name] = counts
        for name in sorted(members):
            if hashes.get(name) != common:
                result.problems.append(f"{model.name}: {name} has state {hashes.get(name, 'absent')[:8]}")
        wanted = max((counts.get(n, 0) for n in members), default=0)
        for relay in world.relays:
            if counts.get(relay.name) != wanted:
                result.problems.append(f"{model.name}: {relay.name} holds {counts.get(relay.name)} of {wanted}")
        for name in sorted(members):
            if counts.get(name) != wanted:
                result.problems.append(f"{model.name}: {name} holds {counts.get(name)} of {wanted} envelopes")
        if model.joining:
            result.problems.append(f"{model.name}: joins still pending: {sorted(model.joining)}")
    return result


QUIET_S = 2 * TURN_DELAY_S + 4.0
"""How long every circle must look the same before the mesh counts as settled: agreement
alone is not enough, because key duties (a rotation made due, a key share) are taken in
turns `TURN_DELAY_S` apart and add ops after a moment of agreement."""


def _signature(seen: Convergence) -> Any:
    return (seen.hashes, seen.envelopes)


def converge(
    world: World,
    load: Load,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Convergence:
    """Nudge reconciliation until every circle agrees everywhere and stays so for `QUIET_S`
    (or time runs out). ``clock`` and ``sleep`` are injectable for a scripted test."""
    start = clock()
    last_nudge = 0.0
    agreed: tuple[float, Any] | None = None
    while True:
        load.check_joins()
        seen = look(world)
        seen.seconds = round(clock() - start, 1)
        if seen.problems:
            agreed = None
        elif agreed is None or agreed[1] != _signature(seen):
            agreed = (clock(), _signature(seen))
        elif clock() - agreed[0] >= QUIET_S:
            seen.converged = True
            return seen
        if clock() - start > timeout:
            if not seen.problems:
                seen.problems.append(f"the circles kept changing without load for {timeout:.0f} s")
            return seen
        if seen.problems and clock() - last_nudge > 10:
            last_nudge = clock()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda p: _safe(world, p, "sync"), [p for p in world.everyone() if p.up]))
        sleep(1.0)


# --- the audit -----------------------------------------------------------------------


@dataclass
class Audit:
    integrity_failures: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    delivered: int = 0
    expected: int = 0
    undecryptable_envelopes: int = 0
    undecryptable_content: int = 0
    sealed_before_joining: int = 0
    """Content correctly unreadable (sealed before the reader joined a circle without history)."""
    refold_mismatches: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    kept_epochs: int = 0
    """Epochs the circles kept from key changes a removal raced (docs/OPS.md "Kept epochs")."""

    @property
    def undecryptable(self) -> int:
        return self.undecryptable_envelopes + self.undecryptable_content


def _store_envelopes(peer: Peer) -> dict[bytes, list[bytes]]:
    """topic -> envelope bytes, read straight from the node's SQLite file (node stopped)."""
    db = sqlite3.connect(f"file:{peer.home.store}?mode=ro", uri=True)
    try:
        by_topic: dict[bytes, list[bytes]] = {}
        for topic, data in db.execute("SELECT topic, data FROM envelopes ORDER BY seq"):
            by_topic.setdefault(topic, []).append(data)
        return by_topic
    finally:
        db.close()


def _integrity(peer: Peer) -> str | None:
    for path in (peer.home.store, peer.home.root / "state.sqlite"):
        if not path.exists():
            continue
        db = sqlite3.connect(str(path))
        try:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        if verdict != "ok":
            return f"{peer.name} {path.name}: {verdict}"
    return None


def audit(world: World, load: Load, live: Convergence) -> Audit:
    """Read every store and keystore (nodes stopped) and judge the soak against the last look."""
    result = Audit()
    members = live.members
    stores = {peer.name: _store_envelopes(peer) for peer in world.everyone()}
    for peer in world.everyone():
        problem = _integrity(peer)
        if problem:
            result.integrity_failures.append(problem)
    keystores = {p.name: Keystore.unlock(p.home.keystore, PASSPHRASE) for p in world.members}
    for model in world.circles.values():
        circle_id = bytes.fromhex(model.id)
        # The circle's epoch keys, and so its topics: one per epoch key any member holds.
        epoch_keys = {
            epoch: key
            for keystore in keystores.values()
            if circle_id in keystore.data.circles
            for epoch, key in CircleKeys.from_map(circle_id, keystore.data.circles[circle_id]).epochs.items()
        }
        topics = {topic_of_epoch_key(key) for key in epoch_keys.values()}
        union: dict[bytes, Envelope] = {}
        for by_topic in stores.values():
            for topic in topics:
                for data in by_topic.get(topic, ()):
                    envelope = Envelope.decode(data)
                    if not _is_marker(envelope, epoch_keys.get(envelope.epoch)):
                        union[envelope.id] = envelope
        current = members.get(model.name, set())
        acked = [r for r in load.stats.sent if r.circle == model.id]
        op_sets: dict[str, set[bytes]] = {}
        kept = 0
        for name in sorted(current):
            raw = keystores[name].data.circles.get(circle_id)
            if raw is None:
                result.details.append(f"{model.name}: {name} holds no keys for the circle")
                continue
            keys = CircleKeys.from_map(circle_id, raw)
            own = [data for topic in topics for data in stores[name].get(topic, ())]
            ops = _open_own(own, keys, result, f"{model.name}/{name}")
            op_sets[name] = set(ops)
            replica = CircleReplica(circle_id)
            replica.ingest_many(ops.values())
            refolded = replica.state_hash().hex()
            kept = max(kept, sum(1 for epoch in replica.state.epochs if kept_epoch(replica.state, epoch)))
            live_hash = live.hashes.get(model.name, {}).get(name, "absent")
            if refolded != live_hash:
                live_ops = live.ops.get(model.name, {}).get(name, -1)
                result.refold_mismatches.append(
                    f"{model.name}/{name}: refold {refolded[:8]} of {replica.state.applied_count} ops, "
                    f"live {live_hash[:8]} of {live_ops} ops"
                )
            missing_keys = Counter(e.epoch.hex()[:8] for e in union.values() if e.epoch not in keys.epochs)
            bad = sum(missing_keys.values())
            for envelope in union.values():
                if envelope.epoch in keys.epochs:
                    try:
                        open_envelope(envelope, keys.epochs[envelope.epoch])
                    except RemoteProtocolError:
                        bad += 1
            if bad:
                result.details.append(f"{model.name}/{name}: cannot open {bad} envelopes (epochs {dict(missing_keys)})")
            result.undecryptable_envelopes += bad
            _audit_content(replica, keys, world.by_name(name), ops.values(), result, f"{model.name}/{name}")
        result.kept_epochs += kept
        found = set().union(*op_sets.values()) if op_sets else set()
        for record in acked:
            op_id = bytes.fromhex(record.id)
            if op_id not in found:
                result.lost.append(f"{model.name}: {record.kind} {record.id[:8]} by {record.author}")
            for held in op_sets.values():
                result.expected += 1
                result.delivered += op_id in held
    return result


def _is_marker(envelope: Envelope, epoch_key: bytes | None) -> bool:
    """A grant or private request (told apart, as members do, by the nonce's hint)."""
    return epoch_key is not None and is_marker(envelope, epoch_key)


def _open_own(datas: Any, keys: CircleKeys, result: Audit, where: str) -> dict[bytes, SignedOp]:
    ops: dict[bytes, SignedOp] = {}
    for data in datas:
        envelope = Envelope.decode(data)
        key = keys.epochs.get(envelope.epoch)
        if key is None or _is_marker(envelope, key):
            continue
        try:
            signed = SignedOp.decode(open_envelope(envelope, key))
        except RemoteProtocolError as exc:
            result.details.append(f"{where}: a stored envelope does not open: {exc}")
            continue
        ops[signed.id] = signed
    return ops


def _audit_content(replica: CircleReplica, keys: CircleKeys, peer: Peer, ops: Any, result: Audit, where: str) -> None:
    state = replica.state
    me = bytes.fromhex(peer.member_id)
    member = state.members.get(me)
    if member is None:
        return
    joined = (member.joined_lamport, member.joined_op)
    history = bool(state.info["charter"].history)
    should: set[bytes | None] = {e for e, epoch in state.epochs.items() if (epoch.lamport, epoch.op) > joined}
    joining = next((s for s in ops if s.id == member.joined_op), None)
    if joining is not None and isinstance(joining.op.body, dict):
        should.add(joining.op.body.get("epoch"))  # the welcome's epoch (the genesis' for the creator)
    unreadable = 0
    for signed in ops:
        op = signed.op
        blob = op.body.get("content") if isinstance(op.body, dict) else None
        if op.kind not in CONTENT_KINDS or type(blob) is not bytes or not blob:
            continue
        epoch = blob_epoch(blob)
        if not (history or epoch in should):
            result.sealed_before_joining += 1
            continue
        key = keys.contents.get(epoch)
        try:
            if key is None:
                raise RemoteProtocolError("no content key")
            open_content(blob, circle=op.circle, author=op.author, kind=op.kind, key=key)
        except RemoteProtocolError:
            unreadable += 1
    if unreadable:
        result.details.append(f"{where}: {unreadable} sealed contents it should read do not open")
    result.undecryptable_content += unreadable
