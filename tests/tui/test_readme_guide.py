"""Issue 14: the README's member guide, run top to bottom as a new user would.

The guide's step-by-step blocks are the fenced blocks whose info string is
``sh kith-guide WHO``: each line starting with ``$ `` is a command WHO types, and the
lines after it are what kith prints (``…`` stands for anything; a word in capitals,
such as ``CODE``, is copied from there into later steps, the way a reader copies an
invite code). Each person has a home of their own (``KITH_HOME``) and types their
passphrase from a file (``KITH_PASSPHRASE_FILE``, as the guide allows for scripts); a
node started with ``&`` listens on loopback at a free port rather than 4747. A step
that reads what someone else did is tried again until it shows it (the network carries
it meanwhile), within a generous bound; every step must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bench.cluster import passphrase_file

from kith.p2pnet.control import socket_in_use

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
KITH = str(Path(sys.executable).with_name("kith"))
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b")
READS = {"feed", "board", "ledger", "proposals", "events", "members", "circles"}
"""Commands that show what others did: tried again until it has arrived."""


@dataclass
class Step:
    who: str
    command: str
    expected: list[str] = field(default_factory=list)


def guide_steps() -> list[Step]:
    readme = (ROOT / "README.md").read_text()
    steps: list[Step] = []
    for who, body in re.findall(r"^```sh kith-guide ([^\n]+)\n(.*?)^```\n", readme, re.MULTILINE | re.DOTALL):
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append(Step(who, line[2:]))
            else:
                steps[-1].expected.append(line)
    return steps


def expected_pattern(line: str) -> tuple[re.Pattern[str], list[str]]:
    """A printed line as a regex: ``…`` is anything, a placeholder captures one word."""
    names = PLACEHOLDER.findall(line)
    pattern = ""
    for part in re.split(r"(…|\b[A-Z][A-Z_]{2,}\b)", line):
        if part == "…":
            pattern += ".*?"
        elif PLACEHOLDER.fullmatch(part):
            pattern += rf"(?P<{part}>\S+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern), names


def matches(printed: str, expected: list[str]) -> dict[str, str] | None:
    """The placeholders captured if every expected line is a printed line, in order."""
    captured: dict[str, str] = {}
    lines = iter(printed.splitlines())
    for want in expected:
        pattern, _ = expected_pattern(want)
        for line in lines:
            found = pattern.fullmatch(line)
            if found:
                captured.update(found.groupdict())
                break
        else:
            return None
    return captured


class Guide:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = passphrase_file(root)
        self.values: dict[str, str] = {}
        self.background: list[subprocess.Popen[str]] = []

    def env(self, who: str) -> dict[str, str]:
        home = self.root / who.replace(" ", "-")
        return {**os.environ, "KITH_INSECURE_TEST_KDF": "1", "KITH_HOME": str(home),
                "KITH_PASSPHRASE_FILE": str(self.secret)}  # fmt: skip

    def substitute(self, text: str) -> str:
        for name in PLACEHOLDER.findall(text):
            assert name in self.values, f"{name} is used before any step printed it"
            text = text.replace(name, self.values[name])
        return text

    def run(self, step: Step) -> None:
        words = shlex.split(self.substitute(step.command), comments=True)
        stdin = None
        if "|" in words:
            at = words.index("|")
            assert words[0] == "echo", step.command
            stdin, words = " ".join(words[1:at]) + "\n", words[at + 1 :]
        assert words[0] == "kith", step.command
        if words[-1] == "&":
            self.start(step, words[1:-1])
            return
        deadline = time.monotonic() + (60 if words[1] in READS else 0)
        while True:
            result = subprocess.run(
                [KITH, *words[1:]], input=stdin, capture_output=True, text=True, env=self.env(step.who), timeout=120,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )  # fmt: skip
            assert result.returncode == 0, f"{step.who}: $ {step.command}\n{result.stderr}"
            captured = matches(result.stdout, step.expected)
            if captured is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # liveness polling for what the network is still carrying
        wanted = "\n".join(step.expected)
        assert captured is not None, f"{step.who}: $ {step.command}\nprinted:\n{result.stdout}\nexpected:\n{wanted}"
        self.values.update(captured)

    def start(self, step: Step, args: list[str]) -> None:
        """`kith node &`, `kith relay run &`: a background node, on loopback at a free port."""
        env = self.env(step.who)
        process = subprocess.Popen(
            [KITH, *args, "--listen", "/ip4/127.0.0.1/tcp/0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        self.background.append(process)
        assert process.stdout is not None
        printed = ""
        deadline = time.monotonic() + 60
        while "listening on" not in printed:
            line = process.stdout.readline()
            assert line and time.monotonic() < deadline, f"{step.who}: $ {step.command} printed {printed!r}"
            printed += line
        captured = matches(printed, step.expected)
        assert captured is not None, f"{step.who}: $ {step.command} printed {printed!r}"
        self.values.update(captured)
        socket = Path(env["KITH_HOME"]) / "node.sock"
        while not socket_in_use(socket):
            assert time.monotonic() < deadline, f"{step.who}: the node never opened its control socket"
            time.sleep(0.05)

    def close(self) -> None:
        for process in reversed(self.background):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


@pytest.fixture
def guide(tmp_path: Path) -> Iterator[Guide]:
    built = Guide(tmp_path)
    try:
        yield built
    finally:
        built.close()


def test_the_guide_has_its_steps() -> None:
    steps = guide_steps()
    assert {step.who for step in steps} == {"relay operator", "Alice", "Sam"}
    assert [s.command for s in steps if s.command.startswith("kith join")] == ["kith join CODE --wait 60"]
    pattern, names = expected_pattern("listening on RELAY_ADDRESS")
    assert names == ["RELAY_ADDRESS"] and pattern.fullmatch("listening on /ip4/1.2.3.4/tcp/4747/p2p/Qm")
    assert matches("a\nCreated circle X (12ab). You are\n", ["Created circle X (…). You are"]) == {}
    assert matches("Created circle X\n", ["Created circle Y"]) is None


def test_the_member_guide_runs_top_to_bottom(guide: Guide) -> None:
    for step in guide_steps():
        guide.run(step)
    assert {"RELAY_ADDRESS", "TOKEN", "CODE"} <= set(guide.values)
