"""Invite codes, join requests, welcomes, refusals, relay grants and sealed epoch keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kith.identity.errors import BadSignature, Malformed, RemoteProtocolError, Undecryptable
from kith.identity.keys import MemberIdentity
from kith.sync.envelope import Envelope, epoch_id, pad_to, relay_key, topic_of_epoch_key, unpad_to
from kith.sync.invites import (
    InviteCode,
    circle_check,
    grant_signing_keypair,
    invite_mac_key,
    invite_topic,
    open_epoch_key,
    open_join_request,
    open_relay_grant,
    open_welcome,
    seal_epoch_key,
    seal_join_request,
    seal_refusal,
    seal_relay_grant,
    seal_welcome,
)

CIRCLE = bytes([3]) * 16
EPOCH_KEY = bytes([4]) * 32
TOPIC = topic_of_epoch_key(EPOCH_KEY)
EPOCH = epoch_id(EPOCH_KEY)
NEWCOMER = MemberIdentity("Robin", bytes([5]) * 32, bytes([6]) * 32, 0)
STRANGER = MemberIdentity("Sam", bytes([7]) * 32, bytes([8]) * 32, 0)
APPROVER = MemberIdentity("Alex", bytes([15]) * 32, bytes([16]) * 32, 0)
REQUEST = bytes([17]) * 16
SECRET = bytes([9]) * 32


def _welcome(**changes: object) -> Envelope:
    fields: dict[str, object] = {
        "approver": APPROVER,
        "request": REQUEST,
        "circle": CIRCLE,
        "name": "Night owls",
        "epochs": {EPOCH: EPOCH_KEY},
        "contents": {EPOCH: bytes([11]) * 32},
        "current": EPOCH,
        "relays": [],
        "secret": SECRET,
        "ts": 5,
    }
    fields.update(changes)
    return seal_welcome(NEWCOMER.card(), **fields)  # type: ignore[arg-type]


def _code(**changes: object) -> InviteCode:
    fields = {
        "secret": SECRET,
        "check": circle_check(CIRCLE, SECRET),
        "addresses": ("/ip4/198.51.100.7/tcp/4747/p2p/12D3KooWExampleRelay",),
        "expires": 1_800_000_000,
    }
    fields.update(changes)
    return InviteCode(**fields)  # type: ignore[arg-type]


def test_code_round_trip_and_damage() -> None:
    text = _code().encode()
    assert text.startswith("KITH-INVITE:")
    assert InviteCode.decode(text) == _code()
    assert InviteCode.decode(text.lower().replace("kith-invite:", "KITH-INVITE:")) == _code()
    for cut in (len(text) - 1, len(text) // 2, 14):
        with pytest.raises(Malformed):
            InviteCode.decode(text[:cut])
    with pytest.raises(Malformed, match="not an invite code"):
        InviteCode.decode("KITH-RELAY:" + text[len("KITH-INVITE:") :])
    with pytest.raises(Malformed):
        _code(addresses=("not an address",))


def test_a_code_reveals_nothing_of_the_circle_or_the_inviter() -> None:
    """A leaked code is a join-only capability: no topic, relay key, circle id or inviter."""
    from kith.sync.codes import decode_code

    raw = decode_code("KITH-INVITE:", _code().encode(), what="invite code")
    assert set(raw) == {"v", "s", "c", "a", "x"}
    flat = _code().encode()
    for secret_of_the_circle in (TOPIC, relay_key(EPOCH_KEY), CIRCLE, EPOCH, APPROVER.member_id):
        assert secret_of_the_circle not in repr(raw).encode() and secret_of_the_circle.hex() not in flat
    # What it does hold is derived one-way from its own secret.
    assert _code().topic == invite_topic(SECRET) != TOPIC
    assert _code().mac_key == invite_mac_key(SECRET) != relay_key(EPOCH_KEY)


@given(st.text(max_size=120))
def test_garbage_codes_raise_protocol_errors_only(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        InviteCode.decode("KITH-INVITE:" + text)


def test_join_request_opens_only_with_its_invite_secret() -> None:
    code = _code()
    request, nonce = seal_join_request(code, NEWCOMER, ts=100)
    assert request.topic == invite_topic(SECRET) and request.epoch == code.epoch
    request.check_mac(code.mac_key)
    opened = open_join_request(Envelope.decode(request.data), code.secret)
    assert opened.card.member_id == NEWCOMER.member_id
    assert opened.request == nonce and len(nonce) == 16
    assert seal_join_request(code, NEWCOMER, ts=100)[1] != nonce  # every request is fresh
    with pytest.raises(Undecryptable):
        open_join_request(request, bytes([10]) * 32)
    assert NEWCOMER.name.encode() not in request.data


def test_welcome_opens_only_for_its_newcomer_its_request_and_its_topic() -> None:
    welcome = _welcome()
    opened = open_welcome(Envelope.decode(welcome.data), NEWCOMER, REQUEST, _code())
    assert (opened.circle, opened.epochs, opened.contents, opened.current, opened.by) == (
        CIRCLE,
        {EPOCH: EPOCH_KEY},
        {EPOCH: bytes([11]) * 32},
        EPOCH,
        APPROVER.member_id,
    )
    with pytest.raises(Undecryptable):
        open_welcome(welcome, STRANGER, REQUEST, _code())  # sealed to someone else: it does not open
    with pytest.raises(Malformed, match="another join request"):
        open_welcome(welcome, NEWCOMER, bytes(16), _code())  # a stale welcome, for an earlier request
    # A welcome into another circle (say, one a malicious relay made up) for the same request.
    other = _welcome(circle=bytes([4]) * 16)
    with pytest.raises(Malformed, match="other than the one"):
        open_welcome(other, NEWCOMER, REQUEST, _code())


def test_a_welcome_must_carry_its_approvers_signature() -> None:
    from kith.identity import codec
    from kith.identity.crypto import open_sealed, seal_to

    welcome = _welcome()
    opened = unpad_to(open_sealed(NEWCOMER.dh_public, NEWCOMER.dh_secret, welcome.ciphertext))
    raw = codec.decode(opened, max_size=1 << 16)
    for forged in ({**raw, "by": STRANGER.member_id}, {**raw, "current": EPOCH, "name": "Take-over"}):
        sealed = seal_to(NEWCOMER.dh_public, pad_to(codec.encode(forged), 2000))
        envelope = Envelope.build(TOPIC, welcome.epoch, 5, welcome.nonce, sealed, relay_key=relay_key(EPOCH_KEY))
        with pytest.raises(BadSignature):
            open_welcome(envelope, NEWCOMER, REQUEST, _code())
    unsigned = {k: v for k, v in raw.items() if k != "sig"}
    envelope = Envelope.build(TOPIC, welcome.epoch, 5, welcome.nonce, seal_to(NEWCOMER.dh_public,
                              pad_to(codec.encode(unsigned), 2000)), relay_key=relay_key(EPOCH_KEY))  # fmt: skip
    with pytest.raises(Malformed, match="not signed"):
        open_welcome(envelope, NEWCOMER, REQUEST, _code())


def test_welcome_keys_must_match_their_ids() -> None:
    welcome = _welcome(name="x", epochs={EPOCH: bytes([12]) * 32}, contents={EPOCH: bytes(32)})
    with pytest.raises(Malformed, match="does not match"):
        open_welcome(welcome, NEWCOMER, REQUEST, _code())


def test_refusal_says_why_for_its_request_only() -> None:
    refusal = seal_refusal(NEWCOMER.card(), refuser=APPROVER, request=REQUEST,
                           reason="this invite has been used up", secret=SECRET, ts=5)  # fmt: skip
    assert open_welcome(refusal, NEWCOMER, REQUEST, _code()).refused == "this invite has been used up"
    with pytest.raises(Malformed):
        open_welcome(refusal, NEWCOMER, bytes(16), _code())


def test_relay_grant_chain_is_signed_by_holders_of_the_previous_epoch_key() -> None:
    new_key = bytes([13]) * 32
    grant = seal_relay_grant(previous_key=EPOCH_KEY, epoch=epoch_id(new_key), epoch_key=new_key, ts=9)
    grant.check_mac(relay_key(EPOCH_KEY))
    assert grant.topic == TOPIC  # on the previous epoch's topic, which relays already serve
    previous_grant_key = grant_signing_keypair(EPOCH_KEY)[0]
    opened = open_relay_grant(Envelope.decode(grant.data), relay_key(EPOCH_KEY), previous_grant_key)
    assert (opened.epoch, opened.relay_key, opened.grant_key) == (
        epoch_id(new_key),
        relay_key(new_key),
        grant_signing_keypair(new_key)[0],
    )
    with pytest.raises(Undecryptable):
        open_relay_grant(grant, relay_key(new_key), previous_grant_key)
    assert new_key not in grant.data and relay_key(new_key) not in grant.data


def test_a_relay_key_holder_cannot_forge_a_grant() -> None:
    """Someone with the relay key (an old invite, a past member's relay token) but not the
    epoch key encrypts and authenticates a grant fine, but cannot sign it."""
    from kith.identity import codec
    from kith.identity.crypto import aead_encrypt, signing_keypair
    from kith.sync.envelope import header_bytes, pad
    from kith.sync.invites import _grant_key

    header = header_bytes(TOPIC, EPOCH, 9)
    _public, their_secret = signing_keypair(bytes([99]) * 32)
    from kith.identity.crypto import sign

    body = {"v": 1, "epoch": bytes([1]) * 16, "relay_key": bytes([2]) * 32, "grant_key": bytes(32)}
    plaintext = codec.encode(
        {**body, "sig": sign(their_secret, b"kith/relay-grant/v1\x00", header + codec.encode(body))}
    )
    ciphertext = aead_encrypt(_grant_key(relay_key(EPOCH_KEY)), bytes(24), pad(plaintext), header)
    forged = Envelope.build(TOPIC, EPOCH, 9, bytes(24), ciphertext, relay_key=relay_key(EPOCH_KEY))
    with pytest.raises(BadSignature):
        open_relay_grant(forged, relay_key(EPOCH_KEY), grant_signing_keypair(EPOCH_KEY)[0])


def test_sealed_epoch_keys() -> None:
    content = bytes([14]) * 32
    sealed = seal_epoch_key(NEWCOMER.dh_public, EPOCH_KEY, content)
    assert len(sealed) == 112
    assert open_epoch_key(sealed, NEWCOMER, EPOCH) == (EPOCH_KEY, content)
    with pytest.raises(Undecryptable):
        open_epoch_key(sealed, STRANGER, EPOCH)
    with pytest.raises(Undecryptable):
        open_epoch_key(sealed, NEWCOMER, bytes([1]) * 16)  # the key must match the announced epoch


def test_every_kind_of_envelope_looks_like_an_op_to_whoever_lacks_its_key() -> None:
    """A watcher (or a relay) sees the same epoch, size and random-looking nonce on an
    op, a private request, a grant, a join request, a welcome and a refusal; each kind is
    recognisable only with the key its readers hold (`Kind`)."""
    from kith.sync.envelope import Kind, epoch_hints, has_hint, seal
    from kith.sync.invites import invite_hints, seal_invite_grant
    from kith.sync.private import make_statement, seal_private

    new_key = bytes([13]) * 32
    statement = make_statement(NEWCOMER, CIRCLE, "private.request", {"category": "money", "description": "rent",
                               "amount": 100, "unit": "EUR", "expires": None}, ts=5)  # fmt: skip
    on_circle = {
        Kind.OP: seal(b"a reaction", epoch_key=EPOCH_KEY, ts=9),
        Kind.PRIVATE: seal_private(statement, [APPROVER.dh_public] * 3, epoch_key=EPOCH_KEY, ts=9),
        Kind.GRANT: seal_relay_grant(previous_key=EPOCH_KEY, epoch=epoch_id(new_key), epoch_key=new_key, ts=9),
    }
    invite_grant = seal_invite_grant(epoch_key=EPOCH_KEY, secret=SECRET, until=99, ts=9)
    refusal = seal_refusal(NEWCOMER.card(), refuser=APPROVER, request=REQUEST, reason="used up", secret=SECRET, ts=5)
    on_invite = {Kind.JOIN: seal_join_request(_code(), NEWCOMER, ts=9)[0], Kind.WELCOME: _welcome()}
    everything = [*on_circle.values(), invite_grant, *on_invite.values(), refusal]
    for envelope in [*on_circle.values(), invite_grant]:
        assert (envelope.topic, envelope.epoch) == (TOPIC, EPOCH)
    for envelope in [*on_invite.values(), refusal]:
        assert (envelope.topic, envelope.epoch) == (invite_topic(SECRET), _code().epoch)
    assert {len(e.ciphertext) for e in everything} == {1040}  # one size class: an op's
    assert len({e.nonce[:4] for e in everything}) == len(everything)
    # A member tells them apart by the hints its keys make; the ops carry none.
    hints = dict(epoch_hints(EPOCH_KEY)) | dict(invite_hints(SECRET))

    def kind(envelope: Envelope) -> Kind:
        return next((k for k, key in hints.items() if has_hint(envelope.nonce, key)), Kind.OP)

    assert {k: kind(e) for k, e in (on_circle | on_invite).items()} == {k: k for k in on_circle | on_invite}
    assert kind(invite_grant) is Kind.GRANT and kind(refusal) is Kind.WELCOME
    # Without the epoch key (a relay, a watcher) a private request is just an op.
    assert not any(has_hint(on_circle[Kind.PRIVATE].nonce, key) for k, key in hints.items() if k is not Kind.PRIVATE)
