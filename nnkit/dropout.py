"""P6: inverted dropout.

`keep` is the keep probability p of P6 (R_ij ~ Bernoulli(p)); PyTorch's
``nn.Dropout(p)`` takes the *drop* probability, so ``keep = 1 − p_torch``.

Training:  R ~ Bernoulli(keep) elementwise,  out = X ⊙ R / keep
           (scaled so that E[out] = X: nothing changes at evaluation)
Eval:      out = X (the identity; no mask is drawn)
Backward:  dX = dY ⊙ R / keep

The mask comes from ``nnkit._random.generator(rng=rng)``: the library generator
(reset by ``nk.seed``) unless an explicit `rng` is given.

NumPy, no kernel: drawing the uniforms is most of the cost (the generator
makes ~1 float per ns per core) and the multiply is a memory-bound stream; a
kernel would save one temporary, not the draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate as v
from ._random import generator


@dataclass(frozen=True)
class DropoutCache:
    """What `dropout_backward` needs: the mask R and the keep probability.

    Attributes
    ----------
    mask : ndarray | None
        R (bool, X's shape); None at eval (identity)
    keep : float
        the keep probability
    shape : tuple
        X's shape
    dtype : dtype
        X's dtype
    """
    mask: np.ndarray | None   # R (bool, X's shape); None at eval (identity)
    keep: float
    shape: tuple
    dtype: np.dtype

    @property
    def scale(self) -> float:
        """1/keep: the factor a kept element is multiplied by."""
        return 1.0 / self.keep


def dropout_forward(X, keep, rng=None, training=True, *, out=None):
    """Inverted dropout: X ⊙ R / keep in training (R ~ Bernoulli(keep)), X at eval.

    keep in (0, 1] is P6's keep probability (PyTorch's 1 − p). Returns
    (out, cache); cache.mask is the drawn R.
    """
    X = v.float_array("X", X, None, "(any shape)")
    keep = v.keep_prob(keep)
    rng = generator(rng=rng)
    training = v.flag("training", training)
    Y = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(Y, "out", X=X)
    if not training:
        Y[...] = X
        return Y, DropoutCache(None, keep, X.shape, X.dtype)
    mask = rng.random(X.shape, dtype=np.float32 if X.dtype == np.float32 else np.float64) < keep
    np.multiply(X, mask, out=Y)
    Y *= X.dtype.type(1.0 / keep)
    return Y, DropoutCache(mask, keep, X.shape, X.dtype)


def dropout_backward(dY, cache: DropoutCache, *, out=None) -> np.ndarray:
    """dX = dY ⊙ R / keep (dY at eval): the one gradient of the derivation, an array."""
    v.cache_of(cache, DropoutCache, "dropout_forward")
    dY = v.upstream("dY", dY, cache.shape, cache.dtype)
    dX = v.out_array(out, cache.shape, cache.dtype)
    if out is not None:
        v.no_overlap(dX, "out", dY=dY)
    if cache.mask is None:
        dX[...] = dY
    else:
        np.multiply(dY, cache.mask, out=dX)
        dX *= cache.dtype.type(1.0 / cache.keep)
    return dX
