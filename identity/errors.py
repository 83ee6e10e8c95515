"""The one exception tree of kith.

Every error kith raises on purpose derives from `KithError`. The split follows h11:

* `RemoteProtocolError`: bytes that came from outside (a peer, a file on disk, a
  pasted code) are wrong. The caller drops the input, counts it, and carries on.
* `LocalProtocolError`: we misused our own API. That is a bug; let it crash loudly.

Crypto failures are deliberately opaque (`Undecryptable`, `BadSignature`): they never
say which byte or which check failed, so they cannot be used as an oracle.
Errors that describe bad input also subclass `ValueError`, like pynacl and Fernet do,
so generic callers can still catch them.
"""

from __future__ import annotations

from typing import Self


class KithError(Exception):
    """Root of every error kith raises deliberately."""


class LocalProtocolError(KithError, RuntimeError):
    """We used our own API wrongly: a bug in kith, never caused by a peer."""


class RemoteProtocolError(KithError, ValueError):
    """Untrusted input (network, disk, user paste) is malformed or forged."""


class Malformed(RemoteProtocolError):
    """Input does not have the expected structure, types or lengths."""


class Oversized(Malformed):
    """Input is larger than the protocol allows."""


class UnsupportedVersion(Malformed):
    """Input uses a format version this build does not understand."""


class Undecryptable(RemoteProtocolError):
    """Authenticated decryption failed: wrong key, or the bytes were altered."""

    def __init__(self, message: str = "cannot decrypt: wrong key or altered data") -> None:
        super().__init__(message)


class BadSignature(RemoteProtocolError):
    """A signature does not verify."""

    def __init__(self, message: str = "signature does not verify") -> None:
        super().__init__(message)


class BadPassphrase(KithError, ValueError):
    """The passphrase does not open the keystore."""

    def __init__(self, message: str = "wrong passphrase") -> None:
        super().__init__(message)


class CorruptKeystore(RemoteProtocolError):
    """The keystore file is truncated, tampered with, or not a kith keystore."""


class StorageError(KithError):
    """A file kith keeps could not be written or read (disk full, damaged, permissions).

    Not the peer's fault and not a bug: the node keeps running, refuses what it cannot
    store, and redoes unfinished work from its files once writes succeed again."""

    @classmethod
    def disk_full(cls, path: object) -> Self:
        """The one message for a full disk, whichever file hit it."""
        return cls(f"the disk holding {path} is full; free some space and try again")


class UsageError(KithError, ValueError):
    """The user asked for something that cannot be done as asked (bad flag, missing file)."""
