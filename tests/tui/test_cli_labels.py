"""Issue 12, item 7: short labels (a circle's name, titles, a content warning, a spend's
recipient) need never be on the command line, where every user reads them (``ps``).

Real `kith` processes against a real node: a needed label left out is asked for in a
(pseudo-)terminal, ``-`` reads one label from standard input, and a label still given on
the command line works with one warning line. While a command holds a label it read, no
process's command line on the machine contains it.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file

from kith.tui.cli import build_parser
from kith.tui.labels import Label

pytestmark = pytest.mark.slow
KITH = str(Path(sys.executable).with_name("kith"))
ENV = {**os.environ, "KITH_INSECURE_TEST_KDF": "1"}
SECRET_NAME = "Trans youth support, Leipzig"

# Every free-text label, by command: what must never need the command line.
LABELS = {
    ("init",): {"name"},
    ("circle", "create"): {"name", "description"},
    ("circle", "relay-token"): {"label"},
    ("post",): {"cw"},
    ("edit",): {"cw"},
    ("profile",): {"name", "pronouns", "skill"},
    ("propose",): {"title", "recipient", "purpose"},
    ("event",): {"title", "place"},
    ("report",): {"reason"},
    ("hide",): {"reason"},
}
# Arguments that take a string but are not free text a member writes: references to
# circles, members and items (ids or names as listings show them), codes, paths, amounts
# with their currency or unit (no more telling than the category beside them), dates,
# addresses, and the explicit argv flag for text.
NOT_LABELS = {
    "circle", "id", "target", "emoji", "pledge", "request", "item", "proposal", "contribution", "event", "member",
    "code", "address", "token", "file", "text_file", "text_arg", "home", "passphrase_file", "new_passphrase_file",
    "backup_passphrase_file", "guidelines_file", "amount", "currency", "starts", "reply_to", "expires", "revoke",
    "unit", "rule", "listen", "announce", "bootstrap", "names", "root", "closes", "alloc_file", "category", "ask",
    "post", "monthly", "month", "last",
}  # fmt: skip


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (path + (name,), sub)
                yield from _commands(sub, path + (name,))


def test_every_free_text_argument_is_a_label() -> None:
    found = {}
    for path, parser in _commands(build_parser()):
        labels: list[Label] = parser.get_default("labels") or []
        if labels:
            found[path] = {label.dest for label in labels}
        for action in parser._actions:
            takes_text = action.nargs != 0 and action.choices is None and action.type is None
            if takes_text and action.dest not in NOT_LABELS | {"help", "labels"}:
                assert action.dest in found.get(path, set()), f"kith {' '.join(path)}: {action.dest} is free text"
    assert found == LABELS


class Kith:
    """One `kith` command on a pseudo-terminal (stdin and stderr); stdout is a pipe."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            [KITH, *args], stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=ENV, start_new_session=True
        )
        os.close(slave)
        self.seen = b""

    def expect(self, prompt: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while prompt.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0 and self.process.poll() is None, f"no {prompt!r}; the terminal showed {self.seen!r}"
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the command closed the terminal
                    pass
        self.seen = self.seen.split(prompt.encode(), 1)[1]

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        out, _ = self.process.communicate(timeout=timeout)
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        return self.process.returncode, out.decode(), self.seen.decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)


