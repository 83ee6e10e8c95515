"""Test vectors for docs/RECONCILE.md, computed by the real code from fixed inputs.

`python tests/sync/reconcile_vectors.py` prints the vector blocks for the document;
tests/sync/test_reconcile_vectors.py checks that the document holds exactly these values.

Inputs: item n has id ``BLAKE2b-256(bytes([n]))`` (no key, no personalisation) and ts
``1700000000 + 10 * n``. The initiator holds items 0..41, the responder items 0..39 and
42..44, the salt is ``00 01 02 ... 0f``.
"""

from __future__ import annotations

import hashlib

from kith.sync.reconcile import ItemIndex, ReconcileSession
from kith.sync.reconcile_index import fingerprint, item_key, population_counts, sum_ids
from kith.sync.reconcile_sketch import ams_residues, encode_ams, plain_values, salt_multiplier, sketch_values

SALT = bytes(range(16))


def item(n: int) -> tuple[int, bytes]:
    return 1_700_000_000 + 10 * n, hashlib.blake2b(bytes([n]), digest_size=32).digest()


INITIATOR = [item(n) for n in range(42)]
RESPONDER = [item(n) for n in (*range(40), 42, 43, 44)]


def compute() -> dict[str, str]:
    keys = sorted(item_key(ts, i) for ts, i in INITIATOR)
    multiplier = salt_multiplier(SALT)
    initiator = ReconcileSession(ItemIndex(INITIATOR), initiator=True, salt=SALT)
    responder = ReconcileSession(ItemIndex(RESPONDER), initiator=False)
    messages = [initiator.start()]
    sides = [responder, initiator]
    while True:
        reply = sides[(len(messages) - 1) % 2].receive(messages[-1])
        if reply is None:
            break
        messages.append(reply)
    ts0, id0 = item(0)
    return {
        "recon-item-0": item_key(ts0, id0).hex(),
        "recon-fingerprint-initiator": fingerprint(sum_ids(keys), len(keys)).hex(),
        "recon-multiplier": salt_multiplier(SALT).to_bytes(32, "little").hex(),
        "recon-plain-value-item-0": plain_values([item_key(ts0, id0)])[0].to_bytes(8, "big").hex(),
        "recon-value-item-0": sketch_values([item_key(ts0, id0)], multiplier)[0].to_bytes(8, "big").hex(),
        "recon-estimator-initiator": encode_ams(ams_residues(len(keys), population_counts(keys))).hex(),
        **{f"recon-message-{n + 1}": message.hex() for n, message in enumerate(messages)},
    }


def markdown() -> str:
    out = []
    for name, value in compute().items():
        lines = [value[i : i + 96] for i in range(0, len(value), 96)]
        out.append("```text\n# vector: " + name + "\n" + "\n".join(lines) + "\n```\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
