"""Threads: one policy for every family, OpenMP's and OpenBLAS's.

Two thread pools share the cores: the kernels' OpenMP team (libgomp) and
OpenBLAS's own pool, which runs every matrix product. Each spins for a while
after its work ends, waiting for more. Two consequences:

1. libgomp spins ~300k iterations by default: next to BLAS calls the spinning
   team and OpenBLAS's spinning pool fight for the cores. A short spin
   (GOMP_SPINCOUNT=1000, read once when libgomp loads, i.e. when the kernels
   are first imported; a value the user set wins) keeps back-to-back kernels
   fast and lets BLAS have the cores.
2. An O(B·M) pass that sits *between* BLAS calls (whitening, the RNN time
   loop) still meets OpenBLAS's pool spinning on both cores, and a second
   team fights it; those passes are O(BM) against O(BM²) BLAS work, so one
   thread costs little.

Hence: memory-bound kernels that run alone (affine bias, ReLU, batch norm,
softmax) use every core; passes beside BLAS use one, unless the user asks for
more with NNKIT_NUM_THREADS. Below PARALLEL_MIN_ELEMENTS (pyx/_common.pxd) a
kernel runs on one thread anyway: waking a team costs more than the loop.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading

# read once, when libgomp loads (the kernels' first import); a user's value wins
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

_CORES = os.cpu_count() or 1


# NNKIT_NUM_THREADS is read on every kernel call (so it can change at run
# time); os.environ.get encodes the key on each call, as costly as a small
# kernel's loop, so the lookup goes to CPython's encoded mapping (_data, kept
# current by os.environ[...] = ...), or the public call where that is missing.
try:
    _ENV, _KEY = os.environ._data, os.environ.encodekey("NNKIT_NUM_THREADS")
except AttributeError:                 # pragma: no cover - another Python
    _ENV, _KEY = os.environ, "NNKIT_NUM_THREADS"


def _requested() -> int | None:
    """NNKIT_NUM_THREADS as a positive int, or None when unset or invalid."""
    env = _ENV.get(_KEY)               # str, or bytes on POSIX CPython: int() takes both
    try:
        n = int(env) if env else 0
    except ValueError:
        n = 0
    return n if n >= 1 else None


def kernel_threads(beside_blas: bool = False) -> int:
    """Threads for a kernel: NNKIT_NUM_THREADS if set, else every core, or
    1 for passes between BLAS calls (see the module docstring).

    Read on every call (a dict lookup) so the variable can change at run time.
    """
    requested = _requested()
    if requested is not None:
        return requested
    return 1 if beside_blas else _CORES


def free_core_threads() -> int:
    """Threads for a team that meets at a barrier many times per call (the
    RNN's time-loop team, a barrier per step; its second core beside a
    one-thread loop, which waits on the loop's progress): NNKIT_NUM_THREADS if set,
    else the cores not busy with other work right now, this thread's own
    included: cores − (runnable tasks − 1) from /proc/loadavg's 4th field
    (an instant count, not the 1-minute average), at least 1; 1 where that
    file does not exist.

    Why: such a team waits at every barrier for its slowest thread, so a
    thread the OS has descheduled stalls every step. A large product split
    once per call (gemm_team) does not suffer so, and uses kernel_threads().
    """
    requested = _requested()
    if requested is not None:
        return requested
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1
    return max(1, min(_CORES, _CORES - (running - 1)))


# ------------------------------------------------------------ OpenBLAS's pool
# Why the RNN and whitening loops, and conv's per-thread GEMMs, hold SciPy's
# OpenBLAS (the BLAS every kernel calls through scipy.linalg.cython_blas) at
# one thread: a small product on the critical path of a loop waits for a
# worker the OS has descheduled, and a spinning worker takes the core the
# loop needs; where the kernels split work themselves (gemm_team, conv's batch
# team) each thread makes single-threaded BLAS calls. NumPy's own OpenBLAS is
# a different library and is not touched. The setting is process-wide.
def _openblas_threads():
    """(set_num_threads, get_num_threads) of SciPy's OpenBLAS, or None."""
    paths = []
    try:
        import scipy
        libdir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
        paths = sorted(glob.glob(os.path.join(libdir, "libscipy_openblas*.so*")))
        import scipy.linalg  # noqa: F401  (loads the library for /proc/self/maps)
        with open("/proc/self/maps") as f:
            paths += sorted({line.split()[-1] for line in f if "openblas" in line.lower()
                             and line.split()[-1].startswith("/")},
                            key=lambda p: "scipy" not in p)
    except (ImportError, OSError):      # pragma: no cover
        pass
    for path in paths:
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
    return None


_BLAS = _openblas_threads()
_BLAS_LOCK = threading.Lock()


def blas_controllable() -> bool:
    """Whether SciPy's OpenBLAS thread count was found (else serial_blas is a no-op)."""
    return _BLAS is not None


@contextlib.contextmanager
def serial_blas(active: bool = True):
    """SciPy's OpenBLAS on one thread inside the block (when `active`), restored after."""
    if not active or _BLAS is None:
        yield
        return
    setn, getn = _BLAS
    with _BLAS_LOCK:
        before = getn()
        if before > 1:
            setn(1)
    try:
        yield
    finally:
        if before > 1:
            with _BLAS_LOCK:
                setn(before)
