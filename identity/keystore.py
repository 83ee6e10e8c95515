"""The passphrase-encrypted keystore: one file that holds every secret of a node.

Theory of operation
-------------------
The file is a fixed 90-byte header followed by one XChaCha20-Poly1305 ciphertext::

    magic "KITH-KS\\0" | version | kdf | opslimit | memlimit_kib | salt | nonce | kcv | check

Argon2id turns the passphrase and salt into 64 bytes: the first 32 are the encryption
key; a BLAKE2b hash of the last 32 is the key-check value (kcv). The check field is a
BLAKE2b hash of everything before it. That layout lets unlocking tell apart the three
things that can go wrong, without ever guessing:

* header bytes damaged (check fails, bad magic, unknown version) -> `CorruptKeystore`
* the passphrase is wrong (kcv differs)                          -> `BadPassphrase`
* the ciphertext was cut or altered (kcv matches, AEAD fails)    -> `CorruptKeystore`

The header is the AEAD's associated data, so it cannot be swapped either. KDF costs live
in the header, so tests use cheap ones and old files keep opening after defaults rise.
This module is pure (bytes in, bytes out); the file itself belongs to the node:
`kith.p2pnet.keyfile.Keystore` writes it through `write_atomic`, so the file is always a
complete old or new version, and overwrites the old version's bytes once the new one has
replaced it. New keystores must pass `identity.strength.check_new_passphrase`.

The plaintext is canonical CBOR (see docs/PROTOCOL.md, "Keystore"). Circle keys and the
relay list live in it too; fields this build does not know are kept on rewrite.
"""

from __future__ import annotations

import hmac
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from kith.identity import codec
from kith.identity.crypto import (
    ARGON2ID_MODERATE_MEM,
    ARGON2ID_MODERATE_OPS,
    NONCE_BYTES,
    SALT_BYTES,
    TAG_BYTES,
    RandomBytes,
    aead_decrypt,
    aead_encrypt,
    argon2id,
    blake2b,
    random_bytes,
)
from kith.identity.errors import (
    BadPassphrase,
    CorruptKeystore,
    KithError,
    LocalProtocolError,
    Malformed,
    Undecryptable,
)
from kith.identity.keys import MemberIdentity, NetworkKey
from kith.identity.strength import check_new_passphrase

MAGIC = b"KITH-KS\x00"


@dataclass(frozen=True, slots=True)
class FileFormat:
    """The keystore and the backup file share one layout and differ in magic and name."""

    magic: bytes
    noun: str


KEYSTORE = FileFormat(MAGIC, "keystore")
BACKUP = FileFormat(b"KITH-BK\x00", "backup")
VERSION = 1
KDF_ARGON2ID13 = 1
_PREFIX = struct.Struct(">8sBBII")  # magic, version, kdf, opslimit, memlimit in KiB
KCV_BYTES = 16
CHECK_BYTES = 16
HEADER_BYTES = _PREFIX.size + SALT_BYTES + NONCE_BYTES + KCV_BYTES + CHECK_BYTES  # 90
MAX_KEYSTORE_BYTES = 16 * 1024 * 1024

# Bounds on KDF costs read from a file: a tampered header must not make unlocking
# allocate gigabytes or spin for minutes before the check value rejects it.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 1024 * 1024 * 1024
MIN_MEMLIMIT = 8 * 1024


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id costs. The default is libsodium's MODERATE (3 passes, 256 MiB)."""

    opslimit: int = ARGON2ID_MODERATE_OPS
    memlimit: int = ARGON2ID_MODERATE_MEM

    def __post_init__(self) -> None:
        if not 1 <= self.opslimit <= MAX_OPSLIMIT:
            raise LocalProtocolError(f"opslimit must be 1..{MAX_OPSLIMIT}")
        if not MIN_MEMLIMIT <= self.memlimit <= MAX_MEMLIMIT or self.memlimit % 1024:
            raise LocalProtocolError("memlimit must be a whole number of KiB within bounds")


