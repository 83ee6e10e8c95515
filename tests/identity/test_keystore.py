"""The keystore file: opens only with the passphrase, refuses every damaged byte."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from kith.identity.crypto import blake2b
from kith.identity.errors import BadPassphrase, CorruptKeystore, StorageError, UsageError
from kith.identity.keys import MemberIdentity
from kith.identity.keystore import (
    HEADER_BYTES,
    TEST_KDF,
    KdfParams,
    KeystoreData,
    check_new_passphrase,
)
from kith.p2pnet.keyfile import Keystore

PASS = "correct horse battery staple"


def _new(tmp_path: Path, passphrase: str = PASS) -> Keystore:
    data = KeystoreData.generate(MemberIdentity.generate("Alice", now=1_700_000_000))
    return Keystore.create(tmp_path / "keystore.kith", passphrase, data, TEST_KDF)


def _secrets(store: Keystore) -> list[bytes]:
    ident = store.data.identity
    assert ident is not None
    return [ident.sign_seed, ident.dh_secret, ident.sign_secret[:32], store.data.network.seed, store.data.storage_key]


def test_create_unlock_round_trip(tmp_path: Path) -> None:
    store = _new(tmp_path)
    again = Keystore.unlock(store.path, PASS)
    assert again.data.identity == store.data.identity
    assert again.data.network == store.data.network
    assert again.data.storage_key == store.data.storage_key


def test_file_is_private_and_holds_no_secret_in_clear(tmp_path: Path) -> None:
    store = _new(tmp_path)
    store.data.circles[b"\x01" * 16] = {"epochs": [{"key": b"K" * 32}]}
    store.save()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    blob = store.path.read_bytes()
    for secret in [*_secrets(store), b"K" * 32, PASS.encode(), b"Alice"]:
        assert secret not in blob
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_wrong_passphrase(tmp_path: Path) -> None:
    store = _new(tmp_path)
    with pytest.raises(BadPassphrase):
        Keystore.unlock(store.path, PASS + "!")


def test_passphrase_is_unicode_normalised(tmp_path: Path) -> None:
    store = _new(tmp_path, "caf\u00e9 au lait, s'il vous pla\u00eet")
    Keystore.unlock(store.path, "cafe\u0301 au lait, s'il vous pla\u00eet")


def test_change_passphrase(tmp_path: Path) -> None:
    store = _new(tmp_path)
    before = store.path.read_bytes()
    store.change_passphrase("a brand new passphrase")
    assert store.path.read_bytes()[:HEADER_BYTES] != before[:HEADER_BYTES]
    with pytest.raises(BadPassphrase):
        Keystore.unlock(store.path, PASS)
    assert Keystore.unlock(store.path, "a brand new passphrase").data.identity == store.data.identity


def test_every_single_bit_flip_is_refused_as_corrupt(tmp_path: Path) -> None:
    store = _new(tmp_path)
    blob = store.path.read_bytes()
    target = tmp_path / "flipped.kith"
    for position in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[position // 8] ^= 1 << (position % 8)
        target.write_bytes(bytes(flipped))
        with pytest.raises(CorruptKeystore):
            Keystore.unlock(target, PASS)


def test_every_truncation_is_refused_as_corrupt(tmp_path: Path) -> None:
    store = _new(tmp_path)
    blob = store.path.read_bytes()
    target = tmp_path / "short.kith"
    for length in range(len(blob)):
        target.write_bytes(blob[:length])
        with pytest.raises(CorruptKeystore):
            Keystore.unlock(target, PASS)


def _reheader(blob: bytes, **fields: int) -> bytes:
    """Rewrite header fields and fix the header checksum, as a careful attacker would."""
    magic, version, kdf, ops, mem = struct.unpack_from(">8sBBII", blob)
    values = {"version": version, "kdf": kdf, "ops": ops, "mem": mem, **fields}
    prefix = struct.pack(">8sBBII", magic, values["version"], values["kdf"], values["ops"], values["mem"])
    body = prefix + blob[len(prefix) : HEADER_BYTES - 16]
    return body + blake2b(body, person=b"kith-ks-header", size=16) + blob[HEADER_BYTES:]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": 2}, "version 2"),
        ({"kdf": 7}, "unknown key derivation"),
        ({"ops": 1000}, "out of bounds"),
        ({"mem": 64 * 1024 * 1024}, "out of bounds"),
    ],
)
def test_unknown_versions_and_absurd_costs(tmp_path: Path, fields: dict[str, int], message: str) -> None:
    store = _new(tmp_path)
    store.path.write_bytes(_reheader(store.path.read_bytes(), **fields))
    with pytest.raises(CorruptKeystore, match=message):
        Keystore.unlock(store.path, PASS)


def test_wrong_magic_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"hello world, this is not a keystore" * 5)
    with pytest.raises(CorruptKeystore, match="magic"):
        Keystore.unlock(tmp_path / "x", PASS)
    with pytest.raises(UsageError, match="kith init"):
        Keystore.unlock(tmp_path / "absent", PASS)


def test_create_never_overwrites(tmp_path: Path) -> None:
    store = _new(tmp_path)
    before = store.path.read_bytes()
    with pytest.raises(UsageError):
        _new(tmp_path)
    assert store.path.read_bytes() == before


def test_unknown_fields_survive_a_rewrite(tmp_path: Path) -> None:
    store = _new(tmp_path)
    store.data.extra["future_feature"] = {"x": 1}
    store.save()
    again = Keystore.unlock(store.path, PASS)
    again.save()
    assert Keystore.unlock(store.path, PASS).data.extra == {"future_feature": {"x": 1}}


def test_kdf_costs_are_stored_in_the_file(tmp_path: Path) -> None:
    data = KeystoreData.generate(None)
    params = KdfParams(opslimit=2, memlimit=64 * 1024)
    store = Keystore.create(tmp_path / "relay.kith", PASS, data, params)
    assert Keystore.unlock(store.path, PASS).params == params
    assert Keystore.unlock(store.path, PASS).data.identity is None


def test_short_passphrases_are_refused() -> None:
    with pytest.raises(UsageError):
        check_new_passphrase("short")


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _new(tmp_path)
    before = store.path.read_bytes()

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    store.data.relays.append("/ip4/127.0.0.1/tcp/4001")
    with pytest.raises(StorageError, match="disk holding .* is full; free some space"):
        store.save()
    assert store.path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_save_overwrites_the_old_version_in_place(tmp_path: Path) -> None:
    store = _new(tmp_path)
    before = store.path.read_bytes()
    old = os.open(store.path, os.O_RDONLY)  # still reads the old file once the new one replaces it
    try:
        store.change_passphrase("a brand new passphrase")
        os.lseek(old, 0, os.SEEK_SET)
        left = os.read(old, len(before) + 1)
    finally:
        os.close(old)
    assert len(left) == len(before) and left != before
    assert not any(left[i : i + 16] in before for i in range(0, len(left) - 16, 16))
    assert Keystore.unlock(store.path, "a brand new passphrase").data.identity is not None
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_forgotten_keystore_is_never_written_again(tmp_path: Path) -> None:
    store = _new(tmp_path)
    before = store.path.read_bytes()
    store.forget()
    store.data.relays.append("/ip4/127.0.0.1/tcp/4001")
    with pytest.raises(StorageError, match="destroyed"):
        store.save()
    assert store.path.read_bytes() == before
