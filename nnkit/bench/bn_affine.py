"""BN+ReLU, ReLU and affine, training forward + backward: nnkit vs NumPy vs PyTorch.

    nnkit bench bn_affine

Floors (measured in the same run, see _timing):
  BN+ReLU  7 passes over B x M (forward: read Y for the statistics, read Y and
           write H; backward: read dH and Y for the sums, read dH and Y and write
           dY) = 7 B M itemsize bytes / bandwidth
  ReLU     5 passes (read Y, write H; read dH and H, write dY) / bandwidth
  affine   3 GEMMs of 2 B N M flops (Y, dX, dW) = 6 B N M / GEMM rate
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ._timing import (SETTINGS, Table, bandwidth, gemm_rate, median_time, ratio, share,
                      torch_module, torch_train_time)

BN_SHAPES = [(64, 256), (256, 1024), (4096, 1024), (16384, 512)]
RELU_SHAPES = [(4096, 1024)]
AFFINE_SHAPES = [(64, 784, 256), (256, 1024, 1024), (1024, 4096, 4096)]
QUICK_BN, QUICK_RELU, QUICK_AFFINE = [(8, 16)], [(8, 16)], [(4, 8, 6)]
DTYPES = (np.float32, np.float64)
EPS = 1e-5
# the BN+ReLU and ReLU tables: both memory-bound over B x M, one layout
MEMORY_COLUMNS = [("B x M", "text"), ("dtype", "text"), ("nnkit ms", "ms"), ("numpy ms", "ms"),
                  ("torch ms", "ms"), ("np/nk", "ratio"), ("torch/nk", "ratio"),
                  ("floor ms", "ms"), ("nk@floor", "share"), ("torch@floor", "share")]


def _add_memory_row(t: Table, Y, passes: int, bw: float, t_nk, t_np, t_th) -> None:
    """A row of a MEMORY_COLUMNS table: the floor is `passes` passes over Y's
    bytes at the measured bandwidth (the kernel's docstring counts them)."""
    B, M = Y.shape
    floor = passes * B * M * Y.itemsize / bw
    t.add(f"{B}x{M}", Y.dtype.name, t_nk, t_np, t_th, ratio(t_np, t_nk), ratio(t_th, t_nk),
          floor, share(floor, t_nk), share(floor, t_th))


def numpy_bn_relu(Y, g, b, dH):
    """The textbook NumPy version (P2), forward and backward."""
    B = Y.shape[0]
    m = Y.mean(0)
    Yc = Y - m
    v = (Yc * Yc).mean(0)
    inv = 1.0 / np.sqrt(v + EPS)
    xh = Yc * inv
    Z = g * xh + b
    H = np.maximum(Z, 0)
    dZ = dH * (Z > 0)
    dbeta = dZ.sum(0)
    dgamma = (dZ * xh).sum(0)
    dY = (g * inv / B) * (B * dZ - dbeta - xh * dgamma)
    return H, dY, dgamma, dbeta


def bench_bn(shapes, repeats) -> Table:
    torch = torch_module()
    bw = bandwidth()
    t = Table("bn_relu", f"BN+ReLU training forward+backward (ratio = other/nnkit; floor = "
              f"7 passes / {bw / 1e9:.1f} GB/s measured)", list(MEMORY_COLUMNS))
    for dt in DTYPES:
        for B, M in shapes:
            rng = np.random.default_rng(0)
            Y = rng.standard_normal((B, M)).astype(dt)
            dH = rng.standard_normal((B, M)).astype(dt)
            g = (1 + 0.1 * rng.standard_normal(M)).astype(dt)
            b = (0.1 * rng.standard_normal(M)).astype(dt)
            H = np.empty_like(Y)
            dY = np.empty_like(Y)

            def ours():
                _, cache = nk.bn_relu_forward(Y, g, b, EPS, out=H)
                nk.bn_relu_backward(dH, cache, full=False, out=dY)

            t_nk = median_time(ours, repeats=repeats)
            t_np = median_time(lambda: numpy_bn_relu(Y, g, b, dH), repeats=repeats)
            t_th = torch_train_time(
                torch, lambda tY, tg, tb: torch.relu(torch.nn.functional.batch_norm(
                    tY, None, None, tg, tb, training=True, eps=EPS)),
                (Y, g, b), dH, repeats=repeats)
            _add_memory_row(t, Y, 7, bw, t_nk, t_np, t_th)
    return t


def bench_relu(shapes, repeats) -> Table:
    torch = torch_module()
    bw = bandwidth()
    t = Table("relu", f"ReLU forward+backward (floor = 5 passes / {bw / 1e9:.1f} GB/s)",
              list(MEMORY_COLUMNS))
    for dt in DTYPES:
        for B, M in shapes:
            rng = np.random.default_rng(0)
            Y = rng.standard_normal((B, M)).astype(dt)
            dH = rng.standard_normal((B, M)).astype(dt)

            def ours():
                H, cache = nk.relu_forward(Y)
                nk.relu_backward(dH, cache)

            def numpy_relu():
                H = np.maximum(Y, 0)
                return dH * (H > 0)

            t_nk = median_time(ours, repeats=repeats)
            t_np = median_time(numpy_relu, repeats=repeats)
            t_th = torch_train_time(torch, lambda tY: torch.relu(tY), (Y,), dH,
                                    repeats=repeats)
            _add_memory_row(t, Y, 5, bw, t_nk, t_np, t_th)
    return t


def bench_affine(shapes, repeats) -> Table:
    torch = torch_module()
    t = Table("affine", "Affine forward+backward (ratio = other/nnkit; floor = 6 B N M "
              "flops / the GEMM rate measured in this run)",
              [("B x N x M", "text"), ("dtype", "text"), ("nnkit ms", "ms"),
               ("numpy ms", "ms"), ("3 GEMMs ms", "ms"), ("torch ms", "ms"),
               ("np/nk", "ratio"), ("3gemm/nk", "ratio"), ("torch/nk", "ratio"),
               ("floor ms", "ms"), ("nk@floor", "share"), ("torch@floor", "share"),
               ("GEMM GF/s", "num")])
    for dt in DTYPES:
        rate = gemm_rate(dt)
        for B, N, M in shapes:
            rng = np.random.default_rng(0)
            X = rng.standard_normal((B, N)).astype(dt)
            W = (rng.standard_normal((M, N)) / np.sqrt(N)).astype(dt)
            b = rng.standard_normal(M).astype(dt)
            dY = rng.standard_normal((B, M)).astype(dt)
            Y = np.empty((B, M), dt)
            dX = np.empty_like(X)
            rep = max(3, repeats // (4 if B * N * M > 1e9 else 1))

            def ours():
                _, cache = nk.affine_forward(X, W, b, out=Y)
                nk.affine_backward(dY, cache, out=dX)

            def numpy_full():
                _ = X @ W.T + b
                _ = dY @ W
                _ = dY.T @ X
                _ = dY.sum(0)

            def three_gemms():
                _ = X @ W.T
                _ = dY @ W
                _ = dY.T @ X

            t_nk = median_time(ours, repeats=rep)
            t_np = median_time(numpy_full, repeats=rep)
            t_3 = median_time(three_gemms, repeats=rep)
            t_th = torch_train_time(
                torch, lambda tX, tW, tb: torch.nn.functional.linear(tX, tW, tb), (X, W, b),
                dY, repeats=rep)
            floor = 6.0 * B * N * M / rate
            t.add(f"{B}x{N}x{M}", np.dtype(dt).name, t_nk, t_np, t_3, t_th,
                  ratio(t_np, t_nk), ratio(t_3, t_nk), ratio(t_th, t_nk), floor,
                  share(floor, t_nk), share(floor, t_th), rate / 1e9)
    return t


def run() -> list[Table]:
    q = SETTINGS.quick
    repeats = 15
    return [bench_bn(QUICK_BN if q else BN_SHAPES, repeats),
            bench_relu(QUICK_RELU if q else RELU_SHAPES, repeats),
            bench_affine(QUICK_AFFINE if q else AFFINE_SHAPES, repeats)]
