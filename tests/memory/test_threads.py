"""Every layer from 4 Python threads at once, on different data: the results
are identical (bit for bit) to the same calls run one after another.

The kernels release the GIL, so the threads really overlap inside them; a
kernel that kept state in a module-level buffer, or a layer that shared a
workspace between threads, would mix the threads' numbers.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from .layer_cases import LAYERS, labels_for, step

THREADS = 4
ROUNDS = 25


def work(name, seed):
    """A fresh layer and its own data; ROUNDS forward+backward calls."""
    make, data = LAYERS[name]
    rng = np.random.default_rng(seed)
    layer = make(np.float64)
    results = []
    for r in range(ROUNDS):
        X, dY = data(rng, np.float64)
        labels = labels_for(rng, X) if dY is None else None
        out, dX, grads = step(layer, X, dY, labels)
        results.append((np.array(out, copy=True), np.array(dX, copy=True), grads))
    return results


def same(a, b):
    assert len(a) == len(b)
    for (o1, d1, g1), (o2, d2, g2) in zip(a, b):
        assert np.array_equal(o1, o2, equal_nan=True)
        assert np.array_equal(d1, d2, equal_nan=True)
        assert g1.keys() == g2.keys()
        for k in g1:
            assert np.array_equal(g1[k], g2[k], equal_nan=True), k


@pytest.mark.parametrize("name", list(LAYERS))
def test_four_threads_equal_serial(name):
    seeds = [100 + i for i in range(THREADS)]
    serial = [work(name, s) for s in seeds]
    threaded = [None] * THREADS
    errors = []
    barrier = threading.Barrier(THREADS)

    def run(i):
        try:
            barrier.wait()
            threaded[i] = work(name, seeds[i])
        except Exception as exc:          # noqa: BLE001 -- re-raised in the main thread
            errors.append(exc)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    for i in range(THREADS):
        same(threaded[i], serial[i])
