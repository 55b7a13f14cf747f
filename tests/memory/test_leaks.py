"""No growth of resident memory over 10,000 forward+backward calls of each layer.

Each layer runs 1,000 warm-up calls (allocator pools, thread-local conv
workspaces, BLAS buffers reach their steady state), then 10,000 calls on the
same small input; the test prints the growth of RSS (/proc/self/statm) in
bytes per call and asserts it stays below LEAK_BOUND_BYTES_PER_CALL.

What the bound stands for: the smallest array a leaking call could keep
alive here is one (8, 16) float64 output or cache, 1,024 data bytes plus a
~100-byte header: 10,000 calls of it grow RSS by ≥ 11 MB. 100 bytes per call
(1 MB over the run) is ten times below that and above what glibc's arena
and Python's small-object pools move by without any leak (measured: 0–20
bytes per call). NNKIT_LEAK_CALLS changes the number of calls.
"""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from .layer_cases import LAYERS, labels_for, step

CALLS = int(os.environ.get("NNKIT_LEAK_CALLS", "10000"))
WARMUP = 1000
LEAK_BOUND_BYTES_PER_CALL = 100


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.parametrize("name", list(LAYERS))
def test_no_rss_growth(name):
    make, data = LAYERS[name]
    rng = np.random.default_rng(0)
    layer = make(np.float64)
    X, dY = data(rng, np.float64)
    labels = labels_for(rng, X) if dY is None else None
    for _ in range(WARMUP):
        step(layer, X, dY, labels)
    gc.collect()
    before = rss_bytes()
    for _ in range(CALLS):
        step(layer, X, dY, labels)
    gc.collect()
    per_call = (rss_bytes() - before) / CALLS
    print(f"\n{name}: {per_call:+.1f} bytes per forward+backward over {CALLS} calls")
    assert per_call < LEAK_BOUND_BYTES_PER_CALL, \
        f"{name}: RSS grew {per_call:.0f} bytes per call over {CALLS} calls"


def test_the_measure_sees_a_leak():
    """The measure can fail: a layer that keeps each (8, 16) output it makes."""
    kept = []

    class Leaky:
        def forward(self, X):
            kept.append(X * 2.0)
            return kept[-1]

        def backward(self, dY):
            return dY
        grads = {}

    X = np.ones((8, 16))
    gc.collect()
    before = rss_bytes()
    for _ in range(2000):
        step(Leaky(), X, X)
    per_call = (rss_bytes() - before) / 2000
    assert per_call > LEAK_BOUND_BYTES_PER_CALL, per_call
