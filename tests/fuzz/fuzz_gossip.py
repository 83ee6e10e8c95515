"""Gossip batches: `p2pnet.gossip.decode_batch`, then every item through `Envelope.decode`.

Oracle: only `RemoteProtocolError` (what the gossip validator catches).
"""

from __future__ import annotations

from kith.identity.errors import RemoteProtocolError
from kith.p2pnet.gossip import decode_batch, encode_batch
from kith.sync.envelope import Envelope


def TestOneInput(data: bytes) -> None:
    try:
        items = decode_batch(data)
    except RemoteProtocolError:
        return
    if encode_batch(items) != data:
        raise AssertionError("an accepted batch does not re-encode to its bytes")
    for item in items:
        try:
            Envelope.decode(item)
        except RemoteProtocolError:
            pass
