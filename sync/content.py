"""Sealed content: what members say, readable only with the content key of its epoch.

Theory of operation
-------------------
Each epoch has two independent secrets. The **epoch key** seals envelopes: every member
holds every epoch key, because the circle's state (who is in, the fund's books, the
decisions) is a fold over all ops and must be the same for everyone. The **content key**
seals what people *say* inside those ops (message text and content warnings, check-in
notes, what an aid request or pledge is about, event details): a newcomer receives the
current content key only, unless the charter lets newcomers read the past
(``history``). So a newcomer folds the same state as everyone, sees that earlier
messages exist, and cannot read them.

A content blob is ``epoch id (16) || nonce (24) || XChaCha20-Poly1305 ciphertext`` of the
canonical CBOR map of the fields, with associated data ``"kith/content/v1" 0x00 || circle
id || author || kind``: a blob cannot be moved into another circle, another author's op
or another kind of op. The fold treats blobs as opaque (it checks only their size and
that their epoch exists), so nodes that can and cannot read them fold identically; the
views open them with whatever content keys the node holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from kith.identity import codec
from kith.identity.crypto import NONCE_BYTES, TAG_BYTES, RandomBytes, aead_decrypt, aead_encrypt, random_bytes
from kith.identity.errors import LocalProtocolError, Oversized, RemoteProtocolError
from kith.sync import limits

DOMAIN = b"kith/content/v1\x00"
MIN_BLOB = limits.EPOCH_ID_BYTES + NONCE_BYTES + TAG_BYTES
MAX_BLOB = 24 * 1024


def _associated(circle: bytes, author: bytes, kind: str) -> bytes:
    return DOMAIN + circle + author + kind.encode()


def seal_content(
    fields: dict[str, Any],
    *,
    circle: bytes,
    author: bytes,
    kind: str,
    epoch: bytes,
    key: bytes,
    rand: RandomBytes = random_bytes,
) -> bytes:
    if len(epoch) != limits.EPOCH_ID_BYTES or len(key) != 32:
        raise LocalProtocolError("content needs a 16-byte epoch id and a 32-byte key")
    nonce = rand(NONCE_BYTES)
    ciphertext = aead_encrypt(key, nonce, codec.encode(fields), _associated(circle, author, kind))
    blob = epoch + nonce + ciphertext
    if len(blob) > MAX_BLOB:
        raise Oversized(f"content is larger than {MAX_BLOB} bytes")
    return blob


def blob_epoch(blob: bytes) -> bytes:
    return blob[: limits.EPOCH_ID_BYTES]


def open_content(blob: bytes, *, circle: bytes, author: bytes, kind: str, key: bytes) -> dict[str, Any]:
    """The fields of a blob; `RemoteProtocolError` (Undecryptable/Malformed) if it is bad."""
    nonce = blob[limits.EPOCH_ID_BYTES : limits.EPOCH_ID_BYTES + NONCE_BYTES]
    ciphertext = blob[limits.EPOCH_ID_BYTES + NONCE_BYTES :]
    plaintext = aead_decrypt(key, nonce, ciphertext, _associated(circle, author, kind))
    fields = codec.decode(plaintext, max_size=MAX_BLOB, what="content")
    if type(fields) is not dict:
        raise RemoteProtocolError("content must be a map")
    return fields


Validator = Callable[[dict[str, Any]], dict[str, Any]]


class ContentReader:
    """Opens blobs with the content keys a node holds; remembers what it opened.

    ``read`` returns the validated fields, or None when the blob's content key is not
    ours (an earlier epoch, for a newcomer without history) or the blob is bad.
    """

    def __init__(
        self,
        circle: bytes,
        keys: Mapping[bytes, bytes],
        *,
        cache_size: int = 20_000,
        private_opener: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        self.circle = circle
        self.keys = keys
        self.private_opener = private_opener
        self._cache: OrderedDict[tuple[bytes, bytes, str], dict[str, Any] | None] = OrderedDict()
        self._cache_size = cache_size

    def read(self, blob: bytes, author: bytes, kind: str, validate: Validator) -> dict[str, Any] | None:
        if not blob:
            return None
        cache_key = (blob, author, kind)
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key]
        key = self.keys.get(blob_epoch(blob))
        fields: dict[str, Any] | None = None
        if key is not None:
            try:
                fields = validate(open_content(blob, circle=self.circle, author=author, kind=kind, key=key))
            except RemoteProtocolError:
                fields = None
        if key is not None:  # don't cache "no key yet": the key may arrive later
            self._cache[cache_key] = fields
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return fields

    def open_private(self, private: Any) -> dict[str, Any] | None:
        """``{description, requester}`` of a private request, if this node may read it."""
        if self.private_opener is None or type(private) is not dict:
            return None
        return self.private_opener(private)


NO_READER = ContentReader(bytes(16), {})
"""A reader with no keys: views show that content exists, not what it says."""
