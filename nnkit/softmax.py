"""P4: softmax cross-entropy, mean over the batch, numerically stable."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as v
from ._kernels import dense as _k


@dataclass(frozen=True)
class SoftmaxCache:
    """What `softmax_cross_entropy_backward` needs: ŷ and the targets.

    Attributes
    ----------
    P : ndarray
        (B, K) softmax probabilities ŷ
    labels : ndarray | None
        (B,) int64 class indices, or None
    targets : ndarray | None
        (B, K) one-hot / soft targets, or None
    """
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
    P = np.empty_like(Z)
    lab, T = v.class_labels(labels, Z)
    if lab is not None:
        loss = _k.softmax_xent_forward(Z, lab, P)
        return float(loss), SoftmaxCache(P, lab, None)
    loss = _k.softmax_xent_forward_soft(Z, T, P)
    return float(loss), SoftmaxCache(P, None, T)


def softmax_cross_entropy_backward(dloss=1.0, cache: SoftmaxCache | None = None, *,
                                   out=None) -> np.ndarray:
    """∂L/∂z = dloss · (ŷ − y) / B, (B, K).

    Arguments in the order of every backward, (upstream, cache): dloss is
    ∂L'/∂L, 1 when the loss is the end of the graph. The older order
    (cache) or (cache, dloss) is still accepted.
    """
    if isinstance(dloss, SoftmaxCache):          # the older (cache[, dloss]) order
        dloss, cache = (1.0 if cache is None else cache), dloss
    elif cache is None and not v.is_real(dloss):  # the older order with another object
        v.cache_of(dloss, SoftmaxCache, "softmax_cross_entropy")
    v.cache_of(cache, SoftmaxCache, "softmax_cross_entropy")
    dloss = v.real_number("dloss", dloss, -math.inf)
    P = cache.P
    dZ = v.out_array(out, P.shape, P.dtype)
    v.no_overlap(dZ, "out", P=P)
    if cache.labels is not None:
        _k.softmax_xent_backward(P, cache.labels, dloss, dZ)
    else:
        _k.softmax_xent_backward_soft(P, cache.targets, dloss, dZ)
    return dZ
