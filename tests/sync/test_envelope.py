"""Envelopes: relays can check them without keys; nobody can read or alter them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kith.identity import codec
from kith.identity.errors import (
    BadSignature,
    Malformed,
    Oversized,
    RemoteProtocolError,
    Undecryptable,
    UnsupportedVersion,
)
from kith.sync import limits
from kith.sync.envelope import (
    Envelope,
    circle_handle,
    epoch_id,
    epoch_topic,
    open_envelope,
    relay_key,
    seal,
    topic_of_epoch_key,
)
from kith.sync.ids import envelope_id

KEY = bytes([9]) * 32
TOPIC = topic_of_epoch_key(KEY)
PLAINTEXT = b"a signed op would be here; its words must stay private"


def _envelope(**kwargs: object) -> Envelope:
    return seal(PLAINTEXT, epoch_key=KEY, ts=1_700_000_000, **kwargs)  # type: ignore[arg-type]


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=limits.MAX_TS))
def test_round_trip(plaintext: bytes, ts: int) -> None:
    envelope = seal(plaintext, epoch_key=KEY, ts=ts)
    decoded = Envelope.decode(envelope.data)
    assert decoded == envelope
    assert decoded.id == envelope_id(envelope.data)
    assert open_envelope(decoded, KEY) == plaintext


def test_ciphertext_hides_the_plaintext_and_the_circle() -> None:
    envelope = _envelope()
    assert PLAINTEXT not in envelope.data
    assert bytes([7]) * 16 not in envelope.data
    assert envelope.epoch == epoch_id(KEY) and KEY not in envelope.data


def test_wrong_key() -> None:
    with pytest.raises(Undecryptable):
        open_envelope(_envelope(), bytes([8]) * 32)


def test_every_single_bit_flip_is_rejected_by_relays_and_members() -> None:
    """A flip breaks the structure, or the relay authenticator, and the AEAD tag."""
    data = _envelope().data
    for position in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[position // 8] ^= 1 << (position % 8)
        try:
            envelope = Envelope.decode(bytes(flipped))
        except Malformed:
            continue
        with pytest.raises(BadSignature):
            envelope.check_mac(relay_key(KEY))
        with pytest.raises(Undecryptable):
            open_envelope(envelope, KEY)


def test_relay_authenticator() -> None:
    envelope = _envelope()
    envelope.check_mac(relay_key(KEY))
    with pytest.raises(BadSignature):
        envelope.check_mac(relay_key(bytes([8]) * 32))
    # The relay key does not open the envelope: relays authenticate but cannot read.
    with pytest.raises(Undecryptable):
        open_envelope(envelope, relay_key(KEY))
    forged = Envelope.build(TOPIC, envelope.epoch, 5, bytes(24), bytes(64), relay_key=bytes(32))
    with pytest.raises(BadSignature):
        Envelope.decode(forged.data).check_mac(relay_key(KEY))


def test_header_cannot_be_moved_to_another_topic_or_time() -> None:
    envelope = _envelope()
    for topic, ts in ((topic_of_epoch_key(bytes([8]) * 32), envelope.ts), (envelope.topic, envelope.ts + 1)):
        moved = Envelope.build(topic, envelope.epoch, ts, envelope.nonce, envelope.ciphertext, relay_key=relay_key(KEY))
        with pytest.raises(Undecryptable):
            open_envelope(Envelope.decode(moved.data), KEY)


def _fields() -> dict[str, object]:
    envelope = _envelope()
    return {
        "v": 1,
        "topic": envelope.topic,
        "epoch": envelope.epoch,
        "ts": envelope.ts,
        "nonce": envelope.nonce,
        "ct": envelope.ciphertext,
        "mac": envelope.mac,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"topic": b"\x00" * 31},
        {"epoch": "text"},
        {"ts": -5},
        {"ts": limits.MAX_TS + 1},
        {"ts": False},
        {"nonce": b"\x00" * 12},
        {"ct": b"\x00" * 15},
        {"mac": b"\x00" * 15},
        {"extra": b""},
    ],
)
def test_malformed_fields(change: dict[str, object]) -> None:
    fields = _fields()
    fields.update(change)
    with pytest.raises(Malformed):
        Envelope.decode(codec.encode(fields))


def test_unknown_version_and_missing_fields() -> None:
    fields = _fields()
    for old_or_future in (1, 2, 4):  # 1: unpadded; 2: one topic per circle
        fields["v"] = old_or_future
        with pytest.raises(UnsupportedVersion):
            Envelope.decode(codec.encode(fields))
    del fields["v"]
    with pytest.raises(Malformed):
        Envelope.decode(codec.encode(fields))


def test_non_canonical_envelope_is_rejected() -> None:
    import cbor2

    reordered = cbor2.dumps(dict(reversed(list(_fields().items()))))
    with pytest.raises(Malformed):
        Envelope.decode(reordered)


def test_oversized() -> None:
    with pytest.raises(Oversized):
        Envelope.decode(b"\xa6" + bytes(limits.MAX_ENVELOPE_BYTES))


@given(st.binary(max_size=400))
def test_garbage_raises_only_protocol_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        Envelope.decode(data)


def test_topic_and_epoch_ids_are_stable_and_distinct() -> None:
    assert _envelope().topic == TOPIC == epoch_topic(relay_key(KEY))
    # Each epoch has its own topic; neither it nor the circle's handle names the other.
    assert topic_of_epoch_key(bytes([6]) * 32) != TOPIC
    assert circle_handle(bytes([7]) * 16) not in (TOPIC, topic_of_epoch_key(bytes([6]) * 32))
    assert len(epoch_id(KEY)) == 16 and epoch_id(KEY) != epoch_id(bytes([1]) * 32)


def test_padding_hides_the_kind_of_op_and_round_trips() -> None:
    from kith.sync.envelope import open_envelope, pad, padded_size, unpad

    # A reaction and a rent request of ordinary length are the same size on the wire.
    short = seal(b"r" * 200, epoch_key=KEY, ts=1)
    longer = seal(b"q" * 900, epoch_key=KEY, ts=1)
    assert len(short.data) == len(longer.data)
    assert open_envelope(short, KEY) == b"r" * 200
    for n in (0, 1023, 1024, 2047, 30_000, 61_440):
        assert unpad(pad(b"\x80" * n)) == b"\x80" * n
        assert len(pad(bytes(n))) == padded_size(n)
    for bad in (b"", b"abc", pad(b"x") + b"\x00", pad(b"x")[:-1] + b"\x01", b"x" * 1023 + b"\x80" + bytes(1024)):
        with pytest.raises(Malformed):
            unpad(bad)
