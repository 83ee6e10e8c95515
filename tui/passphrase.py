"""Getting a passphrase from a person or a file, without echo and without surprises."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from kith.identity.errors import UsageError
from kith.identity.keystore import check_new_passphrase

MAX_PASSPHRASE_FILE_BYTES = 4096


def read_passphrase_file(path: str) -> str:
    """A passphrase from a file: its text without one trailing newline."""
    try:
        with open(Path(path).expanduser(), "rb") as handle:
            raw = handle.read(MAX_PASSPHRASE_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    if len(raw) > MAX_PASSPHRASE_FILE_BYTES:
        raise UsageError(f"passphrase file {path} is larger than {MAX_PASSPHRASE_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"passphrase file {path} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise UsageError(f"passphrase file {path} is empty")
    return text


def passphrase_file_option(explicit: str | None) -> str | None:
    return explicit or os.environ.get("KITH_PASSPHRASE_FILE") or None


def _prompt(label: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError("no passphrase: run kith in a terminal, or pass --passphrase-file / set KITH_PASSPHRASE_FILE")
    try:
        return getpass.getpass(label)
    except EOFError:
        raise UsageError("no passphrase given") from None


def ask_existing(passphrase_file: str | None) -> str:
    source = passphrase_file_option(passphrase_file)
    if source:
        return read_passphrase_file(source)
    return _prompt("Passphrase: ")


def ask_new(passphrase_file: str | None, *, label: str = "New passphrase") -> str:
    """A new passphrase: from the file, or typed twice without echo."""
    source = passphrase_file_option(passphrase_file)
    if source:
        passphrase = read_passphrase_file(source)
        check_new_passphrase(passphrase)
        return passphrase
    for _attempt in range(3):
        first = _prompt(f"{label}: ")
        try:
            check_new_passphrase(first)
        except UsageError as exc:
            print(f"kith: {exc}", file=sys.stderr)
            continue
        if _prompt(f"{label} again: ") == first:
            return first
        print("kith: the two passphrases differ; try again", file=sys.stderr)
    raise UsageError("no passphrase chosen")
