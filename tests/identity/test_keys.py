"""Identities, cards, fingerprints and safety numbers."""

from __future__ import annotations

import dataclasses

import pytest

from kith.identity.errors import BadSignature, Malformed
from kith.identity.keys import IdentityCard, MemberIdentity, NetworkKey, fingerprint, safety_number


def _seeded(name: str, seed: int) -> MemberIdentity:
    return MemberIdentity(name, bytes([seed]) * 32, bytes([seed + 1]) * 32, 1_700_000_000)


def test_card_round_trip_and_verify() -> None:
    alice = _seeded("Alice", 1)
    card = alice.card()
    again = IdentityCard.from_bytes(card.to_bytes())
    assert again == card
    assert again.member_id == alice.member_id
    assert again.dh_public == alice.dh_public


def test_forged_card_is_rejected() -> None:
    alice, mallory = _seeded("Alice", 1), _seeded("Mallory", 3)
    forged = dataclasses.replace(alice.card(), signature=mallory.card().signature)
    with pytest.raises(BadSignature):
        IdentityCard.from_bytes(forged.to_bytes())
    renamed = dataclasses.replace(alice.card(), name="Alicia")
    with pytest.raises(BadSignature):
        IdentityCard.from_bytes(renamed.to_bytes())


@pytest.mark.parametrize("name", ["", "   ", "a" * 65, "al\u200bice", "evil\u202eecila", "bell\x07"])
def test_display_names_that_could_deceive_are_refused(name: str) -> None:
    with pytest.raises(Malformed):
        MemberIdentity(name, bytes(32), bytes(32), 0)


def test_every_bit_flip_of_a_card_is_rejected() -> None:
    data = _seeded("Alice", 1).card().to_bytes()
    for position in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[position // 8] ^= 1 << (position % 8)
        with pytest.raises((Malformed, BadSignature)):
            IdentityCard.from_bytes(bytes(flipped))


def test_safety_number_is_symmetric_and_specific() -> None:
    alice, bob, carol = (_seeded(n, s).card() for n, s in (("Alice", 1), ("Bob", 3), ("Carol", 5)))
    number = safety_number(alice, bob)
    assert number == safety_number(bob, alice)
    assert number != safety_number(alice, carol)
    groups = number.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)


def test_safety_number_ignores_the_display_name() -> None:
    alice = _seeded("Alice", 1)
    bob = _seeded("Bob", 3).card()
    assert safety_number(alice.card(), bob) == safety_number(alice.renamed("Ally").card(), bob)


def test_fingerprint_format() -> None:
    card = _seeded("Alice", 1).card()
    assert card.fingerprint == fingerprint(card.sign_public, card.dh_public)
    assert len(card.fingerprint.split(" ")) == 10


def test_network_key_is_unrelated_to_identity() -> None:
    alice = MemberIdentity.generate("Alice", now=0)
    network = NetworkKey.generate()
    assert network.public_key not in (alice.sign_public, alice.dh_public)
    assert network.seed not in (alice.sign_seed, alice.dh_secret)


def test_secrets_stay_out_of_repr() -> None:
    alice = _seeded("Alice", 1)
    text = repr(alice) + repr(NetworkKey(bytes([9]) * 32))
    for secret in (alice.sign_seed, alice.dh_secret, alice.sign_secret, bytes([9]) * 32):
        assert secret.hex() not in text and repr(secret) not in text