TEST_KDF = KdfParams(opslimit=1, memlimit=MIN_MEMLIMIT)
"""Deliberately weak costs for tests and benchmarks that are not about the KDF."""


@dataclass(slots=True)
class KeystoreData:
    """Everything secret a node holds. Mutable: circles and relays change over time."""

    identity: MemberIdentity | None
    network: NetworkKey
    storage_key: bytes = field(repr=False)
    circles: dict[bytes, dict[str, Any]] = field(default_factory=dict, repr=False)
    relays: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(cls, identity: MemberIdentity | None, rand: RandomBytes = random_bytes) -> KeystoreData:
        return cls(identity=identity, network=NetworkKey.generate(rand), storage_key=rand(32))

    def to_map(self) -> dict[str, Any]:
        ident = None
        if self.identity is not None:
            ident = {
                "name": self.identity.name,
                "sign_seed": self.identity.sign_seed,
                "dh_secret": self.identity.dh_secret,
                "created": self.identity.created,
            }
        return {
            **self.extra,
            "v": 1,
            "identity": ident,
            "network_seed": self.network.seed,
            "storage_key": self.storage_key,
            "circles": self.circles,
            "relays": self.relays,
        }

    @classmethod
    def from_map(cls, raw: Any) -> KeystoreData:
        if type(raw) is not dict or raw.get("v") != 1:
            raise Malformed("keystore contents have an unknown layout")
        try:
            ident_raw = raw["identity"]
            identity = None
            if ident_raw is not None:
                _check_identity_fields(ident_raw)
                identity = MemberIdentity(
                    ident_raw["name"], ident_raw["sign_seed"], ident_raw["dh_secret"], ident_raw["created"]
                )
            network = NetworkKey(raw["network_seed"])
            storage_key = raw["storage_key"]
            circles = raw["circles"]
            relays = raw["relays"]
        except (KeyError, TypeError, KithError) as exc:
            raise Malformed("keystore contents are incomplete") from exc
        if type(storage_key) is not bytes or len(storage_key) != 32:
            raise Malformed("keystore storage key is malformed")
        if type(circles) is not dict or not all(type(k) is bytes and type(v) is dict for k, v in circles.items()):
            raise Malformed("keystore circle keys are malformed")
        if type(relays) is not list or not all(type(r) is str for r in relays):
            raise Malformed("keystore relay list is malformed")
        known = {"v", "identity", "network_seed", "storage_key", "circles", "relays"}
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(identity, network, storage_key, circles, relays, extra)


def _check_identity_fields(raw: Any) -> None:
    """Types `MemberIdentity` trusts its caller for; a backup from elsewhere may lie about them."""
    if type(raw) is not dict:
        raise Malformed("keystore identity is malformed")
    seed, secret, created = raw.get("sign_seed"), raw.get("dh_secret"), raw.get("created")
    if type(seed) is not bytes or type(secret) is not bytes or len(seed) != 32 or len(secret) != 32:
        raise Malformed("keystore identity keys are malformed")
    if type(created) is not int or not 0 <= created < 2**40:
        raise Malformed("keystore identity creation time is out of range")


@dataclass(frozen=True, slots=True)
class KeystoreHeader:
    version: int
    params: KdfParams
    salt: bytes
    nonce: bytes
    kcv: bytes
    raw: bytes


def normalize_passphrase(passphrase: str) -> bytes:
    """NFC-normalise, so the same passphrase typed on another keyboard still opens."""
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def derive_key(passphrase: str, salt: bytes, params: KdfParams) -> tuple[bytes, bytes]:
    out = argon2id(normalize_passphrase(passphrase), salt, opslimit=params.opslimit, memlimit=params.memlimit, size=64)
    return out[:32], blake2b(out[32:], person=b"kith-ks-kcv", size=KCV_BYTES)


