"""P3 + P10 end to end: conv → ReLU → pool → affine → softmax cross-entropy.

Graph (NCHW, PyTorch's layout):
    X (B,C,H,W), K (F,C,k,k), b (F,)  →  Y = K ⋆ X + b   (stride 1, padding p)
    A = max(Y, 0)  →  P = 2×2 pool of A: max (the largest value), avg (the
                      mean) or lp (the 2-norm of each window), by `pool`
    V (classes, F·H'·W'), c  →  Z = flatten(P) Vᵀ + c
    y (labels, constant)     →  L = −(1/B) Σ_i log softmax(Z_i)[y_i]
The node functions are plain NumPy (a sliding-window einsum for the conv, a
reshape-max for the pool), independent of the kernels; the analytic gradients
come from the kernels the layers run (Conv2d, ReLU, MaxPool2d, Flatten,
Linear, SoftmaxCrossEntropy). ∂L/∂A is non-zero only at each window's
arg-max: max-pooling routes the gradient (P10); average pooling spreads it
evenly; Lp pooling weighs it by |a|^(p−1)/P^(p−1).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Walkthrough, register
from ._common import cast, common_params, cross_entropy


def _conv(X, K, b, p):
    """Y[n,f,i,j] = b[f] + Σ_c,u,v K[f,c,u,v] X_padded[n,c,i+u,j+v]."""
    k = K.shape[2]
    Xp = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(Xp, (k, k), axis=(2, 3))
    return np.einsum("ncijuv,fcuv->nfij", win, K) + b[None, :, None, None]


def _windows(A):
    B, F, H, W = A.shape
    return A.reshape(B, F, H // 2, 2, W // 2, 2)


# 2×2 pools as plain NumPy (the kernels' independent reference), and the
# kernel pair each one checks
POOLS = {
    "max": (lambda A: _windows(A).max(axis=(3, 5)), "each 2×2 window's largest value"),
    "avg": (lambda A: _windows(A).mean(axis=(3, 5)), "each 2×2 window's mean"),
    "lp": (lambda A: np.sqrt((_windows(A) ** 2).sum(axis=(3, 5))), "each 2×2 window's 2-norm"),
}


def _pool_pair(kind):
    """(forward(A) over 2×2 windows, backward) of the nnkit kernels."""
    if kind == "lp":
        return (lambda A: nk.lppool2d_forward(A, 2, 2)), nk.lppool2d_backward
    forward = getattr(nk, f"{kind}pool2d_forward")
    return (lambda A: forward(A, 2)), getattr(nk, f"{kind}pool2d_backward")


@register
class ConvNet(Walkthrough):
    name = "conv"
    title = "Conv → ReLU → pool → affine → softmax cross-entropy"
    problem = "P3, P10"
    description = ("A small convolutional net: the conv's output shape (P3), max-pooling's "
                   "gradient routed to the arg-max (P10), softmax cross-entropy (P4).")
    params = (
        Param("B", 2, "batch size", minimum=1, maximum=64),
        Param("C", 2, "input channels", minimum=1, maximum=16),
        Param("H", 6, "input height (even after the conv)", minimum=2, maximum=64),
        Param("W", 6, "input width (even after the conv)", minimum=2, maximum=64),
        Param("F", 3, "conv filters (output channels)", minimum=1, maximum=32),
        Param("k", 3, "kernel size k×k", minimum=1, maximum=7),
        Param("padding", 1, "zero padding on every side", minimum=0, maximum=3),
        Param("classes", 4, "classes", minimum=2, maximum=32),
        Param("pool", "max", "2×2 pooling", choices=tuple(POOLS)),
        *common_params(),
    )
    # the two leading axes of a 4-D node where they are not (sample, channel):
    # the TUI's heatmap legend of K and ∂L/∂K (F, C, k, k) names them
    axes = {"K": ("filter", "input channel")}

    def validate(self, cfg):
        for ax in ("H", "W"):
            out = cfg[ax] + 2 * cfg["padding"] - cfg["k"] + 1
            if out < 2 or out % 2:
                raise ValueError(f"{ax}: the conv output {ax}' = {cfg[ax]} + 2·{cfg['padding']} "
                                 f"− {cfg['k']} + 1 = {out} must be even and ≥ 2 for the "
                                 f"2×2 max-pool")

    def _shape(self, cfg):
        Ho = cfg["H"] + 2 * cfg["padding"] - cfg["k"] + 1
        Wo = cfg["W"] + 2 * cfg["padding"] - cfg["k"] + 1
        return Ho, Wo

    def graph(self, cfg):
        p, k = cfg["padding"], cfg["k"]
        Ho, Wo = self._shape(cfg)
        shape = nk.conv2d_output_shape((cfg["B"], cfg["C"], cfg["H"], cfg["W"]), cfg["F"], k,
                                       1, p, layout="NCHW")
        return [
            Node("X", "X ∈ ℝ^{B×C×H×W}: one image per sample", role="input"),
            Node("K", f"K ∈ ℝ^{{F×C×{k}×{k}}}: the filters", role="param"),
            Node("b", "b ∈ ℝ^F: one bias per filter", role="param"),
            Node("Y", f"Y = K ⋆ X + b  (stride 1, padding {p})", ("X", "K", "b"),
                 lambda X, K, b: _conv(X, K, b, p),
                 note="P3: " + "; ".join(shape.lines)),
            Node("A", "A = max(Y, 0)", ("Y",), lambda Y: np.maximum(Y, 0)),
            Node("P", f"P = {cfg['pool']}pool₂ₓ₂(A): {POOLS[cfg['pool']][1]}", ("A",),
                 POOLS[cfg["pool"]][0],
                 note=f"P10: ({Ho}, {Wo}) → ({Ho // 2}, {Wo // 2}); " + {
                     "max": "∂L/∂A goes to each window's arg-max only.",
                     "avg": "∂L/∂A is ∂L/∂P/4 at every element of its window.",
                     "lp": "∂L/∂A = ∂L/∂P · A/P per window (0 where P = 0)."}[cfg["pool"]]),
            Node("V", "V ∈ ℝ^{classes×F·H'·W'}", role="param"),
            Node("c", "c ∈ ℝ^classes", role="param"),
            Node("Z", "Z = flatten(P) Vᵀ + c  (logits)", ("P", "V", "c"),
                 lambda P, V, c: P.reshape(P.shape[0], -1) @ V.T + c),
            Node("y", "y: class indices (constant)", role="constant"),
            Node("L", "L = −(1/B) Σ_i log softmax(Z_i)[y_i]", ("Z", "y"), cross_entropy,
                 role="loss"),
        ]

    def leaves(self, cfg, rng):
        B, C, H, W, F, k, K = (cfg[n] for n in ("B", "C", "H", "W", "F", "k", "classes"))
        Ho, Wo = self._shape(cfg)
        D = F * (Ho // 2) * (Wo // 2)
        vals = dict(X=rng.standard_normal((B, C, H, W)),
                    K=rng.standard_normal((F, C, k, k)) / np.sqrt(C * k * k),
                    b=0.1 * rng.standard_normal(F),
                    V=rng.standard_normal((K, D)) / np.sqrt(D),
                    c=0.1 * rng.standard_normal(K))
        out = cast(vals, cfg["dtype"])
        out["y"] = rng.integers(0, K, B)
        return out

    def analytic(self, values, cfg):
        Y, cc = nk.conv2d_forward(values["X"], values["K"], values["b"], 1, cfg["padding"])
        A, cr = nk.relu_forward(Y)
        pool_forward, pool_backward = _pool_pair(cfg["pool"])
        P, cp = pool_forward(A)
        Z, ca = nk.affine_forward(P.reshape(P.shape[0], -1), values["V"], values["c"])
        _, cl = nk.softmax_cross_entropy(Z, values["y"])
        dZ = nk.softmax_cross_entropy_backward(1.0, cl)
        ga = nk.affine_backward(dZ, ca)
        dP = ga.dX.reshape(P.shape)
        dA = pool_backward(dP, cp)
        dY = nk.relu_backward(dA, cr)
        g = nk.conv2d_backward(dY, cc)
        return dict(L=np.float64(1.0), Z=dZ, c=ga.db, V=ga.dW, P=dP, A=dA, Y=dY, b=g.db,
                    K=g.dW, X=g.dX)

    def check_configs(self):
        return [dict(), dict(B=1, C=1, H=2, W=2, F=1, k=1, padding=0, classes=2),
                dict(B=3, C=3, H=8, W=6, F=4, k=3, padding=1, seed=1),
                dict(B=2, C=1, H=7, W=9, F=2, k=2, padding=0, classes=3, seed=2),
                dict(B=4, C=2, H=6, W=6, F=3, k=5, padding=2, classes=5, seed=3),
                dict(pool="avg"), dict(B=3, C=2, H=8, W=6, F=4, pool="avg", seed=4),
                dict(pool="lp"), dict(B=3, C=2, H=8, W=6, F=4, pool="lp", seed=5)]
