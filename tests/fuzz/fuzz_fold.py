"""Op bodies through the fold: `CircleReplica.ingest` / `CircleState.add`, `fold_circle_state`,
snapshots, `ContentReader.read` and the views, with bodies the fuzzer chooses.

A fixed circle (Alice founds it; Bob, a treasurer, and Carol join) then receives up to
``MAX_OPS`` ops. Each record of the input is::

    author (1 byte) | kind (1 byte) | flags (1 byte) | length (2 bytes) | body (CBOR)

``flags`` bit 0 seals the plaintext content fields of a content kind into a valid blob
(so the content validators behind the AEAD see fuzz values); bit 1 makes the op a
sibling of the previous one (concurrent ops, so late inserts and rollbacks happen).
Mallory is not a member. A body that is not a CBOR map becomes ``{}``.

Oracle: the fold never raises (a bad op is rejected with a reason); the incremental state
equals a fresh fold of the same ops, a replica fed them in reverse, and a state restored
from its own snapshot; the views build with and without the content key.
"""

from __future__ import annotations

from typing import Any

from _harness import ALICE, BOB, CAROL, CONTENT_KEY, EPOCH_KEY, NOW, PEOPLE, Take, chunk, fixed_rand

from kith.identity import codec
from kith.identity.errors import LocalProtocolError, RemoteProtocolError
from kith.sync.content import ContentReader, seal_content
from kith.sync.envelope import epoch_id
from kith.sync.kinds import CONTENT_KINDS, HANDLERS
from kith.sync.kinds.circle import genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import CircleState, fold_circle_state

MAX_OPS = 40
EPOCH = epoch_id(EPOCH_KEY)
KINDS = (*sorted(HANDLERS), "x.unknown")
GENESIS = genesis_op(ALICE, name="Night owls", salt=bytes(range(16)), ts=NOW, epoch=EPOCH)
CIRCLE = GENESIS.op.circle


def _base() -> list[SignedOp]:
    replica = CircleReplica(CIRCLE)
    replica.ingest(GENESIS)
    ops = [GENESIS]
    for kind, body in (
        ("member.add", member_add_body(BOB.card().to_bytes())),
        ("member.add", member_add_body(CAROL.card().to_bytes())),
        ("role.grant", {"member": BOB.member_id, "role": "treasurer"}),
    ):
        signed = replica.author_op(ALICE, kind, body, ts=NOW)
        replica.ingest(signed)
        ops.append(signed)
    return ops


BASE = _base()


def record(author: int, kind: str, body: Any, *, seal: bool = False, sibling: bool = False) -> bytes:
    """One input record (for building seeds)."""
    flags = int(seal) | (int(sibling) << 1)
    return bytes([author, KINDS.index(kind), flags]) + chunk(codec.encode(body))


def _body(kind: str, raw: bytes, seal: bool, author: bytes, index: int) -> dict[str, Any]:
    try:
        body = codec.decode_unverified(raw, max_size=1 << 16)
    except RemoteProtocolError:
        body = {}
    if type(body) is not dict:
        body = {}
    spec = CONTENT_KINDS.get(kind)
    if seal and spec is not None and "content" not in body:
        fields = {name: body.pop(name, None) for name in spec[0]}
        try:
            body["content"] = seal_content(
                fields,
                circle=CIRCLE,
                author=author,
                kind=kind,
                epoch=EPOCH,
                key=CONTENT_KEY,
                rand=fixed_rand(index.to_bytes(4, "big")),
            )
        except (LocalProtocolError, RemoteProtocolError, ValueError, TypeError):
            pass  # fields CBOR cannot carry, or too big: leave the body unsealed
    return body


def play(data: bytes) -> tuple[CircleReplica, list[SignedOp]]:
    """Build and ingest the ops an input describes; returns the replica and all ops."""
    replica = CircleReplica(CIRCLE)
    replica.ingest_many(BASE)
    ops = list(BASE)
    take = Take(data)
    previous: SignedOp | None = None
    while take.left >= 5 and len(ops) - len(BASE) < MAX_OPS:
        who = PEOPLE[take.byte() % len(PEOPLE)]
        kind = KINDS[take.byte() % len(KINDS)]
        flags = take.byte()
        body = _body(kind, take.chunk(), bool(flags & 1), who.member_id, len(ops))
        parents, lamport, seq = replica.next_op(who.member_id)
        if flags & 2 and previous is not None:
            # Concurrent with the previous op (its siblings), or, for the same author, a fork
            # or an op the DAG drops for breaking its author's chain.
            parents, lamport = previous.op.parents, previous.op.lamport
        try:
            op = Op(CIRCLE, who.member_id, parents, lamport, NOW + len(ops), kind, body, seq=seq)
            signed = SignedOp.create(op, who)
        except (LocalProtocolError, RemoteProtocolError):
            continue  # the harness could not author it (too big, or values CBOR cannot carry)
        signed = SignedOp.decode(signed.data)
        replica.ingest(signed)
        if replica.has(signed.id):  # dropped ops are not part of the op set
            ops.append(signed)
        previous = signed
    return replica, ops


def TestOneInput(data: bytes) -> None:
    replica, ops = play(data)
    state = replica.state
    encoded = state.encode()
    if fold_circle_state(CIRCLE, ops).encode() != encoded:
        raise AssertionError("the incremental fold differs from a fresh fold")
    reverse = CircleReplica(CIRCLE)
    for signed in reversed(ops):
        reverse.ingest(signed)
    if reverse.state.encode() != encoded:
        raise AssertionError("ops fed in reverse fold to a different state")
    if CircleState.restore(CIRCLE, state.canonical()).encode() != encoded:
        raise AssertionError("a restored snapshot differs from the state")
    for reason in (r.reason for r in state.all_rejections().values()):
        if type(reason) is not str or not reason:
            raise AssertionError("a rejection without a reason")
    replica.views(now=NOW, reader=ContentReader(CIRCLE, {EPOCH: CONTENT_KEY}), feed_limit=None)
    replica.views(now=NOW)
