"""After `kith panic`, no byte of any key, keystore or plaintext is left on the disk.

The home lives on a small ext4 file system in an image file, loop-mounted (root only).
Real `kith` processes create an identity, change its passphrase, join a circle, receive a
rotated key and post known markers, so the keystore is saved several times; then `kith
panic --yes --warn` runs with the node up and no passphrase at all. After unmounting, the
raw bytes of the whole image (live files, free blocks, journal) are searched for every
secret key, every version of the encrypted keystore, envelope ciphertext and the markers.

Before the panic the same search must find the current keystore and envelopes on the
image: the test can see what it looks for, so it fails if the wipe is replaced by a
rename, a move aside or a plain unlink (the blocks keep their bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import NodeProcess, make_home, wait_for

from kith.identity.keystore import HEADER_BYTES
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
KITH = str(Path(sys.executable).with_name("kith"))
FIRST = "first passphrase for the seized laptop"
SECOND = "second passphrase after a scare"
CLUSTER = "throwaway cluster passphrase"
CIRCLE = "Riverside-3b7e"
MARKERS = [b"MARKER-victim-post-7f3a", b"MARKER-victim-note-91c2", b"MARKER-alice-post-c0de", CIRCLE.encode()]
IMAGE_MB = 64


def _run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


@contextmanager
def loop_mounted(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A fresh ext4 file system in an image file, mounted; yields (image, mount point)."""
    if os.geteuid() != 0:
        pytest.skip("loop-mounting a file system image needs root")
    if shutil.which("mkfs.ext4") is None or shutil.which("mount") is None:
        pytest.skip("mkfs.ext4 and mount are needed to build the test file system")
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    with open(image, "wb") as handle:
        handle.truncate(IMAGE_MB * 1024 * 1024)
    mount.mkdir()
    made = _run("mkfs.ext4", "-q", "-F", str(image), check=False)
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    mounted = _run("mount", "-o", "loop", str(image), str(mount), check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount a file system image here: {mounted.stderr.strip()}")
    try:
        yield image, mount
    finally:
        if _run("umount", str(mount), check=False).returncode != 0:
            _run("umount", "-l", str(mount), check=False)


def _unmount(mount: Path) -> None:
    result = _run("umount", str(mount), check=False)
    assert result.returncode == 0, f"cannot unmount the test file system: {result.stderr.strip()}"


def kith(home: Path, *args: str, passphrase: Path | None = None, text: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "KITH_PASSPHRASE_FILE"}
    env["KITH_INSECURE_TEST_KDF"] = "1"
    cmd = [KITH, "--home", str(home), "--json", *args]
    if passphrase is not None:
        cmd[3:3] = ["--passphrase-file", str(passphrase)]
    stdin = {"stdin": subprocess.DEVNULL} if text is None else {"input": text}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, **stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _keys_of(keystore: Keystore) -> list[bytes]:
    data = keystore.data
    found = [data.storage_key, data.network.seed]
    assert data.identity is not None
    found += [data.identity.sign_seed, data.identity.dh_secret]
    for entry in data.circles.values():
        found += list(entry["epochs"].values()) + list(entry["contents"].values())
    return found


def _envelope_samples(store: Path) -> list[bytes]:
    """64-byte pieces of every stored envelope's ciphertext (read while the node runs: WAL)."""
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT data FROM envelopes").fetchall()
    return [bytes(row[0])[-64:] for row in rows]


def _feed_has(node: NodeProcess, circle: str, marker: bytes) -> bool:
    try:
        views = node.call("views", circle=circle)
    except Exception:  # noqa: BLE001 - the circle or its key has not arrived yet
        return False
    return any(marker.decode() in json.dumps(item) for item in views["feed"])


def test_panic_leaves_no_key_keystore_or_plaintext_byte_on_the_disk(tmp_path: Path) -> None:
    first = _secret_file(tmp_path / "first", FIRST)
    second = _secret_file(tmp_path / "second", SECOND)
    cluster = _secret_file(tmp_path / "cluster", CLUSTER)
    with loop_mounted(tmp_path) as (image, mount):
        victim_home = Home(mount / "kith")
        versions: list[bytes] = []
        alice = victim = None
        try:
            kith(victim_home.root, "init", "--name", "victim", passphrase=first)
            versions.append(victim_home.keystore.read_bytes())
            kith(victim_home.root, "passphrase", "--new-passphrase-file", str(second), passphrase=first)
            versions.append(victim_home.keystore.read_bytes())

            alice = NodeProcess(make_home(tmp_path, "alice"), cluster).start()
            victim = NodeProcess(victim_home, second).start()
            circle = kith(alice.home.root, "circle", "create", CIRCLE, passphrase=cluster)["id"]
            code = kith(alice.home.root, "invite", CIRCLE, passphrase=cluster)["code"]
            kith(victim_home.root, "connect", alice.address, passphrase=second)
            assert kith(victim_home.root, "join", code, "--wait", "60", passphrase=second)["status"] == "joined"
            versions.append(victim_home.keystore.read_bytes())
            kith(victim_home.root, "post", circle, passphrase=second, text=MARKERS[0].decode())
            kith(
                victim_home.root, "checkin", circle, "struggling", "--note", passphrase=second, text=MARKERS[1].decode()
            )
            kith(alice.home.root, "rotate", circle, passphrase=cluster)  # a new key: the victim saves again
            kith(alice.home.root, "post", circle, passphrase=cluster, text=MARKERS[2].decode())
            wait_for(lambda: _feed_has(victim, circle, MARKERS[2]), timeout=60)
            victim.call("sync")
            versions.append(victim_home.keystore.read_bytes())
            assert len(set(versions)) >= 4, "the keystore was saved at least four times"

            keys = _keys_of(Keystore.unlock(victim_home.keystore, SECOND))
            envelopes = _envelope_samples(victim_home.store)
            assert len(envelopes) >= 3
            # Nothing is stored in plaintext even before the panic (logs, caches, config).
            for path in victim_home.root.rglob("*"):
                if path.is_file():
                    content = path.read_bytes()
                    assert not any(m in content for m in MARKERS), path
                    assert not any(k in content for k in keys), path
                    assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
            os.sync()
            raw = image.read_bytes()
            # The search sees what it looks for: the current keystore and the envelopes are on the image.
            assert versions[-1][HEADER_BYTES:][:64] in raw
            assert all(piece in raw for piece in envelopes)

            started = time.monotonic()
            result = kith(victim_home.root, "panic", "--yes", "--warn")  # no passphrase anywhere
            took = time.monotonic() - started
            assert victim.proc is not None
            victim.proc.wait(timeout=10)
            assert result["destroyed"] and result["home_removed"] and not victim_home.root.exists()
            assert result["warned"] == [circle]
            assert result["kinds"]["keystore"] >= 1 and result["kinds"]["database"] >= 2
            assert result["files"] == sum(result["kinds"].values()) and result["left"] == 0
            print(f"panic took {took:.2f} s ({result['seconds']} s inside kith) for {result['files']} files")
            # The warning reached the circle: the victim is out, so the seized keys read nothing new.
            wait_for(lambda: len(kith(alice.home.root, "members", circle, passphrase=cluster)) == 1, 30)  # a list
        finally:
            for node in (victim, alice):
                if node is not None:
                    node.stop()
        _unmount(mount)
        raw = image.read_bytes()
        for version in versions:
            for offset in range(HEADER_BYTES, len(version) - 32, 32):
                assert version[offset : offset + 32] not in raw, "an encrypted keystore survives on the disk"
        for key in keys:
            assert key not in raw, "a secret key survives on the disk"
        for piece in envelopes:
            assert piece not in raw, "envelope ciphertext survives on the disk"
        for marker in MARKERS:
            assert marker not in raw, f"plaintext {marker!r} survives on the disk"
