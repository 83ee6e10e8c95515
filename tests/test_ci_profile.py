"""The suite's conftest keeps Hypothesis' CI profile when CI is set (.ci/run sets CI=true):
derandomized examples, so a failure in CI reproduces, and a reproduction blob printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
PROBE = (
    "import runpy\n"
    f"runpy.run_path({str(CONFTEST)!r})\n"
    "from hypothesis import settings\n"
    "s = settings()\n"
    "print(settings.get_current_profile_name(), s.derandomize, s.print_blob, s.max_examples)\n"
)


def _profile(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.split()


@pytest.mark.parametrize("value", ["true", "1"])
def test_ci_runs_derandomized_and_prints_the_blob(value: str) -> None:
    name, derandomize, print_blob, _ = _profile(CI=value)
    assert (name, derandomize, print_blob) == ("ci", "True", "True")


def test_outside_ci_the_default_profile_explores() -> None:
    assert _profile() == ["default", "False", "False", "100"]


def test_an_explicit_profile_wins() -> None:
    assert _profile(CI="true", HYPOTHESIS_PROFILE="default")[0] == "default"
