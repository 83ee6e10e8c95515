"""The keystore and backup files on disk: the one place kith reads and writes them.

`kith.identity.keystore` seals and opens the bytes (pure); this module binds an unlocked
keystore to its file. Writes go through `write_atomic`: the file is always a complete old or
new version, and the old version's bytes are overwritten once the new one has replaced it, so
saves leave no stale copy (of old circle keys, or under an old passphrase) in the file
system's free blocks. On flash storage and copy-on-write file systems (SSDs, btrfs, ZFS,
APFS) overwriting cannot reach every physical copy; that is why the file is encrypted at all.
Writers (a node and a CLI command) are serialised on a sidecar lock file.
"""

from __future__ import annotations

import errno
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kith.identity.backup import open_backup, seal_backup
from kith.identity.crypto import SALT_BYTES, RandomBytes, random_bytes
from kith.identity.errors import CorruptKeystore, StorageError, UsageError
from kith.identity.keystore import (
    BACKUP,
    KEYSTORE,
    MAX_KEYSTORE_BYTES,
    FileFormat,
    KdfParams,
    KeystoreData,
    derive_key,
    open_keystore,
    seal_keystore,
)
from kith.identity.strength import check_new_passphrase
from kith.p2pnet.atomic import read_limited, write_atomic


class Keystore:
    """An unlocked keystore bound to its file.

    Holds the derived key (never the passphrase) so the node can save new circle keys
    without asking again. Every save writes a complete new file atomically.
    """

    def __init__(self, path: Path, data: KeystoreData, key: bytes, kcv: bytes, salt: bytes, params: KdfParams) -> None:
        self.path = path
        self.data = data
        self._key: bytes | None = key
        self._kcv = kcv
        self._salt = salt
        self.params = params

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r}, unlocked)"

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        data: KeystoreData,
        params: KdfParams = KdfParams(),
        rand: RandomBytes = random_bytes,
    ) -> Keystore:
        if path.exists():
            raise UsageError(f"a keystore already exists at {path}; kith will not overwrite it")
        check_new_passphrase(passphrase)
        salt = rand(SALT_BYTES)
        key, kcv = derive_key(passphrase, salt, params)
        store = cls(path, data, key, kcv, salt, params)
        with _file_lock(path):
            if path.exists():
                raise UsageError(f"a keystore already exists at {path}; kith will not overwrite it")
            store._write(rand)
        return store

    @classmethod
    def unlock(cls, path: Path, passphrase: str) -> Keystore:
        data, key, kcv, header = open_keystore(read_keystore_bytes(path), passphrase)
        return cls(path, data, key, kcv, header.salt, header.params)

    def save(self, rand: RandomBytes = random_bytes) -> None:
        try:
            with _file_lock(self.path):
                self._write(rand)
        except OSError as exc:  # the old file is intact: write_atomic replaces it whole or not at all
            raise storage_error(self.path, exc) from exc

    def change_passphrase(
        self, new_passphrase: str, params: KdfParams | None = None, rand: RandomBytes = random_bytes
    ) -> None:
        """Re-encrypt under a new passphrase with a fresh salt; the old one stops working."""
        check_new_passphrase(new_passphrase)
        params = params or self.params
        salt = rand(SALT_BYTES)
        key, kcv = derive_key(new_passphrase, salt, params)
        self._key, self._kcv, self._salt, self.params = key, kcv, salt, params
        self.save(rand)

    def _write(self, rand: RandomBytes) -> None:
        if self._key is None:
            raise StorageError("the keys on this device were destroyed (panic); nothing is saved any more")
        sealed = seal_keystore(self.data, self._key, self._kcv, self._salt, self.params, rand)
        write_atomic(self.path, sealed, scrub_old=True)

    def forget(self) -> None:
        """Panic: drop the derived key, so this object can never write the keystore again.

        The secrets in ``data`` stay: a panicking node still signs its warning with them.
        Python cannot promise that any of it leaves memory (immutable ``bytes`` are freed,
        not zeroed); the process exits seconds later, which is what ends them."""
        self._key = None
        self._kcv = b""


def storage_error(path: Path, exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError.disk_full(path)
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")


def read_keystore_bytes(path: Path, fmt: FileFormat = KEYSTORE) -> bytes:
    """A keystore (or backup) file's bytes, read with a size cap and one-line errors."""
    try:
        blob = read_limited(path, MAX_KEYSTORE_BYTES)
    except FileNotFoundError:
        hint = "; run 'kith init' first" if fmt is KEYSTORE else ""
        raise UsageError(f"no {fmt.noun} at {path}{hint}") from None
    except IsADirectoryError:
        raise CorruptKeystore(f"{path} is a directory, not a {fmt.noun}") from None
    except PermissionError:
        raise UsageError(f"cannot read {path}: permission denied") from None
    if len(blob) > MAX_KEYSTORE_BYTES:
        raise CorruptKeystore(f"{fmt.noun} file is larger than any {fmt.noun} kith writes")
    return blob


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise writers (a node and a CLI command) on a sidecar lock file."""
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as handle:
        try:
            lock_path.chmod(0o600)
        except OSError:
            pass
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_backup(
    path: Path, data: KeystoreData, passphrase: str, params: KdfParams, rand: RandomBytes = random_bytes
) -> None:
    """Write an encrypted backup to a new file (never over an existing one)."""
    if path.exists():
        raise UsageError(f"{path} already exists; choose a new file name for the backup")
    write_atomic(path, seal_backup(data, passphrase, params, rand))


def read_backup(path: Path, passphrase: str, rand: RandomBytes = random_bytes) -> KeystoreData:
    """The backed-up secrets, with a fresh storage key (this device's caches are new)."""
    return open_backup(read_keystore_bytes(path, BACKUP), passphrase, rand)
