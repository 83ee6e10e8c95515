"""Real `kith` node processes for crash tests: start, wait until ready, kill -9, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from p2pnet.control import socket_in_use
from p2pnet.home import Home
from tui.rpc import NodeClient

KITH = str(Path(sys.executable).with_name("kith"))


class NodeProcess:
    def __init__(self, home: Home, passphrase_file: Path, *, relay: bool = False) -> None:
        self.home = home
        self.passphrase_file = passphrase_file
        self.relay = relay
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self, timeout: float = 30.0) -> NodeProcess:
        args = [KITH, "--home", str(self.home.root), "--passphrase-file", str(self.passphrase_file)]
        args += ["relay", "run"] if self.relay else ["node"]
        args += ["--listen", "/ip4/127.0.0.1/tcp/0"]
        env = {**os.environ, "KITH_INSECURE_TEST_KDF": "1"}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
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


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
