"""What every fuzz target shares: fixed keys and identities, and a reader for fuzz bytes.

The targets (``fuzz_*.py``) are plain modules with ``TestOneInput(data: bytes)``: atheris
drives them under coverage (`run.py`), hypothesis drives them without it
(`test_fuzz_hypothesis.py`). Each lets through only the exceptions its decoder may raise
on bad input; anything else escaping is a bug.

Many decoders sit behind a MAC, a signature or an AEAD tag that random mutations never
forge. Those targets take a *mode* byte: in some modes the harness seals the fuzz bytes
correctly (with the fixed keys below), so the fuzzer reaches the parsing behind the
crypto; in others the bytes go in raw, as a peer would send them.
"""

from __future__ import annotations

from kith.identity.keys import MemberIdentity

ALICE = MemberIdentity("Alice", bytes([1]) * 32, bytes([2]) * 32, 1_700_000_000)
BOB = MemberIdentity("Bob", bytes([3]) * 32, bytes([4]) * 32, 1_700_000_000)
CAROL = MemberIdentity("Carol", bytes([5]) * 32, bytes([6]) * 32, 1_700_000_000)
MALLORY = MemberIdentity("Mallory", bytes([7]) * 32, bytes([8]) * 32, 1_700_000_000)
PEOPLE = (ALICE, BOB, CAROL, MALLORY)

CIRCLE_ID = bytes([0x07]) * 16
EPOCH_KEY = bytes([0x09]) * 32
CONTENT_KEY = bytes([0x11]) * 32
INVITE_SECRET = bytes([0x21]) * 32
NOW = 1_700_000_000


def fixed_rand(seed: bytes):  # type: ignore[no-untyped-def]
    """Deterministic "randomness" for sealing seeds (a node uses libsodium's CSPRNG)."""
    import hashlib

    counter = [0]

    def rand(n: int) -> bytes:
        counter[0] += 1
        return hashlib.blake2b(seed + counter[0].to_bytes(4, "big"), digest_size=64).digest()[:n]

    return rand


class Take:
    """Consume fuzz bytes front to back; past the end it yields zeros and empty chunks."""

    __slots__ = ("data", "at")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def chunk(self) -> bytes:
        """A chunk prefixed by its 2-byte big-endian length."""
        size = (self.byte() << 8) | self.byte()
        out = self.data[self.at : self.at + size]
        self.at += size
        return out

    def rest(self) -> bytes:
        out = self.data[self.at :]
        self.at = len(self.data)
        return out

    @property
    def left(self) -> int:
        return max(0, len(self.data) - self.at)


def chunk(payload: bytes) -> bytes:
    """The encoding `Take.chunk` reads (for building seeds)."""
    return len(payload).to_bytes(2, "big") + payload
