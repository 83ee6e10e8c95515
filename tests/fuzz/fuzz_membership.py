"""Joining a circle: `open_join_request`, `open_welcome`, `open_relay_grant`, `open_epoch_key`.

Modes (first byte, mod 5):
  0. the rest is envelope bytes from a peer, tried with every opener (and as a sealed key);
  1. the rest is a join request's plaintext, encrypted with the invite's join key;
  2. the rest is a welcome's payload (a CBOR map): signed by an approver, sealed to Bob on the
     circle's topic, for Bob's pending request ``22 * 16``;
  3. the rest is a relay grant's payload: signed with the epoch's grant key, encrypted with
     the previous relay key's grant key;
  4. the rest is sealed to Bob as an epoch's two keys.

Oracle: only `RemoteProtocolError`; what opens is consistent (a welcome's current epoch
has both keys, every key matches its id).
"""

from __future__ import annotations

from _harness import BOB, CIRCLE_ID, EPOCH_KEY, INVITE_SECRET, NOW

from kith.identity import codec
from kith.identity.crypto import aead_encrypt, seal_to, sign
from kith.identity.errors import RemoteProtocolError
from kith.identity.keys import MemberIdentity
from kith.sync.envelope import Envelope, epoch_id, header_bytes, pad, pad_to, topic_of_epoch_key
from kith.sync.envelope import relay_key as derive_relay_key
from kith.sync.invites import (
    InviteCode,
    _grant_key,
    _signed_payload,
    circle_check,
    grant_signing_keypair,
    join_key,
    open_epoch_key,
    open_join_request,
    open_relay_grant,
    open_welcome,
)

TOPIC = topic_of_epoch_key(EPOCH_KEY)
RELAY_KEY = derive_relay_key(EPOCH_KEY)
EPOCH = epoch_id(EPOCH_KEY)
NONCE = bytes([0x22]) * 24
REQUEST = bytes([0x22]) * 16
APPROVER = MemberIdentity("Approver", bytes([0x31]) * 32, bytes([0x32]) * 32, 0)
GRANT_PUBLIC, GRANT_SECRET = grant_signing_keypair(EPOCH_KEY)
CODE = InviteCode(INVITE_SECRET, circle_check(CIRCLE_ID, INVITE_SECRET), (), None)


def _map(data: bytes) -> dict[str, object] | None:
    try:
        raw = codec.decode(data, max_size=60_000, what="fuzz input")
    except RemoteProtocolError:
        return None
    return raw if type(raw) is dict else None


def _envelope(ciphertext: bytes) -> Envelope:
    return Envelope.build(TOPIC, EPOCH, NOW, NONCE, ciphertext, relay_key=RELAY_KEY)


def _try(opener, *args) -> object:  # type: ignore[no-untyped-def]
    try:
        return opener(*args)
    except RemoteProtocolError:
        return None


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 5, data[1:]
    if len(rest) > 60_000:
        return
    if mode == 0:
        _try(open_epoch_key, rest, BOB, EPOCH)
        envelope = _try(Envelope.decode, rest)
        if envelope is None:
            return
        _try(open_join_request, envelope, INVITE_SECRET)
        _try(open_welcome, envelope, BOB, REQUEST, CODE)
        _try(open_relay_grant, envelope, RELAY_KEY, GRANT_PUBLIC)
    elif mode == 1:
        padded = pad(rest) if len(rest) < 60_000 else rest
        ciphertext = aead_encrypt(join_key(INVITE_SECRET), NONCE, padded, header_bytes(TOPIC, EPOCH, NOW))
        request = _try(open_join_request, _envelope(ciphertext), INVITE_SECRET)
        if request is not None and len(request.card.to_bytes()) > 1024:  # type: ignore[attr-defined]
            raise AssertionError("an oversized card got in")
    elif mode == 2:
        payload = _map(rest)
        if payload is None:
            return
        signed = _signed_payload(payload, APPROVER)
        sealed = seal_to(BOB.dh_public, pad_to(signed, len(signed) + 1))
        welcome = _try(open_welcome, _envelope(sealed), BOB, REQUEST, CODE)
        if welcome is not None and welcome.refused is None:  # type: ignore[attr-defined]
            if welcome.current not in welcome.epochs or welcome.current not in welcome.contents:  # type: ignore[attr-defined]
                raise AssertionError("a welcome without its current keys got in")
            for epoch, key in welcome.epochs.items():  # type: ignore[attr-defined]
                if epoch_id(key) != epoch:
                    raise AssertionError("a welcome key does not match its id")
    elif mode == 3:
        payload = _map(rest)
        if payload is None:
            return
        header = header_bytes(TOPIC, EPOCH, NOW)
        body = {k: v for k, v in payload.items() if k != "sig"}
        plaintext = codec.encode(
            {**body, "sig": sign(GRANT_SECRET, b"kith/relay-grant/v1\x00", header + codec.encode(body))}
        )
        padded = pad(plaintext) if len(plaintext) < 60_000 else plaintext
        ciphertext = aead_encrypt(_grant_key(RELAY_KEY), NONCE, padded, header)
        _try(open_relay_grant, _envelope(ciphertext), RELAY_KEY, GRANT_PUBLIC)
    else:
        epoch = epoch_id(rest[:32]) if len(rest) >= 32 else EPOCH
        opened = _try(open_epoch_key, seal_to(BOB.dh_public, rest), BOB, epoch)
        if opened is not None and opened != (rest[:32], rest[32:]):
            raise AssertionError("an epoch key opened to something else")
