"""Access proofs: a peer learns which circles another node follows only by proving a key.

Theory of operation. Every circle topic a node serves (as a member or as a relay) has at
least one *relay key* (one per epoch; members derive it from the epoch key, relays get it
in relay tokens). At the start of a sync session both sides send a fresh random nonce;
then the initiator sends one tag per topic it serves, for each of its newest few relay
keys of that topic::

    tag = BLAKE2b-128(role || n_init || n_resp || len-prefixed peer ids, key = proof_key(relay key))

and pads the list with random tags to a multiple of `PAD_TO`, in random order. A tag is
indistinguishable from random to anyone not holding that relay key: a stranger (or a node
of another circle) learns only how many tags there were, rounded up. The responder tries
every relay key it holds and answers, in the same padded form, with its own tag (other
role string) for each topic it matched. The initiator checks those answers against its own
keys. So a topic is *shared* in a session exactly when both sides proved they hold a key
of it, and neither side confirms a topic to a peer that did not.

Both peer ids (authenticated by the transport's Noise handshake) are in every tag, so a
stranger sitting between two members cannot forward one member's proofs to the other and
pass them off as its own; the fresh nonces stop replays of an old session.

This module is pure: nonces, padding randomness and keys are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kith.identity.crypto import RandomBytes, blake2b

NONCE_BYTES = 16
TAG_BYTES = 16
PAD_TO = 8
"""Tag lists are padded with random tags to a multiple of this."""
MAX_TAGS = 1024
"""The most tags one side may send (a relay serving hundreds of circles stays under it)."""
KEYS_PER_TOPIC = 3
"""A prover tags its newest relay keys of each topic, so a peer that missed the latest
rotation (or two) still recognises the circle and can catch up."""

_INITIATOR = b"kith/access/v1/initiator"
_RESPONDER = b"kith/access/v1/responder"


def proof_key(relay_key: bytes) -> bytes:
    """The key access tags are made with: one-way from the relay key, used for nothing else."""
    return blake2b(relay_key, person=b"kith-access-key", size=32)


def _transcript(role: bytes, n_init: bytes, n_resp: bytes, peer_init: str, peer_resp: str) -> bytes:
    parts = [role, n_init, n_resp, peer_init.encode(), peer_resp.encode()]
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


@dataclass(frozen=True, slots=True)
class Session:
    """The public facts both sides bind their tags to."""

    n_init: bytes
    n_resp: bytes
    peer_init: str
    peer_resp: str

    def tag(self, relay_key: bytes, *, initiator: bool) -> bytes:
        role = _INITIATOR if initiator else _RESPONDER
        data = _transcript(role, self.n_init, self.n_resp, self.peer_init, self.peer_resp)
        return blake2b(data, person=b"kith-access-tag", key=proof_key(relay_key), size=TAG_BYTES)

    def prove(
        self, keys: Mapping[bytes, list[bytes]], *, initiator: bool, rand: RandomBytes, limit: int = KEYS_PER_TOPIC
    ) -> list[bytes]:
        """Tags for ``keys`` (topic -> relay keys, newest last), the newest ``limit`` per
        topic, padded with random tags and put in sorted order (tags look random, so the
        order says nothing). Past `MAX_TAGS`, fewer keys per topic, then a subset of the
        topics: the subset depends on the session's nonces, so successive sessions cover
        every topic."""
        tags: set[bytes] = set()
        for per_topic in range(limit, 0, -1):
            tags = {self.tag(key, initiator=initiator) for ks in keys.values() for key in ks[-per_topic:]}
            if len(tags) <= MAX_TAGS:
                break
        tags = set(sorted(tags)[:MAX_TAGS])
        while len(tags) % PAD_TO or not tags:
            tags.add(rand(TAG_BYTES))
        return sorted(tags)

    def match(self, tags: Iterable[bytes], keys: Mapping[bytes, list[bytes]], *, initiator: bool) -> dict[bytes, bytes]:
        """The topics of ``keys`` that the peer's ``tags`` prove (topic -> the relay key
        it proved). ``initiator`` is the role of the peer that made the tags."""
        # A dict lookup is not constant-time; it needs no secret to be: a tag is a MAC the
        # peer sent us, and which of our keys it matches is what we tell them anyway.
        expected = {self.tag(key, initiator=initiator): (topic, key) for topic, ks in keys.items() for key in ks}
        proved: dict[bytes, bytes] = {}
        for tag in tags:
            hit = expected.get(tag)
            if hit is not None:
                proved.setdefault(hit[0], hit[1])
        return proved
