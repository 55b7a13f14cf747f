"""P6: affine → ReLU → inverted dropout → L = Σ G ⊙ D.

Graph (rows are samples):
    X (B,N), W (M,N), b (M,)  →  Y = X Wᵀ + b  →  H = max(Y, 0)
    R (B,M) ~ Bernoulli(p), a constant (the mask)  →  D = H ⊙ R / p  →  L = Σ G ⊙ D
p is the keep probability (PyTorch's nn.Dropout(p_torch) has p = 1 − p_torch).
The mask is drawn from a seeded generator; the analytic gradients come from
nk.dropout_forward / nk.dropout_backward (which draw the same mask from the
same seed: checked), nk.relu_* and nk.affine_*. Dropped units pass no gradient
back: ∂L/∂H = G ⊙ R / p.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Trace, Walkthrough, register
from ._common import affine_nodes, cast, common_params, dot_loss

_MASK_SALT = 7919    # the mask's generator: seed + salt (not the leaves' generator)


def _mask_rng(cfg):
    return np.random.default_rng(cfg["seed"] + _MASK_SALT)


@register
class DropoutWalkthrough(Walkthrough):
    name = "dropout"
    title = "Affine → ReLU → inverted dropout"
    problem = "P6"
    description = ("Inverted dropout with keep probability p: D = H ⊙ R / p with the "
                   "mask R shown as a node; identity in expectation, no gradient "
                   "through dropped units.")
    params = (
        Param("B", 4, "batch size (rows)", minimum=1, maximum=4096),
        Param("N", 3, "input features", minimum=1, maximum=4096),
        Param("M", 6, "units", minimum=1, maximum=4096),
        Param("keep", 0.5, "keep probability p (PyTorch's 1 − p)", minimum=0.01, maximum=1.0),
        *common_params(),
    )

    def graph(self, cfg):
        p = cfg["keep"]
        return [
            *affine_nodes(b_formula="b ∈ ℝ^M"),
            Node("H", "H = max(Y, 0)", ("Y",), lambda Y: np.maximum(Y, 0)),
            Node("R", f"R_ij ~ Bernoulli(p = {p:g}): the mask (1 keeps, 0 drops)",
                 role="constant",
                 note="Drawn once per forward; a constant of the graph (not differentiated)."),
            Node("D", f"D = H ⊙ R / p,  p = {p:g}", ("H", "R"),
                 lambda H, R: H * R / p,
                 note="Inverted dropout: E_R[D] = H, so evaluation uses D = H unchanged."),
            Node("G", "G = ∂L/∂D: a fixed random upstream gradient", role="constant"),
            Node("L", "L = Σ_ij G_ij D_ij", ("G", "D"), dot_loss, role="loss"),
        ]

    def leaves(self, cfg, rng):
        B, N, M = cfg["B"], cfg["N"], cfg["M"]
        dt = np.dtype(cfg["dtype"])
        R = _mask_rng(cfg).random((B, M), dtype=dt) < cfg["keep"]
        vals = dict(X=rng.standard_normal((B, N)), W=rng.standard_normal((M, N)) / np.sqrt(N),
                    b=0.5 * rng.standard_normal(M), G=rng.standard_normal((B, M)))
        out = cast(vals, dt)
        out["R"] = R.astype(dt)
        return out

    def analytic(self, values, cfg):
        Y, aff = nk.affine_forward(values["X"], values["W"], values["b"])
        H, relu = nk.relu_forward(Y)
        _, cache = nk.dropout_forward(H, cfg["keep"], rng=_mask_rng(cfg))
        if not np.array_equal(cache.mask, values["R"] != 0):
            raise RuntimeError("dropout walkthrough: the kernel drew a different mask "
                               "from the same seed")
        dH = nk.dropout_backward(values["G"], cache)
        dY = nk.relu_backward(dH, relu)
        a = nk.affine_backward(dY, aff)
        return dict(L=np.float64(1.0), D=values["G"], H=dH, Y=dY, X=a.dX, W=a.dW, b=a.db)

    def insights(self, trace: Trace, key: str):
        if key in ("R", "D"):
            R = np.asarray(trace.value("R"))
            p = trace.cfg["keep"]
            return [f"P6  kept {int(R.sum())} of {R.size} units ({R.mean():.2f}; expected "
                    f"p = {p:g}); kept values are scaled by 1/p = {1 / p:.3g}.",
                    "P6  keep is PyTorch's 1 − p: nn.Dropout(0.2) keeps 80 % "
                    "(nk.Dropout(keep=0.8))."]
        if key == "H":
            return ["∂L/∂H = G ⊙ R / p: zero wherever the mask dropped the unit."]
        return []

    def check_configs(self):
        return [dict(B=1, N=1, M=1, keep=1.0), dict(B=4, N=3, M=6), dict(B=5, N=4, M=7, seed=1,
                keep=0.8), dict(B=8, N=6, M=16, seed=2, keep=0.3)]
