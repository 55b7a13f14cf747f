"""Conv2d and max-pool forward + backward: nnkit vs a NumPy im2col reference vs
PyTorch CPU (F.conv2d / F.max_pool2d with autograd, all cores), all measured
in the same run.

    nnkit bench conv

Floors beside the times, measured in the same run (_timing):
  conv: GEMM flops (3 GEMMs of 2·B·C_out·K·H'W' each: forward, dW, dX) / the
        GEMM rate;
  pool: bytes moved (forward: read X, write Y and the int32 arg-max; backward:
        read dY and the arg-max, write dX) / the bandwidth.
Ratios are other/nnkit (> 1: nnkit is faster).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import nnkit as nk

from ._timing import (SETTINGS, Table, bandwidth, gemm_rate, median_time, ratio, share,
                      torch_module, torch_train_time)

CONV_SHAPES = [(32, 3, 32, 32, 16, 3), (16, 64, 56, 56, 64, 3), (64, 32, 16, 16, 64, 3)]
POOL_SHAPE = (32, 64, 56, 56)
QUICK_CONV, QUICK_POOL = [(2, 2, 5, 5, 3, 3)], (2, 2, 4, 4)
DTYPES = (np.float32, np.float64)


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


def bench_conv(shapes, repeats) -> Table:
    torch = torch_module()
    t = Table("conv2d", "conv2d forward+backward, stride 1, padding 1 (ratio = other/nnkit; "
              "floor = GEMM flops / the GEMM rate measured in this run)",
              [("shape", "text"), ("dtype", "text"), ("nnkit ms", "ms"), ("numpy ms", "ms"),
               ("torch ms", "ms"), ("np/nk", "ratio"), ("torch/nk", "ratio"),
               ("floor ms", "ms"), ("nk@floor", "share"), ("torch@floor", "share"),
               ("GEMM GF/s", "num")])
    for dt in DTYPES:
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
            t_th = torch_train_time(
                torch, lambda tX, tW, tb: torch.nn.functional.conv2d(tX, tW, tb, padding=1),
                (X, Wt, b), dY, repeats=rep, min_seconds=0.5)
            floor = 3 * 2 * B * Co * C * k * k * H * W / rate
            t.add(f"{B}x{C}x{H}x{W}->{Co} k{k}", np.dtype(dt).name, t_nk, t_np, t_th,
                  ratio(t_np, t_nk), ratio(t_th, t_nk), floor, share(floor, t_nk),
                  share(floor, t_th), rate / 1e9)
    return t


def bench_pool(shape, repeats) -> Table:
    torch = torch_module()
    bw = bandwidth()
    t = Table("maxpool2d", f"max-pool 2x2 forward+backward (floor = bytes moved / "
              f"{bw / 1e9:.1f} GB/s measured)",
              [("shape", "text"), ("dtype", "text"), ("nnkit ms", "ms"), ("torch ms", "ms"),
               ("torch/nk", "ratio"), ("floor ms", "ms"), ("nk@floor", "share"),
               ("torch@floor", "share")])
    for dt in DTYPES:
        X = np.random.default_rng(0).standard_normal(shape).astype(dt)
        Y0, _ = nk.maxpool2d_forward(X, 2)
        dY = np.random.default_rng(1).standard_normal(Y0.shape).astype(dt)

        def ours():
            _, cache = nk.maxpool2d_forward(X, 2)
            nk.maxpool2d_backward(dY, cache)

        t_nk = median_time(ours, repeats=repeats, min_seconds=0.5)
        t_th = torch_train_time(torch, lambda tX: torch.nn.functional.max_pool2d(tX, 2), (X,),
                                dY, repeats=repeats, min_seconds=0.5)
        n, it = X.size, X.itemsize
        moved = n * it + n // 4 * (it + 4) + n // 4 * (it + 4) + n * it
        floor = moved / bw
        t.add("x".join(map(str, shape)), np.dtype(dt).name, t_nk, t_th, ratio(t_th, t_nk),
              floor, share(floor, t_nk), share(floor, t_th))
    return t


def run() -> list[Table]:
    q = SETTINGS.quick
    return [bench_conv(QUICK_CONV if q else CONV_SHAPES, 7),
            bench_pool(QUICK_POOL if q else POOL_SHAPE, 7)]
