#!/usr/bin/env python3
"""What Sequential(reuse_buffers=True) saves: one float32 training step of
Linear(1024, 1024) -> BatchNorm(relu) -> Linear(1024, 10) at B = 4096, fresh
outputs against reused buffers, the two interleaved, median of 15 each.

    python benchmarks/bench_reuse.py
"""
import time

import numpy as np

import nnkit as nk

B, N, K, REPEATS = 4096, 1024, 10, 15
F32 = np.float32


def model(reuse: bool) -> nk.Sequential:
    return nk.Sequential(nk.Linear(N, N, seed=1, dtype=F32), nk.BatchNorm(N, relu=True, dtype=F32),
                         nk.Linear(N, K, seed=2, dtype=F32), reuse_buffers=reuse)


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, N)).astype(F32)
    y = rng.integers(0, K, B)
    crit = nk.SoftmaxCrossEntropy()
    models = {reuse: model(reuse) for reuse in (False, True)}

    def step(m):
        crit(m(X), y)
        m.backward(crit.backward())

    times = {False: [], True: []}
    for m in models.values():
        step(m)                                 # first call: buffers allocated
    for _ in range(REPEATS):
        for reuse, m in models.items():
            t0 = time.perf_counter()
            step(m)
            times[reuse].append(time.perf_counter() - t0)
    fresh, reused = (np.median(times[r]) * 1e3 for r in (False, True))
    print(f"fresh {fresh:.1f} ms, reuse {reused:.1f} ms, gain {fresh / reused:.2f}x")


if __name__ == "__main__":
    main()
