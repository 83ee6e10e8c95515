"""Subcommands of the `kith` command line, one module per area."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kith.tui.context import Context


def subcommand(
    sub: argparse._SubParsersAction,
    name: str,
    help_text: str,
    handler: Callable[[Context, argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """Add ``kith NAME`` with its help line; running it calls ``handler(context, args)``."""
    parser = sub.add_parser(name, help=help_text)
    parser.set_defaults(handler=handler)
    return parser
