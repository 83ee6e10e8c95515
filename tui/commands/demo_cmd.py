"""`kith` / `kith tui`: open the terminal client; `kith demo`: open it on a demo circle."""

from __future__ import annotations

import argparse
import sys

from kith.identity.errors import UsageError
from kith.tui.context import Context


def register(sub: argparse._SubParsersAction) -> None:
    client = sub.add_parser("tui", help="open the terminal client (what `kith` alone does)")
    client.add_argument("--listen", action="append", metavar="MULTIADDR", help="where a node it starts listens")
    client.set_defaults(handler=cmd_tui)
    demo = sub.add_parser(
        "demo", help="try kith: a relay and three members on this machine, in a temporary home, gone on quit"
    )
    demo.add_argument("--pace", type=float, default=None, help="seconds between the scripted members' actions")
    demo.set_defaults(handler=cmd_demo)


def _need_a_terminal(command: str) -> None:
    """Without a terminal the client would draw into a pipe and wait for keys forever."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(f"'kith {command}' draws the terminal client and needs a terminal; nothing was started")


def cmd_tui(ctx: Context, args: argparse.Namespace) -> int:
    from kith.tui.app import make_app

    _need_a_terminal("tui")

    node_args = [arg for address in (getattr(args, "listen", None) or []) for arg in ("--listen", address)]
    make_app(ctx.home, node_args=node_args).run()
    return 0


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    from kith.tui.demo import run_demo

    _need_a_terminal("demo")

    return run_demo(pace=args.pace)
