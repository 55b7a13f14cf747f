"""P5: optimizers as running averages, computed with nnkit.optim itself.

Momentum and the running average are one update under ε = δ(1−β); the
running average unrolls to a geometric sum, biased toward 0 early by the
factor 1 − β^t, which bias correction removes; Adam with β1 = 0, β2 → 1 and
η = η0/√t becomes AdaGrad with η = η0.
"""
from __future__ import annotations

import math

import numpy as np

from .. import optim
from . import Result, lesson


def _quadratic(rng, n=40, d=12):
    """f(θ) = ½‖Aθ − b‖²/n: its gradient Aᵀ(Aθ − b)/n, a start θ0."""
    A = rng.standard_normal((n, d))
    b = rng.standard_normal(n)
    return A, b, rng.standard_normal(d)


def _run(make, A, b, theta0, steps, schedule=None):
    """θ_1 … θ_steps of an optimizer on the quadratic (a (param, grad) pair)."""
    p, g = theta0.copy(), np.zeros_like(theta0)
    opt = make([(p, g)])
    sched = schedule(opt) if schedule else None
    path = []
    for _ in range(steps):
        g[...] = A.T @ (A @ p - b) / A.shape[0]
        opt.step()
        if sched:
            sched.step()
        path.append(p.copy())
    return np.array(path)


@lesson("p5-momentum-running-average", "P5", "Momentum(ε, α) and RunningAverage(δ, β) take "
        "identical steps when α = β and ε = δ(1−β)")
