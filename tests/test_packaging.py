"""kith installs as one namespace: kith.identity, kith.sync, kith.p2pnet, kith.tui.

The folders keep the names the design card fixes; pyproject.toml maps each to its place under
`kith`, so installing kith never takes the top-level names `identity`, `sync` or `tui`, which
other projects on PyPI own.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("identity", "sync", "p2pnet", "tui")


def test_every_package_folder_is_listed_and_mapped() -> None:
    """A new subpackage missing from the list would work in a development install and be left
    out of the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        "kith." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(config["packages"]) == found
    assert config["package-dir"] == {f"kith.{folder}": folder for folder in FOLDERS}
    for folder in FOLDERS:
        assert (ROOT / folder / "py.typed").is_file(), f"{folder}/py.typed marks the package as typed"


def test_the_installed_kith_does_not_take_the_bare_names(tmp_path: Path) -> None:
    """`-I`: no current directory and no PYTHONPATH on sys.path, as for anyone who installed kith."""
    probe = (
        "import importlib.util, kith.identity, kith.sync, kith.p2pnet, kith.tui.cli\n"
        f"print([n for n in {FOLDERS!r} if importlib.util.find_spec(n) is not None])\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_no_source_imports_a_bare_name() -> None:
    """From the repository root `import sync` would still work (the folder is on sys.path) and load a
    second copy of every module; every import names kith."""
    bare = re.compile(r"^\s*(from|import)\s+(identity|sync|p2pnet|tui)\b", re.M)
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for folder in (*FOLDERS, "tests")
        for path in (ROOT / folder).rglob("*.py")
        for match in bare.finditer(path.read_text())
    ]
    assert offenders == []


def _resolve(ref: str) -> object:
    """`kith.p2pnet.store.EnvelopeStore` -> the class: the longest importable prefix, then attributes."""
    parts = ref.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise AssertionError(f"{ref} does not exist")


def test_each_packages_documented_public_api_exists() -> None:
    """Each package's docstring lists its public API; every name it gives must be real: a
    `kith.x.y` reference resolves, and a bare `name` is an attribute of one of the modules its
    bullet names."""
    for folder in FOLDERS:
        doc = importlib.import_module(f"kith.{folder}").__doc__ or ""
        assert "Public API" in doc, f"kith.{folder} documents its public API"
        for bullet in doc.split("\n- ")[1:]:
            refs = re.findall(r"`(kith\.[\w.]+)`", bullet)
            assert refs, bullet
            owners = [_resolve(ref) for ref in refs]
            for name in re.findall(r"`(\w+)`", bullet):
                assert any(hasattr(owner, name) for owner in owners), f"{name} in: {bullet}"
