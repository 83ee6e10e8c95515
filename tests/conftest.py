"""Suite-wide settings: cheap KDF costs for every CLI call the tests make, and hypothesis profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# Tests exercise behaviour, not the KDF: keystores created by the CLI in tests use tiny
# Argon2id costs (the costs are stored in the file, so unlocking stays correct).
os.environ.setdefault("KITH_INSECURE_TEST_KDF", "1")

# tests/ on the path: the bench and soak harness (tests/bench, the package `bench`) and the shared
# vectors (fold_vectors, vectors) are imported by name from any test folder.
TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

settings.register_profile("default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# In CI (the CI variable set, as .ci/run does) Hypothesis loads its own "ci" profile on import:
# derandomized (every run draws the same examples, so a failure reproduces) and printing a
# reproduction blob. It is kept as it is; HYPOTHESIS_PROFILE=NAME picks a profile explicitly.
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
elif settings.get_current_profile_name() != "ci":
    settings.load_profile("default")
