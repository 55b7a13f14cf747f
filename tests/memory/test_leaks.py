"""No memory growth over 10,000 forward+backward calls of each layer.

Each layer runs 1,000 warm-up calls (allocator pools, thread-local conv
workspaces, BLAS buffers reach their steady state), then 10,000 calls on the
same small input: the soak run, marked slow (CI's `pytest -m slow` stage;
about two minutes on a loaded 2-core machine). The default run has the same
warm-up, then measures windows of 1,000 calls, up to four, and passes on the
first window that stays under the bounds: a leak grows in every window,
while the one-off growth of a short run (free lists and interpreter caches
still filling; MaxPool2d has gained up to ~300 Python blocks over the 4,000
calls after its warm-up, then nothing) ends. Same bounds in both runs.
Two counts are taken before and after, and printed per call:

- the bytes malloc has handed out and not had back (glibc's mallinfo2:
  uordblks + hblkhd). Every NumPy array body and every buffer a kernel
  allocates comes from malloc. Resident memory (RSS) is the wrong measure
  here: after the tests before this one the heap holds freed pages, a leak
  refills them and RSS does not move (a planted leak measured 0 bytes per
  call in CI). Without mallinfo2 (not glibc) RSS is the fallback.
- Python's allocated blocks (sys.getallocatedblocks): a leaked Python object
  (an array header, a cache, a dict) is at least one block.

The bounds: the smallest array a leaking call could keep alive here is one
(8, 16) float64 output or cache, 1,024 data bytes plus its header block.
100 bytes and 0.1 blocks per call are ten times below one leaked array;
without a leak both stay near 0 (measured: the table the test prints with
`pytest -s tests/memory/test_leaks.py`). NNKIT_LEAK_CALLS changes the number
of calls.
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys

import numpy as np
import pytest

from .layer_cases import LAYERS, labels_for, step

CALLS = int(os.environ.get("NNKIT_LEAK_CALLS", "10000"))
WARMUP = 1000
# the default run: WARMUP calls, then up to QUICK_WINDOWS windows of this many calls
QUICK_WINDOW, QUICK_WINDOWS = 1000, 4
LEAK_BOUND_BYTES_PER_CALL = 100
LEAK_BOUND_BLOCKS_PER_CALL = 0.1


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2():
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def heap_bytes() -> int:
    """Bytes in use from malloc (RSS where glibc's mallinfo2 is missing)."""
    if _MALLINFO2 is None:
        return rss_bytes()
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


def growth_per_call(run, calls: int) -> tuple[float, float]:
    """(bytes, Python blocks) gained per call over `calls` calls of run()."""
    gc.collect()
    bytes0, blocks0 = heap_bytes(), sys.getallocatedblocks()
    for _ in range(calls):
        run()
    gc.collect()
    return ((heap_bytes() - bytes0) / calls,
            (sys.getallocatedblocks() - blocks0) / calls)


def steady_growth_per_call(run, calls: int, windows: int) -> tuple[float, float]:
    """Growth per call (bytes, blocks) of the first of up to `windows` windows
    of `calls` calls that stays under both bounds, else the smallest seen:
    what every window gains (a leak), not a fill that ends."""
    best = (float("inf"), float("inf"))
    for _ in range(windows):
        per_call, blocks = growth_per_call(run, calls)
        best = (min(best[0], per_call), min(best[1], blocks))
        if per_call < LEAK_BOUND_BYTES_PER_CALL and blocks < LEAK_BOUND_BLOCKS_PER_CALL:
            return per_call, blocks
    return best


measurable = pytest.mark.skipif(
    _MALLINFO2 is None and not os.path.exists("/proc/self/statm"),
    reason="needs glibc's mallinfo2 or /proc (Linux)")


@measurable
@pytest.mark.parametrize("soak", [
    pytest.param(False, id="quick"), pytest.param(True, id="soak", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(LAYERS))
def test_no_memory_growth(name, soak):
    make, data = LAYERS[name]
    rng = np.random.default_rng(0)
    layer = make(np.float64)
    X, dY = data(rng, np.float64)
    labels = labels_for(rng, X) if dY is None else None
    for _ in range(WARMUP):
        step(layer, X, dY, labels)
    run = lambda: step(layer, X, dY, labels)      # noqa: E731
    if soak:
        per_call, blocks = growth_per_call(run, CALLS)
        over = f"{CALLS} calls"
    else:
        per_call, blocks = steady_growth_per_call(run, QUICK_WINDOW, QUICK_WINDOWS)
        over = f"a window of {QUICK_WINDOW} calls (the first of {QUICK_WINDOWS} under the bounds)"
    print(f"\n{name}: {per_call:+.1f} bytes, {blocks:+.4f} Python blocks "
          f"per forward+backward over {over}")
    assert per_call < LEAK_BOUND_BYTES_PER_CALL, \
        f"{name}: malloc'd memory grew {per_call:.0f} bytes per call over {over}"
    assert blocks < LEAK_BOUND_BLOCKS_PER_CALL, \
        f"{name}: {blocks:.3f} Python blocks per call left allocated over {over}"


@measurable
def test_the_measure_sees_a_leak():
    """The measure can fail: a layer that keeps each (8, 16) output it makes,
    run after a large array was freed (the heap has room: RSS would not move)."""
    kept = []

    class Leaky:
        def forward(self, X):
            kept.append(X * 2.0)
            return kept[-1]

        def backward(self, dY):
            return dY
        grads = {}

    room = np.ones(4_000_000)       # 32 MB the heap keeps after it is freed
    del room
    X = np.ones((8, 16))
    per_call, blocks = growth_per_call(lambda: step(Leaky(), X, X), 2000)
    assert per_call > LEAK_BOUND_BYTES_PER_CALL, per_call
    assert blocks > LEAK_BOUND_BLOCKS_PER_CALL, blocks
    # and the default run's measure: the leak grows in every window
    per_call, blocks = steady_growth_per_call(lambda: step(Leaky(), X, X), QUICK_WINDOW,
                                              QUICK_WINDOWS)
    assert per_call > LEAK_BOUND_BYTES_PER_CALL, per_call
    assert blocks > LEAK_BOUND_BLOCKS_PER_CALL, blocks
