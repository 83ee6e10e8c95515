"""How strong a new passphrase must be: one rule for the keystore and the backup alike.

A seized laptop hands the attacker the encrypted keystore, and a backup file may travel
further still; Argon2id makes each guess slow, but only a passphrase outside the first
few billion guesses makes guessing hopeless. The rule is deliberately simple and
dependency-free:

* at least `MIN_CHARS` characters (after NFC normalisation), and
* an estimated strength of at least `MIN_BITS` bits, where the estimate counts the
  character classes used, gives nothing for a repeat of an earlier part (``abcabc``),
  for a run (``abcd``, ``4321``, ``aaaa``), or for a common password or keyboard row
  (``password``, ``qwerty``), which count as one guess from a short list each.

Four or more random words pass easily; ``password1234`` and ``aaaaaaaaaaaa`` do not.
The estimate is a floor on what a careful attacker needs, not a promise: it cannot see
that a phrase is a famous quotation.
"""

from __future__ import annotations

import math
import unicodedata

from kith.identity.errors import UsageError

MIN_CHARS = 12
MIN_BITS = 50

# Stems that open every cracking dictionary; each costs an attacker ~10 bits, not its length.
_COMMON = (
    "password",
    "passw0rd",
    "letmein",
    "iloveyou",
    "welcome",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "trustno1",
    "admin",
    "login",
    "secret",
    "master",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "azertyuiop",
    "1234567890",
    "0987654321",
    "kith",
)
_COMMON_BITS = 10.0

TOO_WEAK = (
    f"choose a stronger passphrase: at least {MIN_CHARS} characters, best four or more random words "
    "(no runs, repeats or common passwords)"
)


def _pool(text: str) -> int:
    pool = 0
    if any(c.islower() and c.isascii() for c in text):
        pool += 26
    if any(c.isupper() and c.isascii() for c in text):
        pool += 26
    if any(c.isdigit() and c.isascii() for c in text):
        pool += 10
    if any(not c.isalnum() and c.isascii() for c in text):
        pool += 33
    if any(not c.isascii() for c in text):
        pool += 100
    return max(pool, 1)


def _strip_common(text: str) -> tuple[str, int]:
    """``text`` without its common stems (longest first), and how many were removed."""
    lowered = text.lower()
    found = 0
    for stem in sorted(_COMMON, key=len, reverse=True):
        while stem in lowered:
            at = lowered.index(stem)
            lowered = lowered[:at] + "\x00" + lowered[at + len(stem) :]
            text = text[:at] + "\x00" + text[at + len(stem) :]
            found += 1
    return text.replace("\x00", " "), found


def _effective_chars(text: str) -> int:
    """Characters that carry information: no credit for runs, steps of one, or repeats."""
    count = 0
    previous: str | None = None
    step: int | None = None
    seen_chunks: set[str] = set()
    index = 0
    while index < len(text):
        # A repeat of an earlier chunk of four or more characters counts as one character.
        repeated = next(
            (size for size in range(min(len(text) - index, 16), 3, -1) if text[index : index + size] in seen_chunks),
            0,
        )
        if repeated:
            count += 1
            index += repeated
            previous, step = text[index - 1], None
            continue
        char = text[index]
        if previous is not None:
            delta = ord(char) - ord(previous)
            if abs(delta) <= 1 and (step is None or step == delta):
                step = delta  # a run ("aaaa", "abcd", "4321") after its first character
                previous = char
                index += 1
                continue
        step = None
        count += 1
        for size in range(4, 17):
            if index + 1 - size >= 0:
                seen_chunks.add(text[index + 1 - size : index + 1])
        previous = char
        index += 1
    return count


def estimate_bits(passphrase: str) -> float:
    """A conservative estimate of a passphrase's strength in bits (see the module docstring)."""
    text = unicodedata.normalize("NFC", passphrase)
    rest, common = _strip_common(text)
    return _effective_chars(rest.strip()) * math.log2(_pool(text)) + common * _COMMON_BITS


def check_new_passphrase(passphrase: str) -> None:
    """Raise `UsageError` (one line, saying what is needed) unless ``passphrase`` is strong enough."""
    text = unicodedata.normalize("NFC", passphrase)
    if len(text) < MIN_CHARS or estimate_bits(text) < MIN_BITS:
        raise UsageError(TOO_WEAK)