def momentum_is_running_average(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    A, b, theta0 = _quadratic(rng)
    steps, rows, worst = 60, [], 0.0
    for beta, delta in ((0.5, 0.4), (0.9, 0.5), (0.99, 2.0)):
        eps = delta * (1 - beta)
        m = _run(lambda P: optim.Momentum(P, lr=eps, momentum=beta), A, b, theta0, steps)
        r = _run(lambda P: optim.RunningAverage(P, lr=delta, beta=beta), A, b, theta0, steps)
        wrong = _run(lambda P: optim.Momentum(P, lr=delta, momentum=beta), A, b, theta0, steps)
        gap = float(np.max(np.abs(m - r)) / np.max(np.abs(r)))
        worst = max(worst, gap)
        rows.append({"β = α": beta, "δ": delta, "ε = δ(1−β)": eps,
                     "max |θ_M − θ_RA| / max |θ|": gap,
                     "same with ε = δ (no 1−β)": float(np.max(np.abs(wrong - r))
                                                      / np.max(np.abs(r)))})
    return Result(discrepancy=worst, tolerance=1e-12, rows=rows, notes=[
        f"{steps} steps on f(θ) = ½‖Aθ − b‖²/n from the same θ0. v_M = ε·Σ α^(t−i) g_i and "
        "δ·v_RA = δ(1−β)·Σ β^(t−i) g_i: the same sum. The last column uses ε = δ: the "
        "trajectories then differ (the check can fail). Tolerance 1e-12: float64 rounding "
        "of two orderings of the same arithmetic."])


@lesson("p5-unrolled", "P5", "v_t = (1−β) Σ_{i≤t} β^(t−i) g_i (the running average unrolled)")
def unrolled(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    T, d, rows, worst = 40, 7, [], 0.0
    for beta in (0.5, 0.9, 0.999):
        p, g = np.zeros(d), np.zeros(d)
        opt = optim.RunningAverage([(p, g)], lr=0.0, beta=beta)   # lr 0: θ stays, v runs
        G = rng.standard_normal((T, d))
        err = 0.0
        for t in range(1, T + 1):
            g[...] = G[t - 1]
            opt.step()
            w = (1 - beta) * beta ** (t - np.arange(1, t + 1))     # (1−β) β^(t−i), i = 1..t
            closed = w @ G[:t]
            err = max(err, float(np.max(np.abs(opt.state["0"]["v"] - closed))
                                 / np.max(np.abs(closed))))
        worst = max(worst, err)
        rows.append({"β": beta, "t": T, "max rel |v_t − unrolled|": err,
                     "Σ weights = 1 − β^t": float(1 - beta ** T)})
    return Result(discrepancy=worst, tolerance=1e-13, rows=rows, notes=[
        "v_t from the optimizer's state (RunningAverage with lr = 0, so only v moves) "
        "against the closed form at every t ≤ 40, 7 coordinates. The weights sum to "
        "1 − β^t, not 1: the source of the bias below."])


@lesson("p5-bias-correction", "P5", "E[v_t] = (1−β^t)·E[g] (Monte Carlo); v_t/(1−β^t) is "
        "unbiased")
def bias_correction(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    S, T, beta, mu, sigma = 200_000, 30, 0.9, 1.5, 2.0
    # one coordinate per independent sequence g_1..g_T ~ N(μ, σ²)
    p, g = np.zeros(S), np.zeros(S)
    opt = optim.RunningAverage([(p, g)], lr=0.0, beta=beta)
    rows, worst, mc, corrected = [], 0.0, [], []
    for t in range(1, T + 1):
        g[...] = rng.normal(mu, sigma, S)
        opt.step()
        vt = opt.state["0"]["v"]
        mean, se = float(vt.mean()), float(vt.std() / math.sqrt(S))
        expected = (1 - beta ** t) * mu
        z = abs(mean - expected) / se
        zc = abs(mean / (1 - beta ** t) - mu) / (se / (1 - beta ** t))
        worst = max(worst, z, zc)
        mc.append(mean)
        corrected.append(mean / (1 - beta ** t))
        if t in (1, 2, 3, 5, 10, 20, 30):
            rows.append({"t": t, "E_MC[v_t]": mean, "(1−β^t)·E[g]": expected,
                         "|error|/SE": z, "E_MC[v_t]/(1−β^t)": mean / (1 - beta ** t),
                         "E[g]": mu})
    return Result(discrepancy=worst, tolerance=5.0, rows=rows,
                  curves={"E_MC[v_t]": mc, "E_MC[v_t]/(1−β^t)": corrected}, notes=[
                      f"S = {S:,} sequences of g ~ N({mu}, {sigma}²), β = {beta}. "
                      "discrepancy: the worst error over t ≤ 30 (raw and corrected) in "
                      "standard errors of the Monte Carlo mean; ≤ 5 passes. Without the "
                      "correction v_1 = (1−β)·g_1 is 10× too small here."])


@lesson("p5-adam-adagrad", "P5", "Adam with β1 = 0, β2 → 1, η = η0/√t approaches AdaGrad "
        "with η = η0 (the gap shrinks like 1 − β2)")
def adam_to_adagrad(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    A, b, theta0 = _quadratic(rng)
    steps, eta0 = 200, 0.1
    # eps = 0 in both: Adam's ε sits beside √v̂ and AdaGrad's beside √Σg², which
    # differ by √t; with ε > 0 the limit holds only up to that ε-term
    ada = _run(lambda P: optim.AdaGrad(P, lr=eta0, eps=0.0), A, b, theta0, steps)
    scale = float(np.max(np.abs(ada)))
    rows, gaps, ks = [], [], (1, 2, 3, 4, 5, 6, 7)
    gap_path = {}
    for k in ks:
        beta2 = 1 - 10.0 ** -k
        adam = _run(lambda P: optim.Adam(P, lr=eta0, betas=(0.0, beta2), eps=0.0), A, b,
                    theta0, steps, schedule=optim.InverseSqrt)
        per_step = np.max(np.abs(adam - ada), axis=1) / scale
        gap = float(per_step.max())
        gaps.append(gap)
        if k in (2, 4, 6):    # every 10th step; an exact 0 (step 1) shown as 1e-17
            gap_path[f"log10 gap at steps 10, 20, …, β2 = 1 − 1e-{k}"] = [
                float(np.log10(max(x, 1e-17))) for x in per_step[9::10]]
        rows.append({"β2": beta2, "1 − β2": 10.0 ** -k, "max_t |θ_Adam − θ_AdaGrad| / max|θ|": gap,
                     "gap / (1 − β2)": gap / 10.0 ** -k})
    shrinking = all(g2 < g1 for g1, g2 in zip(gaps, gaps[1:]))
    # the limit: at 1 − β2 = 1e-7 the gap must be small, and it must shrink monotonically
    discrepancy = gaps[-1] if shrinking else math.inf
    return Result(discrepancy=discrepancy, tolerance=1e-5, rows=rows,
                  curves={"log10 gap vs k (β2 = 1 − 10^−k)": [float(np.log10(g)) for g in gaps],
                          **gap_path},
                  notes=[
                      f"{steps} steps on f(θ) = ½‖Aθ − b‖²/n, η0 = {eta0}, eps = 0 in both. "
                      "With β1 = 0, m̂_t = g_t; v̂_t = (1−β2)Σβ2^(t−i)g_i²/(1−β2^t) → Σg_i²/t "
                      "as β2 → 1, so (η0/√t)·g_t/√v̂_t → η0·g_t/√Σg_i² (AdaGrad).",
                      "The weights differ from 1/t by O((1−β2)·t): gap/(1−β2) levels off, "
                      "the gap is linear in 1 − β2. discrepancy: the gap at 1 − β2 = 1e-7 "
                      "(∞ if the gaps do not shrink monotonically); ≤ 1e-5 passes (the linear law "
                      "predicts ~2.5e-7)."])
