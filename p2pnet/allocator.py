"""Keep a long-running node's big, short-lived buffers off the C heap (glibc only).

A node under load makes big buffers that live for a moment: a yamux stream's receive
buffer grows while a peer sends faster than the node reads (py-libp2p lets its window
grow to 16 MiB), sync frames are up to 1 MiB, gossip RPCs tens to hundreds of KiB.
glibc serves a block of at least its *mmap threshold* with a private mapping and unmaps
it on free, so the memory goes back to the system at once. But by default the threshold
is dynamic: each time such a block is freed glibc raises it to that block's size (up to
32 MiB). After the first burst, a buffer of a few MiB comes from the heap instead, between
long-lived objects, and when it is freed the heap keeps the hole: resident memory stays
at the burst's high-water mark.

Setting the threshold explicitly (`mallopt(M_MMAP_THRESHOLD, ...)`) also turns the
dynamic adjustment off (mallopt(3)). Measured with `kith bench
relay_rss_mb_per_100k_envelopes` (one member pushes 100,000 posts through a relay): with
glibc's default the relay's heap grew from 20 MB to 114 MB, 72 MB of it free memory that
`malloc_trim` could give back; the figure's median went from 98 MB (nine runs, 59-152) to 67 MB
(seven runs, 48-100) with the threshold pinned. It swings with how far gossip runs ahead
of the relay: what is still queued when the last envelope is stored counts too.

What the heap still keeps after a burst (freed memory below its top, in pieces under the
threshold) a relay gives back every `TRIM_INTERVAL_S` with ``malloc_trim(0)``
(`trim_periodically`): by hand, that took one relay from 206 MB to 134 MB.

Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import trio

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""

MMAP_THRESHOLD_BYTES = 64 * 1024
"""Blocks this big or bigger are mapped and unmapped on their own. Half glibc's initial
128 KiB, so blocks of 64-128 KiB leave the heap too (in two relay bench runs each,
48 and 58 MB per 100,000 envelopes at 64 KiB, 83 and 80 MB at 128 KiB).
Each such block costs an mmap and a munmap: microseconds, next to the ~1 ms of CPU a
gossip message costs."""


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # only glibc answers this
            return None
    except (ValueError, OSError):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold for this process (see above); False where not glibc."""
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))


TRIM_INTERVAL_S = 30.0
"""How often a relay gives free heap memory back to the system."""


def trim() -> bool:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim(0)``); True if
    some was. False where not glibc."""
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


async def trim_periodically(interval_s: float = TRIM_INTERVAL_S) -> None:
    """`trim` every ``interval_s`` seconds, in a worker thread (it walks the whole heap and
    holds the allocator's locks meanwhile: milliseconds), until cancelled."""
    if glibc() is None:
        return
    while True:
        await trio.sleep(interval_s)
        await trio.to_thread.run_sync(trim)
