"""P9 beyond the vanilla RNN: the LSTM's cell state carries the gradient.

Under the spectral scaling that makes the vanilla RNN's ‖∂L/∂h_t‖ vanish
(p9-2: δ = γ‖W‖₂ < 1), the LSTM's ∂L/∂c_t does not: BPTT gives

    dc_{t−1} = f_t ⊙ dc_t + dh_{t−1} ⊙ o_{t−1} ⊙ (1 − tanh² c_{t−1})

and the first term, the forget-gate path, multiplies by f_t, not by a Jacobian
of norm ≤ δ. With f ≈ 1 (a large forget-gate bias, as practitioners set it)
the carry from step T to step t is the product of forget gates Π_{s>t} f_s.

The numbers are the kernels' own BPTT: rnn_backward's grad_norms and
lstm_backward's cell_norms and dc (the per-step gradients). The gates the
checks multiply by are recomputed here in NumPy from X, the weights and the
kernel's h_{t−1}, so a kernel that carries the wrong gate fails the check.
"""
from __future__ import annotations

import numpy as np

from .. import gated, rnn
from . import Result, lesson

DELTA = 0.8            # γ‖W‖₂ of the vanilla RNN (tanh: γ = 1), and ‖W_hh‖₂ of the LSTM
FORGET_BIAS = 5.0      # b_f: f = σ(5 + ...) ≈ 0.993
T, N, H = 40, 3, 8


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _gates(X, Hs, h0, W_ih, W_hh, b):
    """i, f, g, o (T, B, H) each, from the formulas: a_t = x_t W_ihᵀ + h_{t−1} W_hhᵀ + b
    with h_{t−1} the kernel's states (h_0 before the first step)."""
    prev = np.concatenate([h0[None], Hs[:-1]])
    A = X @ W_ih.T + prev @ W_hh.T + b
    a_i, a_f, a_g, a_o = np.split(A, 4, axis=2)
    return _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)


def _cells(i, f, g):
    """c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t from c_0 = 0, (T, B, H)."""
    C = np.empty_like(f)
    c = np.zeros_like(f[0])
    for t in range(f.shape[0]):
        c = f[t] * c + i[t] * g[t]
        C[t] = c
    return C


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


@lesson("p9-lstm-carry", "P9", "at the spectral norm where the RNN's ‖∂L/∂h_t‖ "
        "vanishes, the LSTM's ‖∂L/∂c_t‖ does not: dc_{t−1} = f_t ⊙ dc_t + …, "
        "carried by Π f_s")
