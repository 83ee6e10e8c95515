"""Crash-safe file replacement: a file is either the old version or the new one, never half.

The sequence is the classic one: write a new temp file in the same directory (created
with mode 0600 before any byte is written), fsync it, rename it over the target, then
fsync the directory so the rename itself is durable.

With ``scrub_old`` (the keystore), the old file is opened before the rename and its
bytes are overwritten and synced after it, through that open descriptor: at every moment
the path holds a complete old or new version (a crash loses nothing), and once the write
returns the old version's blocks hold random bytes instead of a stale copy. That is best
effort by nature: SSDs remap blocks and copy-on-write file systems never write in place.
"""

from __future__ import annotations

import os
from pathlib import Path

from kith.identity.crypto import random_bytes


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, scrub_old: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically and durably (overwriting the old bytes if ``scrub_old``)."""
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
        old = _open_old(path) if scrub_old else None
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.close(old)
            raise
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)
    if old is not None:
        try:
            overwrite_fd(old)
        finally:
            os.close(old)


def _open_old(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None


_CHUNK = 1024 * 1024


def overwrite_fd(fd: int, *, random: bool = True) -> int:
    """Overwrite every byte of an open regular file in place (random or zeros), then fsync.

    Returns the size overwritten. The file keeps its size: truncating first would hand
    the blocks back to the file system before they were overwritten."""
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    written = 0
    while written < size:
        chunk = min(_CHUNK, size - written)
        view = memoryview(random_bytes(chunk) if random else bytes(chunk))
        while view:
            done = os.write(fd, view)
            view = view[done:]
        written += chunk
    os.fsync(fd)
    return size


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (before SQLite or a logger opens
    it, so the file is never readable by others, whatever the umask), and tighten an old one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


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
