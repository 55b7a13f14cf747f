"""glibc keeps freed blocks of up to 32 MB for reuse: set once, at import.

Every forward and backward allocates fresh arrays of a few MB (caches,
intermediates, the kernels' workspaces, NumPy's temporaries). With glibc's
defaults a freed block that large goes back to the kernel (munmap, or a trim
of the heap's top), and the next call's block is mapped and zeroed again:
one page fault per 4 KB page, often more time than the kernel that fills it.
glibc raises its thresholds by itself after the first free of a large
block, up to 32 MB, but trims whenever more than twice that is free at the
heap's top, which a step's intermediates reach. (`nnkit bench` prints how
the allocator ran.)

So at import nnkit asks glibc (mallopt) to serve blocks under 32 MB from the
heap (M_MMAP_THRESHOLD, glibc's own maximum) and to keep up to 128 MB free at
the heap's top before returning it (M_TRIM_THRESHOLD): the same as starting
Python with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=134217728.
The cost is memory the process keeps after a burst: at most the trim
threshold at the heap's top, plus whatever fragmentation holds.

A value the user set wins: if either MALLOC_MMAP_THRESHOLD_ or
MALLOC_TRIM_THRESHOLD_ is in the environment, nnkit leaves glibc alone
(set MALLOC_TRIM_THRESHOLD_=131072, glibc's default, to keep the default
behaviour). On other C libraries (musl, macOS, Windows) this is a no-op.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1          # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20      # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 128 << 20

USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

# What happened at import, for tests and `nnkit bench`'s header:
# "set", "user" (an environment variable wins), or "unavailable".
STATE = "unavailable"


def _glibc():
    """The process's C library if it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version      # glibc only (musl has no such symbol)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return libc


def keep_freed_blocks() -> str:
    """Set glibc's two thresholds unless the user set either; returns STATE."""
    global STATE
    if any(name in os.environ for name in USER_VARIABLES):
        STATE = "user"
        return STATE
    libc = _glibc()
    if libc is None:
        return STATE
    ok = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
          and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    STATE = "set" if ok else "unavailable"
    return STATE


keep_freed_blocks()
