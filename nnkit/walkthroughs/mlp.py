"""P1 + P4 end to end: Linear → ReLU → Linear → softmax cross-entropy.

Graph (rows are samples):
    X (B,N), W1 (H,N), b1 (H,)  →  Y1 = X W1ᵀ + b1  →  A = max(Y1, 0)
    W2 (K,H), b2 (K,)           →  Z = A W2ᵀ + b2   (logits)
    y (labels, constant)        →  L = −(1/B) Σ_i log softmax(Z_i)[y_i]
Unlike the normalization walkthroughs, both biases reach the loss directly:
∂L/∂b2 = Σ_rows ∂L/∂Z and ∂L/∂b1 = Σ_rows ∂L/∂Y1 are not 0, so a bias
gradient computed as a mean instead of a sum (P1: db = Σ_rows dY) fails here.
∂L/∂Z = (ŷ − y)/B (P4). The node functions are plain NumPy; the analytic
gradients come from the kernels the layers run (Linear, ReLU,
SoftmaxCrossEntropy): nk.affine_*, nk.relu_*, nk.softmax_cross_entropy(_backward),
with class indices or soft targets (the two loss kernels).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..gradcheck import relu_side_check
from ..trace import Node, Param, Walkthrough, register
from ._common import KINK, cast, common_params, cross_entropy



@register
class MLPSoftmax(Walkthrough):
    name = "mlp"
    title = "Linear → ReLU → Linear → softmax cross-entropy"
    problem = "P1, P4"
    description = ("A two-layer perceptron with a broadcast bias in each layer (P1) and "
                   "the softmax cross-entropy loss (P4): ∂L/∂Z = (ŷ − y)/B, "
                   "db = Σ_rows dY.")
    params = (
        Param("B", 4, "batch size (rows)", minimum=1, maximum=4096),
        Param("N", 3, "input features", minimum=1, maximum=4096),
        Param("H", 5, "hidden units", minimum=1, maximum=4096),
        Param("K", 3, "classes", minimum=2, maximum=1024),
        Param("targets", "indices", "labels as class indices (B,) or soft targets (B, K)",
              choices=("indices", "soft")),
        KINK,
        *common_params(),
    )

    def graph(self, cfg):
        return [
            Node("X", "X ∈ ℝ^{B×N}: one sample per row", role="input"),
            Node("W1", "W1 ∈ ℝ^{H×N}", role="param", label="W₁"),
            Node("b1", "b1 ∈ ℝ^H (broadcast over rows)", role="param", label="b₁"),
            Node("Y1", "Y1 = X W1ᵀ + b1", ("X", "W1", "b1"), lambda X, W, b: X @ W.T + b,
                 label="Y₁", note="P1: db1 = Σ_rows dY1 (a sum over the batch, not a mean)."),
            Node("A", "A = max(Y1, 0)", ("Y1",), lambda Y: np.maximum(Y, 0)),
            Node("W2", "W2 ∈ ℝ^{K×H}", role="param", label="W₂"),
            Node("b2", "b2 ∈ ℝ^K (broadcast over rows)", role="param", label="b₂"),
            Node("Z", "Z = A W2ᵀ + b2  (logits)", ("A", "W2", "b2"),
                 lambda A, W, b: A @ W.T + b,
                 note="P4: ∂L/∂Z = (softmax(Z) − y)/B."),
            Node("y", "y: class indices or soft targets (constant)", role="constant"),
            Node("L", "L = −(1/B) Σ_i Σ_k y_ik log softmax(Z_i)_k", ("Z", "y"),
                 cross_entropy, role="loss"),
        ]

    def leaves(self, cfg, rng):
        B, N, H, K = cfg["B"], cfg["N"], cfg["H"], cfg["K"]
        vals = dict(X=rng.standard_normal((B, N)),
                    W1=rng.standard_normal((H, N)) * np.sqrt(2.0 / N),
                    b1=0.5 * rng.standard_normal(H),
                    W2=rng.standard_normal((K, H)) / np.sqrt(H),
                    b2=0.5 * rng.standard_normal(K))
        if cfg["kink"]:
            # Y1[0, 0] = X[0, 0]·1 + 0 = 0 exactly, the only such entry (one
            # element at the kink, so every perturbation crosses one kink)
            vals["W1"][0] = 0.0
            vals["W1"][0, 0] = 1.0
            vals["b1"][0] = 0.0
            vals["X"][0, 0] = 0.0
        if cfg["targets"] == "soft":
            E = np.exp(rng.standard_normal((B, K)))
            vals["y"] = E / E.sum(axis=1, keepdims=True)
            return cast(vals, cfg["dtype"])
        labels = rng.integers(0, K, B)
        out = cast(vals, cfg["dtype"])
        out["y"] = labels                       # class indices stay integers
        return out

    def analytic(self, values, cfg):
        Y1, c1 = nk.affine_forward(values["X"], values["W1"], values["b1"])
        A, cr = nk.relu_forward(Y1)
        Z, c2 = nk.affine_forward(A, values["W2"], values["b2"])
        _, cl = nk.softmax_cross_entropy(Z, values["y"])
        dZ = nk.softmax_cross_entropy_backward(1.0, cl)
        g2 = nk.affine_backward(dZ, c2)
        dY1 = nk.relu_backward(g2.dX, cr)
        g1 = nk.affine_backward(dY1, c1)
        return dict(L=np.float64(1.0), Z=dZ, b2=g2.db, W2=g2.dW, A=g2.dX, Y1=dY1,
                    b1=g1.db, W1=g1.dW, X=g1.dX)

    def check_configs(self):
        return [dict(), dict(B=1, N=1, H=1, K=2), dict(B=7, N=5, H=6, K=4, seed=1),
                dict(B=16, N=8, H=12, K=10, seed=2), dict(targets="soft", seed=3),
                dict(B=9, N=4, H=8, K=5, targets="soft", seed=4),
                dict(B=5, N=3, H=4, K=3, kink=True, seed=5)]

    def threaded_configs(self):
        """Y1 (B·H ≥ 65,536 elements) starts the ReLU kernels' thread team;
        an odd batch leaves the threads unequal blocks."""
        return [dict(B=257, N=4, H=256, K=3, kink=True, seed=6)]

    def kink_checks(self, trace):
        """∂L/∂Y1 is 0 wherever Y1 ≤ 0 (the ReLU's documented side)."""
        return [relu_side_check("Y₁", trace.value("Y1"), trace.grad("Y1"))]
