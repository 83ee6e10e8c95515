"""Member keys, identity cards, safety numbers and the passphrase-encrypted keystore.

Pure: no I/O frameworks, no network. The keystore reads and writes one file.
"""
