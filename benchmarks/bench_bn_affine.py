"""Side-by-side timings: nnkit vs plain NumPy vs PyTorch CPU (when installed).

    python benchmarks/bench_bn_affine.py [--quick]

Prints, per shape and dtype, the median time of a training forward+backward
and the ratios (other / nnkit: > 1 means nnkit is faster). For BN+ReLU it also
prints the fraction of the memory-bandwidth bound reached, the bound being 7
passes over B×M (read Y; write H; read dH, Y; read dH, Y; write dY) at 37 GB/s.
"""
from __future__ import annotations

import argparse

import numpy as np

import nnkit as nk
from _timing import BANDWIDTH, fmt_ms, fmt_ratio, median_time, print_table, torch

BN_SHAPES = [(64, 256), (256, 1024), (4096, 1024), (16384, 512)]
AFFINE_SHAPES = [(64, 784, 256), (256, 1024, 1024), (1024, 4096, 4096)]
EPS = 1e-5


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


def bench_bn(shapes, dtypes, repeats):
    rows = []
    for dt in dtypes:
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
            t_th = None
            if torch is not None:
                tY = torch.from_numpy(Y).requires_grad_(True)
                tg = torch.from_numpy(g).requires_grad_(True)
                tb = torch.from_numpy(b).requires_grad_(True)
                tdH = torch.from_numpy(dH)

                def theirs():
                    out = torch.relu(torch.nn.functional.batch_norm(
                        tY, None, None, tg, tb, training=True, eps=EPS))
                    tY.grad = tg.grad = tb.grad = None
                    out.backward(tdH)

                t_th = median_time(theirs, repeats=repeats)
            bound = 7 * B * M * Y.itemsize / BANDWIDTH
            rows.append([f"{B}x{M}", np.dtype(dt).name, fmt_ms(t_nk), fmt_ms(t_np),
                         fmt_ms(t_th), fmt_ratio(t_np, t_nk), fmt_ratio(t_th, t_nk),
                         f"{100 * bound / t_nk:5.0f}%",
                         "   n/a" if t_th is None else f"{100 * bound / t_th:5.0f}%"])
    print_table("BN+ReLU training forward+backward (ms; ratio = other/nnkit)",
                ["B x M", "dtype", "nnkit", "numpy", "torch", "np/nk", "torch/nk",
                 "nk %bw", "torch %bw"], rows)


def bench_affine(shapes, dtypes, repeats):
    rows = []
    for dt in dtypes:
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
            t_th = None
            if torch is not None:
                tX = torch.from_numpy(X).requires_grad_(True)
                tW = torch.from_numpy(W).requires_grad_(True)
                tb = torch.from_numpy(b).requires_grad_(True)
                tdY = torch.from_numpy(dY)

                def theirs():
                    out = torch.nn.functional.linear(tX, tW, tb)
                    tX.grad = tW.grad = tb.grad = None
                    out.backward(tdY)

                t_th = median_time(theirs, repeats=rep)
            rows.append([f"{B}x{N}x{M}", np.dtype(dt).name, fmt_ms(t_nk), fmt_ms(t_np),
                         fmt_ms(t_3), fmt_ms(t_th), fmt_ratio(t_np, t_nk),
                         fmt_ratio(t_3, t_nk), fmt_ratio(t_th, t_nk)])
    print_table("Affine forward+backward (ms; ratio = other/nnkit)",
                ["B x N x M", "dtype", "nnkit", "numpy", "3 GEMMs", "torch", "np/nk",
                 "3gemm/nk", "torch/nk"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes only, few repeats")
    ap.add_argument("--only", choices=("bn", "affine"), help="run one table")
    args = ap.parse_args()
    repeats = 5 if args.quick else 15
    bn_shapes = BN_SHAPES[:2] if args.quick else BN_SHAPES
    aff_shapes = AFFINE_SHAPES[:2] if args.quick else AFFINE_SHAPES
    print(f"nnkit {nk.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch is not None else 'not installed'}, "
          f"{nk._threads.kernel_threads()} threads")
    if args.only in (None, "bn"):
        bench_bn(bn_shapes, (np.float32, np.float64), repeats)
    if args.only in (None, "affine"):
        bench_affine(aff_shapes, (np.float32, np.float64), repeats)


if __name__ == "__main__":
    main()
