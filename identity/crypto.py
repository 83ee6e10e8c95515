"""Thin, typed wrappers over libsodium (via pynacl) for the primitives kith uses.

* Ed25519 detached signatures with a domain-separation prefix per structure.
* XChaCha20-Poly1305 (IETF) authenticated encryption with associated data.
* X25519 anonymous sealed boxes (crypto_box_seal) for key delivery.
* BLAKE2b with a personalisation string per use, so no hash can be confused with another.

Every crypto failure surfaces as one opaque error: `Undecryptable` for decryption,
`BadSignature` for signatures. Randomness defaults to libsodium's CSPRNG and can be
injected (tests, test vectors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

# pynacl's own cffi binding of libsodium. The hot-path calls below go through it
# directly: pynacl's Python wrappers for AEAD and signatures spend ~10 us per call in
# argument checks and message formatting (several times the cost of the cryptography
# itself), and kith checks every argument before calling anyway. Only functions that
# pynacl 1.5/1.6 declare are used; pyproject pins pynacl below 2.
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib

from kith.identity.errors import BadSignature, LocalProtocolError, Malformed, Undecryptable

RandomBytes = Callable[[int], bytes]

KEY_BYTES = 32
NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16
SEAL_OVERHEAD = sodium.crypto_box_SEALBYTES  # 48
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


def random_bytes(n: int) -> bytes:
    """Bytes from libsodium's CSPRNG."""
    return nacl.utils.random(n)


def blake2b(data: bytes, *, person: bytes, size: int = 32, key: bytes = b"") -> bytes:
    """BLAKE2b with a personalisation string naming the use (at most 16 bytes)."""
    return hashlib.blake2b(data, digest_size=size, person=person, key=key).digest()


# --- signatures -----------------------------------------------------------------


def signing_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, 64-byte libsodium secret key) from a 32-byte Ed25519 seed."""
    if len(seed) != 32:
        raise LocalProtocolError("an Ed25519 seed is 32 bytes")
    return sodium.crypto_sign_seed_keypair(seed)


def sign(secret_key: bytes, domain: bytes, message: bytes) -> bytes:
    """Detached Ed25519 signature over ``domain || message``."""
    if len(secret_key) != 64:
        raise LocalProtocolError("an Ed25519 secret key is 64 bytes")
    data = domain + message
    signed = _ffi.new("unsigned char[]", len(data) + SIGNATURE_BYTES)
    signed_len = _ffi.new("unsigned long long *")
    if _lib.crypto_sign(signed, signed_len, data, len(data), secret_key) != 0:
        raise LocalProtocolError("libsodium refused to sign")
    signature: bytes = _ffi.buffer(signed, SIGNATURE_BYTES)[:]
    return signature


def verify(public_key: bytes, domain: bytes, message: bytes, signature: bytes) -> None:
    """Check a detached signature; raise `BadSignature` (and nothing else) if it fails."""
    if (
        type(signature) is not bytes
        or type(public_key) is not bytes
        or len(signature) != SIGNATURE_BYTES
        or len(public_key) != PUBLIC_KEY_BYTES
    ):
        raise BadSignature()
    signed = signature + domain + message
    opened = _ffi.new("unsigned char[]", len(signed))
    opened_len = _ffi.new("unsigned long long *")
    if _lib.crypto_sign_open(opened, opened_len, signed, len(signed), public_key) != 0:
        raise BadSignature()


# --- symmetric AEAD --------------------------------------------------------------


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """XChaCha20-Poly1305-IETF: ciphertext followed by the 16-byte tag."""
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise LocalProtocolError("AEAD needs a 32-byte key and a 24-byte nonce")
    out = _ffi.new("unsigned char[]", len(plaintext) + TAG_BYTES)
    out_len = _ffi.new("unsigned long long *")
    _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, out_len, plaintext, len(plaintext), associated_data, len(associated_data), _ffi.NULL, nonce, key
    )
    ciphertext: bytes = _ffi.buffer(out, out_len[0])[:]
    return ciphertext


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Authenticate and decrypt; raise `Undecryptable` on any failure."""
    if (
        type(key) is not bytes
        or type(nonce) is not bytes
        or type(ciphertext) is not bytes
        or type(associated_data) is not bytes
        or len(key) != KEY_BYTES
        or len(nonce) != NONCE_BYTES
        or len(ciphertext) < TAG_BYTES
    ):
        raise Undecryptable()
    out = _ffi.new("unsigned char[]", len(ciphertext))
    out_len = _ffi.new("unsigned long long *")
    rc = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, out_len, _ffi.NULL, ciphertext, len(ciphertext), associated_data, len(associated_data), nonce, key
    )
    if rc != 0:
        raise Undecryptable()
    plaintext: bytes = _ffi.buffer(out, out_len[0])[:]
    return plaintext