def command_lines_mentioning(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needle.encode() in cmdline:
                found.append(f"{entry.name}: {cmdline!r}")
    return found


class World:
    def __init__(self, root: Path) -> None:
        self.secret = passphrase_file(root)
        self.node = NodeProcess(make_home(root, "alice"), self.secret).start()
        self.home = self.node.home.root
        self.argv = ["--home", str(self.home), "--passphrase-file", str(self.secret)]
        created = self.run("--json", "circle", "create", "Riverside")
        assert created.returncode == 0, created.stderr
        self.circle = json.loads(created.stdout)["id"]

    def run(self, *args: str, text: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
        stdin: dict[str, Any] = {"stdin": subprocess.DEVNULL} if text is None else {"input": text}
        if isinstance(text, str):
            stdin["input"] = text.encode()
        result = subprocess.run([KITH, *self.argv, *args], capture_output=True, env=ENV, timeout=120, **stdin)
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode(errors="replace")
        )

    def ops(self) -> int:
        return int(self.node.call("state_hash", circle=self.circle)["ops"])

    def circles(self) -> list[str]:
        return [c["name"] for c in self.node.call("circles")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = World(tmp_path_factory.mktemp("labels"))
    try:
        yield built
    finally:
        built.node.stop()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("kith: warning:")]


def test_a_needed_label_left_out_is_asked_for_in_a_terminal(world: World) -> None:
    kith = Kith(*world.argv, "--json", "circle", "create", "--description", "-")
    try:
        kith.expect("Circle name: ")
        kith.type(SECRET_NAME + "\n")
        kith.expect("Circle description: ")
        # The command now holds the name: no command line on the machine shows it.
        assert kith.process.poll() is None
        assert command_lines_mentioning(SECRET_NAME) == []
        kith.type("we meet on Thursdays\n")
        code, out, terminal = kith.finish()
    finally:
        kith.close()
    assert code == 0, terminal
    assert "warning" not in terminal
    assert SECRET_NAME in world.circles() and json.loads(out)["id"]
    # A spend's title, recipient and purpose: each asked for in turn, once amount and currency are known.
    kith = Kith(*world.argv, "--json", "propose", "Riverside", "spend", "--amount", "12.50", "--currency", "EUR")
    try:
        for prompt, answer in [("Proposal title: ", "Train fares"), ("Recipient: ", "alice"), ("Purpose: ", "to flee")]:
            kith.expect(prompt)
            kith.type(answer + "\n")
        code, out, terminal = kith.finish()
    finally:
        kith.close()
    assert code == 0, terminal
    proposals = world.run("--json", "proposals", "Riverside").stdout
    assert "Train fares" in proposals and "to flee" in proposals
    # Ctrl+D at the prompt: nothing is done.
    before = world.circles()
    kith = Kith(*world.argv, "circle", "create")
    try:
        kith.expect("Circle name: ")
        kith.type("\x04")
        code, _, terminal = kith.finish()
    finally:
        kith.close()
    assert code == 2 and "no circle name given; nothing was done" in terminal
    assert world.circles() == before


def test_a_label_from_stdin_is_never_on_a_command_line(world: World) -> None:
    argv = [KITH, *world.argv, "--json", "circle", "create", "-"]
    assert not any(SECRET_NAME + " 2" in arg for arg in argv)
    kith = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        assert kith.stdin is not None
        kith.stdin.write((SECRET_NAME + " 2\n").encode())
        kith.stdin.flush()
        # kith reads standard input to its end: it is still running, the name in its hands
        # or in the pipe, and no command line on the machine shows it.
        assert kith.poll() is None
        assert command_lines_mentioning(SECRET_NAME + " 2") == []
        out, err = kith.communicate(timeout=60)
    finally:
        if kith.poll() is None:
            kith.kill()
            kith.wait(10)
    assert kith.returncode == 0, err
    assert warnings(err.decode()) == []
    assert SECRET_NAME + " 2" in world.circles()
    # A content warning from stdin, the post itself from a file.
    message = Path(world.home).parent / "message.txt"
    message.write_text("the hearing went badly\n")
    posted = world.run("--json", "post", "Riverside", "--cw", "-", "--file", str(message), text="court, police\n")
    assert posted.returncode == 0, posted.stderr
    assert warnings(posted.stderr) == []
    feed = world.node.call("views", circle=world.circle)["feed"]
    assert any(item["content_warning"] == "court, police" for item in feed)


def test_labels_from_stdin_get_the_checks_of_argv(world: World) -> None:
    before = world.ops()
    for source in ("argv", "stdin"):
        for value, code, expected in [
            ("n" * 65, 1, "the display name is too long: at most 64 characters"),
            ("a \x1b[31mred\x1b[0m name", 2, "holds a control character"),
        ]:
            argv, text = (["--name", value], None) if source == "argv" else (["--name", "-"], value + "\n")
            result = world.run("profile", "Riverside", *argv, text=text)
            assert result.returncode == code, (source, result.stderr)
            assert expected in result.stderr, (source, result.stderr)
            assert "\x1b" not in result.stderr
    not_utf8 = world.run("post", "Riverside", "--cw", "-", "--text-arg", "x", text=b"\xff\xfe\n")
    assert not_utf8.returncode == 2 and "not UTF-8 text" in not_utf8.stderr
    empty = world.run("event", "Riverside", "-", "--starts", "2030-01-01T18:00", text="\n")
    assert empty.returncode == 2 and "the event title read from standard input is empty" in empty.stderr
    assert world.ops() == before


def test_one_dash_per_command_and_needed_labels_without_a_terminal(world: World) -> None:
    before, circles = world.ops(), world.circles()
    two = world.run(
        "propose", "Riverside", "spend", "-", "--amount", "5", "--currency", "EUR", "--recipient", "-",
        "--purpose", "rent", text="Rent\nalice\n",
    )  # fmt: skip
    assert two.returncode == 2
    assert "standard input can give only one thing, not '-' as TITLE and '--recipient -'" in two.stderr
    with_text = world.run("post", "Riverside", "--cw", "-", text="a warning\n")
    assert with_text.returncode == 2
    assert "not '--cw -' and the message" in with_text.stderr and "--file PATH" in with_text.stderr
    missing = world.run("circle", "create")
    assert missing.returncode == 2
    assert "no circle name given: give '-' as NAME to read it from standard input" in missing.stderr
    spend = world.run("propose", "Riverside", "spend", "Rent", "--amount", "5", "--currency", "EUR")
    assert spend.returncode == 2 and "no recipient given: give '--recipient -'" in spend.stderr
    assert world.ops() == before and world.circles() == circles


def test_labels_on_the_command_line_still_work_with_one_warning(world: World) -> None:
    created = world.run("--json", "circle", "create", "Night shift", "--description", "carers")
    assert created.returncode == 0, created.stderr
    (line,) = warnings(created.stderr)
    assert "NAME and --description on the command line can be read by other users (ps, /proc)" in line
    assert "'-' instead of a label reads it from standard input" in line
    # With --text-arg too: still one line, naming it with the labels.
    posted = world.run("--json", "post", "Riverside", "--cw", "grief", "--text-arg", "my dog died")
    assert posted.returncode == 0, posted.stderr
    (line,) = warnings(posted.stderr)
    assert line.startswith("kith: warning: --text-arg and --cw on the command line")
    # Nothing on the command line, nothing to warn about.
    quiet = world.run("--json", "post", "Riverside", text="hello\n")
    assert quiet.returncode == 0 and warnings(quiet.stderr) == []


def test_init_takes_the_display_name_from_stdin(world: World, tmp_path: Path) -> None:
    home = tmp_path / "newcomer"
    argv = [KITH, "--home", str(home), "--passphrase-file", str(world.secret), "--json"]
    init = subprocess.run([*argv, "init", "--name", "-"], input=b"Ana\n", capture_output=True, env=ENV, timeout=120)
    assert init.returncode == 0, init.stderr
    assert [line for line in warnings(init.stderr.decode()) if "KITH_INSECURE_TEST_KDF" not in line] == []
    whoami = subprocess.run([*argv, "whoami"], capture_output=True, env=ENV, timeout=60, stdin=subprocess.DEVNULL)
    assert json.loads(whoami.stdout)["name"] == "Ana"
