"""Test vectors for docs/PROTOCOL.md, computed from fixed keys by the real code.

`python tests/vectors.py` prints them (`--markdown`: the section for the doc);
tests/test_protocol_vectors.py checks that the
document holds exactly these values, so the spec and the code cannot drift apart.
"""

from __future__ import annotations

from kith.identity.keys import MemberIdentity, NetworkKey, safety_number
from kith.identity.keystore import KdfParams, KeystoreData, derive_key, seal_keystore
from kith.sync.access import Session
from kith.sync.content import seal_content
from kith.sync.envelope import (
    Kind,
    circle_handle,
    epoch_id,
    header_bytes,
    hint_key,
    relay_key,
    seal,
    topic_of_epoch_key,
)
from kith.sync.invites import (
    InviteCode,
    _signed_payload,
    circle_check,
    grant_signing_keypair,
    invite_epoch,
    invite_mac_key,
    invite_topic,
    join_key,
    seal_join_request,
    seal_relay_grant,
)
from kith.sync.kinds.keys import invite_id
from kith.sync.ops import Op, SignedOp

ALICE = MemberIdentity("Alice", bytes([0x01]) * 32, bytes([0x02]) * 32, 1_700_000_000)
BOB = MemberIdentity("Bob", bytes([0x03]) * 32, bytes([0x04]) * 32, 1_700_000_000)
CIRCLE = bytes([0x07]) * 16
ACCESS = Session(
    n_init=bytes([0x31]) * 16,
    n_resp=bytes([0x32]) * 16,
    peer_init="12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm",
    peer_resp="12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE",
)
EPOCH_KEY = bytes([0x09]) * 32
CONTENT_KEY = bytes([0x26]) * 32


def _fixed(byte: int):  # type: ignore[no-untyped-def]
    return lambda n: bytes([byte]) * n


def compute() -> dict[str, str]:
    card = ALICE.card()
    op = Op(CIRCLE, ALICE.member_id, (bytes([0x05]) * 32,), 2, 1_700_000_000, "msg.post", {"text": "hello"}, seq=1)
    signed = SignedOp.create(op, ALICE)
    topic = topic_of_epoch_key(EPOCH_KEY)
    envelope = seal(signed.data, epoch_key=EPOCH_KEY, ts=1_700_000_000, rand=_fixed(0x0A))
    params = KdfParams(opslimit=1, memlimit=8192)
    salt = bytes([0x0B]) * 16
    key, kcv = derive_key("correct horse battery staple", salt, params)
    data = KeystoreData(identity=ALICE, network=NetworkKey(bytes([0x0D]) * 32), storage_key=bytes([0x0E]) * 32)
    keystore = seal_keystore(data, key, kcv, salt, params, rand=_fixed(0x0C))
    invite_secret = bytes([0x21]) * 32
    code = InviteCode(
        invite_secret,
        circle_check(CIRCLE, invite_secret),
        ("/ip4/192.0.2.1/tcp/4747/p2p/12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm",),
        1_800_000_000,
    )
    join, request = seal_join_request(code, BOB, ts=1_700_000_000, rand=_fixed(0x22))
    next_key = bytes([0x23]) * 32
    grant = seal_relay_grant(
        previous_key=EPOCH_KEY,
        epoch=epoch_id(next_key),
        epoch_key=next_key,
        ts=1_700_000_000,
        rand=_fixed(0x24),
    )
    content = seal_content(
        {"text": "hello", "content_warning": None},
        circle=CIRCLE,
        author=ALICE.member_id,
        kind="msg.post",
        epoch=epoch_id(EPOCH_KEY),
        key=CONTENT_KEY,
        rand=_fixed(0x25),
    )
    welcome_plaintext = _signed_payload(
        {
            "v": 1,
            "circle": CIRCLE,
            "name": "Night owls",
            "epochs": {epoch_id(EPOCH_KEY): EPOCH_KEY},
            "contents": {epoch_id(EPOCH_KEY): CONTENT_KEY},
            "current": epoch_id(EPOCH_KEY),
            "relays": [],
            "to": BOB.member_id,
            "request": request,
        },
        ALICE,
    )
    return {
        "alice-sign-public": ALICE.sign_public.hex(),
        "alice-dh-public": ALICE.dh_public.hex(),
        "alice-card": card.to_bytes().hex(),
        "alice-fingerprint": card.fingerprint,
        "safety-number-alice-bob": safety_number(card, BOB.card()),
        "op-bytes": op.encode().hex(),
        "op-signature": signed.signature.hex(),
        "signed-op": signed.data.hex(),
        "op-id": signed.id.hex(),
        "circle-handle": circle_handle(CIRCLE).hex(),
        "topic": topic.hex(),
        "epoch-id": epoch_id(EPOCH_KEY).hex(),
        "envelope-header": header_bytes(topic, epoch_id(EPOCH_KEY), 1_700_000_000).hex(),
        "relay-key": relay_key(EPOCH_KEY).hex(),
        "envelope-mac": envelope.mac.hex(),
        "envelope": envelope.data.hex(),
        "envelope-id": envelope.id.hex(),
        "keystore-key": key.hex(),
        "keystore-kcv": kcv.hex(),
        "keystore-file": keystore.hex(),
        "invite-id": invite_id(invite_secret).hex(),
        "invite-code": code.encode(),
        "invite-topic": invite_topic(invite_secret).hex(),
        "invite-mac-key": invite_mac_key(invite_secret).hex(),
        "invite-epoch": invite_epoch(invite_mac_key(invite_secret)).hex(),
        "grant-hint-key": hint_key(relay_key(EPOCH_KEY), Kind.GRANT).hex(),
        "private-hint-key": hint_key(EPOCH_KEY, Kind.PRIVATE).hex(),
        "circle-check": circle_check(CIRCLE, invite_secret).hex(),
        "join-key": join_key(invite_secret).hex(),
        "join-request": join.data.hex(),
        "grant-public-key": grant_signing_keypair(EPOCH_KEY)[0].hex(),
        "relay-grant": grant.data.hex(),
        "content-blob": content.hex(),
        "access-tag-initiator": ACCESS.tag(relay_key(EPOCH_KEY), initiator=True).hex(),
        "access-tag-responder": ACCESS.tag(relay_key(EPOCH_KEY), initiator=False).hex(),
        "welcome-plaintext": welcome_plaintext.hex(),
    }


