"""P4: softmax cross-entropy, mean over the batch, numerically stable."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import dense as _k


class SoftmaxCache(NamedTuple):
    P: np.ndarray                 # (B, K) softmax probabilities ŷ
    labels: np.ndarray | None     # (B,) int64 class indices, or None
    targets: np.ndarray | None    # (B, K) one-hot / soft targets, or None


def softmax_cross_entropy(logits, labels):
    """L = -(1/B) Σ_i Σ_k y_ik log softmax(z_i)_k.

    logits (B, K) float32/float64; labels either integer class indices (B,)
    in [0, K) or one-hot/soft targets (B, K) of the logits' dtype.
    Returns (loss as a Python float, cache).
    """
    Z = v.float_array("logits", logits, 2, "(B, K)")
    v.nonempty("logits", Z, "(B, K)")
    B, K = Z.shape
    P = np.empty_like(Z)
    lab = np.asarray(labels)
    if lab.ndim not in (1, 2):
        raise ValueError(f"labels: expected class indices (B,) = ({B},) or targets (B, K) = "
                         f"{Z.shape}, got shape {lab.shape}")
    if lab.ndim == 1:
        if not np.issubdtype(lab.dtype, np.integer):
            raise TypeError(f"labels: expected integer class indices (B,) or targets "
                            f"(B, K), got a 1-D array of dtype {lab.dtype}")
        v.same_dim("labels", lab.shape[0], B, "labels.shape[0] (B, the rows of logits)")
        if lab.size and (lab.min() < 0 or lab.max() >= K):
            bad = lab[(lab < 0) | (lab >= K)][0]
            raise ValueError(f"labels: expected class indices in [0, {K}), got {bad}")
        lab = np.ascontiguousarray(lab, dtype=np.int64)
        loss = _k.softmax_xent_forward(Z, lab, P)
        return float(loss), SoftmaxCache(P, lab, None)
    T = v.float_array("labels", labels, 2, "(B, K) targets or (B,) class indices",
                      dtype=Z.dtype)
    if T.shape != Z.shape:
        raise ValueError(f"labels: expected targets of shape {Z.shape} (the logits' "
                         f"shape), got {T.shape}")
    loss = _k.softmax_xent_forward_soft(Z, T, P)
    return float(loss), SoftmaxCache(P, None, T)


def softmax_cross_entropy_backward(cache: SoftmaxCache, dloss: float = 1.0, *, out=None):
    """∂L/∂z = dloss · (ŷ − y) / B."""
    v.cache_of(cache, SoftmaxCache, "softmax_cross_entropy")
    try:
        dloss = float(dloss)
    except (TypeError, ValueError):
        raise TypeError(f"dloss: expected a number (∂L'/∂L), got {dloss!r}") from None
    P = cache.P
    dZ = v.out_array(out, P.shape, P.dtype)
    v.no_overlap(dZ, "out", P=P)
    if cache.labels is not None:
        _k.softmax_xent_backward(P, cache.labels, dloss, dZ)
    else:
        _k.softmax_xent_backward_soft(P, cache.targets, dloss, dZ)
    return dZ
