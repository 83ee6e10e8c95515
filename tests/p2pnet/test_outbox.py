"""The outbox: which topics hold something we made that no finished session offered a peer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kith.p2pnet.outbox import Outbox

A, B = b"a" * 32, b"b" * 32


def test_a_session_that_began_after_the_last_envelope_clears_its_topic() -> None:
    outbox = Outbox()
    outbox.made(A, 10.0)
    outbox.made(B, 10.0)
    outbox.offered([A], 11.0)
    assert outbox.pending() == [B]


def test_a_session_that_began_before_it_does_not() -> None:
    # It may have compared our index before the envelope was in it.
    outbox = Outbox()
    outbox.made(A, 10.0)
    outbox.offered([A], 10.0)
    outbox.offered([A], 9.0)
    assert outbox.pending() == [A]


def test_a_later_envelope_on_the_topic_needs_a_later_session() -> None:
    outbox = Outbox()
    outbox.made(A, 10.0)
    outbox.made(A, 20.0)
    outbox.made(A, 15.0)  # noted out of order: the newest time stands
    outbox.offered([A], 16.0)
    assert outbox.pending() == [A]
    outbox.offered([A], 21.0)
    assert outbox.pending() == []


def test_a_topic_we_stopped_serving_is_forgotten() -> None:
    outbox = Outbox()
    outbox.made(A, 10.0)
    outbox.forget(A)
    outbox.forget(B)
    assert outbox.pending() == []


@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([A, B]), st.floats(min_value=0, max_value=100, allow_nan=False)),
        max_size=30,
    )
)
def test_pending_is_exactly_the_topics_made_since_the_last_session_that_began_after(
    events: list[tuple[bool, bytes, float]],
) -> None:
    outbox = Outbox()
    made: dict[bytes, float] = {}
    for is_session, topic, at in events:
        if is_session:
            outbox.offered([topic], at)
            if topic in made and made[topic] < at:
                del made[topic]
        else:
            outbox.made(topic, at)
            made[topic] = max(at, made.get(topic, at))
    assert outbox.pending() == sorted(made)
