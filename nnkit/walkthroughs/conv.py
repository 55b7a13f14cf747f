"""P3 + P10 end to end: conv → ReLU → pool → affine → softmax cross-entropy.

Graph (NCHW, PyTorch's layout):
    X (B,C,H,W), K (F,C,k,k), b (F,)  →  Y = K ⋆ X + b   (stride s, padding p,
                                                          dilation d)
    A = max(Y, 0)  →  P = pool of A over pool_k×pool_k windows (stride
                      pool_stride, padding pool_padding): max (the largest
                      value), avg (the mean) or lp (the 2-norm of each window)
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

from ..gradcheck import maxpool_tie_check, relu_side_check
from ..trace import Node, Param, Walkthrough, register
from ._common import KINK, cast, common_params, cross_entropy


def _conv(X, K, b, s, p, d):
    """Y[n,f,i,j] = b[f] + Σ_c,u,v K[f,c,u,v] X_padded[n,c,s·i+d·u,s·j+d·v]."""
    k = K.shape[2]
    span = d * (k - 1) + 1           # the dilated kernel's extent
    Xp = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(Xp, (span, span), axis=(2, 3))
    win = win[:, :, ::s, ::s, ::d, ::d]          # (B, C, H', W', k, k)
    return np.einsum("ncijuv,fcuv->nfij", win, K) + b[None, :, None, None]


def _windows(A, k, s, pad, fill):
    """(B, F, H'', W'', k, k): every pooling window of A padded with `fill`."""
    Ap = np.pad(A, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    return np.lib.stride_tricks.sliding_window_view(Ap, (k, k), axis=(2, 3))[:, :, ::s, ::s]


# The pools as plain NumPy (the kernels' independent reference): max pads
# with −∞ (padding never wins), avg with zeros that count (PyTorch's
# count_include_pad=True), lp has no padding
POOLS = {
    "max": (lambda A, k, s, q: _windows(A, k, s, q, -np.inf).max(axis=(4, 5)),
            "largest value"),
    "avg": (lambda A, k, s, q: _windows(A, k, s, q, 0.0).mean(axis=(4, 5)), "mean"),
    "lp": (lambda A, k, s, q: np.sqrt((_windows(A, k, s, q, 0.0) ** 2).sum(axis=(4, 5))),
           "2-norm"),
}


def _pool_pair(cfg):
    """(forward(A), backward) of the nnkit kernels for the configured pool."""
    kind, k, s, q = cfg["pool"], cfg["pool_k"], cfg["pool_stride"], cfg["pool_padding"]
    if kind == "lp":
        return (lambda A: nk.lppool2d_forward(A, 2, k, s)), nk.lppool2d_backward
    forward = getattr(nk, f"{kind}pool2d_forward")
    return (lambda A: forward(A, k, s, q)), getattr(nk, f"{kind}pool2d_backward")


def _pool_text(cfg):
    """'2×2' for the default pool, '3×3 stride 1 padding 1' otherwise."""
    k, s, q = cfg["pool_k"], cfg["pool_stride"], cfg["pool_padding"]
    return f"{k}×{k}" + (f" stride {s}" if s != k else "") + (f" padding {q}" if q else "")


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
        Param("H", 6, "input height", minimum=2, maximum=64),
        Param("W", 6, "input width", minimum=2, maximum=64),
        Param("F", 3, "conv filters (output channels)", minimum=1, maximum=32),
        Param("k", 3, "kernel size k×k", minimum=1, maximum=7),
        Param("padding", 1, "zero padding on every side", minimum=0, maximum=3),
        Param("stride", 1, "conv stride", minimum=1, maximum=3),
        Param("dilation", 1, "conv dilation", minimum=1, maximum=3),
        Param("classes", 4, "classes", minimum=2, maximum=32),
        Param("pool", "max", "pooling", choices=tuple(POOLS)),
        Param("pool_k", 2, "pooling window k×k", minimum=1, maximum=4),
        Param("pool_stride", 2, "pooling stride", minimum=1, maximum=4),
        Param("pool_padding", 0, "pooling padding (max, avg; ≤ pool_k/2)", minimum=0,
              maximum=2),
        KINK,
        *common_params(),
    )
    # the two leading axes of a 4-D node where they are not (sample, channel):
    # the TUI's heatmap legend of K and ∂L/∂K (F, C, k, k) names them
    axes = {"K": ("filter", "input channel")}

    def validate(self, cfg):
        if cfg["kink"] and (cfg["k"] % 2 == 0 or cfg["stride"] != 1
                            or 2 * cfg["padding"] != cfg["dilation"] * (cfg["k"] - 1)):
            raise ValueError(f"kink: expected an odd k, stride 1 and 'same' padding "
                             f"dilation·(k − 1)/2 (filter 0 copies channel 0), got k "
                             f"{cfg['k']}, stride {cfg['stride']}, padding {cfg['padding']}")
        k, q = cfg["pool_k"], cfg["pool_padding"]
        if 2 * q > k:
            raise ValueError(f"pool_padding: expected ≤ pool_k/2 = {k / 2:g}, got {q}")
        if q and cfg["pool"] == "lp":
            raise ValueError(f"pool_padding: lp pooling has no padding, got {q}")
        conv, pooled = self._shape(cfg), self._pooled(cfg)
        for ax, out, po in zip(("H", "W"), conv, pooled):
            if out < 1 or po < 1:
                raise ValueError(
                    f"{ax}: {ax} = {cfg[ax]} leaves a conv output of {out} and a pooled "
                    f"output of {po} (padding {cfg['padding']}, k {cfg['k']}, stride "
                    f"{cfg['stride']}, dilation {cfg['dilation']}; pool {_pool_text(cfg)}); "
                    f"expected both ≥ 1")

    def _shape(self, cfg):
        """(H', W'): the conv's output, (in + 2p − d(k−1) − 1) // s + 1."""
        span = cfg["dilation"] * (cfg["k"] - 1) + 1
        return tuple((cfg[ax] + 2 * cfg["padding"] - span) // cfg["stride"] + 1
                     for ax in ("H", "W"))

    def _pooled(self, cfg):
        """(H'', W''): the pool's output, (H' + 2q − k) // s + 1."""
        k, s, q = cfg["pool_k"], cfg["pool_stride"], cfg["pool_padding"]
        return tuple((n + 2 * q - k) // s + 1 if n >= 1 else 0 for n in self._shape(cfg))

    def graph(self, cfg):
        p, k, s, d = cfg["padding"], cfg["k"], cfg["stride"], cfg["dilation"]
        Ho, Wo = self._shape(cfg)
        Hp, Wp = self._pooled(cfg)
        pk, ps, pq = cfg["pool_k"], cfg["pool_stride"], cfg["pool_padding"]
        shape = nk.conv2d_output_shape((cfg["B"], cfg["C"], cfg["H"], cfg["W"]), cfg["F"], k,
                                       s, p, d, layout="NCHW")
        pool_fn = POOLS[cfg["pool"]][0]
        return [
            Node("X", "X ∈ ℝ^{B×C×H×W}: one image per sample", role="input"),
            Node("K", f"K ∈ ℝ^{{F×C×{k}×{k}}}: the filters", role="param"),
            Node("b", "b ∈ ℝ^F: one bias per filter", role="param"),
            Node("Y", f"Y = K ⋆ X + b  (stride {s}, padding {p}"
                 + (f", dilation {d})" if d != 1 else ")"), ("X", "K", "b"),
                 lambda X, K, b: _conv(X, K, b, s, p, d),
                 note="P3: " + "; ".join(shape.lines)),
            Node("A", "A = max(Y, 0)", ("Y",), lambda Y: np.maximum(Y, 0)),
            Node("P", self._pool_formula(cfg), ("A",),
                 lambda A: pool_fn(A, pk, ps, pq),
                 note=f"P10: ({Ho}, {Wo}) → ({Hp}, {Wp}); " + {
                     "max": "∂L/∂A goes to each window's arg-max only (ties: the first).",
                     "avg": f"∂L/∂A is ∂L/∂P/{pk * pk} at every element of its window.",
                     "lp": "∂L/∂A = ∂L/∂P · A/P per window (0 where P = 0)."}[cfg["pool"]]),
            Node("V", "V ∈ ℝ^{classes×F·H'·W'}", role="param"),
            Node("c", "c ∈ ℝ^classes", role="param"),
            Node("Z", "Z = flatten(P) Vᵀ + c  (logits)", ("P", "V", "c"),
                 lambda P, V, c: P.reshape(P.shape[0], -1) @ V.T + c),
            Node("y", "y: class indices (constant)", role="constant"),
            Node("L", "L = −(1/B) Σ_i log softmax(Z_i)[y_i]", ("Z", "y"), cross_entropy,
                 role="loss"),
        ]

    @staticmethod
    def _pool_formula(cfg):
        if (cfg["pool_k"], cfg["pool_stride"], cfg["pool_padding"]) == (2, 2, 0):
            # the default's text, as the app's 80×24 snapshot shows it
            return f"P = {cfg['pool']}pool₂ₓ₂(A): each 2×2 window's {POOLS[cfg['pool']][1]}"
        return (f"P = {cfg['pool']}pool(A), {_pool_text(cfg)}: each window's "
                f"{POOLS[cfg['pool']][1]}")

    def leaves(self, cfg, rng):
        B, C, H, W, F, k, K = (cfg[n] for n in ("B", "C", "H", "W", "F", "k", "classes"))
        Hp, Wp = self._pooled(cfg)
        D = F * Hp * Wp
        vals = dict(X=rng.standard_normal((B, C, H, W)),
                    K=rng.standard_normal((F, C, k, k)) / np.sqrt(C * k * k),
                    b=0.1 * rng.standard_normal(F),
                    V=rng.standard_normal((K, D)) / np.sqrt(D),
                    c=0.1 * rng.standard_normal(K))
        if cfg["kink"]:
            # filter 0 is the centre tap of channel 0 and b₀ = 0, so Y[:, 0] =
            # X[:, 0] exactly; X[0, 0, 0, 0] = 0 is the one Y at the ReLU's
            # kink, and the ReLU's zeros make max-pool windows tie at 0
            vals["K"][0] = 0.0
            vals["K"][0, 0, k // 2, k // 2] = 1.0
            vals["b"][0] = 0.0
            vals["X"][0, 0, 0, 0] = 0.0
        out = cast(vals, cfg["dtype"])
        out["y"] = rng.integers(0, K, B)
        return out

    def analytic(self, values, cfg):
        Y, cc = nk.conv2d_forward(values["X"], values["K"], values["b"], cfg["stride"],
                                  cfg["padding"], cfg["dilation"])
        A, cr = nk.relu_forward(Y)
        pool_forward, pool_backward = _pool_pair(cfg)
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
                dict(pool="lp"), dict(B=3, C=2, H=8, W=6, F=4, pool="lp", seed=5),
                dict(B=3, C=2, H=8, W=8, F=3, kink=True, seed=12)]

    def kernel_configs(self):
        """Kernel settings beyond the derivation's stride-1 conv and 2×2 pool
        (which `nnkit check` holds a student's formulas to): `nnkit gradcheck`
        runs these too. Stride 2 and dilation 2, each alone and together (odd
        sizes: the last window of a row does not reach the border), and 3×3
        stride-1 pools, padded where the pool has padding: overlapping windows
        (one A entry's gradient sums over up to 9 windows) and padded borders."""
        overlap = dict(B=3, C=2, H=7, W=7, F=3, pool_k=3, pool_stride=1)
        return [dict(B=3, C=2, H=9, W=8, F=3, k=3, padding=1, stride=2, seed=6),
                dict(B=2, C=2, H=9, W=7, F=3, k=3, padding=2, dilation=2, seed=7),
                dict(B=3, C=2, H=11, W=9, F=2, k=3, padding=1, stride=2, dilation=2,
                     seed=8),
                dict(overlap, kink=True, pool_padding=1, seed=9),
                dict(overlap, pool="avg", pool_padding=1, seed=10),
                dict(overlap, pool="lp", seed=11)]

    def threaded_configs(self):
        """The conv kernels split the batch over the threads from B = 2 (an odd
        B leaves them unequal shares); the pool and ReLU kernels start their
        team from B·F·H'·W' ≥ 65,536 (3·16·40·40): one run per pool. With
        B = 1 the conv takes its im2col route (see below)."""
        big = dict(B=3, C=2, H=40, W=40, F=16, k=3, padding=1, kink=True, seed=13)
        # B = 1 with two threads: no batch to split, so the conv runs its other
        # route, im2col then a threaded BLAS product; stride and dilation there
        single = dict(B=1, C=2, H=9, W=8, F=3, k=3, padding=1)
        return [dict(big), dict(big, pool="avg", kink=False),
                dict(big, pool="lp", kink=False),
                dict(single, stride=2, seed=14), dict(single, padding=2, dilation=2, seed=15)]

    def kink_checks(self, trace):
        """∂L/∂Y is 0 wherever Y ≤ 0; a max-pool's ∂L/∂A goes to each
        window's first maximum (ties in the ReLU's zeros)."""
        cfg = trace.cfg
        out = [relu_side_check("Y", trace.value("Y"), trace.grad("Y"))]
        if cfg["pool"] == "max":
            out.append(maxpool_tie_check("A", trace.value("A"), trace.grad("P"),
                                         trace.grad("A"), cfg["pool_k"],
                                         cfg["pool_stride"], cfg["pool_padding"],
                                         trace.dtype))
        return out
