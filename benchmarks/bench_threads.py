"""Two Python threads running independent forward+backward: the speedup over
running the same two jobs one after the other (issue 12).

The kernels release the GIL; with each kernel on one OpenMP thread and
OpenBLAS on one thread (set here before nnkit loads), the two Python threads
are the only parallelism, so the speedup measures how much of a step runs
outside the GIL. 2.0 is the ceiling on a 2-core machine. torch (if
installed, 1 intra-op thread) runs the same Linear and BatchNorm jobs in the
same run for comparison.

    python benchmarks/bench_threads.py [--repeat 5]
"""
from __future__ import annotations

import os

os.environ["NNKIT_NUM_THREADS"] = "1"
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import nnkit as nk  # noqa: E402
from nnkit._table import format_table  # noqa: E402

JOBS = {
    # name: (make layer, X shape, dY shape, steps per job)
    "Linear 512->512, B=256": (lambda: nk.Linear(512, 512, seed=0), (256, 512), (256, 512), 60),
    "BatchNorm M=512, B=2048": (lambda: nk.BatchNorm(512), (2048, 512), (2048, 512), 60),
    "Conv2d 16->32 3x3, 8x16x32x32": (lambda: nk.Conv2d(16, 32, 3, padding=1, seed=0),
                                      (8, 16, 32, 32), (8, 32, 32, 32), 10),
    "RNN 128->128, T=32, B=64": (lambda: nk.RNN(128, 128, seed=0), (32, 64, 128),
                                 (32, 64, 128), 15),
    "LayerNorm 512, B=2048": (lambda: nk.LayerNorm(512), (2048, 512), (2048, 512), 60),
    "WhiteningBN M=64, B=2048": (lambda: nk.WhiteningBatchNorm(64), (2048, 64), (2048, 64), 30),
}


def job(make, xs, ys, steps, seed):
    layer = make()
    rng = np.random.default_rng(seed)
    X, dY = rng.standard_normal(xs), rng.standard_normal(ys)

    def run():
        for _ in range(steps):
            layer.forward(X)
            layer.backward(dY)
    run()                           # warm-up (workspaces, first-call costs)
    return run


def torch_jobs():
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)

    def make(mod, xs):
        def build(seed):
            g = torch.Generator().manual_seed(seed)
            X = torch.randn(xs, generator=g, dtype=torch.float64, requires_grad=True)
            m = mod().double()

            def run():
                for _ in range(60):
                    out = m(X)
                    out.backward(torch.ones_like(out))
            run()
            return run
        return build
    return {"torch Linear 512->512, B=256": make(lambda: torch.nn.Linear(512, 512), (256, 512)),
            "torch BatchNorm1d 512, B=2048": make(lambda: torch.nn.BatchNorm1d(512),
                                                  (2048, 512))}


def measure(runs, repeat):
    """(serial seconds, two-thread seconds): best of `repeat`."""
    serial, parallel = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        for r in runs:
            r()
        serial.append(time.perf_counter() - t)
        ts = [threading.Thread(target=r) for r in runs]
        t = time.perf_counter()
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        parallel.append(time.perf_counter() - t)
    return min(serial), min(parallel)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    rows = []
    for name, (make, xs, ys, steps) in JOBS.items():
        s, p = measure([job(make, xs, ys, steps, 1), job(make, xs, ys, steps, 2)], a.repeat)
        rows.append([name, f"{s * 1e3:.1f}", f"{p * 1e3:.1f}", f"{s / p:.2f}x"])
    for name, build in torch_jobs().items():
        s, p = measure([build(1), build(2)], a.repeat)
        rows.append([name, f"{s * 1e3:.1f}", f"{p * 1e3:.1f}", f"{s / p:.2f}x"])
    print(format_table(["two independent forward+backward jobs", "serial ms", "2 threads ms",
                        "speedup"], rows, "lrrr",
                       title=f"GIL release: 2 Python threads, 1 kernel thread each, "
                             f"{os.cpu_count()} cores (ceiling 2.00x)"))


if __name__ == "__main__":
    main()
