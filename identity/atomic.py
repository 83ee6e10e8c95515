"""Crash-safe file replacement: a file is either the old version or the new one, never half.

The sequence is the classic one: write a new temp file in the same directory (created
with mode 0600 before any byte is written), fsync it, rename it over the target, then
fsync the directory so the rename itself is durable.
"""

from __future__ import annotations

import os
from pathlib import Path

from identity.crypto import random_bytes


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    directory = path.parent
    tmp = directory / f".{path.name}.{random_bytes(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_limited(path: Path, max_bytes: int) -> bytes:
    """Read at most ``max_bytes + 1`` bytes, so a huge file cannot exhaust memory."""
    with open(path, "rb") as handle:
        return handle.read(max_bytes + 1)
