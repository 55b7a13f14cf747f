"""P6: dropout on linear regression is a data-scaled ridge penalty.

R_ij ~ Bernoulli(p) (p = keep probability), L(w) = ‖y − (R ⊙ X) w‖²,
Γ = diag(XᵀX)^½:
    E_R[L(w)] = ‖y − pXw‖² + p(1−p)‖Γw‖²
    p·w_dropout = (XᵀX + λΓ²)⁻¹ Xᵀy,  λ = (1−p)/p
    w_L2 = (XᵀX + λ_L2 I)⁻¹ Xᵀy
"""
from __future__ import annotations

import numpy as np

from . import Result, lesson


def _problem(rng, n=40, d=5, scales=(0.2, 0.5, 1.0, 2.0, 5.0)):
    """X with features of very different norms (the point of Γ), y from a noisy teacher."""
    X = rng.standard_normal((n, d)) * np.asarray(scales[:d])
    y = X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n)
    return X, y


def expected_loss(X, y, w, p):
    """The closed form ‖y − pXw‖² + p(1−p)‖Γw‖²."""
    gamma2 = np.sum(X * X, axis=0)
    r = y - p * X @ w
    return float(r @ r + p * (1 - p) * np.sum(gamma2 * w * w))


def w_dropout(X, y, p):
    lam = (1 - p) / p
    return np.linalg.solve(X.T @ X + lam * np.diag(np.sum(X * X, axis=0)), X.T @ y) / p


def w_l2(X, y, lam):
    return np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)


@lesson("p6-dropout-expectation", "P6", "E_R‖y − (R⊙X)w‖² = ‖y − pXw‖² + p(1−p)‖Γw‖² "
        "(Monte Carlo over masks)")
def dropout_expectation(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    p = 0.7
    X, y = _problem(rng)
    w = rng.standard_normal(X.shape[1])
    exact = expected_loss(X, y, w, p)
    n, d = X.shape
    chunk, total = 5000, 200_000
    losses = np.empty(total)
    for s in range(0, total, chunk):
        R = rng.random((chunk, n, d)) < p
        r = y - np.einsum("snd,nd,d->sn", R, X, w)
        losses[s:s + chunk] = np.einsum("sn,sn->s", r, r)
    sd = float(losses.std())
    rows, err_curve, se_curve = [], [], []
    for S in (10, 100, 1000, 10_000, 100_000, 200_000):
        est = float(losses[:S].mean())
        err, se = abs(est - exact), sd / np.sqrt(S)
        rows.append({"masks S": S, "Monte Carlo mean": est, "closed form": exact,
                     "|error|": err, "σ/√S": float(se),
                     "|error|/(σ/√S)": float(err / se)})
        err_curve.append(err)
        se_curve.append(se)
    z = rows[-1]["|error|/(σ/√S)"]
    return Result(discrepancy=float(z), tolerance=4.0, rows=rows,
                  curves={"|Monte Carlo − closed form|": err_curve, "σ/√S": se_curve},
                  notes=[f"n = {n}, d = {d}, keep p = {p}; feature scales 0.2 … 5.",
                         "discrepancy: the error with all 200,000 masks in units of its "
                         "standard error σ/√S; ≤ 4 passes (a 4σ event has probability "
                         "6e-5). The error shrinks like 1/√S: 10× the masks, ~3.2× smaller."])


@lesson("p6-dropout-minimizers", "P6", "w_dropout and w_L2 in closed form equal the "
        "minimizers found by gradient descent")
def dropout_minimizers(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    X, y = _problem(rng)
    n, d = X.shape
    gamma2 = np.sum(X * X, axis=0)
    rows, worst = [], 0.0
    for p in (0.5, 0.8, 0.95):
        lam_l2 = (1 - p) / p * float(np.mean(gamma2))     # the same total penalty scale
        closed = {"dropout": w_dropout(X, y, p), "L2": w_l2(X, y, lam_l2)}
        # gradient descent on the expected dropout loss and on the ridge loss, step 1/Lip
        H_do = 2 * (p * p * X.T @ X + p * (1 - p) * np.diag(gamma2))
        H_l2 = 2 * (X.T @ X + lam_l2 * np.eye(d))
        for name, H, g0 in (("dropout", H_do, 2 * p * X.T @ y), ("L2", H_l2, 2 * X.T @ y)):
            w = np.zeros(d)
            step = 1.0 / np.linalg.eigvalsh(H).max()
            for it in range(200_000):
                grad = H @ w - g0
                w -= step * grad
                if np.abs(grad).max() < 1e-12:
                    break
            err = float(np.abs(w - closed[name]).max() / np.abs(closed[name]).max())
            worst = max(worst, err)
            rows.append({"keep p": p, "penalty": name, "GD steps": it + 1,
                         "max|w_GD − w_closed|/max|w|": err,
                         "w (closed form)": np.array2string(closed[name], precision=3)})
    return Result(discrepancy=worst, tolerance=1e-9, rows=rows, notes=[
        "GD on the expected loss E_R[L(w)] (its gradient 2(p²XᵀX + p(1−p)Γ²)w − 2pXᵀy) "
        "and on ‖y − Xw‖² + λ_L2‖w‖², from w = 0, step 1/λ_max, until ‖∇‖∞ < 1e-12.",
        "λ_L2 = λ·mean(Γ²) with λ = (1−p)/p: the same penalty on average, uniform "
        "over features."])


@lesson("p6-penalty-per-feature", "P6", "dropout's penalty is p(1−p)‖X_j‖² w_j² per feature; "
        "L2's is uniform")
def penalty_per_feature(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    p = 0.8
    lam = (1 - p) / p
    X, y = _problem(rng)
    n, d = X.shape
    gamma2 = np.sum(X * X, axis=0)
    lam_l2 = lam * float(np.mean(gamma2))
    wd, wl = w_dropout(X, y, p), w_l2(X, y, lam_l2)
    w_ols = np.linalg.lstsq(X, y, rcond=None)[0]
    rows = [{"feature j": j, "‖X_j‖²": float(gamma2[j]),
             "dropout penalty λΓ_jj² (in p·w units)": float(lam * gamma2[j]),
             "L2 penalty λ_L2": lam_l2, "w_OLS": float(w_ols[j]),
             "p·w_dropout": float(p * wd[j]), "w_L2": float(wl[j])} for j in range(d)]
    # the identity: with standardized features (‖X_j‖² = n for all j) dropout IS L2
    Xs = (X - X.mean(0)) / X.std(0)
    same = float(np.abs(p * w_dropout(Xs, y, p) - w_l2(Xs, y, lam * n)).max())
    return Result(discrepancy=same, tolerance=1e-12, rows=rows, notes=[
        f"keep p = {p}, λ = (1−p)/p = {lam:.3g}; λ_L2 = λ·mean‖X_j‖² = {lam_l2:.3g}.",
        "Dropout penalises a large-norm feature's weight more (its weight shrinks "
        "more), a small-norm feature's less; L2 shrinks every weight alike.",
        "p·w_dropout is the weight the network applies at evaluation (inverted dropout "
        "folds the p in), comparable with w_OLS and w_L2.",
        f"Check: on standardized X (every ‖X_j‖² = n) p·w_dropout = w_L2 with λ_L2 = λn; "
        f"max difference {same:.2e} (discrepancy, ≤ 1e-12 passes)."])
