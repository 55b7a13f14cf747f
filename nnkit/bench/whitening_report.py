"""P2.4 measured: batch norm against whitening batch norm.

    python -m nnkit.bench.whitening_report [--quick]

Four tables, every number measured on this machine when you run it (seeded):
  1. decorrelation: max |off-diagonal| of Cov(Ŷ) on strongly correlated data
     (BN only rescales each feature; ZCA removes the correlations);
  2. cost: training forward + backward time as M grows (BN is O(BM), whitening
     O(BM² + M³)); group whitening in between;
  3. B ≤ M: the batch covariance has rank ≤ B − 1, only ε keeps Σ + εI
     invertible; the condition number explodes and Ŷ is whitened only inside
     the span of the batch (the mean diagonal of Cov(Ŷ) drops to ~(B−1)/M);
  4. training: the same MLP (Linear → norm + ReLU → Linear → softmax CE), same
     seed, plain SGD, on data whose 16 input features come from 3 latent
     factors (strongly correlated): loss after K steps, BN against ZCA.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .. import batchnorm as bn
from .. import whitening as wh
from .._samples import correlated
from .._samples import cov as _cov
from .._samples import offdiag as _offdiag
from .._table import format_table
from ..layers import (BatchNorm, Linear, Sequential, SoftmaxCrossEntropy,
                      WhiteningBatchNorm)


def _table(title, header, rows):
    # numbers: every column right-aligned
    return format_table(header, rows, "r" * len(header), title=title)


def _median_time(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


# ---------------------------------------------------------------- 1
def decorrelation(B=512, M=32, seed=0):
    rng = np.random.default_rng(seed)
    Y = correlated(B, M, 4, rng)
    g, b = np.ones(M), np.zeros(M)
    rows = [["input Y (correlation)", f"{_offdiag(np.corrcoef(Y.T)):.3f}", "-"]]
    _, c = bn.batchnorm_forward(Y, g, b)
    C = _cov(c.yhat)
    rows.append(["batch norm", f"{_offdiag(C):.3f}", f"{np.linalg.cond(C + 1e-12 * np.eye(M)):.3g}"])
    for label, kw in (("ZCA", {}), ("PCA", dict(method="pca")),
                      ("Cholesky", dict(method="cholesky")),
                      ("Newton T=5 (IterNorm)", dict(method="newton")),
                      ("ZCA, groups of 8", dict(group_size=8))):
        _, c = wh.whitening_forward(Y, g, b, **kw)
        C = _cov(c.yhat)
        rows.append([label, f"{_offdiag(C):.2e}", f"{np.linalg.cond(C):.3g}"])
    return _table(f"1. Decorrelation: B = {B}, M = {M}, features from 4 latent factors, ε = 1e-5",
                  ["normalization", "max |offdiag Cov(Ŷ)|", "cond Cov(Ŷ)"], rows)


# ---------------------------------------------------------------- 2
def cost(B=1024, Ms=(16, 32, 64, 128, 256, 512), repeats=5, seed=0):
    rows = []
    rng = np.random.default_rng(seed)
    for M in Ms:
        Y = correlated(B, M, max(2, M // 4), rng)
        dZ = rng.standard_normal((B, M))
        g, b = np.ones(M), np.zeros(M)
        out, dY = np.empty_like(Y), np.empty_like(Y)

        def run_bn():
            _, c = bn.batchnorm_forward(Y, g, b, out=out)
            bn.batchnorm_backward(dZ, c, full=False, out=dY)

        def run_wh(**kw):
            _, c = wh.whitening_forward(Y, g, b, out=out, **kw)
            wh.whitening_backward(dZ, c, full=False, out=dY)

        t_bn = _median_time(run_bn, repeats)
        t_zca = _median_time(run_wh, repeats)
        t_grp = _median_time(lambda: run_wh(group_size=16), repeats)
        t_nt = _median_time(lambda: run_wh(method="newton"), repeats)
        rows.append([str(M), f"{t_bn * 1e3:.3f}", f"{t_zca * 1e3:.3f}",
                     f"{t_zca / t_bn:.0f}x", f"{t_grp * 1e3:.3f}", f"{t_nt * 1e3:.3f}"])
    return _table(f"2. Forward + backward time (ms, median of {repeats}), B = {B}, float64",
                  ["M", "BN", "ZCA", "ZCA/BN", "ZCA g=16", "Newton T=5"], rows)


# ---------------------------------------------------------------- 3
def small_batch(M=32, Bs=(4, 8, 16, 32, 33, 64, 256), eps=1e-5, seed=0):
    rows = []
    rng = np.random.default_rng(seed)
    for B in Bs:
        Y = correlated(B, M, M, rng)           # full-rank population covariance
        _, c = wh.whitening_forward(Y, np.ones(M), np.zeros(M), eps)
        C = _cov(c.yhat)
        rank = np.linalg.matrix_rank(Y - Y.mean(0))
        dY = wh.whitening_backward(np.ones_like(Y) / B, c).dY
        rows.append([str(B), str(rank), f"{c.cond:.3g}", f"{np.mean(np.diag(C)):.3f}",
                     f"{(B - 1) / M if B <= M else 1:.3f}", f"{np.abs(C - np.eye(M)).max():.3f}",
                     f"{np.abs(dY).max():.3g}"])
    return _table(f"3. B ≤ M (M = {M}, ε = {eps:g}): rank(Σ_Y) ≤ B − 1, ε keeps Σ + εI invertible",
                  ["B", "rank Yc", "cond(Σ+εI)", "mean diag Cov(Ŷ)", "(B−1)/M",
                   "max|Cov(Ŷ)−I|", "max|dY|, dZ=1/B (exact: 0)"], rows)


# ---------------------------------------------------------------- 4
def training(steps=300, batch=64, lr=0.05, seed=0, n=4096, d=16, hidden=32, classes=4):
    rng = np.random.default_rng(seed)
    X = correlated(n, d, 3, rng, noise=0.05)
    X = (X - X.mean(0)) / X.std(0)                # per-feature standardised, still correlated
    teacher = rng.standard_normal((d, classes))
    labels = np.argmax(X @ teacher + 0.5 * rng.standard_normal((n, classes)), axis=1)
    rows = []
    for label, norm in (("batch norm", lambda: BatchNorm(hidden, relu=True)),
                        ("ZCA whitening BN", lambda: WhiteningBatchNorm(hidden, relu=True)),
                        ("ZCA, groups of 8", lambda: WhiteningBatchNorm(hidden, relu=True,
                                                                        group_size=8)),
                        ("Newton T=5", lambda: WhiteningBatchNorm(hidden, relu=True,
                                                                  method="newton"))):
        model = Sequential(Linear(d, hidden, seed=seed), norm(), Linear(hidden, classes, seed=seed + 1))
        loss_fn = SoftmaxCrossEntropy()
        order = np.random.default_rng(seed + 2)
        losses = []
        t0 = time.perf_counter()
        for step in range(steps):
            idx = order.integers(0, n, batch)
            model.zero_grad()
            loss = loss_fn.forward(model.forward(X[idx]), labels[idx])
            model.backward(loss_fn.backward())
            for k, p in model.params.items():
                p -= lr * model.grads[k]
            losses.append(float(loss))
        elapsed = time.perf_counter() - t0
        model.eval()
        full = float(loss_fn.forward(model.forward(X), labels))
        acc = float(np.mean(np.argmax(model.forward(X), axis=1) == labels))
        rows.append([label, f"{np.mean(losses[:10]):.4f}", f"{np.mean(losses[steps // 3 - 10:steps // 3]):.4f}",
                     f"{np.mean(losses[-10:]):.4f}", f"{full:.4f}", f"{acc:.3f}",
                     f"{elapsed * 1e3 / steps:.2f}"])
    return _table(f"4. Training: {d} features from 3 latent factors, MLP {d}→{hidden}→{classes}, "
                  f"SGD lr {lr}, batch {batch}, seed {seed}",
                  ["model", "loss steps 1-10", f"loss @ {steps // 3}", f"loss @ {steps}",
                   "eval loss (all data)", "eval acc", "ms/step"], rows)


def main(argv=None):
    p = argparse.ArgumentParser(description="BN vs whitening BN, measured (P2.4)")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    args = p.parse_args(argv)
    print(decorrelation())
    print()
    if args.quick:
        print(cost(B=512, Ms=(16, 64, 128), repeats=3))
    else:
        print(cost())
    print()
    print(small_batch())
    print()
    print(training(steps=100 if args.quick else 300))


if __name__ == "__main__":
    main()
