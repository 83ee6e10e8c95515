"""Reconciliation messages: one encoding per message, and hostile bytes only ever raise protocol errors."""

from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kith.identity import codec
from kith.identity.errors import Malformed, Oversized, RemoteProtocolError, UnsupportedVersion
from kith.sync.reconcile import ItemIndex, ReconcileSession
from kith.sync.reconcile_index import INFINITY
from kith.sync.reconcile_sketch import AMS_BYTES
from kith.sync.reconcile_wire import (
    MAX_MESSAGE_BYTES,
    Estimate,
    Fingerprint,
    HaveAll,
    IdList,
    IdListReply,
    Message,
    NeedAll,
    Range,
    SketchRange,
    SketchResult,
    Skip,
    decode_message,
    encode_message,
)

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_helpers import SALT, random_items  # noqa: E402

# --- round trips ------------------------------------------------------------------------

counts = st.integers(0, 2**32 - 1)
payloads = st.one_of(
    st.just(Skip()),
    st.builds(Fingerprint, counts, st.binary(min_size=16, max_size=16)),
    st.builds(Estimate, counts, st.binary(min_size=16, max_size=16), st.binary(min_size=AMS_BYTES, max_size=AMS_BYTES)),
    st.lists(st.binary(min_size=32, max_size=32), unique=True, max_size=5).map(lambda ids: IdList(b"".join(ids))),
    st.builds(IdListReply, counts, st.binary(max_size=4)),
    st.builds(HaveAll, st.integers(1, 2**32 - 1)),
    st.just(NeedAll()),
    st.sampled_from([16, 32, 40]).map(lambda cells: SketchRange(3, bytes(8 * cells))),
    st.builds(
        lambda keys, split, n, total: SketchResult(
            b"".join(k.to_bytes(6, "big") for k in sorted(keys)[:split]),
            b"".join(k.to_bytes(6, "big") for k in sorted(keys)[split:]),
            n,
            total,
        ),
        st.sets(st.integers(0, 2**48 - 1), max_size=6),
        st.integers(0, 6),
        counts,
        st.binary(min_size=32, max_size=32),
    ),
)
bounds = st.tuples(st.integers(0, 2**40 - 1), st.binary(max_size=32)).map(lambda b: b[0].to_bytes(8, "big") + b[1])


@st.composite
def messages(draw: st.DrawFn) -> Message:
    uppers = sorted(set(draw(st.lists(bounds, max_size=8))))
    if draw(st.booleans()):
        uppers.append(INFINITY)
    ranges = tuple(Range(upper, draw(payloads)) for upper in uppers)
    salt = draw(st.none() | st.binary(min_size=16, max_size=16))
    return Message(ranges, salt)


@given(messages())
def test_messages_round_trip_in_canonical_form(message: Message) -> None:
    data = encode_message(message)
    decoded = decode_message(data, first=message.salt is not None)
    assert decoded.normalized == message.normalized
    assert decoded.salt == message.salt
    assert encode_message(decoded) == data
    assert codec.decode(data, max_size=MAX_MESSAGE_BYTES) is not None


def test_skips_are_merged_and_trailing_ones_dropped() -> None:
    fp = Fingerprint(1, bytes(16))
    b1, b2, b3 = (bytes([0] * 7 + [n]) for n in (1, 2, 3))
    message = Message((Range(b1, Skip()), Range(b2, Skip()), Range(b3, fp), Range(INFINITY, Skip())))
    assert [type(r.payload) for r in message.normalized] == [Skip, Fingerprint]
    assert encode_message(message) == encode_message(Message((Range(b2, Skip()), Range(b3, fp))))
    # A peer that sends the non-canonical form is refused.
    raw = codec.encode([2, 2, b"", 0, 3, b"", 0, 2, b"", 1, 1, bytes(16)])
    with pytest.raises(Malformed):
        decode_message(raw, first=False)
    with pytest.raises(Malformed):
        decode_message(codec.encode([2, 2, b"", 1, 1, bytes(16), 0, b"", 0]), first=False)
    assert decode_message(b"\x81\x02", first=False).spans() == [(b"", INFINITY, Skip())]


