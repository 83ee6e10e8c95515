"""`kith bench [--json] [NAME ...]`: print performance figures."""

from __future__ import annotations

import argparse
import sys

from tui.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="measure performance figures (all, or only the named ones)")
    bench.add_argument("names", nargs="*", metavar="NAME", help="figures to measure, e.g. op_create_per_s")
    bench.add_argument("--list", action="store_true", help="list the figure names and exit")
    bench.set_defaults(handler=cmd_bench)


def cmd_bench(ctx: Context, args: argparse.Namespace) -> int:
    from tui.bench import figure_names, run_benchmarks

    if args.list:
        ctx.emit(figure_names(), "\n".join(figure_names()))
        return 0

    def progress(group: str) -> None:
        if not ctx.json:
            print(f"running {group} ...", file=sys.stderr)

    figures = run_benchmarks(args.names or None, progress)
    width = max((len(name) for name in figures), default=0)
    ctx.emit(figures, "\n".join(f"{name:<{width}}  {value}" for name, value in figures.items()))
    return 0
