"""What members write, for the command line: from stdin, a file or $EDITOR, never argv.

A command line is public on the machine: every user can read ``/proc/PID/cmdline`` (``ps``)
while the command runs, and the shell keeps it in its history file long after ``kith
panic``. So the text of a post, a request, a check-in note and every other piece of
member-written content comes, in this order, from:

* ``--file PATH`` (``-`` is standard input);
* standard input, when it is not a terminal (``echo ... | kith post CIRCLE``);
* ``$VISUAL`` / ``$EDITOR`` on a draft file in a private directory inside the kith home
  (so a panic wipes whatever the editor leaves behind, swap files included), or, with no
  editor set, the terminal itself until Ctrl+D;
* ``--text-arg TEXT``, for scripts that accept the risk: it prints a one-line warning.

A command whose text is optional (a check-in note, a vote's reason) takes it only when
asked: ``--note`` (or the command's own flag), ``--file`` or ``--text-arg``. Short labels
(a title, a circle's name) are kept off the command line by `tui.labels`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from kith.identity.errors import UsageError
from kith.p2pnet.atomic import overwrite_fd
from kith.p2pnet.home import Home

MAX_TEXT_BYTES = 256 * 1024
ARGV_WARNING = (
    "kith: warning: --text-arg puts the text where other users can read it (ps, /proc) "
    "and in your shell history; use --file or standard input"
)


def add_text_source(parser: argparse.ArgumentParser, what: str, *, flag: str | None = None) -> None:
    """Give ``parser`` the ways to supply its member-written text (``what``: "message", "note").

    With ``flag`` (e.g. ``"--note"``) the text is optional and read only when that flag,
    ``--file`` or ``--text-arg`` is given; without it the text is required."""
    if flag is not None:
        parser.add_argument(
            flag,
            dest="text_wanted",
            action="store_true",
            help=f"add a {what}: read from standard input, or typed in $EDITOR",
        )
    parser.add_argument("--file", dest="text_file", metavar="PATH", help=f"read the {what} from PATH ('-': stdin)")
    parser.add_argument(
        "--text-arg",
        dest="text_arg",
        metavar="TEXT",
        help=f"scripts only: the {what} itself (other users can see it, and it stays in shell history)",
    )
    parser.set_defaults(text_what=what, text_optional=flag is not None)


def read_text(
    args: argparse.Namespace,
    home: Home,
    *,
    stdin: IO[str] | None = None,
    environ: dict[str, str] | None = None,
) -> str | None:
    """The member-written text for a command set up with `add_text_source` (None: none given)."""
    what: str = args.text_what
    stdin = stdin if stdin is not None else sys.stdin
    environ = environ if environ is not None else dict(os.environ)
    if args.text_arg is not None:
        if not getattr(args, "argv_warned", False):  # else tui.labels warned, in one line for all
            print(ARGV_WARNING, file=sys.stderr)
        text = args.text_arg
    elif args.text_file is not None:
        text = read_stream(stdin, what) if args.text_file == "-" else _read_file(Path(args.text_file), what)
    elif args.text_optional and not args.text_wanted:
        return None
    elif not stdin.isatty():
        text = read_stream(stdin, what)
    else:
        text = _from_editor(home, what, environ) if _editor(environ) else _from_terminal(stdin, what)
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text.strip():
        raise UsageError(f"the {what} is empty; nothing was sent")
    return text


def reads_stdin(args: argparse.Namespace) -> bool:
    """Whether `read_text` would read the command's text from a piped standard input."""
    if getattr(args, "text_what", None) is None or args.text_arg is not None:
        return False
    if args.text_file is not None:
        return bool(args.text_file == "-")
    return not (args.text_optional and not args.text_wanted)


def read_stream(stream: IO[str], what: str, *, limit: int = MAX_TEXT_BYTES) -> str:
    try:
        text = stream.read(limit + 1)
    except UnicodeDecodeError:
        raise UsageError(f"the {what} is not UTF-8 text; nothing was sent") from None
    if len(text.encode("utf-8", "surrogateescape")) > limit:
        raise UsageError(f"the {what} is longer than {limit // 1024} KiB")
    if any("\ud800" <= c <= "\udfff" for c in text):  # undecodable bytes, escaped by Python
        raise UsageError(f"the {what} is not UTF-8 text; nothing was sent")
    return text


def _read_file(path: Path, what: str) -> str:
    try:
        with open(path.expanduser(), "rb") as handle:
            raw = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise UsageError(f"{path} is larger than {MAX_TEXT_BYTES // 1024} KiB; the {what} must be shorter")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def _editor(environ: dict[str, str]) -> list[str]:
    command = environ.get("VISUAL") or environ.get("EDITOR") or ""
    return shlex.split(command)


def _from_terminal(stdin: IO[str], what: str) -> str:
    print(f"Type the {what}; end it with Ctrl+D on a line of its own.", file=sys.stderr)
    return read_stream(stdin, what)


def _from_editor(home: Home, what: str, environ: dict[str, str]) -> str:
    """Edit a draft in a 0700 directory inside the home (a panic wipes it), then destroy it."""
    base = home.root if home.root.is_dir() else None
    draft_dir = Path(tempfile.mkdtemp(prefix=".draft-", dir=base))
    draft = draft_dir / f"{what.replace(' ', '-')}.txt"
    try:
        draft.touch(mode=0o600)
        try:
            result = subprocess.run([*_editor(environ), str(draft)], check=False)  # noqa: S603 - the user's own $VISUAL/$EDITOR on their draft, no shell
        except OSError as exc:
            raise UsageError(f"cannot start your editor ({exc.strerror or exc}); set $EDITOR or use --file") from None
        if result.returncode != 0:
            raise UsageError(f"the editor exited with code {result.returncode}; nothing was sent")
        return _read_file(draft, what)
    finally:
        _destroy_drafts(draft_dir)


def _destroy_drafts(directory: Path) -> None:
    """Overwrite and remove the draft and anything the editor left beside it (swap, backup files)."""
    for path in directory.iterdir():
        try:
            if path.is_file() and not path.is_symlink():
                fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
                try:
                    overwrite_fd(fd, random=False)
                finally:
                    os.close(fd)
            path.unlink()
        except OSError:
            pass
    try:
        directory.rmdir()
    except OSError:
        pass
