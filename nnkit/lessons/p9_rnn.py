"""P9.1–P9.3: the RNN's two forms, the vanishing-gradient bound and why the
reversed condition does not make gradients explode.

Every Jacobian here comes from the kernels' BPTT (nk.rnn_backward), read out
with the identity trick: run B = M copies of one sample, set the upstream
gradient to I at step T and 0 elsewhere; then dh0 = ∂h_T/∂h_0 (M × M).
"""
from __future__ import annotations

import numpy as np

from .. import rnn
from . import Result, lesson

_GAMMA = {"tanh": 1.0, "sigmoid": 0.25}       # max |σ′|


def _act(name, a):
    return np.tanh(a) if name == "tanh" else 1.0 / (1.0 + np.exp(-a))


def _jacobian_norms(X, h0, Wx, Wh, b, act, T_max):
    """‖∂h_T/∂h_0‖₂ for T = 1..T_max (X (T_max, 1, N), h0 (1, M)), from the kernels."""
    M = Wh.shape[0]
    Xr, h0r = np.repeat(X, M, axis=1), np.repeat(h0, M, axis=0)
    out = []
    for T in range(1, T_max + 1):
        H, cache = rnn.rnn_forward(Xr[:T], h0r, Wx, Wh, b, act)
        dH = np.zeros_like(H)
        dH[-1] = np.eye(M)
        out.append(float(np.linalg.norm(rnn.rnn_backward(dH, cache, full=False).dh0, 2)))
    return np.array(out)


def _scaled(W, target):
    """W scaled so that its spectral norm √λ1(WᵀW) is `target`."""
    return W * (target / np.linalg.norm(W, 2))


@lesson("p9-1-preactivation-form", "P9", "h_t = W σ(h_{t−1}) + U x_t + b is "
        "g_t = σ(W g_{t−1} + U x_t + b) under g_t = σ(h_t) (same weights)")
