"""Invite codes, join requests, welcomes, refusals, relay grants and sealed epoch keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.errors import Malformed, RemoteProtocolError, Undecryptable
from identity.keys import MemberIdentity
from sync.envelope import Envelope, circle_topic, epoch_id, relay_key
from sync.invites import (
    InviteCode,
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
TOPIC = circle_topic(CIRCLE)
EPOCH_KEY = bytes([4]) * 32
EPOCH = epoch_id(EPOCH_KEY)
NEWCOMER = MemberIdentity("Robin", bytes([5]) * 32, bytes([6]) * 32, 0)
STRANGER = MemberIdentity("Sam", bytes([7]) * 32, bytes([8]) * 32, 0)


def _code(**changes: object) -> InviteCode:
    fields = {
        "topic": TOPIC,
        "secret": bytes([9]) * 32,
        "relay_key": relay_key(EPOCH_KEY),
        "epoch": EPOCH,
        "inviter": bytes([1]) * 32,
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


@given(st.text(max_size=120))
def test_garbage_codes_raise_protocol_errors_only(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        InviteCode.decode("KITH-INVITE:" + text)


def test_join_request_opens_only_with_its_invite_secret() -> None:
    code = _code()
    request = seal_join_request(code, NEWCOMER, ts=100)
    assert request.topic == TOPIC and request.epoch == b"\xff" * 16
    request.check_mac(code.relay_key)
    opened = open_join_request(Envelope.decode(request.data), code.secret)
    assert opened.card.member_id == NEWCOMER.member_id and opened.epoch == EPOCH
    with pytest.raises(Undecryptable):
        open_join_request(request, bytes([10]) * 32)
    assert NEWCOMER.name.encode() not in request.data


def test_welcome_opens_only_for_its_newcomer_and_only_for_its_topic() -> None:
    content_key = bytes([11]) * 32
    welcome = seal_welcome(
        NEWCOMER.card(),
        circle=CIRCLE,
        name="Night owls",
        epochs={EPOCH: EPOCH_KEY},
        contents={EPOCH: content_key},
        current=EPOCH,
        relays=[],
        relay_key=relay_key(EPOCH_KEY),
        ts=5,
    )
    opened = open_welcome(Envelope.decode(welcome.data), NEWCOMER)
    assert (opened.circle, opened.epochs, opened.contents, opened.current) == (
        CIRCLE,
        {EPOCH: EPOCH_KEY},
        {EPOCH: content_key},
        EPOCH,
    )
    with pytest.raises(Undecryptable):
        open_welcome(welcome, STRANGER)  # sealed to someone else: it does not open
    moved = Envelope.build(circle_topic(bytes(16)), welcome.epoch, welcome.ts, welcome.nonce, welcome.ciphertext,
                           relay_key=relay_key(EPOCH_KEY))  # fmt: skip
    with pytest.raises(Malformed, match="other than the one"):
        open_welcome(moved, NEWCOMER)


def test_welcome_keys_must_match_their_ids() -> None:
    welcome = seal_welcome(
        NEWCOMER.card(),
        circle=CIRCLE,
        name="x",
        epochs={EPOCH: bytes([12]) * 32},
        contents={EPOCH: bytes(32)},
        current=EPOCH,
        relays=[],
        relay_key=relay_key(EPOCH_KEY),
        ts=5,
    )
    with pytest.raises(Malformed, match="does not match"):
        open_welcome(welcome, NEWCOMER)


def test_refusal_says_why() -> None:
    refusal = seal_refusal(NEWCOMER.card(), topic=TOPIC, reason="this invite has been used up",
                           relay_key=relay_key(EPOCH_KEY), ts=5)  # fmt: skip
    assert open_welcome(refusal, NEWCOMER).refused == "this invite has been used up"


def test_relay_grant_chain() -> None:
    new_key = bytes([13]) * 32
    grant = seal_relay_grant(TOPIC, previous_relay_key=relay_key(EPOCH_KEY), epoch=epoch_id(new_key),
                             relay_key=relay_key(new_key), ts=9)  # fmt: skip
    grant.check_mac(relay_key(EPOCH_KEY))
    assert open_relay_grant(Envelope.decode(grant.data), relay_key(EPOCH_KEY)) == (
        epoch_id(new_key),
        relay_key(new_key),
    )
    with pytest.raises(Undecryptable):
        open_relay_grant(grant, relay_key(new_key))
    assert new_key not in grant.data and relay_key(new_key) not in grant.data


def test_sealed_epoch_keys() -> None:
    content = bytes([14]) * 32
    sealed = seal_epoch_key(NEWCOMER.dh_public, EPOCH_KEY, content)
    assert len(sealed) == 112
    assert open_epoch_key(sealed, NEWCOMER, EPOCH) == (EPOCH_KEY, content)
    with pytest.raises(Undecryptable):
        open_epoch_key(sealed, STRANGER, EPOCH)
    with pytest.raises(Undecryptable):
        open_epoch_key(sealed, NEWCOMER, bytes([1]) * 16)  # the key must match the announced epoch
