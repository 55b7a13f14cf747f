"""Affine → an activation → a regression or binary loss.

Graph (rows are samples):
    X (B,N), W (M,N), b (M,)  →  Y = X Wᵀ + b  →  H = act(Y)
    T (B,M) a constant target  →  L = MSE(H, T) or BCE-with-logits(H, T)
act is tanh, sigmoid, leaky ReLU or GELU (exact or its tanh form); the node
functions are the textbook formulas in NumPy, the analytic gradients come
from nk.<act>_backward and nk.mse_loss_backward / nk.bcewithlogits_loss_backward,
the pairs the layers Tanh, Sigmoid, LeakyReLU, GELU, MSELoss and
BCEWithLogitsLoss run.
"""
from __future__ import annotations

import math

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Walkthrough, register
from ._common import affine_nodes, cast, common_params

ACTIVATIONS = ("tanh", "sigmoid", "leaky_relu", "gelu", "gelu_tanh")
LOSSES = ("mse", "bce")
SLOPE = 0.01            # LeakyReLU's negative slope (PyTorch's default)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _act(name):
    """The activation's textbook formula."""
    if name == "tanh":
        return np.tanh
    if name == "sigmoid":
        return lambda Y: 1.0 / (1.0 + np.exp(-Y))
    if name == "leaky_relu":
        return lambda Y: np.where(Y > 0, Y, SLOPE * Y)
    if name == "gelu":
        return lambda Y: Y * 0.5 * (1.0 + _erf(np.asarray(Y, np.float64) / math.sqrt(2.0)))
    c = math.sqrt(2.0 / math.pi)
    return lambda Y: 0.5 * Y * (1.0 + np.tanh(c * (Y + 0.044715 * Y ** 3)))


_FORMULA = {"tanh": "H = tanh(Y)", "sigmoid": "H = σ(Y) = 1/(1 + e^(−Y))",
            "leaky_relu": f"H = Y if Y > 0 else {SLOPE:g}·Y",
            "gelu": "H = Y Φ(Y),  Φ the standard normal CDF",
            "gelu_tanh": "H = ½ Y (1 + tanh(√(2/π)(Y + 0.044715 Y³)))"}


def _mse(H, T):
    return np.mean((np.asarray(H, np.float64) - T) ** 2)


def _bce(H, T):
    x = np.asarray(H, np.float64)
    return np.mean(np.maximum(x, 0) - x * T + np.log1p(np.exp(-np.abs(x))))


@register
class ActivationsWalkthrough(Walkthrough):
    name = "activations"
    title = "Affine → activation → MSE or BCE-with-logits"
    problem = "P1, P4"
    description = ("An affine layer, one of tanh, sigmoid, leaky ReLU and GELU, then a "
                   "mean-squared-error or binary cross-entropy (with logits) loss.")
    params = (
        Param("B", 4, "batch size (rows)", minimum=1, maximum=4096),
        Param("N", 3, "input features", minimum=1, maximum=4096),
        Param("M", 5, "units", minimum=1, maximum=4096),
        Param("activation", "tanh", "the activation", choices=ACTIVATIONS),
        Param("loss", "mse", "mse (regression) or bce (binary, with logits)", choices=LOSSES),
        *common_params(),
    )

    def graph(self, cfg):
        act, loss = cfg["activation"], cfg["loss"]
        lf = ("L = (1/(BM)) Σ (H − T)²" if loss == "mse" else
              "L = (1/(BM)) Σ [max(H, 0) − H T + log(1 + e^(−|H|))]")
        return [
            *affine_nodes(b_formula="b ∈ ℝ^M"),
            Node("H", _FORMULA[act], ("Y",), _act(act)),
            Node("T", "T: the target (constant)" + (", in [0, 1]" if loss == "bce" else ""),
                 role="constant"),
            Node("L", lf, ("H", "T"), _mse if loss == "mse" else _bce, role="loss"),
        ]

    def leaves(self, cfg, rng):
        B, N, M = cfg["B"], cfg["N"], cfg["M"]
        T = rng.random((B, M)) if cfg["loss"] == "bce" else rng.standard_normal((B, M))
        vals = dict(X=rng.standard_normal((B, N)), W=rng.standard_normal((M, N)) / np.sqrt(N),
                    b=0.5 * rng.standard_normal(M), T=T)
        return cast(vals, cfg["dtype"])

    def _pair(self, cfg):
        act = cfg["activation"]
        if act == "leaky_relu":
            return (lambda Y: nk.leaky_relu_forward(Y, SLOPE)), nk.leaky_relu_backward
        if act.startswith("gelu"):
            approx = "tanh" if act == "gelu_tanh" else "none"
            return (lambda Y: nk.gelu_forward(Y, approx)), nk.gelu_backward
        return getattr(nk, f"{act}_forward"), getattr(nk, f"{act}_backward")

    def forward(self, leaves, cfg):
        Y, _ = nk.affine_forward(leaves["X"], leaves["W"], leaves["b"])
        H, _ = self._pair(cfg)[0](Y)
        return dict(Y=Y, H=H)

    def analytic(self, values, cfg):
        Y, aff = nk.affine_forward(values["X"], values["W"], values["b"])
        fwd, bwd = self._pair(cfg)
        H, act = fwd(Y)
        if cfg["loss"] == "mse":
            _, lc = nk.mse_loss(H, values["T"])
            dH = nk.mse_loss_backward(1.0, lc)
        else:
            _, lc = nk.bcewithlogits_loss(H, values["T"])
            dH = nk.bcewithlogits_loss_backward(1.0, lc)
        dY = bwd(dH, act)
        a = nk.affine_backward(dY, aff)
        return dict(L=np.float64(1.0), H=dH, Y=dY, X=a.dX, W=a.dW, b=a.db)

    def check_configs(self):
        out = []
        for i, act in enumerate(ACTIVATIONS):
            for loss in LOSSES:
                out.append(dict(activation=act, loss=loss, seed=i))
        out.append(dict(B=1, N=1, M=1, activation="gelu", loss="bce"))
        out.append(dict(B=7, N=4, M=6, activation="leaky_relu", loss="mse", seed=5))
        return out
