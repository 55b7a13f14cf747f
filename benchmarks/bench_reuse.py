#!/usr/bin/env python3
"""Training step of Linear(1024,1024) -> BatchNorm(relu) -> Linear(1024,10), B = 4096,
float32: fresh outputs against Sequential(reuse_buffers=True); interleaved, median of 15."""
import numpy as np, nnkit as nk, time
rng = np.random.default_rng(0)
X = rng.standard_normal((4096, 1024)).astype(np.float32); y = rng.integers(0, 10, 4096)
def model(reuse):
    return nk.Sequential(nk.Linear(1024, 1024, seed=1, dtype=np.float32), nk.BatchNorm(1024, relu=True, dtype=np.float32),
                         nk.Linear(1024, 10, seed=2, dtype=np.float32), reuse_buffers=reuse)
ms = {r: model(r) for r in (False, True)}; crit = nk.SoftmaxCrossEntropy()
def step(m):
    crit(m(X), y); m.backward(crit.backward())
t = {False: [], True: []}
for r in (False, True): step(ms[r])
for _ in range(15):
    for r in (False, True):
        a = time.perf_counter(); step(ms[r]); t[r].append(time.perf_counter() - a)
f, u = np.median(t[False]) * 1e3, np.median(t[True]) * 1e3
print(f"fresh {f:.1f} ms, reuse {u:.1f} ms, gain {f/u:.2f}x")
