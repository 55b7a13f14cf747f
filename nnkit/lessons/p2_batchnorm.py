"""P2.1-P2.3, P2.5: batch norm + ReLU -- why ε, the moments of Ŷ, the total
derivatives dm and dv, the compact backward, and the Jacobian."""
from __future__ import annotations

import numpy as np

from .. import batchnorm as bn
from ..gradcheck import jacobian_check, numeric_gradient
from . import Result, lesson


@lesson("p2-bn-epsilon", "P2", "A constant feature has v = 0: ε = 0 gives Ŷ = 0/0 = NaN; "
        "ε > 0 gives Ŷ = 0 and |dY| ≤ 2|γ|·max|dZ|/√ε")
def epsilon(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    B = 6
    Y = rng.standard_normal((B, 3))
    Y[:, 0] = 2.5                          # a constant feature (a dead unit, or B = 1)
    gamma, beta = np.array([1.5, 1.0, 1.0]), np.zeros(3)
    dZ = rng.standard_normal((B, 3))
    rows, failures = [], 0
    for eps in (0.0, 1e-5, 1e-2):
        Z, cache = bn.batchnorm_forward(Y, gamma, beta, eps)
        with np.errstate(all="ignore"):
            g = bn.batchnorm_backward(dZ, cache)
        yhat0, dy0 = cache.yhat[:, 0], g.dY[:, 0]
        bound = 2 * abs(gamma[0]) * np.abs(dZ[:, 0]).max() / np.sqrt(eps) if eps else np.inf
        if eps == 0:
            ok = bool(np.all(np.isnan(yhat0)))             # the failure P2.1 asks to show
        else:
            ok = bool(np.all(yhat0 == 0) and np.all(np.isfinite(g.dY))
                      and np.abs(dy0).max() <= bound)
        failures += not ok
        rows.append({"ε": eps, "v of the constant feature": float(cache.var[0]),
                     "Ŷ of it": "NaN" if np.isnan(yhat0).any() else float(np.abs(yhat0).max()),
                     "max|dY| of it": float(np.abs(dy0).max()),
                     "bound 2|γ|max|dZ|/√ε": float(bound),
                     "other features finite": bool(np.all(np.isfinite(Z[:, 1:]))),
                     "as expected": ok})
    return Result(discrepancy=float(failures), tolerance=0.0, rows=rows, notes=[
        "Y (6, 3) with feature 0 constant (2.5): its batch variance is exactly 0, as every "
        "feature's is when B = 1 (nnkit's training mode refuses B = 1 for that reason).",
        "ε = 0: Ŷ = (Y − m)/√v = 0/0 = NaN, and NaN flows into its gradients.",
        "ε > 0: Ŷ = 0/√ε = 0, and the backward's scale 1/√(v + ε) is capped at 1/√ε: for "
        "that feature dY = (γ/√ε)(dZ − mean dZ), so |dY| ≤ 2|γ|max|dZ|/√ε.",
        "discrepancy: the number of rows not as expected (tolerance 0)."])


@lesson("p2-bn-moments", "P2", "Each feature of Ŷ has mean exactly 0 and variance "
        "v/(v+ε) (→ 1 as ε → 0)")
def moments(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    eps, B = 1e-5, 256
    rows, worst = [], 0.0
    for scale in (1e-3, 1e-2, 1.0, 10.0):
        Y = 3.0 + scale * rng.standard_normal((B, 4))
        _, cache = bn.batchnorm_forward(Y, np.ones(4), np.zeros(4), eps)
        Yh = cache.yhat
        v = Y.var(axis=0)                                   # biased, divide by B
        err_mean = float(np.abs(Yh.mean(axis=0)).max())
        err_var = float(np.abs(Yh.var(axis=0) - v / (v + eps)).max())
        worst = max(worst, err_mean, err_var)
        rows.append({"feature scale σ": scale, "v (mean over features)": float(v.mean()),
                     "Var Ŷ (mean)": float(Yh.var(axis=0).mean()),
                     "v/(v+ε) (mean)": float((v / (v + eps)).mean()),
                     "max|mean Ŷ|": err_mean, "max|Var Ŷ − v/(v+ε)|": err_var})
    return Result(discrepancy=worst, tolerance=1e-12, rows=rows, notes=[
        "Y = 3 + σ·N(0, 1), B = 256, four features, ε = 1e-5: with σ = 1e-3 (v ≈ 1e-6) the "
        "variance of Ŷ is about 0.09, not 1; ε only stops mattering once v ≫ ε.",
        "Var Ŷ = mean((Y − m)²)/(v + ε) = v/(v + ε): no approximation, equal to rounding."])


def _bn_relu_loss(Y, gamma, beta, eps, dH, m=None, v=None):
    """L = Σ dH ⊙ ReLU(γŶ + β) with m and v as graph nodes: pass m to perturb it
    (v and Ŷ recomputed from it) or v (Ŷ recomputed, m from Y)."""
    if m is None:
        m = Y.mean(axis=0)
    if v is None:
        v = ((Y - m) ** 2).mean(axis=0)
    Z = gamma * (Y - m) / np.sqrt(v + eps) + beta
    return float((dH * np.maximum(Z, 0.0)).sum())


@lesson("p2-bn-total-derivatives", "P2", "dm and dv are total derivatives (m feeds v and Ŷ); "
        "the long backward, the compact one and the kernel agree with finite differences")
def total_derivatives(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    B, M, eps, h = 8, 3, 1e-5, 1e-6
    Y = 1.0 + 2.0 * rng.standard_normal((B, M))
    gamma, beta = rng.uniform(0.5, 2.0, M), 0.3 * rng.standard_normal(M)
    dH = rng.standard_normal((B, M))
    _, cache = bn.bn_relu_forward(Y, gamma, beta, eps)
    g = bn.bn_relu_backward(dH, cache)
    m, v = Y.mean(axis=0), Y.var(axis=0)
    inv = 1.0 / np.sqrt(v + eps)
    Yh = (Y - m) * inv
    # the derivation's steps, written out (P2.3)
    dZ = dH * (gamma * Yh + beta > 0)
    dYh = dZ * gamma
    dv = (dYh * (Y - m)).sum(axis=0) * -0.5 * (v + eps) ** -1.5
    dm = -(dYh * inv).sum(axis=0) + dv * (-2.0 / B) * (Y - m).sum(axis=0)
    dY_long = dYh * inv + dv * 2.0 * (Y - m) / B + dm / B
    dY_compact = inv / B * (B * dYh - dYh.sum(axis=0) - Yh * (dYh * Yh).sum(axis=0))
    mm, vv, YY = m.copy(), v.copy(), Y.copy()     # perturbed in place, one at a time
    fd = {"dm": numeric_gradient(lambda: _bn_relu_loss(Y, gamma, beta, eps, dH, m=mm), mm, h),
          "dv": numeric_gradient(lambda: _bn_relu_loss(Y, gamma, beta, eps, dH, m=m, v=vv),
                                 vv, h),
          "dY": numeric_gradient(lambda: _bn_relu_loss(YY, gamma, beta, eps, dH), YY, h)}
    long_form = {"dm": dm, "dv": dv, "dY": dY_long}
    kernel = {"dm": g.dmean, "dv": g.dvar, "dY": g.dY}
    rows, worst = [], 0.0
    for k in ("dm", "dv", "dY"):
        scale = max(1.0, float(np.abs(long_form[k]).max()))
        e_fd = float(np.abs(fd[k] - long_form[k]).max()) / scale
        e_k = float(np.abs(kernel[k] - long_form[k]).max()) / scale
        e_c = float(np.abs(dY_compact - dY_long).max()) / scale if k == "dY" else 0.0
        worst = max(worst, e_fd / 1e-6, e_k / 1e-12, e_c / 1e-12)
        rows.append({"gradient": k, "perturbed node": {"dm": "m (v, Ŷ recomputed)",
                                                       "dv": "v (Ŷ recomputed)",
                                                       "dY": "Y (m, v, Ŷ recomputed)"}[k],
                     "rel|finite diff − long form|": e_fd,
                     "rel|kernel − long form|": e_k,
                     "rel|compact − long form|": e_c})
    return Result(discrepancy=worst, tolerance=1.0, rows=rows, notes=[
        "long form: dZ = dH ⊙ [Z > 0], dŶ = γ dZ, dv = Σ dŶ (Y − m) · (−½)(v+ε)^(−3/2), "
        "dm = −Σ dŶ/√(v+ε) + dv·(−2/B)Σ(Y − m), dY = dŶ/√(v+ε) + dv·2(Y − m)/B + dm/B.",
        "compact form: dY = (1/B)(v+ε)^(−½)(B dŶ − Σ dŶ − Ŷ Σ dŶ⊙Ŷ).",
        "finite differences (central, step 1e-6) of L = Σ dH ⊙ ReLU(γŶ + β): for dm the "
        "perturbed m also changes v; for dv only Ŷ is recomputed. Errors are relative to "
        "max(1, max|gradient|).",
        "discrepancy: the worst of finite differences / 1e-6 and kernel, compact / 1e-12."])


@lesson("p2-bn-jacobian", "P2", "BN + ReLU is differentiable for ε > 0: the analytic "
        "Jacobian ∂H/∂Y equals the numeric one")
def jacobian(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    rows, worst = [], 0.0
    for B, M in ((3, 2), (4, 3), (6, 2)):
        Y = rng.standard_normal((B, M))
        gamma, beta = rng.uniform(0.5, 2.0, M), 0.2 * rng.standard_normal(M)
        for name, fwd, bwd in (("batch norm", bn.batchnorm_forward, bn.batchnorm_backward),
                               ("BN + ReLU", bn.bn_relu_forward, bn.bn_relu_backward)):
            chk = jacobian_check(fwd, bwd, dict(Y=Y, gamma=gamma, beta=beta), "Y",
                                 kwargs=dict(eps=1e-5))
            worst = max(worst, chk.tol_used)
            rows.append({"layer": name, "B": B, "M": M, "Jacobian": f"{B * M}×{B * M}",
                         "max rel err": chk.max_rel_err, "tolerance used": chk.tol_used,
                         "allclose": chk.allclose})
    return Result(discrepancy=worst, tolerance=1.0, rows=rows, notes=[
        "analytic: row k of ∂out/∂Y is the backward of the one-hot upstream gradient e_k, "
        "so every vector-Jacobian product the layer can receive is checked.",
        "numeric: column j is the central difference of the whole output when Y_j moves "
        "(nnkit.jacobian_check, float64).",
        "discrepancy: the share of the allclose tolerance used (≤ 1 passes)."])
