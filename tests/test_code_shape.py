"""Functions a newcomer can read: none in the four packages runs past 80 lines.

(Cyclomatic complexity is ruff's C901 at 20, in pyproject.toml.) A function that grows past
the limit is split into named steps, which is the point: the limit is not raised per file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 80


def test_no_function_in_the_packages_is_longer_than_80_lines() -> None:
    too_long = []
    for folder in ("identity", "sync", "p2pnet", "tui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    length = (node.end_lineno or node.lineno) - first + 1
                    if length > MAX_LINES:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert too_long == []
