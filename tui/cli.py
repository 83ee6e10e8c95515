"""The `kith` command line: parse, dispatch, and turn every failure into one clear line.

Every failure is one line on stderr (README, "Member guide"). Errors kith raises on
purpose (`KithError`) print as ``kith: <message>`` with exit code 1; a wrong passphrase
exits 3; usage mistakes (an unknown flag, a missing argument, an argument that is not
UTF-8 text) exit 2 (argparse's convention); Ctrl+C exits 130. Anything else is a bug: the
traceback goes to ``<home>/logs/error.log``, the terminal gets one line, and the exit
code is 1, like any other error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from importlib import metadata
from typing import NoReturn

from kith.identity.errors import BadPassphrase, KithError, UsageError
from kith.p2pnet.atomic import create_private
from kith.p2pnet.hardening import harden_process
from kith.p2pnet.home import Home
from kith.tui.context import Context
from kith.tui.labels import resolve_labels
from kith.tui.member_text import LINE, visible

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BAD_PASSPHRASE = 3
EXIT_INTERNAL = EXIT_ERROR
EXIT_INTERRUPTED = 130
ERROR_LINE = 500
"""An error line's most characters: room for kith's longest message, while an enormous
argument quoted in one (a 100,000-character circle name) is cut, not poured onto the terminal."""


def _version() -> str:
    try:
        return metadata.version("kith")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class UsageExit(SystemExit):
    """A usage mistake argparse found (exit code 2, as argparse's own); ``message`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.message = message


class KithArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line (``kith post: ... (see 'kith post --help')``)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r" \(choose from [^)]*\)", "", message)  # --help lists them, one per line
        raise UsageExit(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    from kith.tui.commands import (
        bench_cmd,
        circle_cmds,
        demo_cmd,
        fund_cmds,
        governance_cmds,
        identity_cmds,
        membership_cmds,
        moderation_cmds,
        node_cmds,
    )

    parser = KithArgumentParser(
        prog="kith",
        description="kith: an end-to-end encrypted, peer-to-peer support network.",
    )
    parser.add_argument("--version", action="version", version=f"kith {_version()}")
    _add_global_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    identity_cmds.register(sub)
    node_cmds.register(sub)
    circle_cmds.register(sub)
    fund_cmds.register(sub)
    governance_cmds.register(sub)
    membership_cmds.register(sub)
    moderation_cmds.register(sub)
    bench_cmd.register(sub)
    demo_cmd.register(sub)
    for subparser in _all_subparsers(sub):
        # Global options work after the subcommand too (`kith bench --json`).
        _add_global_options(subparser, defaults=False)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    unset = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="where your keys and data live (default: $KITH_HOME or the user data dir)",
        **({"default": None} if defaults else unset),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print results as JSON, for scripts",
        **({"default": False} if defaults else unset),
    )
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="read the passphrase from FILE instead of asking (or set KITH_PASSPHRASE_FILE)",
        **({"default": None} if defaults else unset),
    )


def _all_subparsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    found = []
    for parser in dict.fromkeys(sub.choices.values()):
        found.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found.extend(_all_subparsers(action))
    return found


def _not_text(args: argparse.Namespace) -> str | None:
    """The first argument that is not Unicode text (bytes that were not UTF-8 arrive from
    argv as lone surrogates) or holds a control character, as a sentence; else None."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue
            label = "text" if name == "text_arg" else name.replace("_", " ")
            if any("\ud800" <= c <= "\udfff" for c in item):
                return f"the {label} {visible(item, LINE)!r} is not UTF-8 text"
            allowed = "\n\t" if name == "text_arg" else ""  # a message may have lines and tabs
            if any((c < " " or "\x7f" <= c <= "\x9f") and c not in allowed for c in item):
                return f"the {label} {visible(item, LINE)!r} holds a control character (such as an escape sequence)"
    return None


def main(argv: list[str] | None = None) -> int:
    harden_process()  # umask 077, no core dumps: before any file is created or secret read
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageExit as exc:
        print(visible(exc.message, LINE), file=sys.stderr)
        return EXIT_USAGE
    problem = _not_text(args)
    if problem is None:
        try:
            resolve_labels(args)  # labels read from stdin or typed get the same checks as argv's
        except UsageError as exc:
            print(f"kith: {visible(exc, ERROR_LINE)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("kith: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        problem = _not_text(args)
    if problem is not None:
        print(f"kith: {problem}; nothing was done", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()  # no terminal to draw the client in
            return EXIT_USAGE
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "tui"])
    ctx = Context(home=Home.resolve(args.home), json=args.json, passphrase_file=args.passphrase_file)
    try:
        return int(args.handler(ctx, args) or 0)
    except BadPassphrase as exc:
        print(f"kith: {visible(exc, ERROR_LINE)}", file=sys.stderr)
        return EXIT_BAD_PASSPHRASE
    except KithError as exc:
        print(f"kith: {visible(exc, ERROR_LINE)}", file=sys.stderr)  # the node's errors may quote members
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kith: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into something that closed early (e.g. `kith feed | head`).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the one top-level handler: log the bug, print one line
        where = _log_internal_error(ctx.home)
        print(f"kith: internal error ({type(exc).__name__}); please report it. Details: {where}", file=sys.stderr)
        return EXIT_INTERNAL


def _log_internal_error(home: Home) -> str:
    try:
        home.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = home.logs / "error.log"
        create_private(path)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
        return str(path)
    except OSError:
        return "(could not write the error log)"


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