def _header_bytes(params: KdfParams, salt: bytes, nonce: bytes, kcv: bytes, fmt: FileFormat = KEYSTORE) -> bytes:
    prefix = _PREFIX.pack(fmt.magic, VERSION, KDF_ARGON2ID13, params.opslimit, params.memlimit // 1024)
    body = prefix + salt + nonce + kcv
    return body + blake2b(body, person=b"kith-ks-header", size=CHECK_BYTES)


def parse_header(blob: bytes, fmt: FileFormat = KEYSTORE) -> KeystoreHeader:
    """Validate the clear header; raise `CorruptKeystore` with a specific message."""
    noun = fmt.noun
    if len(blob) < len(fmt.magic) or blob[: len(fmt.magic)] != fmt.magic:
        raise CorruptKeystore(f"not a kith {noun} (wrong magic bytes)")
    if len(blob) < HEADER_BYTES + TAG_BYTES:
        raise CorruptKeystore(f"{noun} file is truncated")
    if len(blob) > MAX_KEYSTORE_BYTES:
        raise CorruptKeystore(f"{noun} file is larger than any {noun} kith writes")
    _magic, version, kdf, opslimit, mem_kib = _PREFIX.unpack_from(blob)
    if version != VERSION:
        raise CorruptKeystore(f"{noun} format version {version} is not supported by this kith")
    body, check = blob[: HEADER_BYTES - CHECK_BYTES], blob[HEADER_BYTES - CHECK_BYTES : HEADER_BYTES]
    if blake2b(body, person=b"kith-ks-header", size=CHECK_BYTES) != check:
        raise CorruptKeystore(f"{noun} header is damaged")
    if kdf != KDF_ARGON2ID13:
        raise CorruptKeystore(f"{noun} uses unknown key derivation {kdf}")
    try:
        params = KdfParams(opslimit, mem_kib * 1024)
    except LocalProtocolError as exc:
        raise CorruptKeystore(f"{noun} key-derivation costs are out of bounds") from exc
    offset = _PREFIX.size
    salt = blob[offset : offset + SALT_BYTES]
    nonce = blob[offset + SALT_BYTES : offset + SALT_BYTES + NONCE_BYTES]
    kcv = blob[offset + SALT_BYTES + NONCE_BYTES : offset + SALT_BYTES + NONCE_BYTES + KCV_BYTES]
    return KeystoreHeader(version, params, salt, nonce, kcv, blob[:HEADER_BYTES])


def seal_keystore(
    data: KeystoreData,
    key: bytes,
    kcv: bytes,
    salt: bytes,
    params: KdfParams,
    rand: RandomBytes = random_bytes,
    fmt: FileFormat = KEYSTORE,
) -> bytes:
    """Encrypt ``data`` under an already-derived key into the full file bytes."""
    nonce = rand(NONCE_BYTES)
    header = _header_bytes(params, salt, nonce, kcv, fmt)
    return header + aead_encrypt(key, nonce, codec.encode(data.to_map()), header)


def open_keystore(
    blob: bytes, passphrase: str, fmt: FileFormat = KEYSTORE
) -> tuple[KeystoreData, bytes, bytes, KeystoreHeader]:
    """Decrypt file bytes; returns (data, key, kcv, header)."""
    header = parse_header(blob, fmt)
    key, kcv = derive_key(passphrase, header.salt, header.params)
    if not hmac.compare_digest(kcv, header.kcv):
        raise BadPassphrase()
    try:
        plaintext = aead_decrypt(key, header.nonce, blob[HEADER_BYTES:], header.raw)
    except Undecryptable as exc:
        raise CorruptKeystore(f"{fmt.noun} contents were altered or truncated") from exc
    try:
        data = KeystoreData.from_map(codec.decode(plaintext, max_size=MAX_KEYSTORE_BYTES, what=fmt.noun))
    except Malformed as exc:
        raise CorruptKeystore(f"{fmt.noun} contents are unreadable: {exc}") from exc
    return data, key, kcv, header


__all__ = [
    "KeystoreData",
    "KdfParams",
    "TEST_KDF",
    "check_new_passphrase",
    "open_keystore",
    "parse_header",
    "seal_keystore",
]
