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
from typing import TYPE_CHECKING

import trio

from identity.atomic import fsync_directory
from identity.crypto import random_bytes

if TYPE_CHECKING:
    from p2pnet.node import Node

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


async def panic_node(node: Node, *, warn: bool) -> list[str]:
    """Warn the circles (signed member.compromised, pushed to every peer), then wipe
    the home and exit the process without writing anything more."""
    warned: list[str] = []
    if warn and node.circles is not None:
        for circle in list(node.circles.circles.values()):
            if node.circles.identity.member_id not in circle.replica.state.members:
                continue
            envelopes, _ = node.circles.author_many(circle, [("member.compromised", {"note": None})])
            for envelope in envelopes:
                node.publish_nowait(envelope)
            warned.append(circle.id.hex())
        if warned:
            with trio.move_on_after(10):
                for peer in list(node.peers):
                    await node.sync_now(peer)
    if node._nursery is not None:
        node._nursery.start_soon(_wipe_and_exit, node)
    return warned


async def _wipe_and_exit(node: Node) -> None:
    await trio.sleep(0.2)  # let the reply to the control API go out
    for closing in (node.cache, node.store):
        if closing is not None:
            try:
                closing.close()
            except Exception:  # noqa: BLE001 - closing must not stop the wipe
                pass
    wipe_home(node.home.root)
    os._exit(0)  # nothing of this process may write to the disk any more
