"""Encrypted backups: everything secret a node holds, in one file protected by a passphrase.

The file has the keystore's layout (Argon2id + XChaCha20-Poly1305, docs/PROTOCOL.md
"Keystore") with the magic ``"KITH-BK" 0x00``: the identity, the network key, every circle
key, the relay list and the local marks (verified members, relay topics, pending joins).
It holds no messages: a restored node fetches the circles' envelopes again from peers and
relays, and decrypts them with the restored keys.
"""

from __future__ import annotations

from pathlib import Path

from kith.identity.atomic import write_atomic
from kith.identity.crypto import SALT_BYTES, RandomBytes, random_bytes
from kith.identity.errors import UsageError
from kith.identity.keystore import (
    BACKUP,
    KdfParams,
    KeystoreData,
    _derive,
    open_keystore,
    read_keystore_bytes,
    seal_keystore,
)
from kith.identity.strength import check_new_passphrase


def write_backup(
    path: Path, data: KeystoreData, passphrase: str, params: KdfParams, rand: RandomBytes = random_bytes
) -> None:
    if path.exists():
        raise UsageError(f"{path} already exists; choose a new file name for the backup")
    check_new_passphrase(passphrase)
    salt = rand(SALT_BYTES)
    key, kcv = _derive(passphrase, salt, params)
    write_atomic(path, seal_keystore(data, key, kcv, salt, params, rand, BACKUP))


def read_backup(path: Path, passphrase: str, rand: RandomBytes = random_bytes) -> KeystoreData:
    """The backed-up secrets, with a fresh storage key (this device's caches are new)."""
    data, _key, _kcv, _header = open_keystore(read_keystore_bytes(path, BACKUP), passphrase, BACKUP)
    data.storage_key = rand(32)
    return data
