"""P7: initialization. Var(XY) for independent X, Y; activation variance through
a deep ReLU network under LeCun/Xavier, He and a too-small initialization."""
from __future__ import annotations

import numpy as np

from . import Result, lesson

try:   # another family's module; the formulas are written inline below when absent
    from .. import init as _init
except ImportError:   # pragma: no cover - depends on the checkout
    _init = None


@lesson("p7-var-product", "P7", "Var(XY) = Var X·Var Y + Var X·(EY)² + Var Y·(EX)² "
        "for independent X, Y (Monte Carlo)")
def var_product(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    N = 1_000_000
    cases = (
        ("N(1, 2²) · N(−3, 0.5²)", lambda: rng.normal(1.0, 2.0, N), 1.0, 4.0,
         lambda: rng.normal(-3.0, 0.5, N), -3.0, 0.25),
        ("U(0, 1) · Exp(2)", lambda: rng.random(N), 0.5, 1 / 12,
         lambda: rng.exponential(2.0, N), 2.0, 4.0),
        ("N(0, 1) · N(0, 1)", lambda: rng.standard_normal(N), 0.0, 1.0,
         lambda: rng.standard_normal(N), 0.0, 1.0),
    )
    rows, worst = [], 0.0
    for name, draw_x, ex, vx, draw_y, ey, vy in cases:
        Z = draw_x() * draw_y()
        formula = vx * vy + vx * ey ** 2 + vy * ex ** 2
        est = float(Z.var())
        # standard error of a sample variance: √((m4 − σ⁴)/N), m4 the 4th central moment
        c = Z - Z.mean()
        se = float(np.sqrt((np.mean(c ** 4) - est ** 2) / N))
        z = abs(est - formula) / se
        worst = max(worst, z)
        rows.append({"X · Y": name, "Monte Carlo Var(XY)": est, "formula": formula,
                     "|error|": abs(est - formula), "standard error": se,
                     "|error|/SE": z})
    return Result(discrepancy=worst, tolerance=4.0, rows=rows, notes=[
        f"N = {N:,} samples per row. discrepancy: the worst error in units of the "
        "standard error of a sample variance; ≤ 4 passes."])


def _weights(kind, d_out, d_in, rng):
    """W (d_out, d_in) ~ N(0, σ²) with the init's σ² (P7's formulas)."""
    if _init is not None and kind in ("lecun", "he"):
        fn = getattr(_init, {"lecun": "lecun_normal", "he": "he_normal"}[kind], None)
        if fn is not None:
            return fn((d_out, d_in), rng=rng)
    var = {"lecun": 1.0 / d_in, "he": 2.0 / d_in, "small": 0.01 ** 2}[kind]
    return rng.normal(0.0, np.sqrt(var), (d_out, d_in))


@lesson("p7-relu-depth", "P7", "Through 30 ReLU layers: He (σ² = 2/d) keeps Var(a) constant, "
        "LeCun (1/d) halves it per layer, a too-small init kills it")
def relu_depth(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    d, B, depth = 256, 512, 30
    x = rng.standard_normal((B, d))
    rows, curves, worst = [], {}, 0.0
    predicted_factor = {"lecun": 0.5, "he": 1.0, "small": d * 0.01 ** 2 / 2}
    for kind, label in (("lecun", "LeCun/Xavier σ² = 1/d"), ("he", "He σ² = 2/d"),
                        ("small", "too small σ = 0.01")):
        h, var_a, one_step = x, [], []
        for t in range(depth):
            W = _weights(kind, d, h.shape[1], rng)
            a = h @ W.T                      # b = c·1 with c = 0
            # one step of P7 for this W: Var(a) ≈ (Σ W²/d_t) E[h²]
            pred = float(np.sum(W * W) / d * np.mean(h * h))
            var_a.append(float(a.var()))
            one_step.append(abs(var_a[-1] / pred - 1.0))
            h = np.maximum(a, 0.0)
        factor = float((var_a[-1] / var_a[0]) ** (1 / (depth - 1)))
        worst = max(worst, abs(factor / predicted_factor[kind] - 1.0))
        curves[label] = [float(np.log10(s)) for s in var_a]
        rows.append({"init": label, "Var(a_1)": var_a[0], "Var(a_10)": var_a[9],
                     "Var(a_30)": var_a[-1], "factor per layer": factor,
                     "predicted d σ²/2": predicted_factor[kind],
                     "max one-step deviation": max(one_step)})
    return Result(discrepancy=worst, tolerance=0.1, rows=rows,
                  curves={f"log10 Var(a_t), {k}": v for k, v in curves.items()}, notes=[
        f"width d = {d}, batch {B}, depth {depth}, x ~ N(0, I), biases 0 (c = 0, μ = 0).",
        "Each layer: E_W[Var(a_t)] = d σ² E[h_{t−1}²], and for symmetric zero-mean a, "
        "E[h²] = ½ Var(a) after ReLU: the factor per layer is d σ²/2 "
        "(He: 1, LeCun: ½, σ = 0.01: 0.0128).",
        "discrepancy: the worst relative gap between the measured factor per layer "
        "(Var(a_30)/Var(a_1))^(1/29) and d σ²/2; ≤ 0.1 passes (seeds 0-7 measured "
        "0.011-0.075: the sampling noise of a finite network). One draw of W moves "
        "a single layer's variance by ~√(2/d) ≈ 9 % (last column); the geometric mean "
        "over 29 layers averages that out."])
