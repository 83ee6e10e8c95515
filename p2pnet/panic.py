"""Panic: destroy everything a node keeps on disk, at once, with no passphrase.

Theory of operation
-------------------
Panic must not be able to fail: wiping needs no passphrase, no network and no running
node. `wipe_home` walks the home without following links and, for every entry (the
keystore first, then the SQLite stores with their -wal/-shm/-journal files, the state
cache, logs, config, lock files, the control socket, leftovers of atomic writes),
overwrites a regular file's bytes in place, fsyncs it and unlinks it; then it removes the
directories, deepest first, and syncs the parent. Overwriting reaches the blocks the
file system gave the file; on SSDs (which remap blocks) and copy-on-write file systems
(btrfs, ZFS, APFS) old copies may survive elsewhere, which is why everything is
encrypted under keys that exist only in the keystore: once it is gone, so are they.

A running node holds its keys in memory, so it can still warn the circles after its disk
is wiped. `panic_node` (the control API's ``panic``) first makes the node stop touching
the disk: file logs closed (and stdout/stderr, when they are files), both SQLite stores
moved to empty in-memory databases, the keystore forgotten (it can never be saved again).
Then, if asked, it signs ``member.compromised`` for each circle from memory and answers
with the circles it warned; it pushes the warnings to its peers for at most
`WARN_BOUND_S`, wipes the home itself in case the caller could not, and exits without
running any cleanup that might write. The caller (`kith panic`) does not wait for any of
this: it starts wiping as soon as the request is sent, and wipes once more after the node
has exited or been killed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from kith.identity.errors import KithError
from kith.p2pnet.atomic import fsync_directory, overwrite_fd

if TYPE_CHECKING:
    from kith.p2pnet.circles import MemberCircles
    from kith.p2pnet.home import Home
    from kith.p2pnet.keyfile import Keystore
    from kith.p2pnet.statecache import StateCache
    from kith.p2pnet.store import EnvelopeStore

WARN_BOUND_S = 3.0
"""How long a panicking node may spend warning its circles before it exits."""

log = logging.getLogger("kith.panic")


def kind_of(path: Path, mode: int) -> str:
    """What a file of the home is, for the report: keystore, database, log, socket or other."""
    name = path.name
    if name.startswith(("keystore", ".keystore")):
        return "keystore"
    if ".sqlite" in name:
        return "database"
    if name.endswith(".log") or ".log." in name or path.parent.name == "logs":
        return "log"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


KITH_NAMES = ("keystore.kith", "keystore.kith.lock", "envelopes.sqlite", "state.sqlite", "node.sock", "logs")


def looks_like_home(root: Path) -> bool:
    """Whether ``root`` is (what is left of) a kith home: an empty directory, or one holding
    a file kith makes. A mistyped ``--home ~`` must not wipe someone's whole directory."""
    try:
        names = set(os.listdir(root))
    except NotADirectoryError:
        return False
    return not names or any(name in names for name in KITH_NAMES) or any(n.startswith(".keystore") for n in names)


@dataclass(frozen=True, slots=True)
class HomeFile:
    path: Path
    kind: str
    size: int


def real_home(root: Path) -> Path:
    """The directory a home path names: a home that is itself a link (``--home`` or
    ``KITH_HOME`` pointing at a link to the real directory) is the directory it points to.
    Only this one link, the one the person named, is followed; none inside the home."""
    return Path(os.path.realpath(root)) if os.path.islink(root) and os.path.isdir(root) else root


def list_home(root: Path) -> list[HomeFile]:
    """Every non-directory entry under ``root`` (links are listed, never followed), keystore first."""
    found: list[HomeFile] = []
    root = real_home(root)
    if not root.is_dir() or root.is_symlink():
        return found
    for directory, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(directory) / name
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            size = info.st_size if stat.S_ISREG(info.st_mode) else 0
            found.append(HomeFile(path, kind_of(path, info.st_mode), size))
    found.sort(key=lambda f: (f.kind != "keystore", str(f.path)))
    return found


@dataclass
class WipeReport:
    files: int = 0
    bytes: int = 0
    errors: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    home_removed: bool = False


def _destroy(path: Path, *, random: bool) -> int:
    """Overwrite a regular file in place (never through a link) and unlink it; returns its size."""
    size = 0
    info = os.lstat(path)
    if stat.S_ISREG(info.st_mode):
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        try:
            size = overwrite_fd(fd, random=random)
        finally:
            os.close(fd)
    os.unlink(path)
    return size


