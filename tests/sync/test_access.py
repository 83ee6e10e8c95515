"""Access proofs (sync/access.py): only a key holder proves or recognises a topic."""

from __future__ import annotations

import secrets

from hypothesis import given
from hypothesis import strategies as st

from kith.sync import access

PEER_A, PEER_B, PEER_S = "12D3KooWAlice", "12D3KooWBob", "12D3KooWStranger"
keys32 = st.binary(min_size=32, max_size=32)


def _session(init: str = PEER_A, resp: str = PEER_B) -> access.Session:
    return access.Session(bytes([1]) * 16, bytes([2]) * 16, init, resp)


@given(st.dictionaries(st.binary(min_size=32, max_size=32), st.lists(keys32, min_size=1, max_size=5), max_size=12))
def test_holders_recognise_each_other_and_nobody_else(keys: dict[bytes, list[bytes]]) -> None:
    session = _session()
    tags = session.prove(keys, initiator=True, rand=secrets.token_bytes)
    assert tags and len(tags) % access.PAD_TO == 0 and tags == sorted(tags)
    # The responder holding the same keys recognises every topic, by its newest keys.
    proved = session.match(tags, keys, initiator=True)
    assert set(proved) == set(keys)
    for topic, key in proved.items():
        assert key in keys[topic][-access.KEYS_PER_TOPIC :]
    # Someone with other keys recognises nothing, and the roles do not mix.
    others = {topic: [secrets.token_bytes(32)] for topic in keys}
    assert session.match(tags, others, initiator=True) == {}
    assert session.match(tags, keys, initiator=False) == {}


def test_a_peer_that_missed_two_rotations_is_still_recognised_but_not_one_that_missed_three() -> None:
    topic, history = bytes(32), [bytes([i]) * 32 for i in range(1, 6)]
    tags = _session().prove({topic: history}, initiator=True, rand=secrets.token_bytes)
    assert _session().match(tags, {topic: history[:3]}, initiator=True) == {topic: history[2]}
    assert _session().match(tags, {topic: history[:2]}, initiator=True) == {}


def test_tags_are_bound_to_both_peers_and_both_nonces() -> None:
    """A stranger between two members cannot pass one member's proofs off as its own: the
    tags name the peers (authenticated by the transport) and the session's nonces."""
    keys = {bytes(32): [bytes([7]) * 32]}
    genuine = _session(PEER_A, PEER_S).prove(keys, initiator=True, rand=secrets.token_bytes)
    assert _session(PEER_S, PEER_B).match(genuine, keys, initiator=True) == {}
    replayed_later = access.Session(bytes([3]) * 16, bytes([2]) * 16, PEER_A, PEER_S)
    assert replayed_later.match(genuine, keys, initiator=True) == {}


def test_a_node_with_no_topics_looks_like_one_with_a_few() -> None:
    empty = _session().prove({}, initiator=True, rand=secrets.token_bytes)
    few = _session().prove({bytes([i]) * 32: [bytes([i]) * 32] for i in range(3)}, initiator=True,
                           rand=secrets.token_bytes)  # fmt: skip
    assert len(empty) == len(few) == access.PAD_TO


def test_a_relay_with_very_many_topics_stays_within_the_bound_and_varies_its_subset() -> None:
    keys = {secrets.token_bytes(32): [secrets.token_bytes(32) for _ in range(3)] for _ in range(1500)}
    first = _session().prove(keys, initiator=True, rand=secrets.token_bytes)
    assert len(first) == access.MAX_TAGS
    other = access.Session(bytes([9]) * 16, bytes([2]) * 16, PEER_A, PEER_B)
    second = other.prove(keys, initiator=True, rand=secrets.token_bytes)
    covered = set(_session().match(first, keys, initiator=True)) | set(other.match(second, keys, initiator=True))
    assert len(covered) > access.MAX_TAGS  # another session, another subset: all get their turn
