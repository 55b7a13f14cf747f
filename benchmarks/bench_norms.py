"""Layer norm forward + backward: nnkit against NumPy and PyTorch CPU, float32.

    python benchmarks/bench_norms.py [--quick]

Per shape: the median time of a training forward + backward (dX, dγ, dβ) and
the ratios (other / nnkit: > 1 means nnkit is faster), and the bandwidth
floor: the bytes the computation must move, 5·B·D·4 (forward: read X, write
Y; backward: read dY and X, write dX), divided by the memory bandwidth
measured in this same run (the best of a NumPy copy and a PyTorch copy of
256 MB: read + write). "%floor" is floor / time.
"""
from __future__ import annotations

import argparse

import numpy as np

import nnkit as nk
from _timing import fmt_ms, fmt_ratio, median_time, print_table, torch

SHAPES = [(64, 768), (4096, 1024), (16384, 512)]
EPS = 1e-5


def measure_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes per second of a large copy (read + write), the best of NumPy and torch."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    best = 2 * nbytes / median_time(lambda: np.copyto(dst, src), repeats=5, min_seconds=0.5)
    if torch is not None:
        ts, td = torch.from_numpy(src), torch.from_numpy(dst)
        best = max(best, 2 * nbytes / median_time(lambda: td.copy_(ts), repeats=5,
                                                  min_seconds=0.5))
    return best


def numpy_layernorm(X, g, b, dY):
    m = X.mean(1, keepdims=True)
    Xc = X - m
    rstd = 1.0 / np.sqrt((Xc * Xc).mean(1, keepdims=True) + EPS)
    xh = Xc * rstd
    _ = g * xh + b
    dxh = dY * g
    dX = rstd * (dxh - dxh.mean(1, keepdims=True) - xh * (dxh * xh).mean(1, keepdims=True))
    return dX, (dY * xh).sum(0), dY.sum(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few repeats")
    args = ap.parse_args()
    repeats = 5 if args.quick else 15
    bw = measure_bandwidth()
    rows = []
    for B, D in SHAPES:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((B, D)).astype(np.float32)
        dY = rng.standard_normal((B, D)).astype(np.float32)
        g = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)
        b = (0.1 * rng.standard_normal(D)).astype(np.float32)
        Y, dX = np.empty_like(X), np.empty_like(X)

        def ours():
            _, cache = nk.layernorm_forward(X, g, b, EPS, out=Y)
            nk.layernorm_backward(dY, cache, full=False, out=dX)

        t_nk = median_time(ours, repeats=repeats)
        t_np = median_time(lambda: numpy_layernorm(X, g, b, dY), repeats=repeats)
        t_th = None
        if torch is not None:
            tX = torch.from_numpy(X).requires_grad_(True)
            tg = torch.from_numpy(g).requires_grad_(True)
            tb = torch.from_numpy(b).requires_grad_(True)
            tdY = torch.from_numpy(dY)

            def theirs():
                out = torch.nn.functional.layer_norm(tX, (D,), tg, tb, EPS)
                tX.grad = tg.grad = tb.grad = None
                out.backward(tdY)

            t_th = median_time(theirs, repeats=repeats)
        floor = 5 * B * D * 4 / bw
        rows.append([f"{B}x{D}", fmt_ms(t_nk), fmt_ms(t_np), fmt_ms(t_th),
                     fmt_ratio(t_np, t_nk), fmt_ratio(t_th, t_nk), fmt_ms(floor),
                     f"{100 * floor / t_nk:5.0f}%",
                     "  n/a" if t_th is None else f"{100 * floor / t_th:5.0f}%"])
    print(f"measured copy bandwidth: {bw / 1e9:.1f} GB/s (read + write); "
          f"threads: NNKIT_NUM_THREADS or all cores")
    print_table("Layer norm training forward+backward, float32 (ms; ratio = other/nnkit)",
                ["B x D", "nnkit", "numpy", "torch", "np/nk", "torch/nk", "floor",
                 "nk %floor", "torch %floor"], rows)


if __name__ == "__main__":
    main()
