"""The fuzz targets without atheris: the committed corpora, then random and mutated inputs
chosen by hypothesis. This always runs (atheris is optional); `test_fuzz_short.py` adds
the coverage-guided run where atheris is installed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import CORPUS, TARGETS  # noqa: E402

MODULES = {name: importlib.import_module(f"fuzz_{name}") for name in TARGETS}
SEEDS = {name: [p.read_bytes() for p in sorted((CORPUS / name).iterdir())] for name in TARGETS}


def test_every_target_has_seeds() -> None:
    assert all(SEEDS[name] for name in TARGETS), [name for name in TARGETS if not SEEDS[name]]


@pytest.mark.parametrize("name", TARGETS)
def test_corpus_replays_cleanly(name: str) -> None:
    """Seeds and the inputs that once found bugs (``regress-*``) pass their target's oracle."""
    for data in SEEDS[name]:
        MODULES[name].TestOneInput(data)


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for op, position, value in edits:
        at = position % (len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << (value % 8)
        elif op == 1:
            out[at:at] = bytes([value % 256]) * (1 + value % 3)
        elif op == 2:
            del out[at : at + 1 + value % 16]
        elif op == 3 and out:
            out[at % len(out)] = value % 256
        else:
            del out[at:]
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=6)


@pytest.mark.parametrize("name", TARGETS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_and_mutated_inputs_meet_the_oracle(name: str, data: Any) -> None:
    if data.draw(st.booleans(), label="random"):
        blob = data.draw(st.binary(max_size=600), label="bytes")
    else:
        seed = data.draw(st.sampled_from(SEEDS[name]), label="seed")
        blob = _mutate(seed, data.draw(edits, label="edits"))
    MODULES[name].TestOneInput(blob)
