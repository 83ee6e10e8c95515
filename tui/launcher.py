"""Starting a member's node for the terminal client, and stopping it again.

The client never holds keys itself: it spawns ``kith --home HOME node`` and hands it the
passphrase through a pipe (``--passphrase-fd``), never on the command line or in the
environment, where other users could read it. The caller checks the passphrase first
(`Keystore.unlock`), so a wrong one is a message and another try, not a dead child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

from kith.identity.errors import KithError
from kith.p2pnet.atomic import create_private
from kith.p2pnet.control import socket_in_use
from kith.p2pnet.home import Home

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class NodeStartFailed(KithError):
    pass


class OwnedNode:
    """A node process this client started (and so stops on exit)."""

    def __init__(self, home: Home, process: asyncio.subprocess.Process) -> None:
        self.home = home
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        """SIGTERM (the node saves its state and exits), then SIGKILL if it hangs."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def node_command(home: Home, fd: int, extra_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kith.tui.cli",
        "--home",
        str(home.root),
        "node",
        "--passphrase-fd",
        str(fd),
        *extra_args,
    ]


async def start_node(home: Home, passphrase: str, extra_args: list[str] | None = None) -> OwnedNode:
    """Spawn the node and wait until its control socket answers."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, passphrase.encode() + b"\n")  # far below the pipe buffer: never blocks
    finally:
        os.close(write_fd)
    home.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    stderr_path = home.logs / "client-started-node.err"
    create_private(stderr_path)
    try:
        with open(stderr_path, "wb") as stderr:  # noqa: ASYNC230 - creating a small local log file before the node starts
            process = await asyncio.create_subprocess_exec(
                *node_command(home, read_fd, extra_args or []),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,  # a file, not a pipe nobody reads: the node can never block on it
                pass_fds=(read_fd,),
            )
    finally:
        os.close(read_fd)
    owned = OwnedNode(home, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not socket_in_use(home.socket):
        if process.returncode is not None or time.monotonic() > deadline:
            await owned.stop()
            errors = stderr_path.read_text(errors="replace").strip().splitlines()
            detail = errors[-1] if errors else f"exit code {process.returncode}"
            raise NodeStartFailed(f"your node did not start: {detail}")
        try:
            await asyncio.wait_for(process.wait(), 0.05)
        except TimeoutError:
            pass
    return owned