def preactivation_form(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    T, B, N, M = 12, 4, 3, 6
    X = rng.standard_normal((T, B, N))
    h0 = rng.standard_normal((B, M))
    Wx, Wh = rng.standard_normal((M, N)) / np.sqrt(N), rng.standard_normal((M, M)) / np.sqrt(M)
    b = 0.3 * rng.standard_normal(M)
    rows, worst = [], 0.0
    for act in ("tanh", "sigmoid", "relu"):
        f = (lambda a: np.maximum(a, 0.0)) if act == "relu" else (lambda a, n=act: _act(n, a))
        Hp, _ = rnn.rnn_forward(X, h0, Wx, Wh, b, act, form="preactivation")
        Hs, _ = rnn.rnn_forward(X, f(h0), Wx, Wh, b, act)
        states = float(np.max(np.abs(f(Hp) - Hs)))
        # the induction step: h_t = W g_{t−1} + U x_t + b with g the standard states
        prev = np.concatenate([f(h0)[None], Hs[:-1]])
        step = float(np.max(np.abs(Hp - (prev @ Wh.T + X @ Wx.T + b))))
        worst = max(worst, states, step)
        rows.append({"σ": act, "max |σ(h_t) − g_t|": states,
                     "max |h_t − (W g_{t−1} + U x_t + b)|": step})
    return Result(discrepancy=worst, tolerance=1e-12, rows=rows, notes=[
        f"T = {T}, B = {B}, N = {N}, M = {M}; both forms computed by the kernels "
        "(rnn_forward(..., form='preactivation') and the standard form from g_0 = σ(h_0)).",
        "Induction: if g_{t−1} = σ(h_{t−1}) then h_t = W g_{t−1} + U x_t + b is the "
        "standard pre-activation, so g_t = σ(h_t) is the standard state."])


@lesson("p9-2-vanishing-bound", "P9", "|σ′| ≤ γ and λ1(WᵀW) < δ²/γ² (δ < 1) ⇒ "
        "‖∂h_T/∂h_0‖ ≤ δ^T → 0")
def vanishing_bound(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    act, N, M, T_max = "tanh", 3, 8, 40
    gamma = _GAMMA[act]
    # an orthogonal direction (every singular value equal, so the spectral
    # radius is the spectral norm) and small inputs (σ′ near γ): the bound is
    # nearly tight and the case above the threshold visibly grows
    W0, _ = np.linalg.qr(rng.standard_normal((M, M)))
    Wx = 0.1 * rng.standard_normal((M, N)) / np.sqrt(N)
    b = np.zeros(M)
    X = rng.standard_normal((T_max, 1, N))
    h0 = 0.01 * rng.standard_normal((1, M))
    rows, curves, worst = [], {}, 0.0
    T = np.arange(1, T_max + 1)
    for case, delta in (("below", 0.8), ("at", 1.0), ("above", 1.5)):
        W = _scaled(W0, delta / gamma)                 # γ √λ1(WᵀW) = δ
        norms = _jacobian_norms(X, h0, Wx, W, b, act, T_max)
        bound = delta ** T
        curves[f"‖∂h_T/∂h_0‖ ({case})"] = norms.tolist()
        curves[f"δ^T ({case})"] = bound.tolist()
        if case != "above":      # the theorem's hypothesis holds (δ ≤ 1 at the threshold)
            worst = max(worst, float(np.max(norms / bound - 1.0)))
        rows.append({"W": case, "δ = γ√λ1(WᵀW)": delta, "γ²λ1(WᵀW)": delta ** 2,
                     "‖∂h_1/∂h_0‖": norms[0], f"‖∂h_{T_max}/∂h_0‖": norms[-1],
                     f"δ^{T_max}": bound[-1],
                     "bound holds": "yes" if np.all(norms <= bound * (1 + 1e-12)) else "no"})
    return Result(discrepancy=max(worst, 0.0), tolerance=1e-12, rows=rows, curves=curves,
                  notes=[
        f"tanh (γ = 1), M = {M}, one random orthogonal W scaled to three spectral "
        "norms, small inputs; ∂h_T/∂h_0 = Π_t diag(σ′(a_t)) W from the kernels' BPTT "
        "for every T.",
        "Each step multiplies by a matrix of norm ≤ ‖diag σ′‖‖W‖ ≤ γ√λ1 = δ, so the "
        "product over T steps is ≤ δ^T (submultiplicativity). Below: δ < 1 and the "
        "gradient vanishes geometrically. At δ = 1 the bound is 1: no vanishing is "
        "guaranteed. Above: no bound, and here the norm grows until the states "
        "saturate (p9-3: it need not explode).",
        "discrepancy: max over T of ‖∂h_T/∂h_0‖/δ^T − 1 where the hypothesis holds "
        "(≤ 0 means the bound holds; reported as 0)."])


@lesson("p9-3-not-sufficient", "P9", "γ²λ1(WᵀW) ≥ 1 is necessary for exploding "
        "gradients, not sufficient: a counterexample found numerically")
def not_sufficient(seed: int) -> Result:
    """Search random (W, inputs) with γ√λ1(WᵀW) = 2 (the reversed condition with
    room to spare) for one whose ‖∂h_T/∂h_0‖ still decays by 1000× over T
    steps. Saturation does it: large pre-activations make σ′ ≈ 0, and the
    bound γ√λ1 is far from the actual per-step factor ‖diag σ′(a_t) W‖."""
    rng = np.random.default_rng(seed)
    act, N, M, T_max = "tanh", 3, 6, 30
    gamma = _GAMMA[act]
    for draw in range(1, 201):
        W = _scaled(rng.standard_normal((M, M)), 2.0 / gamma)
        Wx = rng.standard_normal((M, N)) * rng.uniform(0.5, 3.0)
        b = rng.standard_normal(M) * rng.uniform(0.0, 2.0)
        X = rng.standard_normal((T_max, 1, N))
        h0 = rng.standard_normal((1, M))
        norms = _jacobian_norms(X, h0, Wx, W, b, act, T_max)
        if norms[-1] < 1e-3 * norms[0]:
            break
    lam = float(np.linalg.eigvalsh(W.T @ W)[-1])
    found = norms[-1] < 1e-3 * norms[0] and gamma ** 2 * lam >= 1.0
    H, _ = rnn.rnn_forward(X, h0, Wx, W, b, act)
    sat = float(np.mean(1 - H[:, 0] ** 2))
    rows = [{"draw": draw, "γ²·λ1(WᵀW)": gamma ** 2 * lam, "‖∂h_1/∂h_0‖": norms[0],
             f"‖∂h_{T_max}/∂h_0‖": norms[-1], "mean σ′(a_t)": sat}]
    return Result(discrepancy=0.0 if found else 1.0, tolerance=0.0, rows=rows,
                  curves={"‖∂h_T/∂h_0‖": norms.tolist(),
                          "(γ√λ1)^T": ((gamma * np.sqrt(lam)) ** np.arange(1, T_max + 1)).tolist()},
                  notes=[
        f"Random W with γ√λ1(WᵀW) = 2, random input scale and bias, tanh, T = {T_max}: "
        f"draw {draw} is the first whose ‖∂h_T/∂h_0‖ falls 1000× instead of growing "
        "like (γ√λ1)^T = 2^T.",
        "Why: the bound uses max|σ′| = γ, but saturated units have σ′(a_t) ≈ 0 "
        f"(mean σ′ here {sat:.3g}), and W's large singular direction need not line up "
        "with the units that pass gradient. λ1(WᵀW) ≥ 1/γ² is necessary for explosion "
        "(else p9-2 bounds the norm by δ^T), not sufficient.",
        "discrepancy: 0 when such a counterexample was found (and the condition holds)."])
