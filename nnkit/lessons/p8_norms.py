"""P8: the axes of batch, layer and instance norm; weight normalization."""
from __future__ import annotations

import numpy as np

from .. import batchnorm as bn
from .. import norms
from .. import weightnorm as wn
from .._samples import whitened_sample
from . import Result, lesson


@lesson("p8-norm-axes", "P8", "(4, 2, 3): batch norm per channel, layer norm per sample, "
        "instance norm per (sample, channel)")
def norm_axes(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    X = 2.0 + 3.0 * rng.standard_normal((4, 2, 3))
    C = X.shape[1]
    ones_c, zeros_c = np.ones(C), np.zeros(C)
    _, cb = norms.batchnorm_channels_forward(X, ones_c, zeros_c)
    _, cl = norms.layernorm_forward(X, np.ones(X.shape[1:]), np.zeros(X.shape[1:]))
    _, ci = norms.instancenorm_forward(X, ones_c, zeros_c)
    rows, notes, worst = [], [], 0.0
    for name, cache, axes in (("batch norm", cb, (0, 2)), ("layer norm", cl, (1, 2)),
                              ("instance norm", ci, (2,))):
        m, v = X.mean(axis=axes), X.var(axis=axes)
        xh = cache.xhat
        err = max(float(np.abs(cache.mean - m).max()), float(np.abs(cache.var - v).max()))
        # x̂ has mean 0 and variance v/(v+ε) over the same axes
        err_hat = max(float(np.abs(xh.mean(axis=axes)).max()),
                      float(np.abs(xh.var(axis=axes) - v / (v + 1e-5)).max()))
        worst = max(worst, err, err_hat)
        over = {(0, 2): "batch, features", (1, 2): "channels, features",
                (2,): "features"}[axes]
        rows.append({"norm": name, "averages over": over,
                     "mean shape": str(tuple(cache.mean.shape)),
                     "var shape": str(tuple(cache.var.shape)),
                     "max|kernel − NumPy|": err, "max|x̂ moments − (0, v/(v+ε))|": err_hat})
        notes.append(f"{name} mean {np.array2string(np.asarray(cache.mean), precision=3)}")
    return Result(discrepancy=worst, tolerance=1e-12, rows=rows, notes=notes + [
        "X has shape (batch 4, channels 2, features 3); NumPy computes the same moments "
        "with X.mean(axis=...) on the axes named in the table."])


@lesson("p8-weightnorm-bn", "P8", "x whitened: batch-normalizing uᵀx and scaling by γ "
        "gives wᵀx + β, w = γ u/‖u‖")
def weightnorm_is_bn(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    rows, worst = [], 0.0
    for n, d in ((64, 3), (256, 8), (1024, 32)):
        X = whitened_sample(n, d, rng)
        u = rng.standard_normal(d)
        gamma, beta = 1.5, -0.25
        y = X @ u                                    # (n,), one output unit
        # batch norm of y with ε = 0 (Var y = uᵀ I u = ‖u‖² > 0)
        z, _ = bn.batchnorm_forward(y[:, None], np.array([gamma]), np.array([beta]), 0.0)
        w, _ = wn.weightnorm_forward(u[None, :], np.array([gamma]))
        err = float(np.abs(z[:, 0] - (X @ w[0] + beta)).max())
        worst = max(worst, err)
        rows.append({"n": n, "d": d, "Var(uᵀx)": float(y.var()), "‖u‖²": float(u @ u),
                     "max|BN(uᵀx) − (wᵀx + β)|": err})
    return Result(discrepancy=worst, tolerance=1e-10, rows=rows, notes=[
        "x is centred and whitened exactly (sample mean 0, sample covariance I), so "
        "mean(uᵀx) = 0 and Var(uᵀx) = ‖u‖²: batch norm divides by ‖u‖.",
        "ε = 0 here; with ε > 0 the two differ by the factor ‖u‖/√(‖u‖² + ε)."])


@lesson("p8-weightnorm-orthogonal", "P8", "∇_u L = (γ/‖u‖) W⊥ ∇_w L with W⊥ = I − wwᵀ/‖w‖², "
        "so ∇_u L ⊥ u")
def weightnorm_orthogonal(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    M, N, B = 4, 6, 5
    u = rng.standard_normal((M, N))
    gamma = 1.0 + rng.random(M)
    X, G = rng.standard_normal((B, N)), rng.standard_normal((B, M))

    def loss(u_, g_):
        w, _ = wn.weightnorm_forward(u_, g_)
        return float(np.sum(G * (X @ w.T)))

    w, cache = wn.weightnorm_forward(u, gamma)
    dw = G.T @ X                                     # ∇_w L of L = Σ G ⊙ X wᵀ
    g = wn.weightnorm_backward(dw, cache)
    rows, worst_orth, worst_fd = [], 0.0, 0.0
    h = 1e-6
    fd = np.empty_like(u)
    for idx in np.ndindex(*u.shape):
        up, um = u.copy(), u.copy()
        up[idx] += h
        um[idx] -= h
        fd[idx] = (loss(up, gamma) - loss(um, gamma)) / (2 * h)
    for i in range(M):
        wi = w[i]
        Wperp = np.eye(N) - np.outer(wi, wi) / (wi @ wi)
        formula = gamma[i] / np.linalg.norm(u[i]) * Wperp @ dw[i]
        cos = float(abs(u[i] @ g.du[i]) / (np.linalg.norm(u[i]) * np.linalg.norm(g.du[i])))
        e_formula = float(np.abs(g.du[i] - formula).max())
        e_fd = float(np.abs(g.du[i] - fd[i]).max())
        worst_orth = max(worst_orth, cos, e_formula)
        worst_fd = max(worst_fd, e_fd)
        rows.append({"row": i, "|cos(u, ∇_u L)|": cos,
                     "max|∇_u L − (γ/‖u‖)W⊥∇_w L|": e_formula,
                     "max|∇_u L − finite diff|": e_fd})
    return Result(discrepancy=max(worst_orth / 1e-12, worst_fd / 1e-7), tolerance=1.0,
                  rows=rows, notes=[
                      "discrepancy: the worst of (|cos|, formula error) / 1e-12 and the "
                      "finite-difference error / 1e-7 (float64, step 1e-6); ≤ 1 passes.",
                      "A step along ∇_u L does not change ‖u‖ to first order: gradient "
                      "descent on u only grows ‖u‖ (by the second-order term)."])
