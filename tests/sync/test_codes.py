"""Copyable codes and relay tokens: typos and truncation give clear errors, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kith.identity.errors import Malformed, RemoteProtocolError
from kith.sync.codes import decode_code, encode_code
from kith.sync.relaytoken import RelayToken

TOKEN = RelayToken(bytes([1]) * 32, "Riverside mutual aid", {bytes([2]) * 16: bytes([3]) * 32})


def test_round_trip_and_forgiving_paste() -> None:
    text = TOKEN.encode()
    assert text.startswith("KITH-RELAY:")
    assert RelayToken.decode(text) == TOKEN
    spaced = " ".join(text[i : i + 20] for i in range(0, len(text), 20)).lower()
    assert RelayToken.decode("\n  " + spaced.replace("kith-relay:", "KITH-RELAY:") + "\n") == TOKEN


def test_every_single_character_typo_is_caught() -> None:
    text = TOKEN.encode()
    body_start = len("KITH-RELAY:")
    for position in range(body_start, len(text)):
        for replacement in "A7Q":
            if text[position] == replacement:
                continue
            typo = text[:position] + replacement + text[position + 1 :]
            with pytest.raises(Malformed):
                RelayToken.decode(typo)


def test_truncations_and_wrong_kinds() -> None:
    text = TOKEN.encode()
    for length in range(len(text)):
        with pytest.raises(Malformed):
            RelayToken.decode(text[:length])
    with pytest.raises(Malformed, match="should start with"):
        RelayToken.decode("KITH-INVITE:" + text[11:])
    with pytest.raises(Malformed):
        RelayToken.decode(text + "1")  # not base32


@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_protocol_errors(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        RelayToken.decode("KITH-RELAY:" + text)


def test_payload_is_validated_after_checksum() -> None:
    fields = {"keys": {}, "grants": {}, "label": "x", "quota": 1, "topic": bytes(32)}
    wrong = encode_code("KITH-RELAY:", {"v": 2, **fields})
    with pytest.raises(Malformed, match="between 1 and 256"):
        RelayToken.decode(wrong)
    future = encode_code("KITH-RELAY:", {"v": 3, **fields})
    with pytest.raises(Malformed, match="upgrade"):
        RelayToken.decode(future)
    old = encode_code("KITH-RELAY:", {"v": 1, "keys": {}, "label": "x", "quota": 1, "topic": bytes(32)})
    with pytest.raises(Malformed, match="older kith"):
        RelayToken.decode(old)
    assert decode_code("X:", encode_code("X:", {"a": 1}), what="code") == {"a": 1}
