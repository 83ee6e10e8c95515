"""The command line: set-up works, and every failure is one clear line with a non-zero code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kith.tui.cli import EXIT_BAD_PASSPHRASE, EXIT_ERROR, main

PASS = "a long enough passphrase"


def _errors(err: str) -> list[str]:
    """stderr lines, minus the warning the tests' weak KDF setting prints."""
    return [line for line in err.splitlines() if not line.startswith("kith: warning:")]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KITH_HOME", str(tmp_path / "home"))
    secret = tmp_path / "pass.txt"
    secret.write_text(PASS + "\n")
    monkeypatch.setenv("KITH_PASSPHRASE_FILE", str(secret))
    return tmp_path / "home"


def test_init_then_whoami(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--name", "River"]) == 0
    assert "Fingerprint:" in capsys.readouterr().out
    assert main(["whoami", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["name"] == "River" and len(card["member_id"]) == 64
    assert (home / "keystore.kith").stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700


def test_init_refuses_to_overwrite(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--name", "River"]) == 0
    before = (home / "keystore.kith").read_bytes()
    assert main(["init", "--name", "Other"]) == EXIT_ERROR
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "already exists" in err[0]
    assert (home / "keystore.kith").read_bytes() == before


def test_wrong_passphrase_is_one_line(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--name", "River"]) == 0
    capsys.readouterr()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase at all")
    assert main(["--passphrase-file", str(wrong), "whoami"]) == EXIT_BAD_PASSPHRASE
    assert _errors(capsys.readouterr().err) == ["kith: wrong passphrase"]


def test_passphrase_change(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--name", "River"]) == 0
    new = tmp_path / "new.txt"
    new.write_text("an even longer new passphrase")
    assert main(["passphrase", "--new-passphrase-file", str(new)]) == 0
    assert main(["whoami"]) == EXIT_BAD_PASSPHRASE
    assert main(["--passphrase-file", str(new), "whoami"]) == 0


@pytest.mark.parametrize("weak", ["abc", "password1234", "aaaaaaaaaaaaaaaa", "123456789012"])
def test_weak_new_passphrase_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], weak: str
) -> None:
    short = tmp_path / "short.txt"
    short.write_text(weak)
    assert main(["--passphrase-file", str(short), "init", "--name", "River"]) == EXIT_ERROR
    assert _errors(capsys.readouterr().err) == [
        "kith: choose a stronger passphrase: at least 12 characters, best four or more random words "
        "(no runs, repeats or common passwords)"
    ]
    assert not (home / "keystore.kith").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:50], "truncated"),
        (lambda b: b"NOTKITH!" + b[8:], "wrong magic"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "altered"),
    ],
)
def test_damaged_keystore_is_one_line(home: Path, capsys: pytest.CaptureFixture[str], damage, message) -> None:  # type: ignore[no-untyped-def]
    assert main(["init", "--name", "River"]) == 0
    capsys.readouterr()
    path = home / "keystore.kith"
    path.write_bytes(damage(path.read_bytes()))
    before = path.read_bytes()
    assert main(["whoami"]) == EXIT_ERROR
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and message in err[0]
    assert path.read_bytes() == before


def test_missing_identity_and_passphrase_file(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami"]) == EXIT_ERROR
    assert "kith init" in capsys.readouterr().err
    assert main(["--passphrase-file", str(tmp_path / "nope"), "init"]) == EXIT_ERROR
    assert "cannot read passphrase file" in capsys.readouterr().err


def test_real_command_prints_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "KITH_HOME": str(tmp_path / "h"), "KITH_PASSPHRASE_FILE": str(tmp_path / "missing")}
    kith = Path(sys.executable).with_name("kith")
    result = subprocess.run([str(kith), "whoami"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_ERROR
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    version = subprocess.run([str(kith), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("kith ")


def test_no_tty_and_no_passphrase_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KITH_PASSPHRASE_FILE"}
    env["KITH_HOME"] = str(tmp_path / "h")
    kith = Path(sys.executable).with_name("kith")
    result = subprocess.run(
        [str(kith), "init", "--name", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == EXIT_ERROR
    assert "--passphrase-file" in result.stderr


def test_a_node_that_cannot_listen_says_so(tmp_path: Path) -> None:
    import socket

    env = {**os.environ, "KITH_HOME": str(tmp_path / "relay"), "KITH_PASSPHRASE_FILE": str(tmp_path / "pass")}
    (tmp_path / "pass").write_text(PASS)
    kith = Path(sys.executable).with_name("kith")
    assert subprocess.run([str(kith), "relay", "init"], env=env, capture_output=True, timeout=60).returncode == 0
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        result = subprocess.run(
            [str(kith), "relay", "run", "--listen", f"/ip4/127.0.0.1/tcp/{port}"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        busy.close()
    assert result.returncode == EXIT_ERROR
    assert "kith: cannot listen on" in result.stderr and "Traceback" not in result.stderr
