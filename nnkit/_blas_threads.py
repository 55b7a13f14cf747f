"""OpenBLAS on one thread for the serial time loops of the RNN kernels.

An RNN step is one small product, (B, M) x (M, M), on the critical path of a
loop of T steps. OpenBLAS splits a GEMM between its threads from about
2.6e5 multiply-adds on (m·n·k > 65536·4): at (B, M) = (32, 128) every step
then wakes the pool and waits for it. Measured on the project's 2-core
machine, forward + BPTT per step with OpenBLAS at 1 thread against 2, while
other processes were using the cores: (T, B, N, M) = (100, 32, 64, 128)
279 µs against 3712 µs; (1000, 8, 32, 64), whose steps are never split,
41 against 108 µs (the pool, woken by the input GEMM before the loop,
spins on the core the loop needs). Products at least SERIAL_MAX_MNK
multiply-adds (B·M² ≥ 2²¹, (64, 512, 512) and up) keep every thread: there
the split pays for itself on an idle machine.

`serial_blas(mnk)` is a context manager: it sets SciPy's OpenBLAS (the one
`scipy.linalg.cython_blas`, hence every nnkit kernel, calls) to one thread
and restores the previous count. NumPy's own OpenBLAS is a different library
and is not touched. The setting is process-wide: a BLAS call in another
Python thread during the loop also runs on one thread. Where the library or
its symbols are not found this is a no-op.
"""
from __future__ import annotations

import ctypes
import glob
import os
from contextlib import contextmanager

SERIAL_MAX_MNK = 1 << 21


def _load():
    try:
        import scipy
    except ImportError:   # pragma: no cover
        return None, None
    libdir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            try:
                setn = getattr(lib, prefix + "set_num_threads")
                getn = getattr(lib, prefix + "get_num_threads")
            except AttributeError:
                continue
            setn.argtypes, setn.restype = [ctypes.c_int], None
            getn.argtypes, getn.restype = [], ctypes.c_int
            return setn, getn
    return None, None


_set, _get = _load()


def available() -> bool:
    return _set is not None


@contextmanager
def serial_blas(mnk: int):
    """OpenBLAS on one thread inside the block when a step's product has
    fewer than SERIAL_MAX_MNK multiply-adds (else unchanged)."""
    if _set is None or mnk >= SERIAL_MAX_MNK:
        yield
        return
    before = _get()
    if before <= 1:
        yield
        return
    _set(1)
    try:
        yield
    finally:
        _set(before)
