"""P2 end to end: affine → batch norm → ReLU → L = Σ G ⊙ H.

Graph (rows are samples):
    X (B,N), W (M,N), b (M,)  →  Y = X Wᵀ + b
    m = mean_i Y,  v = mean_i (Y − m)²,  Ŷ = (Y − m)/√(v + ε)
    γ, β  →  Z = γ ⊙ Ŷ + β  →  H = max(Z, 0)  →  L = Σ G ⊙ H
G is a fixed random upstream gradient, so ∂L/∂H = G. With
constant_feature=True row 0 of W is zero, so feature 0 of Y is the constant
b₀ (a dead unit): v₀ = 0, which is P2.1's case for ε.

The node functions are plain NumPy (the formulas, and what finite
differences re-evaluate); the values shown are the kernels' own (`forward`),
so the ε = 0 demo shows the NaN a user's code gets at every batch size. The
analytic gradients come from the kernels a layer runs: nk.bn_relu_forward/backward (BatchNorm(relu=True)) by
default, or with fused=False nk.batchnorm_forward/backward and
nk.relu_forward/backward (BatchNorm followed by a ReLU layer). `nnkit
gradcheck` runs both. Here b feeds a normalization, so ∂L/∂b is exactly 0:
the mlp walkthrough is the one where b reaches the loss.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..gradcheck import relu_side_check, relu_sum_check
from ..trace import Node, Param, Term, Trace, Walkthrough, register
from ._common import (FUSED, KINK, affine_nodes, cast, common_params, scale_shift_relu_nodes,
                      zero_mean_integers)


def _mean(Y):
    return Y.mean(axis=0)


def _var(Y, m):
    return ((Y - m) ** 2).mean(axis=0)


@register
class BatchNormReLU(Walkthrough):
    name = "bn-relu"
    title = "Affine → batch norm → ReLU"
    problem = "P2"
    description = ("Batch normalization of the pre-activations, then ReLU; every "
                   "gradient of P2.3 with m and v as graph nodes.")
    params = (
        Param("B", 4, "batch size (rows)", minimum=2, maximum=4096),
        Param("N", 3, "input features", minimum=1, maximum=4096),
        Param("M", 5, "output features", minimum=1, maximum=4096),
        Param("eps", 1e-5, "ε added to the variance", minimum=0.0),
        Param("constant_feature", False, "make feature 0 constant (W row 0 = 0)"),
        FUSED,
        KINK,
        *common_params(),
    )

    # P2.3's sums of named terms, for `nnkit check`'s "missing the term ..."
    terms = {
        "dY": (Term("∂L/∂Ŷ/√(v+ε)", lambda dYhat, v, eps: dYhat / np.sqrt(v + eps)),
               Term("∂L/∂v·2(Y−m)/B", lambda dv, Y, m, B: dv * 2 * (Y - m) / B),
               Term("∂L/∂m/B", lambda dm, B: dm / B)),
        "dm": (Term("−Σ_i ∂L/∂Ŷ/√(v+ε)",
                    lambda dYhat, v, eps: -(dYhat / np.sqrt(v + eps)).sum(axis=0)),
               Term("∂L/∂v·(−2/B)Σ_i (Y−m)",
                    lambda dv, Y, m, B: dv * (-2.0 / B) * (Y - m).sum(axis=0))),
    }

    def graph(self, cfg):
        eps = cfg["eps"]
        return [
            *affine_nodes(y_note="P1: the bias is broadcast over the B rows, never copied."),
            Node("m", "m_j = (1/B) Σ_i Y_ij", ("Y",), _mean, label="m",
                 note="m feeds both v and Ŷ: dm is a total derivative."),
            Node("v", "v_j = (1/B) Σ_i (Y_ij − m_j)²", ("Y", "m"), _var,
                 note="Biased variance (divide by B)."),
            Node("Yhat", f"Ŷ = (Y − m) / √(v + ε),  ε = {eps:g}", ("Y", "m", "v"),
                 lambda Y, m, v: (Y - m) / np.sqrt(v + eps), label="Ŷ",
                 note="Each column has mean 0 and variance v/(v+ε)."),
            *scale_shift_relu_nodes(),
        ]

    def leaves(self, cfg, rng):
        B, N, M = cfg["B"], cfg["N"], cfg["M"]
        W = rng.standard_normal((M, N)) / np.sqrt(N)
        if cfg["constant_feature"]:
            W[0] = 0.0
        vals = dict(
            X=rng.standard_normal((B, N)), W=W, b=rng.standard_normal(M),
            gamma=1.0 + 0.5 * rng.standard_normal(M), beta=0.5 * rng.standard_normal(M),
            G=rng.standard_normal((B, M)))
        if cfg["kink"]:
            # Y[:, 0] = X[:, 0] (W row 0 = e₀, b₀ = 0): integers with mean
            # exactly 0 and one 0, so Ŷ[0, 0] = 0 and, with β₀ = 0, Z[0, 0] = 0
            # exactly (the only such entry) in every float type
            vals["W"][0] = 0.0
            vals["W"][0, 0] = 1.0
            vals["b"][0] = 0.0
            vals["beta"][0] = 0.0
            vals["X"][:, 0] = zero_mean_integers(B)
        return cast(vals, cfg["dtype"])

    def validate(self, cfg):
        if cfg["kink"] and cfg["B"] < 3:
            raise ValueError(f"B: kink=True needs B >= 3 (a row at the mean), got {cfg['B']}")
        if cfg["kink"] and cfg["constant_feature"]:
            raise ValueError("kink: expected constant_feature=False (both set feature 0)")

    def forward(self, leaves, cfg):
        Y, _ = nk.affine_forward(leaves["X"], leaves["W"], leaves["b"])
        gamma, beta, eps = leaves["gamma"], leaves["beta"], cfg["eps"]
        if cfg["fused"]:
            H, cache = nk.bn_relu_forward(Y, gamma, beta, eps)
            out = dict(H=H)              # Z is not a kernel output here: its formula
        else:
            Z, cache = nk.batchnorm_forward(Y, gamma, beta, eps)
            out = dict(Z=Z, H=nk.relu_forward(Z)[0])
        return dict(Y=Y, m=cache.mean, v=cache.var, Yhat=cache.yhat, **out)

    def analytic(self, values, cfg):
        X, W, b = values["X"], values["W"], values["b"]
        G, gamma, beta, eps = values["G"], values["gamma"], values["beta"], cfg["eps"]
        Y, aff_cache = nk.affine_forward(X, W, b)
        if cfg["fused"]:
            _, cache = nk.bn_relu_forward(Y, gamma, beta, eps)
            g = nk.bn_relu_backward(G, cache)
            dZ = g.dZ
        else:
            Z, bn_cache = nk.batchnorm_forward(Y, gamma, beta, eps)
            _, relu_cache = nk.relu_forward(Z)
            dZ = nk.relu_backward(G, relu_cache)
            g = nk.batchnorm_backward(dZ, bn_cache)
        a = nk.affine_backward(g.dY, aff_cache)
        return dict(L=np.float64(1.0), H=G, Z=dZ, gamma=g.dgamma, beta=g.dbeta,
                    Yhat=g.dYhat, v=g.dvar, m=g.dmean, Y=g.dY, X=a.dX, W=a.dW, b=a.db)

    def insights(self, trace: Trace, key: str):
        eps = trace.cfg["eps"]
        if key == "Yhat":
            Yh = np.asarray(trace.value("Yhat"), np.float64)
            v = np.asarray(trace.value("v"), np.float64)
            with np.errstate(all="ignore"):
                pred = v / (v + eps)
            lines = [
                "P2.2  mean of Ŷ per feature (predicted 0): "
                + _fmt(Yh.mean(axis=0)),
                "P2.2  var of Ŷ per feature: " + _fmt(Yh.var(axis=0))
                + "  predicted v/(v+ε): " + _fmt(pred),
            ]
            if not np.all(np.isfinite(Yh)):
                lines.append("P2.1  ε = 0 and a constant feature: v = 0, so Ŷ = 0/0 = NaN. "
                             "ε > 0 keeps 1/√(v+ε) ≤ 1/√ε.")
            return lines
        if key == "v" and np.any(np.asarray(trace.value("v")) == 0):
            j = int(np.argmin(trace.value("v")))
            return [f"P2.1  feature {j} is constant: v = 0, so 1/√(v+ε) = {_inv(eps)} "
                    + ("(ε = 0 divides by zero)" if eps == 0 else f"(bounded by ε = {eps:g})")]
        return []

    def check_configs(self):
        fused = [
            dict(B=2, N=1, M=1), dict(B=2, N=3, M=4), dict(B=4, N=3, M=5),
            dict(B=7, N=5, M=3, seed=1), dict(B=6, N=4, M=5, constant_feature=True),
            dict(B=16, N=8, M=12, seed=2, eps=1e-3),
        ]
        # the unfused pair (BatchNorm(relu=False) then ReLU) on a few shapes
        unfused = [dict(B=4, N=3, M=5, fused=False),
                   dict(B=6, N=4, M=5, constant_feature=True, fused=False),
                   dict(B=7, N=5, M=3, seed=1, fused=False)]
        # the kink in a vector lane (M = 4) and in the kernels' scalar tail
        # (M = 1: the only feature is the tail)
        kinks = [dict(B=5, N=3, M=4, kink=True, seed=3),
                 dict(B=6, N=3, M=4, kink=True, seed=3, fused=False),
                 dict(B=5, N=2, M=1, kink=True, seed=4)]
        return fused + unfused + kinks

    def threaded_configs(self):
        """B·M ≥ 65,536 starts the batch-norm kernels' row team; an odd batch
        leaves the two threads unequal blocks of rows."""
        return [dict(B=257, N=4, M=256, kink=True, seed=7),
                dict(B=257, N=4, M=256, kink=True, seed=7, fused=False)]

    def kink_checks(self, trace):
        """∂L/∂Z is 0 wherever Z ≤ 0 (the ReLU's documented side), and ∂L/∂β,
        ∂L/∂γ sum G over Z > 0 only (the fused kernel recomputes the mask in
        its sums, apart from the ∂L/∂Z it returns)."""
        Z, G, dt = trace.value("Z"), trace.value("G"), trace.dtype
        return [relu_side_check("Z", Z, trace.grad("Z")),
                relu_sum_check("β", Z, G, trace.grad("beta"), dt),
                relu_sum_check("γ", Z, G, trace.grad("gamma"), dt, weights=trace.value("Yhat"))]


def _fmt(a, k=6):
    a = np.asarray(a).ravel()
    s = " ".join(f"{x:+.3g}" for x in a[:k])
    return "[" + s + (" …]" if a.size > k else "]")


def _inv(eps):
    return "∞" if eps == 0 else f"{1 / np.sqrt(eps):.4g}"
