"""Encrypted backups: everything secret a node holds, in one blob protected by a passphrase.

The blob has the keystore's layout (Argon2id + XChaCha20-Poly1305, docs/PROTOCOL.md
"Keystore") with the magic ``"KITH-BK" 0x00``: the identity, the network key, every circle
key, the relay list and the local marks (verified members, relay topics, pending joins).
It holds no messages: a restored node fetches the circles' envelopes again from peers and
relays, and decrypts them with the restored keys. Pure: the file is written and read by
`kith.p2pnet.keyfile` (`write_backup`, `read_backup`).
"""

from __future__ import annotations

from kith.identity.crypto import SALT_BYTES, RandomBytes, random_bytes
from kith.identity.keystore import BACKUP, KdfParams, KeystoreData, derive_key, open_keystore, seal_keystore
from kith.identity.strength import check_new_passphrase


def seal_backup(data: KeystoreData, passphrase: str, params: KdfParams, rand: RandomBytes = random_bytes) -> bytes:
    """The backup file's bytes: ``data`` under a key derived from a new (checked) passphrase."""
    check_new_passphrase(passphrase)
    salt = rand(SALT_BYTES)
    key, kcv = derive_key(passphrase, salt, params)
    return seal_keystore(data, key, kcv, salt, params, rand, BACKUP)


def open_backup(blob: bytes, passphrase: str, rand: RandomBytes = random_bytes) -> KeystoreData:
    """The backed-up secrets, with a fresh storage key (this device's caches are new)."""
    data, _key, _kcv, _header = open_keystore(blob, passphrase, BACKUP)
    data.storage_key = rand(32)
    return data
