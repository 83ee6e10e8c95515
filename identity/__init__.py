"""Member keys, identity cards, safety numbers and the passphrase-encrypted keystore.

Pure: no files, no network, no clock of its own (lint-imports forbids os, time, pathlib and
the rest). The keystore and backups are sealed and opened here as bytes; the files are
`kith.p2pnet.keyfile`'s.
"""
