"""A short coverage-guided run of every fuzz target (atheris + libFuzzer), as in CI.

Each target gets ``SECONDS`` of fuzzing in its own process, two at a time; any crash,
oracle failure, hang (10 s on one input) or memory blow-up fails the test and prints the
saved input. The long run is documented in docs/RELIABILITY.md (`tests/fuzz/run.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "atheris",
    reason="atheris is not installed (the test extra brings it on Linux x86_64); "
    "tests/fuzz/test_fuzz_hypothesis.py still drives every target",
)

RUN = Path(__file__).resolve().parent / "run.py"
sys.path.insert(0, str(RUN.parent))
from run import TARGETS  # noqa: E402

SECONDS = 3


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_target_survives_a_short_coverage_guided_run(tmp_path: Path) -> None:
    report = tmp_path / "results.json"
    command = [sys.executable, str(RUN), "--seconds", str(SECONDS), "--jobs", "2"]
    command += ["--artifacts", str(tmp_path / "crashes"), "--json", str(report)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(report.read_text())
    assert [r["target"] for r in results] == list(TARGETS)
    for r in results:
        assert r["ok"] and r["artifact"] is None, r
        assert r["executions"] > 0 and r["coverage"], r
