"""Conv2d and max-pool forward + backward: nnkit vs a NumPy im2col reference vs
PyTorch CPU (F.conv2d / F.max_pool2d with autograd, torch.set_num_threads(2)),
all measured in the same run.

    python benchmarks/bench_conv.py [--quick]

Floors printed beside the times, measured in the same run:
  conv: GEMM flops (3 GEMMs of 2·B·C_out·K·H'W' each: forward, dW, dX) divided
        by the rate of one large SciPy BLAS GEMM (the BLAS nnkit calls);
  pool: bytes moved (forward: read X, write Y and the int32 arg-max; backward:
        read dY and arg-max, write dX) divided by the copy bandwidth of a
        large np.copyto.
Ratios are other/nnkit (> 1: nnkit is faster).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.linalg import blas

import nnkit as nk
from _timing import fmt_ms, fmt_ratio, median_time, print_table, torch

CONV_SHAPES = [(32, 3, 32, 32, 16, 3), (16, 64, 56, 56, 64, 3), (64, 32, 16, 16, 64, 3)]
POOL_SHAPE = (32, 64, 56, 56)


def numpy_conv(X, W, b, dY, p):
    """im2col with sliding_window_view, one matmul per GEMM, col2im by k² slice-adds."""
    B, C, H, Wd = X.shape
    Co, _, k, _ = W.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = sliding_window_view(Xp, (k, k), axis=(2, 3))          # (B, C, H', W', k, k)
    Ho, Wo = cols.shape[2], cols.shape[3]
    cols = cols.transpose(1, 4, 5, 0, 2, 3).reshape(C * k * k, B * Ho * Wo)  # copy
    Wm = W.reshape(Co, -1)
    Y = (Wm @ cols).reshape(Co, B, Ho, Wo).transpose(1, 0, 2, 3) + b[:, None, None]
    dYm = dY.transpose(1, 0, 2, 3).reshape(Co, -1)
    dW = (dYm @ cols.T).reshape(W.shape)
    db = dY.sum(axis=(0, 2, 3))
    dcol = (Wm.T @ dYm).reshape(C, k, k, B, Ho, Wo)
    dXp = np.zeros_like(Xp)
    for u in range(k):
        for v in range(k):
            dXp[:, :, u:u + Ho, v:v + Wo] += dcol[:, u, v].transpose(1, 0, 2, 3)
    return Y, dXp[:, :, p:p + H, p:p + Wd], dW, db


def gemm_rate(dt) -> float:
    """flop/s of one large SciPy BLAS GEMM (the library nnkit's kernels call)."""
    n = 1536
    rng = np.random.default_rng(0)
    A = np.asfortranarray(rng.standard_normal((n, n)).astype(dt))
    Bm = np.asfortranarray(rng.standard_normal((n, n)).astype(dt))
    f = blas.sgemm if dt == np.float32 else blas.dgemm
    t = median_time(lambda: f(1.0, A, Bm), repeats=5, min_seconds=0.5)
    return 2 * n ** 3 / t


def bandwidth() -> float:
    src = np.ones(64 * 2**20 // 8)          # 64 MB
    dst = np.empty_like(src)
    t = median_time(lambda: np.copyto(dst, src), repeats=10, min_seconds=0.5)
    return 2 * src.nbytes / t


def bench_conv(shapes, dtypes, repeats):
    rows = []
    for dt in dtypes:
        rate = gemm_rate(dt)
        for B, C, H, W, Co, k in shapes:
            rng = np.random.default_rng(0)
            X = rng.standard_normal((B, C, H, W)).astype(dt)
            Wt = (rng.standard_normal((Co, C, k, k)) / np.sqrt(C * k * k)).astype(dt)
            b = rng.standard_normal(Co).astype(dt)
            dY = rng.standard_normal((B, Co, H, W)).astype(dt)   # padding 1: same size
            rep = repeats if B * C * H * W * Co < 5e7 else max(3, repeats // 3)

            def ours():
                _, cache = nk.conv2d_forward(X, Wt, b, 1, 1)
                nk.conv2d_backward(dY, cache)

            t_nk = median_time(ours, repeats=rep, min_seconds=0.5)
            t_np = median_time(lambda: numpy_conv(X, Wt, b, dY, 1), repeats=max(3, rep // 2),
                               min_seconds=0.5)
            t_th = None
            if torch is not None:
                tX = torch.from_numpy(X).requires_grad_(True)
                tW = torch.from_numpy(Wt).requires_grad_(True)
                tb = torch.from_numpy(b).requires_grad_(True)
                tdY = torch.from_numpy(dY)

                def theirs():
                    out = torch.nn.functional.conv2d(tX, tW, tb, padding=1)
                    tX.grad = tW.grad = tb.grad = None
                    out.backward(tdY)

                t_th = median_time(theirs, repeats=rep, min_seconds=0.5)
            flops = 3 * 2 * B * Co * C * k * k * H * W
            floor = flops / rate
            rows.append([f"{B}x{C}x{H}x{W}->{Co} k{k}", np.dtype(dt).name, fmt_ms(t_nk),
                         fmt_ms(t_np), fmt_ms(t_th), fmt_ratio(t_np, t_nk), fmt_ratio(t_th, t_nk),
                         fmt_ms(floor), f"{100 * floor / t_nk:4.0f}%", f"{rate / 1e9:6.1f}"])
    print_table("conv2d forward+backward, stride 1, padding 1 (ms; ratio = other/nnkit; "
                "floor = GEMM flops / measured GEMM rate)",
                ["shape", "dtype", "nnkit", "numpy", "torch", "np/nk", "torch/nk", "floor",
                 "nk@floor", "GEMM GF/s"], rows)


def bench_pool(dtypes, repeats, shape=POOL_SHAPE):
    bw = bandwidth()
    rows = []
    for dt in dtypes:
        X = np.random.default_rng(0).standard_normal(shape).astype(dt)
        Y0, _ = nk.maxpool2d_forward(X, 2)
        dY = np.random.default_rng(1).standard_normal(Y0.shape).astype(dt)

        def ours():
            _, cache = nk.maxpool2d_forward(X, 2)
            nk.maxpool2d_backward(dY, cache)

        t_nk = median_time(ours, repeats=repeats, min_seconds=0.5)
        t_th = None
        if torch is not None:
            tX = torch.from_numpy(X).requires_grad_(True)
            tdY = torch.from_numpy(dY)

            def theirs():
                out = torch.nn.functional.max_pool2d(tX, 2)
                tX.grad = None
                out.backward(tdY)

            t_th = median_time(theirs, repeats=repeats, min_seconds=0.5)
        n, it = X.size, X.itemsize
        moved = n * it + n // 4 * (it + 4) + n // 4 * (it + 4) + n * it
        floor = moved / bw
        rows.append(["x".join(map(str, shape)), np.dtype(dt).name, fmt_ms(t_nk), fmt_ms(t_th),
                     fmt_ratio(t_th, t_nk), fmt_ms(floor), f"{100 * floor / t_nk:4.0f}%",
                     f"{bw / 1e9:5.1f}"])
    print_table("max-pool 2x2 forward+backward (ms; floor = bytes moved / measured copy "
                "bandwidth)", ["shape", "dtype", "nnkit", "torch", "torch/nk", "floor",
                               "nk@floor", "GB/s"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the first shape only, few repeats")
    args = ap.parse_args()
    if torch is not None:
        torch.set_num_threads(2)
    repeats = 3 if args.quick else 7
    print(f"nnkit {nk.__version__}, numpy {np.__version__}, torch "
          f"{torch.__version__ if torch is not None else 'not installed'}, "
          f"{nk._threads.kernel_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}")
    bench_conv(CONV_SHAPES[:1] if args.quick else CONV_SHAPES, (np.float32, np.float64), repeats)
    bench_pool((np.float32, np.float64), repeats,
               (8, 64, 56, 56) if args.quick else POOL_SHAPE)


if __name__ == "__main__":
    main()
