"""A writer process for the crash test: stores batches and acknowledges each on stdout.

Usage: python store_writer.py DB_PATH SEED [thread]. Prints "ack <batch> <id-hex>..." lines
after each batch's transaction has committed, then keeps going until killed. With ``thread``
each batch goes through `add_batch_in_thread` from a trio task, as the node writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from kith.p2pnet.store import EnvelopeStore
from kith.sync.envelope import seal


def _batch(key: bytes, batch: int) -> list:
    return [seal(f"op {batch}.{i}".encode() * 20, epoch_key=key, ts=1_700_000_000 + batch) for i in range(50)]


def _ack(batch: int, envelopes: list) -> None:
    sys.stdout.write(f"ack {batch} " + " ".join(e.id.hex() for e in envelopes) + "\n")
    sys.stdout.flush()


def main() -> None:
    path, seed = Path(sys.argv[1]), int(sys.argv[2])
    store = EnvelopeStore(path)
    key = bytes([seed % 256]) * 32
    if sys.argv[3:] == ["thread"]:
        trio.run(_write_in_threads, store, key)
    batch = 0
    while True:
        envelopes = _batch(key, batch)
        store.add_batch(envelopes)
        _ack(batch, envelopes)
        batch += 1


async def _write_in_threads(store: EnvelopeStore, key: bytes) -> None:
    batch = 0
    while True:
        envelopes = _batch(key, batch)
        await store.add_batch_in_thread(envelopes)
        _ack(batch, envelopes)
        batch += 1


if __name__ == "__main__":
    main()
