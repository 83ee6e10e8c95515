"""docs/PROTOCOL.md's test vectors are exactly what the code computes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"


def _vectors_in_doc() -> dict[str, str]:
    found = {}
    for name, body in re.findall(r"```text\n# vector: ([a-z0-9-]+)\n(.*?)```", DOC.read_text(), re.S):
        found[name] = " ".join(body.split()) if " " in body.strip().split("\n")[0] else "".join(body.split())
    return found


def test_every_vector_matches_the_code() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from vectors import compute

    expected = compute()
    documented = _vectors_in_doc()
    assert set(documented) == set(expected)
    for name, value in expected.items():
        assert documented[name] == value, name
