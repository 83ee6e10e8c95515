"""A writer process for the crash test: stores batches and acknowledges each on stdout.

Usage: python store_writer.py DB_PATH SEED. Prints "ack <batch> <first-id-hex>..." lines
after each batch's transaction has committed, then keeps going until killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kith.p2pnet.store import EnvelopeStore
from kith.sync.envelope import seal


def main() -> None:
    path, seed = Path(sys.argv[1]), int(sys.argv[2])
    store = EnvelopeStore(path)
    key = bytes([seed % 256]) * 32
    batch = 0
    while True:
        envelopes = [seal(f"op {batch}.{i}".encode() * 20, epoch_key=key, ts=1_700_000_000 + batch) for i in range(50)]
        store.add_batch(envelopes)
        sys.stdout.write(f"ack {batch} " + " ".join(e.id.hex() for e in envelopes) + "\n")
        sys.stdout.flush()
        batch += 1


if __name__ == "__main__":
    main()
