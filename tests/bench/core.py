"""Foundation figures: creating and ingesting ops, the Ed25519 floor, unlocking."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import nacl.bindings as sodium

from bench import Figures, register
from kith.identity.crypto import random_bytes
from kith.identity.keys import MemberIdentity
from kith.identity.keystore import KdfParams, KeystoreData
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.store import EnvelopeStore
from kith.sync.envelope import Envelope, open_envelope, seal
from kith.sync.ops import Op, SignedOp

_TEXT = "Checking in: I can bring soup on Thursday, and I have a spare room this weekend if anyone needs it."


def _make_ops(count: int) -> tuple[list[bytes], bytes]:
    author = MemberIdentity.generate("bench", now=1)
    circle = random_bytes(16)
    key = random_bytes(32)
    parents = (random_bytes(32),)
    envelopes = []
    for i in range(count):
        op = Op(circle, author.member_id, parents, 2, 1_700_000_000 + i, "msg.post", {"text": _TEXT}, seq=1)
        envelopes.append(seal(SignedOp.create(op, author).data, epoch_key=key, ts=op.ts).data)
    return envelopes, key


@register("op_create_per_s")
def bench_op_create() -> Figures:
    author = MemberIdentity.generate("bench", now=1)
    circle = random_bytes(16)
    key = random_bytes(32)
    parents = (random_bytes(32),)
    count = 20_000
    start = time.perf_counter()
    for i in range(count):
        op = Op(circle, author.member_id, parents, 2, 1_700_000_000 + i, "msg.post", {"text": _TEXT}, seq=1)
        seal(SignedOp.create(op, author).data, epoch_key=key, ts=op.ts)
    return {"op_create_per_s": round(count / (time.perf_counter() - start))}


@register("op_ingest_per_s", "floor_verify_per_s")
def bench_ingest() -> Figures:
    count = 20_000
    batch = 500
    raw, key = _make_ops(count)
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        store = EnvelopeStore(Path(tmp) / "bench.sqlite")
        start = time.perf_counter()
        for offset in range(0, count, batch):
            accepted = []
            for data in raw[offset : offset + batch]:
                envelope = Envelope.decode(data)
                SignedOp.decode(open_envelope(envelope, key))
                accepted.append(envelope)
            store.add_batch(accepted)
        ingest = count / (time.perf_counter() - start)
        assert store.count() == count
        store.close()
    # The floor: the same number of bare Ed25519 verifications of a similar-sized signed
    # op, straight into libsodium (no wrapper, buffers allocated once).
    from nacl._sodium import ffi, lib

    identity = MemberIdentity.generate("floor", now=1)
    signed = sodium.crypto_sign(bytes(360), identity.sign_secret)
    public = identity.sign_public
    opened = ffi.new("unsigned char[]", len(signed))
    opened_len = ffi.new("unsigned long long *")
    start = time.perf_counter()
    for _ in range(count):
        lib.crypto_sign_open(opened, opened_len, signed, len(signed), public)
    floor = count / (time.perf_counter() - start)
    return {"op_ingest_per_s": round(ingest), "floor_verify_per_s": round(floor)}


@register("unlock_s")
def bench_unlock() -> Figures:
    """Median of three unlocks with the default (MODERATE) Argon2id costs."""
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        path = Path(tmp) / "keystore.kith"
        data = KeystoreData.generate(MemberIdentity.generate("bench", now=1))
        Keystore.create(path, "correct horse battery staple", data, KdfParams())
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            Keystore.unlock(path, "correct horse battery staple")
            timings.append(time.perf_counter() - start)
    return {"unlock_s": round(statistics.median(timings), 3)}
