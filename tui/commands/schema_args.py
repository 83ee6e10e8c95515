"""Command-line arguments read from the control API's schema (kith.p2pnet.actions).

A command that is one action (`kith delete`, `kith match`, `kith rsvp`, ...) is declared by
`action_command`: its arguments are the action's parameters (required ones positional,
optional ones ``--flags``), with the schema's help, choices and types, and running it sends
them as they are. A command that composes (`kith propose` builds a charter from flags,
`kith post` reads its text from stdin) adds single arguments with `schema_argument`, so the
words and choices it shows are still the schema's.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from kith.p2pnet.actions import METHODS, param_of, params_of
from kith.tui import render
from kith.tui.commands import subcommand
from kith.tui.context import Context
from kith.tui.member_text import LINE, visible

MEMBER_HELP = "their name, or their id (a prefix of 6+ hex digits)"
"""What a member argument takes (the node resolves names and prefixes)."""


def call(ctx: Context, method: str, **params: Any) -> Any:
    """One request to the running node, answered or raised as one line."""
    from kith.tui.rpc import NodeClient

    with NodeClient(ctx.home.socket) as client:
        return client.call(method, **params)


def done(ctx: Context, result: dict[str, Any], what: str) -> int:
    """An action's reply as one line (exit 1 when the circle refused it)."""
    if result.get("rejected"):
        ctx.emit(result, f"kith: the circle did not accept this {what}: {visible(result['rejected'], LINE)}")
        return 1
    ctx.emit(result, f"{what} {render.short(result.get('id'))} sent")
    return 0


def schema_argument(parser: argparse.ArgumentParser, method: str, name: str, *flags: str, **overrides: Any) -> None:
    """``name`` of ``method`` as an argument: positional unless ``flags`` are given; help,
    choices and type from the schema (``overrides`` win, e.g. a friendlier help line)."""
    p = param_of(method, name)
    kwargs: dict[str, Any] = {"help": p.spec.help or None}
    if p.spec.choices:
        kwargs["choices"] = list(p.spec.choices)
    if p.base is bool:
        kwargs["action"] = "store_true"
    elif p.base is int or p.base is float:
        kwargs["type"] = p.base
    if flags:
        kwargs["dest"] = name
    parser.add_argument(*(flags or (name,)), **{**kwargs, **overrides})


def action_command(
    sub: argparse._SubParsersAction,
    name: str,
    help_text: str,
    method: str,
    what: str,
    *,
    metavars: dict[str, str] | None = None,
    helps: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """``kith NAME CIRCLE ARGS...`` for one action, every argument from the schema.

    ``metavars``: the words usage shows (``target`` reads as ``id``);
    ``helps``: help lines that say more on a terminal than the schema's."""
    parser = subcommand(sub, name, help_text, functools.partial(run_action, method, what))
    add_action_arguments(parser, method, metavars=metavars, helps=helps)
    return parser


def add_action_arguments(
    parser: argparse.ArgumentParser,
    method: str,
    *,
    metavars: dict[str, str] | None = None,
    helps: dict[str, str] | None = None,
) -> None:
    parser.add_argument("circle")
    for p in params_of(METHODS[method].params):
        more: dict[str, Any] = {}
        if helps and p.name in helps:
            more["help"] = helps[p.name]
        if metavars and p.name in metavars:
            more["metavar"] = metavars[p.name]
        if p.required:
            schema_argument(parser, method, p.name, **more)
        else:
            flag = "--" + p.name.replace("_", "-")
            schema_argument(parser, method, p.name, flag, **more)


def run_action(method: str, what: str, ctx: Context, args: argparse.Namespace) -> int:
    given = vars(args)
    params = {p.name: given[p.name] for p in params_of(METHODS[method].params) if given.get(p.name) is not None}
    return done(ctx, call(ctx, method, circle=args.circle, **params), what)
