"""docs/RECONCILE.md's test vectors are exactly what the code computes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "RECONCILE.md"

sys.path.insert(0, str(Path(__file__).parent))
import reconcile_vectors  # noqa: E402


def _vectors_in_doc() -> dict[str, str]:
    return {
        name: "".join(body.split())
        for name, body in re.findall(r"```text\n# vector: ([a-z0-9-]+)\n(.*?)```", DOC.read_text(), re.S)
    }


def test_every_vector_matches_the_code() -> None:
    computed = reconcile_vectors.compute()
    documented = _vectors_in_doc()
    assert set(documented) == set(computed)
    for name, value in computed.items():
        assert documented[name] == value, name


def test_the_vector_session_is_the_documented_shape() -> None:
    from kith.sync.reconcile_wire import SketchRange, SketchResult, decode_message

    computed = reconcile_vectors.compute()
    second = decode_message(bytes.fromhex(computed["recon-message-2"]), first=False)
    ((_lower, _upper, sketch),) = second.spans()
    assert isinstance(sketch, SketchRange) and len(sketch.cells) == 8 * 32
    third = decode_message(bytes.fromhex(computed["recon-message-3"]), first=False)
    ((_lower, _upper, result),) = third.spans()
    assert isinstance(result, SketchResult) and len(result.need_keys()) == 3 and len(result.have_keys()) == 2
    assert computed["recon-message-4"] == "8102"
