"""Keystore and backup files: `parse_header`, `open_keystore`, `read_backup`, and what reads
the decrypted contents (`KeystoreData.from_map`, `CircleKeys.from_map`, `RelayTopic.from_map`).

Modes (first byte, mod 3):
  0. the rest is a whole file: parsed and opened as a keystore and as a backup (a real
     file, through `read_backup`);
  1. the rest is header fields (version, kdf, opslimit, memlimit, then anything) that the
     harness completes with a valid header check, so the cost bounds are reached; only
     `parse_header` runs (a valid header with the highest costs takes seconds to derive);
  2. the rest is the plaintext, sealed under the passphrase with TEST_KDF costs, so the
     contents decoders see the fuzz bytes.

Oracle: only `CorruptKeystore` / `BadPassphrase` (and `Malformed` from the circle and
relay-topic readers); contents that open are usable: the identity makes its card, and
the data re-seals and re-opens to the same map.
"""

from __future__ import annotations

import atexit
import shutil
import struct
import tempfile
from pathlib import Path

from kith.identity import codec
from kith.identity.crypto import aead_encrypt, blake2b
from kith.identity.errors import BadPassphrase, CorruptKeystore, Malformed
from kith.identity.keyring import CircleKeys, RelayTopic
from kith.identity.keystore import (
    BACKUP,
    HEADER_BYTES,
    KEYSTORE,
    TEST_KDF,
    _header_bytes,
    derive_key,
    open_keystore,
    parse_header,
    seal_keystore,
)
from kith.p2pnet.keyfile import read_backup

PASSPHRASE = "correct horse battery staple"
SALT = bytes([0x0B]) * 16
NONCE = bytes([0x0C]) * 24
KEY, KCV = derive_key(PASSPHRASE, SALT, TEST_KDF)
RELAY_TOPICS = "relay_topics"
"""The keystore entry where a relay keeps its topics (p2pnet.node.RELAY_TOPICS_KEY)."""

_TMP = Path(tempfile.mkdtemp(prefix="kith-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)
_FILE = _TMP / "backup.kith"


def seal_plaintext(plaintext: bytes) -> bytes:
    header = _header_bytes(TEST_KDF, SALT, NONCE, KCV)
    return header + aead_encrypt(KEY, NONCE, plaintext, header)


def _check_usable(blob: bytes) -> None:
    try:
        data, key, kcv, header = open_keystore(blob, PASSPHRASE)
    except (CorruptKeystore, BadPassphrase):
        return
    if data.identity is not None:
        data.identity.card()
    for circle_id, raw in data.circles.items():
        try:
            CircleKeys.from_map(circle_id, raw)
        except Malformed:
            pass
    topics = data.extra.get(RELAY_TOPICS)
    if type(topics) is dict:
        for topic, entry in topics.items():
            try:
                RelayTopic.from_map(topic, entry)
            except Malformed:
                pass
    again = seal_keystore(data, key, kcv, header.salt, header.params, rand=lambda n: NONCE[:n])
    if codec.encode(open_keystore(again, PASSPHRASE)[0].to_map()) != codec.encode(data.to_map()):
        raise AssertionError("keystore contents do not survive a re-seal")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        for fmt in (KEYSTORE, BACKUP):
            try:
                parse_header(rest, fmt)
            except CorruptKeystore:
                pass
        _check_usable(rest)
        _FILE.write_bytes(rest)
        try:
            read_backup(_FILE, PASSPHRASE, rand=lambda n: bytes(n))
        except (CorruptKeystore, BadPassphrase):
            pass
    elif mode == 1:
        fields = (rest + bytes(10))[:10]
        version, kdf, opslimit, mem_kib = struct.unpack(">BBII", fields)
        body = struct.pack(">8sBBII", KEYSTORE.magic, version, kdf, opslimit, mem_kib) + SALT + NONCE + KCV
        blob = body + blake2b(body, person=b"kith-ks-header", size=16) + rest[10:] + bytes(16)
        try:
            header = parse_header(blob)
        except CorruptKeystore:
            return
        if header.raw != blob[:HEADER_BYTES]:
            raise AssertionError("parse_header lost header bytes")
    else:
        _check_usable(seal_plaintext(rest))
