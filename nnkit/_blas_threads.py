"""OpenBLAS on one thread while the RNN kernels run.

An RNN step is one small product, (B, M) x (M, M), on the critical path of a
loop of T steps, with O(B·M) passes between the products. OpenBLAS splits a
GEMM between its threads from about 2.6e5 multiply-adds on, and its idle
workers spin-wait between calls. On the project's 2-core machine, shared with
other processes, that costs far more than it gains: a split step waits for a
worker the OS has descheduled, and a spinning worker takes the core the
serial loop needs. Measured forward + BPTT per step, float32, OpenBLAS at one
thread for the whole call against its default two (other processes busy):
    (T, B, N, M) = (1000, 8, 32, 64)      20 µs against 62 µs
                   (100, 32, 64, 128)    158 µs against 659 µs
                   (50, 64, 256, 512)   3160 µs against 14524 µs
(the last also against 7391 µs with only the time loop on one thread and the
large GEMMs on two). On an idle machine two threads would speed up the
large GEMMs of the biggest shapes (dX, dWx, dWh over all T·B rows) by up to
~2×; the loss under load is larger, so one thread is the default. The
kernels get the cores back by splitting the work themselves (gemm_team in
pyx/_common.pxd; in pyx/rnn.pyx the time loop's team over column blocks, the
second core projecting and reducing beside a one-thread loop, and the weight
gradients as two tasks): OpenMP threads that sleep after a short spin, each
making single-threaded BLAS calls.

`serial_blas()` is a context manager: it sets SciPy's OpenBLAS (the one
`scipy.linalg.cython_blas`, hence every nnkit kernel, calls) to one thread and
restores the previous count. NumPy's own OpenBLAS is a different library and
is not touched. The setting is process-wide: a BLAS call from another Python
thread meanwhile also runs on one thread. Where the library or its symbols
are not found this is a no-op.
"""
from __future__ import annotations

import ctypes
import glob
import os
from contextlib import contextmanager


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
def serial_blas():
    """OpenBLAS (SciPy's) on one thread inside the block, restored after."""
    before = _get() if _set is not None else 1
    if before <= 1:
        yield
        return
    _set(1)
    try:
        yield
    finally:
        _set(before)