def markdown() -> str:
    """The 'Test vectors' section of docs/PROTOCOL.md."""
    import textwrap

    out = [
        "## Test vectors",
        "",
        "Computed from fixed keys by `tests/vectors.py` (run it to print them); the test suite checks",
        "that this section matches the code. Inputs:",
        "",
        "* Alice: Ed25519 seed `01 * 32`, X25519 secret `02 * 32`, name `Alice`, created 1700000000.",
        "* Bob: Ed25519 seed `03 * 32`, X25519 secret `04 * 32`, name `Bob`, created 1700000000.",
        "* Op: circle `07 * 16`, author Alice, parents `[05 * 32]`, lamport 2, seq 1, ts 1700000000,",
        '  kind `msg.post`, body `{"text": "hello"}`.',
        "* Envelope: that signed op sealed with epoch key `09 * 32` (so on that epoch's topic), ts",
        "  1700000000, nonce `0a * 24`.",
        "* Keystore: passphrase `correct horse battery staple`, opslimit 1, memlimit 8 KiB, salt",
        "  `0b * 16`, nonce `0c * 24`; contents: Alice's identity, network seed `0d * 32`, storage key",
        "  `0e * 32`, no circles, no relays.",
        "* Invite: secret `21 * 32`, for the circle above.",
        "* Access tags: the epoch's relay key, initiator nonce `31 * 16`, responder nonce `32 * 16`,",
        "  initiator peer id `12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm`, responder peer id",
        "  `12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE`.",
        "",
    ]
    for name, value in compute().items():
        out.append("```text")
        out.append(f"# vector: {name}")
        if " " in value:
            out.append(value)
        else:
            out.extend(textwrap.wrap(value, 64))
        out.append("```")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    if "--markdown" in sys.argv:
        print(markdown())
    else:
        for name, value in compute().items():
            print(f"{name}: {value}")
