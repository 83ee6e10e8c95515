"""Inputs the fuzzers and the Wycheproof run found (tests/fuzz, tests/identity/wycheproof.py).

Each used to get past a decoder and fail later with an untyped error, or crash a node.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kith.identity import codec
from kith.identity.crypto import aead_encrypt, seal_to, x25519_public_key_usable
from kith.identity.errors import CorruptKeystore, Malformed
from kith.identity.keyring import CircleKeys, RelayTopic
from kith.identity.keys import CARD_DOMAIN, IdentityCard, MemberIdentity, NetworkKey
from kith.identity.keystore import (
    BACKUP,
    KEYSTORE,
    TEST_KDF,
    FileFormat,
    KeystoreData,
    _header_bytes,
    derive_key,
    open_keystore,
)
from kith.p2pnet.keyfile import read_backup

PASS = "correct horse battery staple"
ALICE = MemberIdentity("Alice", bytes([1]) * 32, bytes([2]) * 32, 1_700_000_000)
SMALL_ORDER = [
    bytes(32),  # the identity point
    (1).to_bytes(32, "little"),  # order 4
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    (2**255 - 19).to_bytes(32, "little"),  # p, a non-canonical encoding of 0
]


def _sealed_file(plaintext: bytes, fmt: FileFormat = KEYSTORE) -> bytes:
    salt, nonce = bytes([0x0B]) * 16, bytes([0x0C]) * 24
    key, kcv = derive_key(PASS, salt, TEST_KDF)
    header = _header_bytes(TEST_KDF, salt, nonce, kcv, fmt)
    return header + aead_encrypt(key, nonce, plaintext, header)


def _contents(**identity: object) -> bytes:
    data = KeystoreData(ALICE, NetworkKey(bytes([0x0D]) * 32), bytes([0x0E]) * 32).to_map()
    data["identity"] = {**data["identity"], **identity}
    return codec.encode(data)


@pytest.mark.parametrize(
    "identity",
    [{"created": -1}, {"created": 2**40}, {"created": "yesterday"}, {"created": None}, {"sign_seed": "x" * 32}],
)
def test_keystore_identity_with_bad_fields_is_corrupt_not_a_later_crash(tmp_path: Path, identity: dict) -> None:
    # A creation time out of range used to open fine, then fail with Malformed as soon as
    # the node built its card (fuzz_keystore, mode 2).
    with pytest.raises(CorruptKeystore):
        open_keystore(_sealed_file(_contents(**identity)), PASS)
    backup = tmp_path / "backup.kith"
    backup.write_bytes(_sealed_file(_contents(**identity), BACKUP))
    with pytest.raises(CorruptKeystore):
        read_backup(backup, PASS)


def test_keystore_with_good_fields_still_opens() -> None:
    data = open_keystore(_sealed_file(_contents()), PASS)[0]
    assert data.identity == ALICE and data.identity.card().member_id == ALICE.member_id


def test_circle_and_relay_entries_with_bad_ids_are_malformed() -> None:
    # A circle id that is not 16 bytes raised LocalProtocolError (a "bug" crash) when the
    # node opened its circles; MemberCircles.open_all skips Malformed entries.
    raw = {"label": "x", "epochs": {bytes(16): bytes(32)}, "current": bytes(16), "contents": {}}
    with pytest.raises(Malformed):
        CircleKeys.from_map(b"short", raw)
    assert CircleKeys.from_map(bytes(16), raw).current == bytes(16)
    entry = {"label": "x", "relay_keys": {}, "quota_bytes": 1}
    with pytest.raises(Malformed):
        RelayTopic.from_map("not bytes", entry)  # type: ignore[arg-type]
    assert RelayTopic.from_map(bytes(32), entry).quota_bytes == 1


def _card_bytes_with_dh(dh: bytes) -> bytes:
    signed = {"v": 1, "name": "Mallory", "sign": ALICE.sign_public, "dh": dh, "created": 1}
    return codec.encode({**signed, "sig": ALICE.sign(CARD_DOMAIN, codec.encode(signed))})


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_cards_with_a_small_order_x25519_key_are_refused(point: bytes) -> None:
    # libsodium cannot seal to such a key: a member who put one in their card made every
    # key rotation, share and welcome that included them raise nacl's RuntimeError, which
    # nothing caught (Wycheproof X25519 "LowOrderPublic").
    assert not x25519_public_key_usable(point)
    with pytest.raises(Malformed, match="small order"):
        IdentityCard.from_bytes(_card_bytes_with_dh(point))
    with pytest.raises(Malformed):
        seal_to(point, b"epoch keys")


def test_ordinary_keys_are_usable() -> None:
    assert x25519_public_key_usable(ALICE.dh_public)
    assert IdentityCard.from_bytes(_card_bytes_with_dh(ALICE.dh_public)).dh_public == ALICE.dh_public
    assert not x25519_public_key_usable(b"\x01" * 31)
