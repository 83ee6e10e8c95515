"""Panic: destroy everything a node keeps, fast, with no passphrase.

The keystore is the only file that opens anything (the stores hold ciphertext under
keys kept in it), so it goes first: overwritten with random bytes, synced, unlinked.
Then every other file of the home (stores and their write-ahead logs, caches, logs,
lock files, leftovers of atomic writes) is overwritten with zeros and unlinked, and the
directories are removed. Overwriting is best effort on flash storage and copy-on-write
file systems; what protects the circle is that the keys are gone, and, with ``--warn``,
that the circle has stopped trusting this device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from identity.atomic import fsync_directory
from identity.crypto import random_bytes

_CHUNK = 1024 * 1024


@dataclass
class WipeReport:
    files: int = 0
    bytes: int = 0
    errors: int = 0


def _overwrite(path: Path, *, random: bool) -> int:
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as handle:
        written = 0
        while written < size:
            chunk = min(_CHUNK, size - written)
            handle.write(random_bytes(chunk) if random else bytes(chunk))
            written += chunk
        os.fsync(handle.fileno())
    return size


def wipe_home(root: Path) -> WipeReport:
    report = WipeReport()
    if not root.exists():
        return report
    files = [p for p in root.rglob("*") if p.is_file() or p.is_socket() or p.is_symlink()]
    # Key material first: the keystore, its lock and any half-written copy of it.
    files.sort(key=lambda p: (not p.name.startswith(("keystore", ".keystore")), str(p)))
    for path in files:
        try:
            if path.is_file() and not path.is_symlink():
                report.bytes += _overwrite(path, random=path.name.startswith(("keystore", ".keystore")))
            path.unlink()
            report.files += 1
        except OSError:
            report.errors += 1
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            directory.rmdir()
        except OSError:
            report.errors += 1
    try:
        root.rmdir()
        fsync_directory(root.parent)
    except OSError:
        report.errors += 1
    return report
