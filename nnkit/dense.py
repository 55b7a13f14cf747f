"""P1: the affine layer Y = X Wᵀ + b and ReLU, as (out, cache) / grads pairs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import dense as _k
from ._threads import kernel_threads


@dataclass(frozen=True)
class AffineCache:
    """What `affine_backward` needs: the forward's inputs (read, never copied).

    Attributes
    ----------
    X : ndarray
        (B, N)
    W : ndarray
        (M, N)
    b : ndarray
        (M,)
    """
    X: np.ndarray  # (B, N)
    W: np.ndarray  # (M, N)
    b: np.ndarray  # (M,)


class AffineGrads(NamedTuple):
    """Every gradient of P1, returned by `affine_backward`.

    Attributes
    ----------
    dX : ndarray
        (B, N) = dY W
    dW : ndarray
        (M, N) = dYᵀ X
    db : ndarray
        (M,) = Σ_rows dY
    """
    dX: np.ndarray  # (B, N) = dY W
    dW: np.ndarray  # (M, N) = dYᵀ X
    db: np.ndarray  # (M,)   = Σ_rows dY


def affine_forward(X, W, b, *, out=None):
    """Y = X Wᵀ + b.  X (B, N), W (M, N), b (M,) -> Y (B, M), cache."""
    X = v.float_array("X", X, 2, "(B, N)")
    W = v.float_array("W", W, 2, "(M, N)", dtype=X.dtype)
    b = v.float_array("b", b, 1, "(M,)", dtype=X.dtype)
    v.nonempty("X", X, "(B, N)")
    v.nonempty("W", W, "(M, N)")
    v.same_dim("W", W.shape[1], X.shape[1], "W.shape[1] (N, the columns of X)")
    v.same_dim("b", b.shape[0], W.shape[0], "b.shape[0] (M, the rows of W)")
    Y = v.out_array(out, (X.shape[0], W.shape[0]), X.dtype)
    v.no_overlap(Y, "out", X=X, W=W, b=b)
    _k.affine_forward(X, W, b, Y)
    return Y, AffineCache(X, W, b)


def affine_backward(dY, cache: AffineCache, *, out=None) -> AffineGrads:
    """dX = dY W, dW = dYᵀ X, db = Σ_rows dY.  `out` receives dX (B, N)."""
    v.cache_of(cache, AffineCache, "affine_forward")
    X, W = cache.X, cache.W
    dY = v.float_array("dY", dY, 2, "(B, M)", dtype=X.dtype)
    v.same_dim("dY", dY.shape[0], X.shape[0], "dY.shape[0] (B)")
    v.same_dim("dY", dY.shape[1], W.shape[0], "dY.shape[1] (M)")
    dX = v.out_array(out, X.shape, X.dtype)
    v.no_overlap(dX, "out", dY=dY, X=X, W=W)
    dW = np.empty_like(W)
    db = np.empty(W.shape[0], dtype=X.dtype)
    _k.affine_backward(dY, X, W, dX, dW, db)
    return AffineGrads(dX, dW, db)


@dataclass(frozen=True)
class ReLUCache:
    """What `relu_backward` needs: the output, whose positive entries are the mask.

    Attributes
    ----------
    H : ndarray
        the output; [H > 0] is the mask [Y > 0]
    """
    H: np.ndarray  # the output; [H > 0] is the mask [Y > 0]

    @property
    def mask(self) -> np.ndarray:
        """[Y > 0] (bool, Y's shape), computed on each read: [H > 0] is the same mask."""
        return self.H > 0


def relu_forward(Y, *, out=None):
    """H = max(Y, 0), elementwise, any shape."""
    Y = v.float_array("Y", Y, None, "(any shape)")
    H = v.out_array(out, Y.shape, Y.dtype)
    v.no_overlap(H, "out", Y=Y)
    _k.relu_forward(Y.reshape(-1), H.reshape(-1), kernel_threads())
    return H, ReLUCache(H)


def relu_backward(dH, cache: ReLUCache, *, out=None) -> np.ndarray:
    """dY = dH ⊙ [Y > 0]."""
    v.cache_of(cache, ReLUCache, "relu_forward")
    H = cache.H
    dH = v.float_array("dH", dH, H.ndim, f"{H.shape}", dtype=H.dtype)
    if dH.shape != H.shape:
        raise ValueError(f"dH: expected shape {H.shape} (the forward output), got {dH.shape}")
    dY = v.out_array(out, H.shape, H.dtype)
    v.no_overlap(dY, "out", dH=dH)
    _k.relu_backward(dH.reshape(-1), H.reshape(-1), dY.reshape(-1), kernel_threads())
    return dY
