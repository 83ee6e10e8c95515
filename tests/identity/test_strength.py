"""One passphrase rule for new keystores and backups: long enough, and not a run, repeat or common password."""

from __future__ import annotations

from pathlib import Path

import pytest

from kith.identity.errors import UsageError
from kith.identity.keys import MemberIdentity
from kith.identity.keystore import TEST_KDF, KeystoreData
from kith.identity.strength import MIN_BITS, TOO_WEAK, check_new_passphrase, estimate_bits
from kith.p2pnet.keyfile import Keystore, write_backup

WEAK = [
    "",
    "a",
    "short one",  # under 12 characters
    "aaaaaaaaaaaaaaaa",  # a repeat of one character
    "abcdefghijklmnop",  # a run
    "987654321098",  # runs of digits
    "abcabcabcabcabc",  # a repeated chunk
    "password1234",  # a common password and a run
    "passwordpassword",
    "qwertyuiopasdf",  # keyboard rows
    "123456789012",
    "monkey dragon sunshine",  # three words from every cracking list
]
STRONG = [
    "correct horse battery staple",
    "a long enough passphrase",
    "xk7#pQ2m9zLw",  # short but random
    "tangerine orbit velvet lantern",
    "mi contraseña es larga y rara",
]


@pytest.mark.parametrize("weak", WEAK)
def test_weak_passphrases_are_refused_with_what_to_do(weak: str) -> None:
    with pytest.raises(UsageError) as raised:
        check_new_passphrase(weak)
    assert str(raised.value) == TOO_WEAK and "\n" not in TOO_WEAK and "at least 12 characters" in TOO_WEAK


@pytest.mark.parametrize("strong", STRONG)
def test_strong_passphrases_pass(strong: str) -> None:
    check_new_passphrase(strong)
    assert estimate_bits(strong) >= MIN_BITS


def test_the_estimate_gives_no_credit_for_repeating_yourself() -> None:
    word = "tangerine orbit"
    assert estimate_bits(word * 4) < estimate_bits(word) * 1.25  # each repeat counts as one character


def test_keystore_and_backup_apply_the_same_rule(tmp_path: Path) -> None:
    data = KeystoreData.generate(MemberIdentity.generate("river", now=1))
    with pytest.raises(UsageError, match="stronger passphrase"):
        Keystore.create(tmp_path / "weak.kith", "password1234", data, TEST_KDF)
    assert not (tmp_path / "weak.kith").exists()
    store = Keystore.create(tmp_path / "keystore.kith", STRONG[0], data, TEST_KDF)
    with pytest.raises(UsageError, match="stronger passphrase"):
        store.change_passphrase("aaaaaaaaaaaaaaaa")
    assert Keystore.unlock(store.path, STRONG[0]).data.identity is not None  # unchanged
    with pytest.raises(UsageError, match="stronger passphrase"):
        write_backup(tmp_path / "backup.kith", data, "x", TEST_KDF)
    assert not (tmp_path / "backup.kith").exists()
    write_backup(tmp_path / "backup.kith", data, STRONG[1], TEST_KDF)
