"""`kith bench [--json] [NAME ...]`: print performance figures.

The harness kills processes and, as root, mounts a tmpfs, so it does not ship with the
client: it lives in the source tree's tests/bench (the package `bench`), and this command
finds it next to the installed code when kith runs from a development checkout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import kith.tui
from kith.identity.errors import UsageError
from kith.tui.context import Context

CHECKOUT_HINT = (
    "bench runs from a development checkout (its harness, tests/bench, does not ship with kith): clone kith's "
    "repository, then from its root `python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'` "
    "and run `.venv/bin/kith bench`"
)


def harness_dir() -> Path | None:
    """tests/ of the checkout this kith was installed from (editable), or None for a wheel install."""
    tests = Path(kith.tui.__file__).resolve().parent.parent / "tests"
    return tests if (tests / "bench" / "__init__.py").is_file() else None


def load_harness(name: str = "bench") -> ModuleType:
    """Import the harness (or one of its modules, e.g. ``bench.soak``) from the checkout's tests/."""
    tests = harness_dir()
    if tests is None:
        raise UsageError(CHECKOUT_HINT)
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    module = importlib.import_module(name)
    if not Path(module.__file__ or "").resolve().is_relative_to(tests):
        raise UsageError(f"another package named `bench` shadows the harness in {tests}: {module.__file__}")
    return module


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
    harness = load_harness()
    if args.list:
        names = harness.figure_names()
        ctx.emit(names, "\n".join(names))
        return 0

    def progress(group: str) -> None:
        if not ctx.json:
            print(f"running {group} ...", file=sys.stderr)

    if args.names == ["soak"]:
        return _soak(ctx, args, progress)

    figures = harness.run_benchmarks(args.names or None, progress)
    width = max((len(name) for name in figures), default=0)
    ctx.emit(figures, "\n".join(f"{name:<{width}}  {value}" for name, value in figures.items()))
    return 0


def _soak(ctx: Context, args: argparse.Namespace, progress: Callable[[str], None]) -> int:
    soak = load_harness("bench.soak")
    if args.members < 4 or args.relays < 1 or args.minutes <= 0:
        raise UsageError("a soak needs at least 4 members, 1 relay and a positive number of minutes")
    settings = soak.SoakSettings(members=args.members, relays=args.relays, seconds=args.minutes * 60, seed=args.seed)
    if args.rate is not None:
        settings.rate = args.rate
    report = soak.run_soak(settings, progress)
    problems = soak.soak_ok(report)
    ctx.emit({**report, "problems": problems}, soak.summary(report, problems))
    return 0 if not problems else 1
