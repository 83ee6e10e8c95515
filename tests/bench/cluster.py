"""Real `kith` node processes on loopback, for benchmarks and crash tests.

`make_home` prepares a home with deliberately cheap KDF costs (these homes are
throwaway); `NodeProcess` starts `kith node` / `kith relay run` as a child process, waits
until it listens, talks to it over its control socket, and can kill -9 it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kith.identity.keys import MemberIdentity
from kith.identity.keystore import TEST_KDF, KeystoreData
from kith.p2pnet.control import socket_in_use, unix_path
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.tui.rpc import NodeClient

KITH = str(Path(sys.executable).with_name("kith"))
PASSPHRASE = "throwaway cluster passphrase"


def make_home(root: Path, name: str, *, relay: bool = False) -> Home:
    home = Home(root / name)
    home.ensure()
    identity = None if relay else MemberIdentity.generate(name, now=int(time.time()))
    Keystore.create(home.keystore, PASSPHRASE, KeystoreData.generate(identity), TEST_KDF)
    return home


def passphrase_file(root: Path) -> Path:
    path = root / "passphrase"
    path.write_text(PASSPHRASE)
    path.chmod(0o600)
    return path


class NodeProcess:
    def __init__(
        self,
        home: Home,
        passphrase_file: Path,
        *,
        relay: bool = False,
        listen: str = "/ip4/127.0.0.1/tcp/0",
        env: dict[str, str] | None = None,
        stderr: Path | None = None,
        wrap: list[str] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.home = home
        self.passphrase_file = passphrase_file
        self.relay = relay
        self.listen = listen
        """A fixed port lets peers redial the same address after a restart."""
        self.env = dict(env or {})
        self.stderr = stderr
        """Where the process's stderr goes (appended; default: discarded)."""
        self.wrap = list(wrap or [])
        """An argv prefix that runs the node elsewhere, e.g. ``ip netns exec NS`` (netns.py)."""
        self.extra = list(extra or [])
        """More options for `kith node` / `kith relay run` (e.g. ``--announce ADDR``)."""
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self, timeout: float = 30.0) -> NodeProcess:
        args = [*self.wrap, KITH, "--home", str(self.home.root), "--passphrase-file", str(self.passphrase_file)]
        args += ["relay", "run"] if self.relay else ["node"]
        args += ["--listen", self.listen, *self.extra]
        env = {**os.environ, "KITH_INSECURE_TEST_KDF": "1", **self.env}
        if self.stderr is None:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        else:
            with open(self.stderr, "a") as errors:
                self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"node exited early with {self.proc.wait()}")
            if "listening on" in line:
                self.address = line.split("listening on", 1)[1].strip()
                break
        while not socket_in_use(self.home.socket):
            if time.monotonic() > deadline:
                raise RuntimeError("node never opened its control socket")
            time.sleep(0.05)
        return self

    def call(self, method: str, **params: Any) -> Any:
        with NodeClient(self.home.socket, timeout=60) as client:
            return client.call(method, **params)

    def peak_rss_mb(self) -> float | None:
        """The process's peak resident memory so far (VmHWM), or None if it is not running."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class EventListener:
    """A control-API connection subscribed to a node's events, read in a background thread."""

    def __init__(self, home: Home, events: list[str]) -> None:
        import json
        import socket
        import threading

        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with unix_path(home.socket) as address:
            self._sock.connect(address)
        request = {"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"events": events}}
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        self._reader = self._sock.makefile("rb")
        self._reader.readline()  # the subscribe reply

        def pump() -> None:
            for line in self._reader:
                message = json.loads(line)
                self.arrivals.append((time.time(), message.get("params", {})))

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._sock.close()


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
