"""`kith demo`: a living circle on this machine, in a temporary home, gone when you quit.

Starts the demo world (tui/demo_world.py: a relay and four members in one background
process, in its own process group) and, once the seeded circle has reached the fourth
member's node, opens the client attached to it. On quit, Ctrl+C or any error, the world
is told to stop (its stdin closes), then its whole process group gets SIGTERM and, if
anything lingers, SIGKILL; the temporary home is removed. Nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from kith.identity.errors import KithError, LocalProtocolError
from kith.p2pnet.home import Home

WORLD_START_TIMEOUT_S = 30.0
WORLD_READY_TIMEOUT_S = 90.0
"""Seeding takes ~2 s on a quiet 2-core machine; a loaded one can take many times that."""
STOP_GRACE_S = 5.0


class DemoWorld:
    """The background process that runs the demo's relay and members."""

    def __init__(self, root: Path, *, static: bool = False, pace: float | None = None, cleanup: bool = False) -> None:
        self.root = root
        args = [sys.executable, "-m", "kith.tui.demo_world", str(root)]
        if cleanup:
            args.append("--cleanup")  # even if `kith demo` itself is killed, the world removes the home
        if static:
            args.append("--static")
        if pace is not None:
            args += ["--pace", str(pace)]
        errors = root / "world.err"
        with errors.open("wb") as child_errors:
            # Our own handle on the world's errors, opened before it starts: with --cleanup
            # a world that fails removes its home, this file with it, before we read why.
            self._errors = errors.open("rb")  # noqa: SIM115 - closed in `stop`
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, argv built here
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=child_errors,
                start_new_session=True,  # its own process group: one killpg ends every part of it
                text=True,
            )
        self.user: dict[str, Any] = {}
        self.ready: dict[str, Any] = {}

    @property
    def stdout(self) -> IO[str]:
        if self.process.stdout is None:
            raise LocalProtocolError("the demo world was started without a pipe for its output")
        return self.process.stdout

    def wait_for(self, event: str, timeout: float = WORLD_START_TIMEOUT_S) -> dict[str, Any]:
        """Read the world's reports until ``event`` (blocking; the world reports within seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.stdout.readline()
            if not line:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=STOP_GRACE_S)  # (its output ended: it is exiting)
                raise KithError(
                    f"the demo could not start: {_last_words(self._errors.read().decode(errors='replace'))}"
                )
            report = json.loads(line)
            if report.get("event") == "user":
                self.user = report
            elif report.get("event") == "ready":
                self.ready = report
            if report.get("event") == event:
                return report
        raise KithError("the demo took too long to start")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                if self.process.stdin is not None:
                    self.process.stdin.close()  # the world's cue to stop cleanly
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.process.wait(timeout=STOP_GRACE_S)
                if sig == signal.SIGTERM:
                    continue  # the leader is gone; SIGKILL sweeps anything it left in the group
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE_S)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._errors.close()


def _last_words(errors: str) -> str:
    """The last line of the world's error output that says something (a traceback of an
    exception group ends in its frame: ``+----``)."""
    for line in reversed(errors.splitlines()):
        text = line.strip().lstrip("|").strip()
        if text.strip("+-"):
            return text
    return "the world exited"


def run_demo(*, pace: float | None = None) -> int:
    root = Path(tempfile.mkdtemp(prefix="kith-demo-"))
    world: DemoWorld | None = None
    print("kith demo: starting a relay and three members on this machine (throwaway keys)…", flush=True)
    try:
        world = DemoWorld(root, pace=pace, cleanup=True)
        from kith.tui.app import make_app  # (imported while the world starts)

        user = world.wait_for("user")
        # The client opens once the seeded circle has reached the user's node, so its first
        # screen is the living circle rather than "No circles yet" for a few seconds.
        world.wait_for("ready", timeout=WORLD_READY_TIMEOUT_S)
        app = make_app(Home(Path(user["home"])), demo=True)
        app.run()
    finally:
        if world is not None:
            world.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("kith demo: stopped; the temporary circle and its keys are deleted.", flush=True)
    return 0