# --- X25519 sealed boxes ---------------------------------------------------------


def x25519_public_key(secret_key: bytes) -> bytes:
    if len(secret_key) != 32:
        raise LocalProtocolError("an X25519 secret key is 32 bytes")
    return sodium.crypto_scalarmult_base(secret_key)


_PROBE_SCALAR = bytes([0x42]) * 32


def x25519_public_key_usable(public_key: bytes) -> bool:
    """Whether sealed boxes can be made for this key.

    libsodium refuses X25519 with a point of small order (the shared secret would be all
    zero, whatever the ephemeral key): such a key can never receive a sealed box, so
    cards carrying one are refused (Wycheproof's "LowOrderPublic" X25519 vectors). The
    scalar is clamped to a multiple of 8, so the result is zero exactly for those points.
    """
    if type(public_key) is not bytes or len(public_key) != 32:
        return False
    try:
        sodium.crypto_scalarmult(_PROBE_SCALAR, public_key)
    except nacl.exceptions.CryptoError:
        return False
    return True


def seal_to(public_key: bytes, plaintext: bytes, rand: RandomBytes | None = None) -> bytes:
    """Anonymous sealed box: only the holder of the matching secret key opens it.

    With ``rand`` (a deterministic simulation), the ephemeral key comes from it; the box is
    libsodium's ``crypto_box_seal`` construction byte for byte (ephemeral public key, then
    ``crypto_box`` under the nonce ``BLAKE2b-192(ephemeral public || recipient public)``).
    Raises `Malformed` for a key no box can be sealed to (see `x25519_public_key_usable`).
    """
    if len(public_key) != 32:
        raise LocalProtocolError("an X25519 public key is 32 bytes")
    try:
        if rand is None:
            return sodium.crypto_box_seal(plaintext, public_key)
        ephemeral_public, ephemeral_secret = sodium.crypto_box_seed_keypair(rand(32))
        nonce = hashlib.blake2b(ephemeral_public + public_key, digest_size=24).digest()
        return ephemeral_public + sodium.crypto_box(plaintext, nonce, public_key, ephemeral_secret)
    except nacl.exceptions.CryptoError:
        raise Malformed("cannot seal to this X25519 key: it is a point of small order") from None


def open_sealed(public_key: bytes, secret_key: bytes, sealed: bytes) -> bytes:
    """Open an anonymous sealed box; raise `Undecryptable` on any failure."""
    if len(sealed) < SEAL_OVERHEAD:
        raise Undecryptable()
    try:
        return sodium.crypto_box_seal_open(sealed, public_key, secret_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise Undecryptable() from None


# --- passphrase KDF ---------------------------------------------------------------

ARGON2ID_MODERATE_OPS = sodium.crypto_pwhash_argon2id_OPSLIMIT_MODERATE
ARGON2ID_MODERATE_MEM = sodium.crypto_pwhash_argon2id_MEMLIMIT_MODERATE
ARGON2ID_MIN_OPS = sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN
ARGON2ID_MIN_MEM = sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
SALT_BYTES = sodium.crypto_pwhash_SALTBYTES  # 16


def argon2id(passphrase: bytes, salt: bytes, *, opslimit: int, memlimit: int, size: int) -> bytes:
    """Argon2id v1.3 (libsodium's crypto_pwhash with ALG_ARGON2ID13)."""
    return sodium.crypto_pwhash_alg(size, passphrase, salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13)
