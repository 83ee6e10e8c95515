"""docs/OPS.md's fold vectors are exactly what the code computes, in any delivery order."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

from kith.sync.ops import SignedOp
from kith.sync.replica import CircleReplica

DOC = Path(__file__).resolve().parents[1] / "docs" / "OPS.md"


def _vectors_in_doc() -> dict[str, str]:
    return {
        name: body.strip()
        for name, body in re.findall(r"```text\n# fold-vector: ([a-z0-9-]+)\n(.*?)```", DOC.read_text(), re.S)
    }


def test_every_fold_vector_matches_the_code() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from fold_vectors import compute

    expected = compute()
    documented = _vectors_in_doc()
    assert set(documented) == set(expected)
    for name, text in expected.items():
        assert documented[name] == text, name


def test_fold_vectors_hold_in_any_delivery_order() -> None:
    """A second implementation may receive the ops in any order: same hash, same rejections."""
    rng = random.Random(11)
    for name, text in _vectors_in_doc().items():
        lines = text.splitlines()
        ops = [SignedOp.decode(bytes.fromhex(line[3:])) for line in lines if line.startswith("op ")]
        state_hash = next(line.split()[1] for line in lines if line.startswith("state_hash "))
        rejected = {line.split()[1]: line.split(" ", 2)[2] for line in lines if line.startswith("rejected ")}
        for _ in range(5):
            rng.shuffle(ops)
            replica = CircleReplica(ops[0].op.circle)
            replica.ingest_many(ops)
            assert replica.state_hash().hex() == state_hash, name
            got = {op_id.hex(): row.reason for op_id, row in replica.state.all_rejections().items()}
            assert got == rejected, name
