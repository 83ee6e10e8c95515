"""Seed corpora for the fuzz targets, made from real encodings by kith's own code.

``python tests/fuzz/seeds.py`` rewrites ``tests/fuzz/corpus/<target>/seed-*``; files named
``regress-*`` (inputs that once found a bug) are left alone. Everything is deterministic
(fixed keys, fixed nonces), so running it twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import ALICE, BOB, CAROL, CIRCLE_ID, CONTENT_KEY, EPOCH_KEY, INVITE_SECRET, NOW  # noqa: E402

from kith.identity import codec  # noqa: E402
from kith.identity.keys import NetworkKey  # noqa: E402
from kith.identity.keystore import TEST_KDF, KeystoreData, seal_keystore  # noqa: E402
from kith.sync.envelope import circle_handle, epoch_id, relay_key, seal, topic_of_epoch_key  # noqa: E402
from kith.sync.invites import InviteCode, circle_check, seal_join_request, seal_relay_grant  # noqa: E402
from kith.sync.kinds.circle import charter_body  # noqa: E402
from kith.sync.kinds.keys import invite_id  # noqa: E402
from kith.sync.kinds.membership import member_add_body  # noqa: E402
from kith.sync.ops import Op, SignedOp  # noqa: E402
from kith.sync.relaytoken import RelayToken  # noqa: E402

CORPUS = HERE / "corpus"
HANDLE = circle_handle(CIRCLE_ID)
EPOCH = epoch_id(EPOCH_KEY)
TOPIC = topic_of_epoch_key(EPOCH_KEY)


def _fixed(byte: int):  # type: ignore[no-untyped-def]
    return lambda n: bytes([byte]) * n


def _signed_op(
    kind: str = "msg.post", body: dict | None = None, parents: tuple[bytes, ...] = (bytes([5]) * 32,)
) -> SignedOp:
    lamport = 2 if parents else 1
    op = Op(
        CIRCLE_ID, ALICE.member_id, parents, lamport, NOW, kind, body if body is not None else {"text": "hello"}, seq=1
    )
    return SignedOp.create(op, ALICE)


def _invite() -> InviteCode:
    return InviteCode(
        INVITE_SECRET,
        circle_check(CIRCLE_ID, INVITE_SECRET),
        ("/ip4/192.0.2.1/tcp/4747/p2p/12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm",),
        1_800_000_000,
    )


def _token() -> RelayToken:
    return RelayToken(HANDLE, "night owls relay", {EPOCH: relay_key(EPOCH_KEY)}, 1 << 30)


def _keystore_plaintext(with_circle: bool = True) -> bytes:
    data = KeystoreData(ALICE, NetworkKey(bytes([0x0D]) * 32), bytes([0x0E]) * 32)
    if with_circle:
        data.circles[CIRCLE_ID] = {
            "label": "Night owls",
            "epochs": {EPOCH: EPOCH_KEY},
            "current": EPOCH,
            "contents": {EPOCH: CONTENT_KEY},
        }
        data.relays.append("/ip4/192.0.2.1/tcp/4747")
        data.extra["relay_topics"] = {
            HANDLE: {"label": "owls", "relay_keys": {EPOCH: relay_key(EPOCH_KEY)}, "quota_bytes": 1 << 20}
        }
    return codec.encode(data.to_map())


def codec_seeds() -> Iterator[tuple[str, bytes]]:
    yield "op", _signed_op().data
    yield "card", ALICE.card().to_bytes()
    yield "nested", codec.encode({"a": [1, -2, b"x", None, True, {"b": "c"}], "long": "y" * 30})
    yield "ints", codec.encode([0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**64 - 1, -(2**64)])


def card_seeds() -> Iterator[tuple[str, bytes]]:
    yield "alice", ALICE.card().to_bytes()
    yield "bob", BOB.card().to_bytes()


def envelope_seeds() -> Iterator[tuple[str, bytes]]:
    op = _signed_op()
    sealed = seal(op.data, epoch_key=EPOCH_KEY, ts=NOW, rand=_fixed(0x0A))
    yield "sealed", b"\x00" + sealed.data
    yield "join", b"\x00" + seal_join_request(_invite(), BOB, ts=NOW, rand=_fixed(0x22))[0].data
    yield "plaintext-op", b"\x01" + op.data


def signed_op_seeds() -> Iterator[tuple[str, bytes]]:
    op = _signed_op()
    yield "post", b"\x00" + op.data
    yield "genesis-shape", b"\x00" + _signed_op("circle.create", {"name": "x"}, parents=()).data
    yield "unsigned-post", b"\x01" + op.op.encode()
    many = tuple(sorted(hashlib.blake2b(bytes([i]), digest_size=32).digest() for i in range(16)))
    yield "unsigned-parents", b"\x01" + _signed_op("aid.pledge", {"amount": 5, "unit": None}, many).op.encode()


def codes_seeds() -> Iterator[tuple[str, bytes]]:
    yield "invite-text", b"\x00" + _invite().encode().encode()
    yield "token-text", b"\x00" + _token().encode().encode()
    token_body = {"v": 1, "keys": {EPOCH: relay_key(EPOCH_KEY)}, "label": "owls", "quota": 1 << 30, "topic": HANDLE}
    yield "token-body", b"\x01" + codec.encode(token_body)
    code = _invite()
    invite_body = {"v": 2, "s": code.secret, "c": code.check, "a": list(code.addresses), "x": code.expires}
    yield "invite-body", b"\x02" + codec.encode(invite_body)


def keystore_seeds() -> Iterator[tuple[str, bytes]]:
    from fuzz_keystore import PASSPHRASE, SALT, derive_key

    from kith.identity.keystore import BACKUP

    key, kcv = derive_key(PASSPHRASE, SALT, TEST_KDF)
    data = KeystoreData.from_map(codec.decode(_keystore_plaintext(), max_size=1 << 20))
    yield "file", b"\x00" + seal_keystore(data, key, kcv, SALT, TEST_KDF, rand=_fixed(0x0C))
    yield "backup", b"\x00" + seal_keystore(data, key, kcv, SALT, TEST_KDF, rand=_fixed(0x0C), fmt=BACKUP)
    yield "header-fields", b"\x01" + bytes([1, 1]) + (1).to_bytes(4, "big") + (8).to_bytes(4, "big")
    yield "plaintext", b"\x02" + _keystore_plaintext()
    yield (
        "plaintext-relay",
        b"\x02" + codec.encode({**KeystoreData(None, NetworkKey(bytes(32)), bytes(32)).to_map(), "relay_topics": {}}),
    )


def membership_seeds() -> Iterator[tuple[str, bytes]]:
    from fuzz_membership import EPOCH as M_EPOCH

    yield "join-envelope", b"\x00" + seal_join_request(_invite(), BOB, ts=NOW, rand=_fixed(0x22))[0].data
    grant = seal_relay_grant(
        previous_key=EPOCH_KEY,
        epoch=bytes([0x23]) * 16,
        epoch_key=bytes([0x24]) * 32,
        ts=NOW,
        rand=_fixed(0x24),
    )
    yield "grant-envelope", b"\x00" + grant.data
    yield (
        "join-plaintext",
        b"\x01"
        + codec.encode(
            {
                "v": 1,
                "card": BOB.card().to_bytes(),
                "invite": invite_id(INVITE_SECRET),
                "epoch": M_EPOCH,
                "request": bytes([0x22]) * 16,
            }
        ),
    )
    welcome = {
        "v": 1,
        "circle": CIRCLE_ID,
        "name": "Night owls",
        "epochs": {M_EPOCH: EPOCH_KEY},
        "contents": {M_EPOCH: CONTENT_KEY},
        "current": M_EPOCH,
        "relays": ["/ip4/192.0.2.1/tcp/1"],
        "to": BOB.member_id,
        "request": bytes([0x22]) * 16,
    }
    yield "welcome-payload", b"\x02" + codec.encode(welcome)
    refusal = {"v": 1, "refused": "invite used up", "to": BOB.member_id, "request": bytes([0x22]) * 16}
    yield "refusal-payload", b"\x02" + codec.encode(refusal)
    grant_body = {"v": 1, "epoch": bytes([0x23]) * 16, "relay_key": bytes(32), "grant_key": bytes(32)}
    yield "grant-payload", b"\x03" + codec.encode(grant_body)
    yield "epoch-keys", b"\x04" + EPOCH_KEY + CONTENT_KEY


def private_seeds() -> Iterator[tuple[str, bytes]]:
    from kith.sync.private import make_statement, seal_private

    statement = make_statement(
        BOB,
        CIRCLE_ID,
        "private.request",
        {"category": "money", "description": "rent", "amount": 100, "unit": "EUR", "expires": None},
        ts=NOW,
    )
    envelope = seal_private(statement, [ALICE.dh_public], epoch_key=EPOCH_KEY, ts=NOW, rand=_fixed(0x33))
    yield "ct", b"\x00" + envelope.ciphertext
    yield "statement", b"\x01" + statement.data
    yield "box", b"\x02" + codec.encode({"description": "rent", "requester": BOB.member_id})
    yield "envelope", b"\x03" + envelope.data


def gossip_seeds() -> Iterator[tuple[str, bytes]]:
    op = _signed_op()
    envelopes = [seal(op.data, epoch_key=EPOCH_KEY, ts=NOW + i, rand=_fixed(i)).data for i in range(3)]
    yield "batch", codec.encode(envelopes)
    yield "one", codec.encode(envelopes[:1])


def framing_seeds() -> Iterator[tuple[str, bytes]]:
    from fuzz_reconcile import POINTS

    def frame(kind: int, payload: dict) -> bytes:
        body = codec.encode(payload)
        return (len(body) + 1).to_bytes(4, "big") + bytes([kind]) + body

    hello = frame(1, {"v": 1, "topics": [TOPIC]})
    recon = frame(2, {"t": TOPIC, "m": POINTS[0][1]})
    envs = frame(3, {"t": TOPIC, "e": [seal(_signed_op().data, epoch_key=EPOCH_KEY, ts=NOW, rand=_fixed(1)).data]})
    tail = frame(4, {"t": TOPIC}) + frame(5, {}) + frame(6, {"reason": "bye"})
    yield "session-whole", b"\x00" + hello + recon + envs + tail
    yield "session-chunked", b"\x07" + hello + recon + tail


def control_seeds() -> Iterator[tuple[str, bytes]]:
    hex_id = (bytes([0xAB]) * 32).hex()
    yield "post", b'{"jsonrpc":"2.0","id":1,"method":"post","params":{"text":"hi","urgent":false,"reply_to":null}}'
    vote = {"jsonrpc": "2.0", "id": "x", "method": "vote", "params": {"proposal": hex_id, "choice": "approve"}}
    yield "vote", json.dumps(vote).encode()
    yield (
        "batch",
        (
            b'[{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":[1,2.5,"\\u00e9"]}},'
            b'{"jsonrpc":"2.0","method":"malformed"},{"jsonrpc":"2.0","id":2,"method":"subscribe",'
            b'"params":{"events":["op"]}}]'
        ),
    )
    yield "profile", b'{"jsonrpc":"2.0","id":3,"method":"profile","params":{"display_name":"A","skills":["x"]}}'
    yield "usage", b'{"jsonrpc":"2.0","id":4,"method":"usage"}'


def reconcile_seeds() -> Iterator[tuple[str, bytes]]:
    from fuzz_reconcile import POINTS

    for index, (_session, message) in enumerate(POINTS):
        yield f"point-{index:02d}", bytes([index]) + message


def fold_seeds() -> Iterator[tuple[str, bytes]]:
    from fuzz_fold import BASE, play, record

    post = {"text": "I could use some company tonight", "content_warning": None, "reply_to": None, "urgent": True}
    steps: list[bytes] = []

    def add(author: int, kind: str, body: dict, *, seal: bool = False, sibling: bool = False) -> bytes:
        steps.append(record(author, kind, body, seal=seal, sibling=sibling))
        _replica, ops = play(b"".join(steps))
        return ops[-1].id

    ref = add(1, "msg.post", post, seal=True)
    add(2, "msg.post", {**post, "text": "here", "urgent": False, "reply_to": ref}, seal=True)
    add(0, "msg.react", {"target": ref, "emoji": "<3", "on": True})
    add(1, "msg.edit", {"target": ref, "text": "edited", "content_warning": "cw"}, seal=True)
    add(2, "checkin", {"status": "struggling", "note": "rough week"}, seal=True)
    add(1, "profile.set", {"display_name": "Bee", "pronouns": "they/them", "skills": ["cooking"]})
    pledge = add(
        2,
        "aid.pledge",
        {"category": "ride", "description": "I can drive", "amount": None, "unit": None, "expires": None},
        seal=True,
    )
    request = add(
        1,
        "aid.request",
        {
            "category": "ride",
            "description": "to the clinic",
            "amount": None,
            "unit": None,
            "expires": NOW + 10_000,
            "private": None,
        },
        seal=True,
    )
    add(2, "aid.match", {"pledge": pledge, "request": request})
    add(1, "aid.fulfil", {"request": request})
    contribution = add(2, "fund.contribute", {"amount": 5000, "currency": "EUR", "note": None})
    add(1, "fund.receipt", {"contribution": contribution})
    spend = add(
        2,
        "proposal.create",
        {
            "kind": "spend",
            "title": "Rent help",
            "text": "",
            "details": {"amount": 1200, "currency": "EUR", "recipient": "Dana", "purpose": "rent"},
        },
    )
    for voter in (0, 1, 2):
        add(voter, "proposal.vote", {"proposal": spend, "choice": "approve", "reason": None})
    add(1, "fund.disburse", {"proposal": spend, "note": "paid"})
    event = add(
        0, "event.create", {"starts": NOW + 86_400, "title": "Picnic", "place_hint": None, "text": None}, seal=True
    )
    add(2, "event.rsvp", {"event": event, "answer": "yes"})
    add(1, "event.rsvp", {"event": event, "answer": "maybe"}, sibling=True)
    add(0, "invite.create", {"invite": invite_id(INVITE_SECRET), "secret": INVITE_SECRET, "uses": 1, "expires": None})
    add(0, "relay.add", {"address": "/ip4/192.0.2.1/tcp/4747/p2p/12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm"})
    add(
        0,
        "proposal.create",
        {"kind": "charter", "title": "History", "text": "", "details": charter_body("be kind", history=True)},
    )
    add(0, "member.add", member_add_body(ALICE.renamed("Alice").card().to_bytes()))
    add(0, "member.remove", {"member": CAROL.member_id, "reason": None})
    add(
        0,
        "key.rotate",
        {"epoch": bytes([0x44]) * 16, "previous": epoch_id(EPOCH_KEY), "sealed": {BOB.member_id: bytes(112)}},
    )
    add(3, "msg.post", post, seal=True)
    yield "story", b"".join(steps)
    assert len(BASE) == 4
    yield (
        "sibling-posts",
        (
            record(1, "msg.post", post, seal=True)
            + record(2, "msg.delete", {"target": bytes(32)}, sibling=True)
            + record(0, "member.compromised", {"note": None})
        ),
    )


SEEDS = {
    "codec": codec_seeds,
    "card": card_seeds,
    "envelope": envelope_seeds,
    "signed_op": signed_op_seeds,
    "fold": fold_seeds,
    "reconcile": reconcile_seeds,
    "codes": codes_seeds,
    "membership": membership_seeds,
    "private": private_seeds,
    "keystore": keystore_seeds,
    "gossip": gossip_seeds,
    "framing": framing_seeds,
    "control": control_seeds,
}


def write_all() -> int:
    total = 0
    for target, make in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in make():
            (folder / f"seed-{name}").write_bytes(data)
            total += len(data)
    return total


if __name__ == "__main__":
    print(f"wrote {write_all()} bytes of seeds under {CORPUS}")
