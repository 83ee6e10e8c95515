"""Short labels (a circle's name, a title, a content warning) kept off the command line.

A command line is public on the machine: every user can read ``/proc/PID/cmdline`` (``ps``)
while the command runs, and the shell keeps it in its history file long after ``kith
panic``. A circle's name ("Trans youth support, Leipzig") or a spend's recipient can say as
much as a post, so every free-text label a command takes can also come without argv:

* left out, when the command needs it and standard input is a terminal: kith asks for it,
  one line (echoed, like any label typed in the client);
* ``-`` as its value: read from standard input (in a terminal, kith asks for it). Piped
  standard input carries one thing, so a command takes at most one ``-`` there, and none
  when its text (a post, a note) is read from standard input too;
* on the command line itself (scripts, quick use): it still works, and kith prints one
  warning line naming the labels it saw there (the same line names ``--text-arg``).

Labels are settled before the command runs, so the checks every argument gets (UTF-8, no
control characters; the node's lengths) apply whatever the source.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from kith.identity.errors import UsageError
from kith.tui.textinput import read_stream, reads_stdin

FROM_STDIN = "-"
MAX_LABEL_BYTES = 64 * 1024
"""Enough for any label the node accepts, so the node's own length check decides."""

Needed = Callable[[argparse.Namespace], bool]


@dataclass(frozen=True)
class Label:
    dest: str
    shown: str
    """How the command line names it: ``--cw``, or a positional's metavar (``NAME``)."""
    what: str
    """What it is, in words: "content warning"."""
    needed: Needed | None
    """When the command cannot do without it (None: never, it is optional)."""


def add_label(
    parser: argparse.ArgumentParser,
    name: str,
    what: str,
    *,
    needed: bool | Needed = False,
    help: str | None = None,  # noqa: A002 - argparse's own name for it
    metavar: str | None = None,
    append: bool = False,
) -> None:
    """Give ``parser`` a free-text label: ``name`` is a positional (``"title"``) or a flag."""
    when: Needed | None = (lambda _args: True) if needed is True else (needed or None)
    how = "'-': read from standard input"
    if when is not None:
        how += "; asked for if left out"
    described = f"{help or what} ({how})"
    if name.startswith("-"):
        appending: dict[str, Any] = {"action": "append", "default": []} if append else {}
        action = parser.add_argument(name, metavar=metavar, help=described, **appending)
        shown = name
    else:
        action = parser.add_argument(name, nargs="?", metavar=name.upper(), help=described)
        shown = name.upper()
    labels = [*(parser.get_default("labels") or []), Label(action.dest, shown, what, when)]
    parser.set_defaults(labels=labels)


def resolve_labels(args: argparse.Namespace, *, stdin: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
    """Settle every label of the parsed command in place: read each ``-``, ask for each
    needed one left out, warn once about those given on the command line."""
    labels: list[Label] = getattr(args, "labels", None) or []
    if not labels:
        return
    stdin = stdin if stdin is not None else sys.stdin
    stderr = stderr if stderr is not None else sys.stderr
    terminal = stdin.isatty()
    _warn_about_argv(args, labels, stderr)
    if not terminal:
        readers = [_dash(label) for label in labels for value in _values(args, label) if value == FROM_STDIN]
        text = reads_stdin(args)
        if len(readers) > 1 or (readers and text):
            both = " and ".join([*readers, *([f"the {args.text_what}"] if text else [])])
            instead = f"give the {args.text_what} with --file PATH" if text else "give one '-' only"
            raise UsageError(
                f"standard input can give only one thing, not {both}; nothing was done "
                f"({instead}, or run the command in a terminal to be asked for each)"
            )
    for label in labels:
        value = getattr(args, label.dest)
        if isinstance(value, list):
            setattr(args, label.dest, [_read(label, stdin, terminal, stderr) if v == FROM_STDIN else v for v in value])
        elif value == FROM_STDIN:
            setattr(args, label.dest, _read(label, stdin, terminal, stderr))
        elif value is None and label.needed is not None and label.needed(args):
            if not terminal:
                raise UsageError(
                    f"no {label.what} given: give {_dash(label)} to read it from standard input, "
                    "or run the command in a terminal to be asked for it"
                )
            setattr(args, label.dest, _read(label, stdin, terminal, stderr))


def prompt_line(prompt: str, stdin: IO[str], stderr: IO[str]) -> str:
    """One line typed in the terminal (echoed), without its newline; "" on Ctrl+D."""
    print(prompt, end="", file=stderr, flush=True)
    try:
        line = stdin.readline(MAX_LABEL_BYTES + 1)
    except UnicodeDecodeError:
        raise UsageError("what was typed is not UTF-8 text; nothing was done") from None
    if not line:
        print(file=stderr)  # Ctrl+D left the cursor after the prompt
    return _one_newline_off(line)


def _dash(label: Label) -> str:
    return f"'{label.shown} -'" if label.shown.startswith("-") else f"'-' as {label.shown}"


def _values(args: argparse.Namespace, label: Label) -> list[str]:
    value = getattr(args, label.dest)
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _warn_about_argv(args: argparse.Namespace, labels: list[Label], stderr: IO[str]) -> None:
    """One line for the whole command; it replaces --text-arg's own warning when both apply."""
    seen = [label for label in labels if any(v != FROM_STDIN for v in _values(args, label))]
    if not seen:
        return
    text_arg = getattr(args, "text_arg", None) is not None
    names = ["--text-arg" if text_arg else "", *(label.shown for label in seen)]
    names = [name for name in names if name]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    advice = "'-' instead of a label reads it from standard input"
    askable = [label.shown for label in seen if label.needed is not None and label.needed(args)]
    if askable:
        advice += f", and leaving {askable[0]} out makes kith ask for it"
    if text_arg:
        advice = f"give the text with --file or standard input; {advice}"
    print(
        f"kith: warning: {listed} on the command line can be read by other users (ps, /proc) "
        f"and stay in your shell history; {advice}",
        file=stderr,
    )
    if text_arg:
        args.argv_warned = True  # read_text then stays quiet


def _read(label: Label, stdin: IO[str], terminal: bool, stderr: IO[str]) -> str:
    if terminal:
        text = prompt_line(f"{label.what[0].upper()}{label.what[1:]}: ", stdin, stderr)
        if not text.strip():
            raise UsageError(f"no {label.what} given; nothing was done")
        return text
    text = _one_newline_off(read_stream(stdin, label.what, limit=MAX_LABEL_BYTES))
    if not text.strip():
        raise UsageError(f"the {label.what} read from standard input is empty; nothing was done")
    return text


def _one_newline_off(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text
