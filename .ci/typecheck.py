"""Type-check kith: `.venv/bin/python .ci/typecheck.py [mypy options]`; exits with mypy's status.

pyproject.toml's [tool.mypy] holds every setting (strict for kith.identity and kith.sync, mypy's
defaults for kith.p2pnet and kith.tui). This script only fixes where mypy reads trio's types from:
libp2p depends on trio-typing, which installs `trio-stubs` written for trio 0.2x, and mypy prefers
a stub package to the annotations trio itself ships (PEP 561), so it would check kith against an
API trio no longer has (no trio.TaskStatus, no abandon_on_cancel). A directory on MYPYPATH comes
before both, so the installed trio is linked into one, inside .mypy_cache (which mypy keeps out of
git). Run it with the project's virtual environment: that is the trio it links.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def link_installed_trio(path_dir: Path) -> None:
    """Make path_dir/trio a symlink to the trio this interpreter imports."""
    spec = importlib.util.find_spec("trio")
    if spec is None or spec.origin is None:
        raise SystemExit("typecheck: trio is not installed in this environment (run it with .venv/bin/python)")
    trio_dir = Path(spec.origin).parent
    link = path_dir / "trio"
    if link.is_symlink() and link.readlink() == trio_dir:
        return
    path_dir.mkdir(parents=True, exist_ok=True)
    fresh = path_dir / f"trio.{os.getpid()}"
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(trio_dir, target_is_directory=True)
    os.replace(fresh, link)


def main(argv: list[str]) -> int:
    path_dir = ROOT / ".mypy_cache" / "trio_path"
    link_installed_trio(path_dir)
    env = dict(os.environ, MYPYPATH=str(path_dir))
    return subprocess.call([sys.executable, "-m", "mypy", *argv], cwd=ROOT, env=env)  # noqa: S603 - our own interpreter


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
