"""`kith bench` finds its harness (tests/bench) in a development checkout and, in an install
without one, says in one line where bench runs instead of failing on an import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kith.tui
from kith.tui.cli import EXIT_ERROR, main
from kith.tui.commands import bench_cmd

ROOT = Path(__file__).resolve().parents[2]


def test_kith_bench_lists_the_figures_from_a_development_checkout(tmp_path: Path) -> None:
    """The real `kith` script, with nothing of tests/ on its path: the command finds the harness."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    kith = Path(sys.executable).with_name("kith")
    result = subprocess.run(
        [str(kith), "--json", "bench", "--list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    names = json.loads(result.stdout)
    # One figure from each kind of benchmark module: in-process, cluster of processes, soak.
    assert {"op_create_per_s", "reconcile_100k_one_diff_cpu_ms", "soak_p99_ms", "flood_honest_ratio"} <= set(names)
    assert bench_cmd.harness_dir() == ROOT / "tests"


def test_kith_bench_without_a_checkout_says_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As installed from a wheel: kith.tui sits in site-packages, with no tests/ beside it."""
    installed = tmp_path / "site-packages" / "kith" / "tui"
    installed.mkdir(parents=True)
    monkeypatch.setattr(kith.tui, "__file__", str(installed / "__init__.py"))
    assert bench_cmd.harness_dir() is None
    assert main(["bench", "--list"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "development checkout" in err and "pip install -q -e" in err


def test_the_harness_ships_in_no_package() -> None:
    """Nothing under the four installed folders is the harness or imports it."""
    for folder in ("identity", "sync", "p2pnet", "tui"):
        assert not (ROOT / folder / "bench").exists()
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import bench" not in text and "from bench" not in text, path