def lstm_carry(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    B = 1
    X = rng.standard_normal((T, B, N))
    g_T = rng.standard_normal((B, H))       # the loss sees only the last step: L = ⟨g_T, h_T⟩
    dH = np.zeros((T, B, H))
    dH[-1] = g_T

    # the vanilla RNN of p9-2: orthogonal W scaled to δ, small inputs (σ′ ≈ γ = 1)
    W0, _ = np.linalg.qr(rng.standard_normal((H, H)))
    Wx = 0.1 * rng.standard_normal((H, N)) / np.sqrt(N)
    h0 = 0.01 * rng.standard_normal((B, H))
    _, rcache = rnn.rnn_forward(X, h0, Wx, DELTA * W0, np.zeros(H), "tanh")
    rnorms = rnn.rnn_backward(dH, rcache, full=False).grad_norms       # ‖∂L/∂h_t‖, (T,)

    # the LSTM at the same spectral norm: ‖W_hh‖₂ = δ for the stacked (4H, H) matrix
    W_ih = 0.5 * rng.standard_normal((4 * H, N)) / np.sqrt(N)
    W_hh = rng.standard_normal((4 * H, H))
    W_hh *= DELTA / np.linalg.norm(W_hh, 2)
    b = np.zeros(4 * H)
    b[H:2 * H] = FORGET_BIAS
    zeros = np.zeros((B, H))

    rows, curves, errs = [], {}, []
    rratio = float(rnorms[0] / rnorms[-1])
    rows.append({"chain": "RNN h_t", "‖W‖₂": DELTA, "‖∂L/∂s_1‖": rnorms[0],
                 f"‖∂L/∂s_{T}‖": rnorms[-1], "ratio 1/T": rratio,
                 "predicted": DELTA ** (T - 1), "check err": float("nan")})
    curves[f"RNN ‖∂L/∂h_t‖ (δ = {DELTA})"] = rnorms.tolist()

    for label, W in (("LSTM c_t", W_hh), ("LSTM c_t, W_hh = 0", 0.0 * W_hh)):
        Hs, cache = gated.lstm_forward(X, zeros, zeros, W_ih, W, b, None)
        grads = gated.lstm_backward(dH, cache, full=True)
        dc, dh, cnorms = grads.dc, grads.dh, grads.cell_norms
        i, f, g, o = _gates(X, Hs, zeros, W_ih, W, b)
        C = _cells(i, f, g)
        # the per-step norms are the norms of the per-step gradients
        errs.append(_rel(cnorms, np.linalg.norm(dc.reshape(T, -1), axis=1)))
        # the forget-gate path alone: Π_{s>t} f_s ⊙ dc_T (P[t] = Π_{s>t} f_s)
        P = np.ones_like(f)
        for t in range(T - 2, -1, -1):
            P[t] = P[t + 1] * f[t + 1]
        carry = P * dc[-1]
        if label.endswith("= 0"):
            # no h-path: dc_T from the formulas and dc_t = Π_{s>t} f_s ⊙ dc_T exactly
            dc_T = g_T * o[-1] * (1.0 - np.tanh(C[-1]) ** 2)
            err = max(_rel(dc[-1], dc_T), _rel(dc, P * dc_T))
        else:
            # one BPTT step: dc_t − f_{t+1} ⊙ dc_{t+1} = dh_t ⊙ o_t ⊙ (1 − tanh² c_t)
            lhs = dc[:-1] - f[1:] * dc[1:]
            rhs = (dh * o * (1.0 - np.tanh(C) ** 2))[:-1]
            err = _rel(lhs, rhs)
        errs.append(err)
        ratio = float(cnorms[0] / cnorms[-1])
        predicted = float(np.linalg.norm(carry[0]) / np.linalg.norm(dc[-1]))
        rows.append({"chain": label, "‖W‖₂": float(np.linalg.norm(W, 2)),
                     "‖∂L/∂s_1‖": cnorms[0], f"‖∂L/∂s_{T}‖": cnorms[-1], "ratio 1/T": ratio,
                     "predicted": predicted, "check err": err})
        if label == "LSTM c_t":
            lratio, fmin = ratio, float(np.min(f))
            curves[f"LSTM ‖∂L/∂c_t‖ (‖W_hh‖₂ = {DELTA})"] = cnorms.tolist()
            curves["LSTM ‖∂L/∂h_t‖"] = grads.grad_norms.tolist()

    # the claim: the RNN's gradient obeys p9-2's bound and has vanished; the
    # LSTM's cell gradient at t = 1 keeps at least a tenth of its size at T
    rnn_vanishes = rratio <= DELTA ** (T - 1) * (1 + 1e-12) and rratio < 1e-3
    lstm_carries = lratio >= 0.1
    claim = 0.0 if (rnn_vanishes and lstm_carries) else 1.0
    return Result(discrepancy=max(claim, *errs), tolerance=1e-12, rows=rows, curves=curves,
                  notes=[
        f"T = {T}, B = {B}, N = {N}, H = {H}; the loss sees only h_T (dH = 0 before T), "
        f"so every ∂L/∂s_t with t < T is carried back by BPTT. RNN: tanh, orthogonal W "
        f"scaled to δ = {DELTA}. LSTM: W_hh (4H × H) scaled to ‖W_hh‖₂ = {DELTA}, "
        f"forget-gate bias {FORGET_BIAS:g} (smallest f_t here {fmin:.4f}).",
        f"RNN: ‖∂L/∂h_1‖/‖∂L/∂h_{T}‖ ≤ δ^{T - 1} (p9-2's bound): the gradient vanishes. "
        f"LSTM: dc_{{t−1}} = f_t ⊙ dc_t + dh_{{t−1}} ⊙ o_{{t−1}} ⊙ (1 − tanh² c_{{t−1}}); "
        "the first term multiplies by f_t ≈ 1, not by a matrix of norm ≤ δ, so "
        "‖∂L/∂c_1‖ stays of the order of ‖∂L/∂c_T‖.",
        "predicted: for the RNN δ^(T−1); for the LSTM ‖Π_{s>1} f_s ⊙ dc_T‖/‖dc_T‖, the "
        "forget-gate path alone (exact when W_hh = 0; with W_hh the h-path adds to it).",
        "check err (max relative): W_hh = 0: dc_t against Π_{s>t} f_s ⊙ dc_T with dc_T = "
        "g_T ⊙ o_T ⊙ (1 − tanh² c_T), gates recomputed in NumPy; W_hh scaled: the one-step "
        "carry identity above with the kernel's dh_t. Both also compare cell_norms with ‖dc_t‖.",
        "discrepancy: the worst check err, or 1 if the RNN's ratio is not below "
        "min(δ^(T−1), 1e-3) or the LSTM's is below 0.1."])
