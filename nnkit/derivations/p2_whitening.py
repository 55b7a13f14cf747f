"""P2.4: batch norm against whitening batch norm, as verified lessons.

The measured tables of `python -m nnkit.lessons` (decorrelation, cost, small
batches, training) stay there; these lessons check the two identities behind
them, with the data generator of nnkit.lessons.
"""
from __future__ import annotations

import numpy as np

from .. import batchnorm as bn
from .. import lessons as _lessons
from .. import whitening as wh
from ..walkthroughs._common import cov as _cov
from ..walkthroughs._common import offdiag as _offdiag
from . import Result, lesson


@lesson("p2-whitening-decorrelation", "P2", "Whitening makes Cov(Ŷ) = Σ(Σ+εI)⁻¹ ≈ I; "
        "batch norm only rescales each feature")
def decorrelation(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    B, M, eps = 512, 32, 1e-5
    Y = _lessons.correlated(B, M, M, rng)          # full rank, strongly correlated
    g, b = np.ones(M), np.zeros(M)
    rows = [{"normalization": "input Y (correlation matrix)",
             "max|offdiag Cov(Ŷ)|": _offdiag(np.corrcoef(Y.T)), "max|Cov(Ŷ) − I|": float("nan")}]
    _, c = bn.batchnorm_forward(Y, g, b, eps)
    C = _cov(c.yhat)
    rows.append({"normalization": "batch norm", "max|offdiag Cov(Ŷ)|": _offdiag(C),
                 "max|Cov(Ŷ) − I|": float(np.abs(C - np.eye(M)).max())})
    worst = 0.0
    for label, kw in (("ZCA", {}), ("PCA", dict(method="pca")),
                      ("Cholesky", dict(method="cholesky"))):
        _, c = wh.whitening_forward(Y, g, b, eps, **kw)
        C = _cov(c.yhat)
        dev = float(np.abs(C - np.eye(M)).max())
        worst = max(worst, dev)
        rows.append({"normalization": label, "max|offdiag Cov(Ŷ)|": _offdiag(C),
                     "max|Cov(Ŷ) − I|": dev})
    lam_min = float(np.linalg.eigvalsh(_cov(Y)).min())
    return Result(discrepancy=worst, tolerance=10 * eps / lam_min, rows=rows, notes=[
        f"B = {B}, M = {M}, ε = {eps:g}; smallest eigenvalue of Σ: {lam_min:.3g}.",
        "Cov(Ŷ) = Σ(Σ+εI)⁻¹ in the eigenbasis: its distance from I is ε/(λ_min+ε); the "
        "tolerance is 10 ε/λ_min.",
        "`python -m nnkit.lessons` adds the cost, small-batch and training tables."])


@lesson("p2-whitening-small-batch", "P2", "B ≤ M: rank(Y − m) = B − 1, and Ŷ is white only "
        "inside the span of the batch: mean diag Cov(Ŷ) = (B−1)/M")
def small_batch(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    M, eps = 32, 1e-5
    rows, worst = [], 0.0
    for B in (4, 8, 16, 32, 33, 64, 256):
        Y = _lessons.correlated(B, M, M, rng)
        _, c = wh.whitening_forward(Y, np.ones(M), np.zeros(M), eps)
        C = _cov(c.yhat)
        rank = int(np.linalg.matrix_rank(Y - Y.mean(0)))
        want_rank = min(B - 1, M)
        # trace of Σ(Σ+εI)⁻¹ over M: (number of nonzero eigenvalues, each λ/(λ+ε))/M
        lam = np.linalg.eigvalsh(_cov(Y))
        predicted = float(np.sum(lam / (lam + eps)) / M)
        diag = float(np.mean(np.diag(C)))
        gap = abs(diag - predicted)
        worst = max(worst, gap, float(rank != want_rank))
        rows.append({"B": B, "rank(Y − m)": rank, "min(B−1, M)": want_rank,
                     "cond(Σ+εI)": float(c.cond), "mean diag Cov(Ŷ)": diag,
                     "Σλ/(λ+ε)/M": predicted, "(B−1)/M": min(B - 1, M) / M})
    return Result(discrepancy=worst, tolerance=1e-6, rows=rows, notes=[
        f"M = {M}, ε = {eps:g}. With B ≤ M the batch covariance has rank B − 1 and only ε "
        "keeps Σ + εI invertible (cond ~ λ_max/ε).",
        "discrepancy: the worst of |mean diag Cov(Ŷ) − Σλ/(λ+ε)/M| and a rank mismatch "
        "(1 if any); ≤ 1e-6 passes. Σλ/(λ+ε)/M ≈ (B−1)/M when B ≤ M."])
