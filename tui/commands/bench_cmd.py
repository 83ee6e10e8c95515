"""`kith bench [--json] [NAME ...]`: print performance figures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from kith.identity.errors import UsageError
from kith.tui.context import Context


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure performance figures (all, or only the named ones)")
    bench.add_argument("names", nargs="*", metavar="NAME", help="figures to measure, e.g. op_create_per_s")
    bench.add_argument("--list", action="store_true", help="list the figure names and exit")
    soak = bench.add_argument_group("kith bench soak: the full soak with faults, reported in full")
    soak.add_argument("--minutes", type=float, default=10.0, help="how long the load and faults run (default 10)")
    soak.add_argument("--members", type=int, default=20, help="member processes (default 20)")
    soak.add_argument("--relays", type=int, default=2, help="relay processes (default 2)")
    soak.add_argument("--rate", type=float, default=None, help="actions per second across the cluster")
    soak.add_argument("--seed", type=int, default=7)
    bench.set_defaults(handler=cmd_bench)


def cmd_bench(ctx: Context, args: argparse.Namespace) -> int:
    from kith.tui.bench import figure_names, run_benchmarks

    if args.list:
        ctx.emit(figure_names(), "\n".join(figure_names()))
        return 0

    def progress(group: str) -> None:
        if not ctx.json:
            print(f"running {group} ...", file=sys.stderr)

    if args.names == ["soak"]:
        return _soak(ctx, args, progress)

    figures = run_benchmarks(args.names or None, progress)
    width = max((len(name) for name in figures), default=0)
    ctx.emit(figures, "\n".join(f"{name:<{width}}  {value}" for name, value in figures.items()))
    return 0


def _soak(ctx: Context, args: argparse.Namespace, progress: Callable[[str], None]) -> int:
    from kith.tui.bench.soak import SoakSettings, run_soak, soak_ok, summary

    if args.members < 4 or args.relays < 1 or args.minutes <= 0:
        raise UsageError("a soak needs at least 4 members, 1 relay and a positive number of minutes")
    settings = SoakSettings(members=args.members, relays=args.relays, seconds=args.minutes * 60, seed=args.seed)
    if args.rate is not None:
        settings.rate = args.rate
    report = run_soak(settings, progress)
    problems = soak_ok(report)
    ctx.emit({**report, "problems": problems}, summary(report, problems))
    return 0 if not problems else 1
