"""P8: weight normalization inside a linear layer.

Graph (rows are samples):
    u (M,N), γ (M,)  →  w = γ ⊙ u/‖u‖ (per row)
    X (B,N), b (M,)  →  Y = X wᵀ + b  →  L = Σ G ⊙ Y
∇_u L = (γ/‖u‖) W⊥ ∇_w L with W⊥ = I − wwᵀ/‖w‖²: every row of ∂L/∂u is
orthogonal to the row of u. The analytic gradients come from
nk.weightnorm_* and nk.affine_* (what Linear(weight_norm=True) runs).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Trace, Walkthrough, register
from ._common import cast, common_params, dot_loss


@register
class WeightNormWalkthrough(Walkthrough):
    name = "weightnorm"
    title = "Weight norm → affine"
    problem = "P8"
    description = ("w = γ u/‖u‖ per output row, then Y = X wᵀ + b; the gradient with "
                   "respect to u is orthogonal to u.")
    params = (
        Param("B", 4, "batch size (rows)", minimum=1, maximum=4096),
        Param("N", 3, "input features", minimum=1, maximum=4096),
        Param("M", 2, "output features", minimum=1, maximum=4096),
        *common_params(),
    )

    def graph(self, cfg):
        return [
            Node("u", "u ∈ ℝ^{M×N}: the direction of each row", role="param"),
            Node("gamma", "γ ∈ ℝ^M: the length of each row", role="param", label="γ"),
            Node("w", "w_i = γ_i u_i/‖u_i‖", ("u", "gamma"),
                 lambda u, g: g[:, None] * u / np.sqrt((u * u).sum(axis=1, keepdims=True)),
                 note="‖w_i‖ = |γ_i| whatever the scale of u_i."),
            Node("X", "X ∈ ℝ^{B×N}: one sample per row", role="input"),
            Node("b", "b ∈ ℝ^M", role="param"),
            Node("Y", "Y = X wᵀ + b", ("X", "w", "b"), lambda X, w, b: X @ w.T + b),
            Node("G", "G = ∂L/∂Y: a fixed random upstream gradient", role="constant"),
            Node("L", "L = Σ G ⊙ Y", ("G", "Y"), dot_loss, role="loss"),
        ]

    def leaves(self, cfg, rng):
        B, N, M = cfg["B"], cfg["N"], cfg["M"]
        vals = dict(u=rng.standard_normal((M, N)), gamma=0.5 + rng.random(M),
                    X=rng.standard_normal((B, N)), b=rng.standard_normal(M),
                    G=rng.standard_normal((B, M)))
        return cast(vals, cfg["dtype"])

    def analytic(self, values, cfg):
        w, wc = nk.weightnorm_forward(values["u"], values["gamma"])
        _, ac = nk.affine_forward(values["X"], w, values["b"])
        a = nk.affine_backward(values["G"], ac)
        g = nk.weightnorm_backward(a.dW, wc)
        return dict(L=np.float64(1.0), Y=values["G"], X=a.dX, w=a.dW, b=a.db,
                    u=g.du, gamma=g.dgamma)

    def insights(self, trace: Trace, key: str):
        if key == "u":
            u = np.asarray(trace.value("u"), np.float64)
            du = np.asarray(trace.grad("u"), np.float64)
            cos = np.abs((u * du).sum(1)) / np.maximum(
                np.linalg.norm(u, axis=1) * np.linalg.norm(du, axis=1), 1e-300)
            return ["P8  ∂L/∂u ⊥ u row by row: |cos| = "
                    + " ".join(f"{c:.1e}" for c in cos[:6]) + (" …" if cos.size > 6 else "")]
        return []

    def check_configs(self):
        return [dict(B=1, N=1, M=1), dict(), dict(B=5, N=4, M=3, seed=1),
                dict(B=8, N=16, M=5, seed=2)]
