"""Process hardening every kith process applies first: private files, no core dumps.

* ``umask 077``: every file and directory kith (or SQLite, or a logger) creates is
  readable by this user only, even where a path forgets an explicit mode.
* No core dumps (``RLIMIT_CORE`` 0): a crash must not write the keys and plaintext held in
  memory to a file the panic wipe does not know about.
* Not dumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``): no core dump even if the limit is
  raised again, and other processes of the same user cannot ptrace this one or read its
  memory through /proc (root still can).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def _prctl(option: int, value: int = 0) -> int | None:
    """Call prctl(2) on Linux; None where it is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return int(libc.prctl(option, value, 0, 0, 0))


def harden_process() -> None:
    """Apply the settings above to the current process (idempotent, never raises)."""
    os.umask(0o077)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    _prctl(PR_SET_DUMPABLE, 0)


def is_dumpable() -> bool | None:
    """Whether this process may dump core / be traced by its user (None: cannot tell)."""
    result = _prctl(PR_GET_DUMPABLE)
    return None if result is None or result < 0 else bool(result)
