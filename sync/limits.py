"""Every size limit of the kith wire formats, in one place (docs/PROTOCOL.md, "Limits").

Limits are checked before anything is parsed, decrypted or stored, so a hostile peer can
only ever make a node spend bounded work on one input.
"""

MAX_ENVELOPE_BYTES = 64 * 1024
"""A whole encoded envelope, as stored by relays and sent on the wire."""

MAX_OP_BYTES = 60 * 1024
"""A whole encoded signed op (the envelope's plaintext)."""

MAX_PARENTS = 16
"""Heads an op may cite. An author with more heads cites the 16 newest; later ops merge the rest."""

MAX_KIND_CHARS = 32
MAX_LAMPORT = 2**53 - 1
MAX_SEQ = 2**53 - 1
"""An author's op count in one circle; like lamport, exact in every language's integers."""
MAX_TS = 2**40 - 1
"""Seconds since the Unix epoch; far beyond any real clock, small enough for every language's integers."""

CIRCLE_ID_BYTES = 16
MEMBER_ID_BYTES = 32
OP_ID_BYTES = 32
ENVELOPE_ID_BYTES = 32
TOPIC_BYTES = 32
EPOCH_ID_BYTES = 16
