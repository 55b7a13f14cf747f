"""What every walkthrough shares: the seed and dtype parameters, the loss
L = Σ G ⊙ H against a fixed upstream gradient, the affine head and the
scale-shift-ReLU tail of the graphs that have them, and the loss of the mlp
and conv graphs. One definition each."""
from __future__ import annotations

import numpy as np

from ..trace import Node, Param

SEED = Param("seed", 0, "random seed", minimum=0)
DTYPE = Param("dtype", "float64", "precision", choices=("float64", "float32"))
# "fused": run the kernel the layer runs with relu=True (BatchNorm(relu=True),
# WhiteningBatchNorm(relu=True)); False runs the unfused pair + relu_backward
FUSED = Param("fused", True, "analytic gradients from the fused norm+ReLU kernels "
              "(what the layer with relu=True runs); off: norm, then ReLU")


# "kink": place exactly one ReLU input at exactly 0 (how, each walkthrough's
# leaves say), so `nnkit gradcheck --strict` sees the side a kernel takes there
KINK = Param("kink", False, "put one ReLU input at exactly 0 (the kink) to check the "
             "gradient's side there")


def common_params() -> tuple[Param, ...]:
    """The parameters every walkthrough ends with: seed, then dtype."""
    return (SEED, DTYPE)


def dot_loss(G, H) -> np.float64:
    """L = Σ_ij G_ij H_ij in float64: ∂L/∂H = G."""
    return np.sum(np.asarray(G, np.float64) * H)


def affine_nodes(b_formula: str = "b ∈ ℝ^M (broadcast over rows)",
                 y_note: str = "") -> list[Node]:
    """X, W, b → Y = X Wᵀ + b: the affine layer that opens the bn-relu,
    whitening and dropout graphs (the same nodes and NumPy function in each;
    only the text shown for b and Y's note vary)."""
    return [
        Node("X", "X ∈ ℝ^{B×N}: one sample per row", role="input"),
        Node("W", "W ∈ ℝ^{M×N}", role="param"),
        Node("b", b_formula, role="param"),
        Node("Y", "Y = X Wᵀ + b", ("X", "W", "b"), lambda X, W, b: X @ W.T + b, note=y_note),
    ]


def scale_shift_relu_nodes() -> list[Node]:
    """γ, β → Z = γ ⊙ Ŷ + β → H = max(Z, 0) → L = Σ G ⊙ H: what follows the
    normalization Ŷ in the bn-relu and whitening graphs (the same nodes in both)."""
    return [
        Node("gamma", "γ ∈ ℝ^M (learnable scale)", role="param", label="γ"),
        Node("beta", "β ∈ ℝ^M (learnable shift)", role="param", label="β"),
        Node("Z", "Z = γ ⊙ Ŷ + β", ("gamma", "Yhat", "beta"),
             lambda g, Yh, bt: g * Yh + bt),
        Node("H", "H = max(Z, 0)", ("Z",), lambda Z: np.maximum(Z, 0)),
        Node("G", "G = ∂L/∂H: a fixed random upstream gradient", role="constant"),
        Node("L", "L = Σ_ij G_ij H_ij", ("G", "H"), dot_loss, role="loss"),
    ]


def cross_entropy(Z, y) -> np.float64:
    """L of the mlp and conv graphs: mean cross-entropy in float64, stable (subtract the row max); y is class
    indices (B,) or targets (B, K)."""
    Z = np.asarray(Z, np.float64)
    logp = Z - Z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    y = np.asarray(y)
    if y.ndim == 1:
        return -np.mean(logp[np.arange(len(y)), y])
    return -np.sum(np.asarray(y, np.float64) * logp) / Z.shape[0]


def zero_mean_integers(n: int) -> np.ndarray:
    """n ≥ 3 distinct small integers summing to 0, exactly one of them 0 (at
    index 0): a column whose mean is exactly 0 in any float type, so the row
    holding the 0 normalizes to exactly 0. [0, 1, −1, 2, −2, …], ending
    1, 2, −3 when n − 1 is odd."""
    if n < 3:
        raise ValueError(f"n: expected >= 3, got {n}")
    body = [1, 2, -3] if (n - 1) % 2 else []
    k = 4
    while len(body) < n - 1:
        body += [k, -k]
        k += 1
    return np.array([0] + body, dtype=np.float64)


def cast(values: dict, dtype) -> dict:
    """Every leaf in the walkthrough's dtype."""
    dt = np.dtype(dtype)
    return {k: np.asarray(a).astype(dt) for k, a in values.items()}