# --- hostile bytes -----------------------------------------------------------------------

BAD = [
    ([1], UnsupportedVersion),  # version 1 keyed every sketch by the session salt
    ([3], UnsupportedVersion),
    ([2, 0, b"", 9], Malformed),  # unknown mode
    ([2, 0, b"x", 0], Malformed),  # infinity with a prefix
    ([2, 2**40 + 1, b"", 1, 0, bytes(16)], Malformed),  # ts beyond 2^40 - 1
    ([2, 5, bytes(33), 1, 0, bytes(16)], Malformed),  # prefix longer than an id
    ([2, 0, b"", 1, 2**32, bytes(16)], Malformed),  # absurd count
    ([2, 0, b"", 1, -1, bytes(16)], Malformed),
    ([2, 0, b"", 1, 0, bytes(15)], Malformed),
    ([2, 0, b"", 2, 5, bytes(16), bytes(AMS_BYTES - 1)], Malformed),
    ([2, 0, b"", 3, bytes(31)], Malformed),
    ([2, 0, b"", 3, bytes(64)], Malformed),  # the same id twice
    ([2, 0, b"", 3, bytes(32 * 4097)], Malformed),  # too many ids
    ([2, 0, b"", 4, 0, bytes(600)], Malformed),  # bitmap longer than any id list
    ([2, 0, b"", 5, 0], Malformed),  # HaveAll of nothing
    ([2, 0, b"", 7, 3, bytes(8 * 17)], Malformed),  # not 4s-12 cells
    ([2, 0, b"", 7, 3, bytes(8 * 24)], Malformed),  # 4s-12 cells but s = 9 is a multiple of 3
    ([2, 0, b"", 7, 3, bytes(8 * 24_580)], Malformed),  # too many cells (and too big)
    ([2, 0, b"", 8, bytes(12), bytes(6), 0, bytes(32)], Malformed),  # need keys not ascending
    ([2, 0, b"", 8, bytes(6), bytes(6), 0, bytes(32)], Malformed),  # needed and offered
    ([2, 0, b"", 8, bytes(5), b"", 0, bytes(32)], Malformed),
    ([2, 2, b"", 1, 0, bytes(16), 1, b"", 1, 0, bytes(16)], Malformed),  # the same bound twice
    ([2, 2, b"\x05", 1, 0, bytes(16), 1, b"\x04", 1, 0, bytes(16)], Malformed),  # bounds going down
    ([2, 0, b"", 1, 0, bytes(16), 5, b"", 6], Malformed),  # a range after infinity
    ([2, 0, b"", 1, 0], Malformed),  # cut short
    ([2, 0, b"", 1, True, bytes(16)], Malformed),  # a bool is not a count
    ({"v": 1}, Malformed),
    ([], Malformed),
    ([b"1"], Malformed),
]


@pytest.mark.parametrize(("items", "error"), BAD)
def test_bad_fields_are_refused(items: object, error: type[Exception]) -> None:
    data = codec.encode(items)
    with pytest.raises(error):
        decode_message(data, first=False)


def test_first_message_needs_a_salt() -> None:
    with pytest.raises(Malformed):
        decode_message(codec.encode([2]), first=True)
    with pytest.raises(Malformed):
        decode_message(codec.encode([2, bytes(15)]), first=True)
    assert decode_message(codec.encode([2, bytes(16)]), first=True).salt == bytes(16)


def test_oversized_and_random_bytes() -> None:
    with pytest.raises(Oversized):
        decode_message(b"\x82\x01" + bytes(MAX_MESSAGE_BYTES), first=False)
    rng = random.Random(7)
    for _ in range(3000):
        data = rng.randbytes(rng.randrange(0, 64))
        try:
            decode_message(data, first=rng.random() < 0.5)
        except RemoteProtocolError:
            pass