def wipe_home(root: Path) -> WipeReport:
    """Overwrite and remove every file under ``root``, then the directories and ``root`` itself.

    Never raises for a file that cannot be removed: it counts it and carries on, so one
    stuck file cannot save the rest. A file that vanishes meanwhile (another process
    wiping too) is neither an error nor counted twice."""
    report = WipeReport()
    if not os.path.lexists(root):
        report.home_removed = True
        return report
    if real_home(root) != root:  # a link to the home: wipe the home, then remove the link
        report = wipe_home(real_home(root))
        try:
            os.unlink(root)
        except FileNotFoundError:
            pass
        except OSError:
            report.errors += 1
        report.home_removed = report.home_removed and not os.path.lexists(root)
        return report
    for entry in list_home(root):
        try:
            report.bytes += _destroy(entry.path, random=entry.kind == "keystore")
            report.files += 1
            report.kinds[entry.kind] += 1
        except FileNotFoundError:
            continue
        except OSError:
            report.errors += 1
    for directory, _dirs, _files in sorted(os.walk(root, followlinks=False), key=lambda d: -len(Path(d[0]).parts)):
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            continue
        except OSError:
            report.errors += 1
    report.home_removed = not os.path.lexists(root)
    fsync_directory(root.parent)
    return report


class PanickingNode(Protocol):
    """What panic needs of a running node (`p2pnet.node.Node` is one): its home, its
    stores and keystore (to stop writing), its circles (to warn them), its peers and a
    way to sync with each (to push the warnings), and its nursery (to do it after the
    reply)."""

    @property
    def home(self) -> Home: ...
    @property
    def keystore(self) -> Keystore: ...
    @property
    def store(self) -> EnvelopeStore: ...
    @property
    def cache(self) -> StateCache | None: ...
    @property
    def circles(self) -> MemberCircles | None: ...
    @property
    def peers(self) -> Mapping[str, object]: ...
    def start_soon(self, task: Callable[..., Awaitable[Any]], *args: Any) -> None: ...
    async def sync_now(self, peer: str) -> object: ...


def stop_writing(node: PanickingNode) -> None:
    """Make the node's process stop touching the disk, keeping its keys in memory."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    for fd in (1, 2):  # a node the client started writes its stderr to a file in the home
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)
        except OSError:
            pass
    for storage in (node.cache, node.store):
        if storage is not None:
            try:
                storage.move_to_memory()
            except Exception:  # noqa: BLE001, S110 - a store that cannot move is wiped anyway
                pass
    node.keystore.forget()


async def panic_node(node: PanickingNode, *, warn: bool) -> dict[str, Any]:
    """The control API's ``panic``: stop writing, answer, then warn (if asked), wipe and exit."""
    stop_writing(node)
    circles = node.circles
    warned = await _warn_circles(circles) if warn and circles is not None else []
    node.start_soon(_deliver_and_exit, node, bool(warned))
    return {"warned": warned, "exits_within_s": WARN_BOUND_S, "pid": os.getpid()}


async def _warn_circles(circles: MemberCircles) -> list[str]:
    """Sign ``member.compromised`` in each circle we are a member of (stored and gossiped
    from memory), each in the circle's author turn (an action may be writing there); returns
    the circles warned."""
    warned: list[str] = []
    for circle in list(circles.circles.values()):
        if circles.identity.member_id not in circle.replica.state.members:
            continue
        try:
            async with circle.authoring:
                circles.author_many(circle, [("member.compromised", {"note": None})])
        except KithError:
            continue  # e.g. waiting for a new key: this circle cannot be warned in time
        warned.append(circle.id.hex())
    return warned


async def _deliver_and_exit(node: PanickingNode, push: bool) -> None:
    try:
        with trio.move_on_after(WARN_BOUND_S - 0.5):
            await trio.sleep(0.2)  # the reply goes out, gossip flushes the warnings
            if push:
                async with trio.open_nursery() as nursery:
                    for peer in list(node.peers):
                        nursery.start_soon(_push_to, node, peer)
    finally:
        try:
            wipe_home(node.home.root)  # in case the caller could not; a no-op once it has
        finally:
            os._exit(0)  # no cleanup, no error log: nothing of this process may write to the disk


async def _push_to(node: PanickingNode, peer: str) -> None:
    try:
        await node.sync_now(peer)
    except Exception:  # noqa: BLE001, S110 - best effort within the bound; the process exits next
        pass
