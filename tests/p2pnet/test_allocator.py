"""`kith relay run` pins glibc's mmap threshold, so big short-lived buffers leave the heap when freed.

Each check runs in a fresh interpreter: the threshold is process-wide, and glibc's dynamic
adjustment depends on what the process freed before.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kith.p2pnet import allocator

pytestmark = pytest.mark.skipif(allocator.glibc() is None, reason="glibc only")

# Frees an 8 MiB buffer (glibc's dynamic threshold rises to 8 MiB), then allocates eight
# 256 KiB buffers and prints how many of them got a mapping of their own (mallinfo2's hblks).
MAPPED_AFTER_A_BIG_FREE = """
import ctypes, sys
from kith.p2pnet.allocator import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print("no mallinfo2")
    sys.exit(0)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
big = bytearray(8 * 1024 * 1024)
del big
before = libc.mallinfo2().hblks
held = [bytearray(256 * 1024) for _ in range(8)]
print(libc.mallinfo2().hblks - before)
"""


def _mapped(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", MAPPED_AFTER_A_BIG_FREE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    if result.stdout.strip() == "no mallinfo2":
        pytest.skip("glibc older than 2.33 has no mallinfo2")
    return int(result.stdout)


def test_with_the_threshold_pinned_big_buffers_are_mapped_even_after_a_bigger_one_was_freed() -> None:
    assert _mapped("fixed") == 8


def test_by_default_glibc_puts_them_on_the_heap_after_a_bigger_one_was_freed() -> None:
    """The behaviour `fix_mmap_threshold` exists to turn off (if glibc stops doing this,
    this test fails and the module can go)."""
    assert _mapped("default") == 0


# Fills the heap with 1 KiB blocks (under any mmap threshold), frees all but one in a hundred
# (so the heap's top stays in use and only trimming inside it can help), and prints resident
# memory (kB) before and after allocator.trim().
RSS_AROUND_A_TRIM = """
from kith.p2pnet.allocator import trim

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

blocks = [bytearray(1024) for _ in range(150_000)]
kept = blocks[::100]
del blocks
before = rss_kb()
assert trim()
print(before, rss_kb())
"""


def test_trim_gives_a_fragmented_heaps_free_memory_back() -> None:
    """What a relay does every TRIM_INTERVAL_S (`trim_periodically`): after a burst, the
    free memory between blocks still in use goes back to the system."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_AROUND_A_TRIM], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    before, after = (int(x) for x in out.split())
    assert before - after > 100_000  # of the ~150 MB freed, most goes back
