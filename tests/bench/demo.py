"""`kith demo` as someone sees it: how soon the seeded circle is on screen.

`demo_ready_s` is the issue's figure: from the client's first frame (the terminal switching
to the client's screen) to the seeded circle's feed on it. `demo_feed_s` is the whole wait,
from typing `kith demo` to that feed. The median of three runs, each in a pseudo-terminal
of 120x40, with the demo's own (throwaway) key protection.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench import Figures, register
from kith.tui.demo_world import CIRCLE_NAME

KITH = str(Path(sys.executable).with_name("kith"))
ANSI = re.compile(
    r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[()][0-9A-Za-z]|[=>78cDEHMNZ])"
)
CLIENT_SCREEN = b"\x1b[?1049h"
"""What a Textual app writes first: the switch to the terminal's alternate screen."""
FEED_SHOWN = "Welcome, everyone"
"""The start of the organizer's first post in the seeded feed (tui/demo_world.py)."""


class Terminal:
    """A child process on a pseudo-terminal of a given size; what it draws, as plain text."""

    def __init__(self, args: list[str], env: dict[str, str], size: tuple[int, int] = (120, 40)) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.raw = b""

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.raw += os.read(self.master, 1 << 16)
            except OSError:  # the child closed the terminal
                time.sleep(timeout)

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def wait_for(self, predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        while not predicate(self.text):
            if time.monotonic() - start > timeout or self.process.poll() is not None:
                raise AssertionError(f"not seen in {timeout} s; the terminal showed:\n{self.text[-3000:]}")
            self.read(0.05)
        return time.monotonic() - start

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(5)
        os.close(self.master)


def _one_run(root: Path) -> tuple[float, float]:
    env = {**os.environ, "TERM": "xterm-256color", "TMPDIR": str(root), "COLUMNS": "120", "LINES": "40"}
    env.pop("KITH_INSECURE_TEST_KDF", None)  # the demo chooses its own (throwaway) key protection
    started = time.monotonic()
    terminal = Terminal([KITH, "demo", "--pace", "30"], env)
    try:
        terminal.wait_for(lambda _text: CLIENT_SCREEN in terminal.raw, timeout=60)
        client = time.monotonic()
        terminal.wait_for(lambda text: CIRCLE_NAME in text and FEED_SHOWN in text, timeout=60)
        shown = time.monotonic()
        deadline = time.monotonic() + 20
        while terminal.process.poll() is None and time.monotonic() < deadline:
            terminal.send(b"q")  # again until it quits: a key can land before the screen takes keys
            terminal.read(1.0)  # and keep draining the terminal, or the client blocks writing to it
    finally:
        terminal.close()
    return shown - client, shown - started


@register("demo_ready_s", "demo_feed_s")
def bench_demo() -> Figures:
    ready, feed = [], []
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="kith-bench-demo-") as root:
            after_client, after_command = _one_run(Path(root))
        ready.append(after_client)
        feed.append(after_command)
    return {"demo_ready_s": round(statistics.median(ready), 2), "demo_feed_s": round(statistics.median(feed), 2)}
