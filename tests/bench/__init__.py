"""`kith bench`: the performance figures the issues set targets for, measured in one run.

This harness kills processes, fills disks and (as root) mounts a tmpfs, so it lives under
tests/ and never ships in the wheel: it is the package `bench` with tests/ on the path (the
suite's conftest puts it there; `kith bench` does the same from a development checkout).

Each benchmark is a function returning a dict of named figures; `run_benchmarks` runs
the ones whose figures were asked for (all by default). Benchmarks use throwaway
directories and cheap KDF costs except where the KDF is what is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent.parent
"""The tests/ folder: what goes on the path (sys.path, or PYTHONPATH of a child) to import `bench`."""

Figures = dict[str, Any]
Benchmark = Callable[[], Figures]

# figure name -> (group key, benchmark); several figures may come from one benchmark run
_REGISTRY: dict[str, tuple[str, Benchmark]] = {}


def register(*figures: str) -> Callable[[Benchmark], Benchmark]:
    def decorate(func: Benchmark) -> Benchmark:
        for figure in figures:
            _REGISTRY[figure] = (func.__name__, func)
        return func

    return decorate


def figure_names() -> list[str]:
    _load()
    return list(_REGISTRY)


def _load() -> None:
    """Import every module of this package; each registers its benchmarks."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def run_benchmarks(names: list[str] | None = None, progress: Callable[[str], None] | None = None) -> Figures:
    _load()
    wanted = names or list(_REGISTRY)
    unknown = [n for n in wanted if n not in _REGISTRY]
    if unknown:
        from kith.identity.errors import UsageError

        raise UsageError(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(_REGISTRY)}")
    results: Figures = {}
    done: set[str] = set()
    for name in wanted:
        group, func = _REGISTRY[name]
        if group in done:
            continue
        done.add(group)
        if progress:
            progress(group)
        results.update(func())
    return {name: results[name] for name in wanted if name in results}
