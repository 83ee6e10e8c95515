"""The device: member-written text never in argv, private files, no core dumps, panic that cannot fail."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file

from kith.identity.errors import UsageError
from kith.p2pnet.home import Home
from kith.tui.cli import build_parser
from kith.tui.commands.membership_cmds import _wait_or_kill
from kith.tui.textinput import ARGV_WARNING, read_text

KITH = str(Path(sys.executable).with_name("kith"))
# Every command that carries what a member wrote, and the flag that asks for optional text.
TEXT_COMMANDS = {
    ("post",): None,
    ("edit",): None,
    ("request",): None,
    ("pledge",): None,
    ("checkin",): "--note",
    ("propose",): "--text",
    ("vote",): "--reason",
    ("contribute",): "--note",
    ("disburse",): "--note",
    ("event",): "--text",
    ("approve",): "--vouch",
    ("member", "add"): "--note",
    ("member", "remove"): "--note",
}


def _subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", sorted(TEXT_COMMANDS))
def test_member_text_has_no_argv_form_but_the_explicit_flag(path: tuple[str, ...]) -> None:
    parser = _subparser(build_parser(), path)
    positional = [a.dest for a in parser._actions if not a.option_strings]
    assert not {"text", "description", "note", "reason"} & set(positional)
    options = {o: a for a in parser._actions for o in a.option_strings}
    assert {"--file", "--text-arg"} <= set(options)
    flag = TEXT_COMMANDS[path]
    if flag is not None:
        assert options[flag].nargs == 0, f"{flag} must ask for the text, not carry it"


def test_the_old_argv_form_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["post", "Riverside", "my secret"])
    assert exited.value.code == 2


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_comes_from_stdin_a_file_or_the_explicit_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = Home(tmp_path / "home")
    assert read_text(_args("post", "c"), home, stdin=io.StringIO("from stdin\n")) == "from stdin"
    (tmp_path / "msg.txt").write_text("from a file\nsecond line\n")
    assert read_text(_args("post", "c", "--file", str(tmp_path / "msg.txt")), home) == "from a file\nsecond line"
    assert read_text(_args("post", "c", "--file", "-"), home, stdin=io.StringIO("dash")) == "dash"
    assert capsys.readouterr().err == ""
    assert read_text(_args("post", "c", "--text-arg", "in argv"), home) == "in argv"
    assert capsys.readouterr().err.strip() == ARGV_WARNING
    # Optional text is read only when asked for: a check-in without --note reads nothing.
    assert read_text(_args("checkin", "c", "ok"), home, stdin=io.StringIO("ignored")) is None
    assert read_text(_args("checkin", "c", "ok", "--note"), home, stdin=io.StringIO("rough day")) == "rough day"
    with pytest.raises(UsageError, match="the message is empty; nothing was sent"):
        read_text(_args("post", "c"), home, stdin=io.StringIO("\n"))


def test_text_from_the_editor_leaves_no_draft(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    editor = tmp_path / "editor.sh"
    seen = tmp_path / "seen"
    editor.write_text(f'#!/bin/sh\necho "$1" > {seen}\nprintf "typed in the editor\\n" > "$1"\ntouch "$1.swp"\n')
    editor.chmod(0o700)
    text = read_text(_args("post", "c"), home, stdin=_Terminal(), environ={"EDITOR": str(editor)})
    assert text == "typed in the editor"
    draft = Path(seen.read_text().strip())
    assert draft.parent.parent == home.root, "drafts live in the home, where a panic wipes them"
    assert not draft.parent.exists() and list(home.root.iterdir()) == []
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o700)
    with pytest.raises(UsageError, match="editor exited with code 3; nothing was sent"):
        read_text(_args("post", "c"), home, stdin=_Terminal(), environ={"EDITOR": str(failing)})
    assert list(home.root.iterdir()) == []


def _run_kith(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KITH_PASSPHRASE_FILE"}
    return subprocess.run(
        [KITH, "--home", str(home), *args],
        capture_output=True, text=True, env={**clean, **(env or {})}, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("passphrase", [None, "wrong"], ids=["no-passphrase", "wrong-passphrase"])
def test_panic_with_no_node_wipes_whatever_the_passphrase(tmp_path: Path, passphrase: str | None) -> None:
    home = make_home(tmp_path, "victim")
    home.logs.mkdir()
    (home.logs / "node.log").write_text('{"msg": "node ready"}\n' * 100)
    (home.root / "envelopes.sqlite").write_bytes(os.urandom(5000))
    (home.root / "envelopes.sqlite-wal").write_bytes(os.urandom(3000))
    (home.root / ".keystore.kith.0123.tmp").write_bytes(os.urandom(200))
    extra: list[str] = []
    if passphrase is not None:
        wrong = tmp_path / "wrong"
        wrong.write_text("not the passphrase at all")
        extra = ["--passphrase-file", str(wrong)]
    result = _run_kith(home.root, *extra, "--json", "panic", "--yes", "--warn")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert not home.root.exists() and report["home_removed"] and report["left"] == 0
    # The keystore, its lock file and a leftover of an interrupted save; two stores; one log.
    assert report["files"] == 6 and report["kinds"] == {"keystore": 3, "database": 2, "log": 1}
    assert report["warned"] == [] and not report["node_running"]
    plain = _run_kith(make_home(tmp_path, "again").root, "panic", "--yes", "--warn")
    assert plain.returncode == 0
    assert "Overwrote and deleted 2 file(s)" in plain.stdout and "(2 keystore)" in plain.stdout
    assert "No node was running, so no circle was warned" in plain.stdout


def test_panic_refuses_a_missing_home_or_a_directory_that_is_not_one(tmp_path: Path) -> None:
    result = _run_kith(tmp_path / "nowhere", "panic", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kith: nothing to destroy: {tmp_path / 'nowhere'} does not exist (already wiped, or another --home?)"
    ]
    documents = tmp_path / "documents"  # a mistyped --home must not wipe someone's files
    documents.mkdir()
    (documents / "letter.txt").write_text("dear friend")
    result = _run_kith(documents, "panic", "--yes")
    assert result.returncode == 1 and "does not look like a kith home" in result.stderr
    assert (documents / "letter.txt").read_text() == "dear friend"


def test_harden_process_turns_off_core_dumps_and_tracing() -> None:
    code = (
        "import os, resource; from p2pnet.hardening import harden_process, is_dumpable; harden_process(); "
        "print(resource.getrlimit(resource.RLIMIT_CORE), is_dumpable(), oct(os.umask(0)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    expected_dumpable = "False" if sys.platform.startswith("linux") else "None"
    assert out.split() == ["(0,", "0)", expected_dumpable, "0o77"]


@pytest.mark.slow
def test_a_running_node_keeps_every_file_private_and_cannot_dump_core(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    inherited = os.umask(0o022)  # what a user's shell usually hands kith: the node must not rely on it
    node = NodeProcess(make_home(tmp_path, "river"), secret).start()
    try:
        assert node.proc is not None
        limits = Path(f"/proc/{node.proc.pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"], core
        env = {"KITH_INSECURE_TEST_KDF": "1"}
        home = node.home.root
        created = _run_kith(home, "--passphrase-file", str(secret), "--json", "circle", "create", "Riverside", env=env)
        assert created.returncode == 0, created.stderr
        posted = subprocess.run(
            [KITH, "--home", str(home), "post", "Riverside"], input="hello", capture_output=True, text=True,
            env={**os.environ, **env}, timeout=60,
        )  # fmt: skip
        assert posted.returncode == 0, posted.stderr
        node.call("sync")
    finally:
        node.stop()
        os.umask(inherited)
    entries = [home, *home.rglob("*")]
    names = {p.relative_to(home).as_posix() for p in entries[1:]}
    assert {"keystore.kith", "envelopes.sqlite", "state.sqlite", "logs/node.log"} <= names
    for path in entries:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {oct(mode)}"


def test_a_node_that_does_not_exit_in_time_is_killed() -> None:
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _wait_or_kill(stuck.pid, deadline=time.monotonic() + 0.3)
        assert stuck.wait(timeout=10) == -signal.SIGKILL
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()


def test_panic_through_a_symlinked_home_destroys_the_real_one(tmp_path: Path) -> None:
    """A home reached through a link (KITH_HOME pointing at one) once destroyed 0 files and
    left the keystore behind; the report must count what is really gone."""
    home = make_home(tmp_path, "real")
    link = tmp_path / "link"
    link.symlink_to(home.root)
    result = _run_kith(link, "--json", "panic", "--yes")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == 2 and report["kinds"] == {"keystore": 2} and report["left"] == 0
    assert not home.root.exists() and not os.path.lexists(link)
