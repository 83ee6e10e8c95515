"""Member keys, identity cards, safety numbers and the passphrase-encrypted keystore.

Pure: no files, no network, no clock of its own (lint-imports forbids os, time, pathlib and
the rest). The keystore and backups are sealed and opened here as bytes; the files are
`kith.p2pnet.keyfile`'s.

Public API (what the layers above use; everything else is internal):

- `kith.identity.keys`: `MemberIdentity` (a member's secret keys), `IdentityCard` (what
  others see of them), `NetworkKey`, `safety_number`, `fingerprint`.
- `kith.identity.crypto`: `sign`, `verify`, `aead_encrypt`, `aead_decrypt`, `seal_to`,
  `open_sealed`, `blake2b`, `random_bytes` (libsodium through pynacl, domain-separated).
- `kith.identity.codec`: `encode`, `decode` (canonical CBOR with size limits).
- `kith.identity.keystore`: `KeystoreData`, `seal_keystore`, `open_keystore` (the
  passphrase-encrypted bytes).
- `kith.identity.backup`: `seal_backup`, `open_backup`.
- `kith.identity.errors`: `KithError` and its kinds (`UsageError`, `Malformed`,
  `StorageError`, `LocalProtocolError`, `RemoteProtocolError`, `Undecryptable`).
"""