def _conversation() -> list[tuple[ReconcileSession, bytes]]:
    """(receiver before it reads the message, message) for exchanges that use every mode."""
    out: list[tuple[ReconcileSession, bytes]] = []
    items = random_items(1400, seed=77)
    shapes = [
        (items[:600], items[40:640]),  # estimate, sketch, result, skip
        (items[:10], items[5:300]),  # initiator lists, reply
        (items[:400], items[:300] + items[1000:1300]),  # split into id lists
        ([], items[:50]),  # have all
        (items[:50], []),  # need all
    ]
    for a, b in shapes:
        initiator = ReconcileSession(ItemIndex(a), initiator=True, salt=SALT)
        responder = ReconcileSession(ItemIndex(b), initiator=False)
        message: bytes | None = initiator.start()
        receiver, sender = responder, initiator
        while message is not None:
            out.append((copy.deepcopy(receiver), message))
            message = receiver.receive(message)
            receiver, sender = sender, receiver
    return out


CONVERSATION = _conversation()


def test_the_conversation_covers_every_mode() -> None:
    seen = set()
    for receiver, message in CONVERSATION:
        first = not receiver.initiator and receiver.salt is None
        seen |= {type(payload).__name__ for *_, payload in decode_message(message, first=first).spans()}
    assert seen == {
        "Skip",
        "Fingerprint",
        "Estimate",
        "IdList",
        "IdListReply",
        "HaveAll",
        "NeedAll",
        "SketchRange",
        "SketchResult",
    }


def test_every_truncation_and_bit_flip_raises_a_protocol_error_or_is_processed() -> None:
    processed = 0
    for receiver, message in CONVERSATION:
        first = not receiver.initiator and receiver.salt is None
        for cut in range(len(message)):
            with pytest.raises(RemoteProtocolError):
                decode_message(message[:cut], first=first)
        for at in range(len(message)):
            for bit in range(8):
                flipped = bytearray(message)
                flipped[at] ^= 1 << bit
                try:
                    decode_message(bytes(flipped), first=first)
                except RemoteProtocolError:
                    continue
                # It still parses (a changed count, fingerprint, id...): the session must
                # cope, by answering or by raising a protocol error, and nothing else. One
                # bit per byte (every 4th byte of long messages) keeps this test quick.
                if bit != at % 8 or (len(message) > 600 and at % 4):
                    continue
                processed += 1
                try:
                    copy.deepcopy(receiver).receive(bytes(flipped))
                except RemoteProtocolError:
                    pass
    assert processed > 2000


@settings(max_examples=300)
@given(st.integers(0, len(CONVERSATION) - 1), st.integers(0, 2**32), st.integers(0, 7), st.booleans())
def test_mutated_messages_never_raise_anything_else(which: int, position: int, bit: int, cut: bool) -> None:
    receiver, message = CONVERSATION[which]
    session = copy.deepcopy(receiver)
    mutated = bytearray(message)
    if cut:
        mutated = mutated[: position % len(message)]
    else:
        mutated[position % len(message)] ^= 1 << bit
    try:
        session.receive(bytes(mutated))
    except RemoteProtocolError:
        return


@pytest.mark.parametrize("mode", ["fingerprint", "estimate"])
def test_a_message_with_the_most_ranges_gets_a_bounded_answer(mode: str) -> None:
    """A peer may open 2,048 ranges at once; the answer stays within every limit."""
    from kith.sync.reconcile_wire import MAX_RANGES

    index = ItemIndex(random_items(20_000, seed=3))
    keys = index.item_keys()
    rng = random.Random(1)
    count = MAX_RANGES - 1 if mode == "fingerprint" else 1000  # estimates are bigger: fit 256 KiB
    # The first range is big (it must be split, or sketched) and every other one is open too.
    ranges = []
    for upper in [keys[5000], *sorted(rng.sample(keys[5001:], count - 1))]:
        if mode == "fingerprint":
            ranges.append(Range(upper, Fingerprint(50, rng.randbytes(16))))
        else:
            ranges.append(Range(upper, Estimate(50, rng.randbytes(16), rng.randbytes(AMS_BYTES))))
    ranges.append(Range(INFINITY, Fingerprint(50, rng.randbytes(16))))
    session = ReconcileSession(index, initiator=False)
    reply = session.receive(encode_message(Message(tuple(ranges), salt=SALT)))
    assert reply is not None and len(reply) <= MAX_MESSAGE_BYTES
    assert len(decode_message(reply, first=False).normalized) <= MAX_RANGES
