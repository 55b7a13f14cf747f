#!/usr/bin/env python3
"""What keeping freed blocks saves (nnkit/_malloc.py): a plain loop of
whitening batch norm forward + backward (with out=), page faults and time per
step, glibc's default thresholds against nnkit's, each in a fresh process.

    python benchmarks/bench_faults.py [REPEATS]

"default" starts the child with MALLOC_TRIM_THRESHOLD_=131072 (glibc's own
default; a user-set variable makes nnkit leave glibc alone), "nnkit" with
neither variable set. Prints the median ms and the faults per step.
"""
import json
import os
import subprocess
import sys

SHAPES = [("float64", 1024, 256), ("float32", 1024, 256),
          ("float64", 4096, 512), ("float32", 4096, 512)]

CHILD = r"""
import json, resource, sys, time
import numpy as np
import nnkit as nk
from nnkit import _malloc
dt, B, M, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
Y = rng.standard_normal((B, M)).astype(dt)
dZ = rng.standard_normal((B, M)).astype(dt)
g, b = np.ones(M, dt), np.zeros(M, dt)
Z, dY = np.empty_like(Y), np.empty_like(Y)
def step():
    _, cache = nk.whitening_forward(Y, g, b, 1e-5, out=Z)
    nk.whitening_backward(dZ, cache, full=False, out=dY)
step()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ts, f0 = [], faults()
for _ in range(n):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
print(json.dumps({"state": _malloc.STATE, "ms": 1e3 * float(np.median(ts)),
                  "faults": (faults() - f0) / n}))
"""


def child(dt, B, M, n, default):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    if default:
        env["MALLOC_TRIM_THRESHOLD_"] = "131072"
    out = subprocess.run([sys.executable, "-c", CHILD, dt, str(B), str(M), str(n)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    print(f"whitening forward + backward, plain loop, median of {n} steps after one")
    print(f"{'dtype':8} {'(B, M)':12} {'default ms':>10} {'faults':>8} "
          f"{'nnkit ms':>9} {'faults':>7} {'ratio':>6}")
    for dt, B, M in SHAPES:
        d, k = child(dt, B, M, n, True), child(dt, B, M, n, False)
        assert d["state"] == "user" and k["state"] in ("set", "unavailable")
        print(f"{dt:8} {f'({B}, {M})':12} {d['ms']:10.2f} {d['faults']:8.0f} "
              f"{k['ms']:9.2f} {k['faults']:7.0f} {d['ms'] / k['ms']:5.2f}x")


if __name__ == "__main__":
    main()
