"""P8: weight normalization, w = γ ⊙ u/‖u‖ per output row.

u (M, N) is the direction, γ (M,) the length of each row of w (M, N), the
weight of a Linear layer in PyTorch's (out, in) layout; as
``torch.nn.utils.parametrizations.weight_norm(linear, dim=0)`` with
original0 = γ (as an (M, 1) column there) and original1 = u.

Backward, with û = u/‖u‖ per row:
    dγ = Σ_j dw ⊙ û                     (per row)
    du = (γ/‖u‖) (dw − dγ û) = (γ/‖u‖) W⊥ dw,  W⊥ = I − ŵŵᵀ
so every row of du is orthogonal to the row of u (P8: ∇_u L ⊥ u).
Small arrays (weights): NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v


@dataclass(frozen=True)
class WeightNormCache:
    """What `weightnorm_backward` needs: u, γ and the row norms ‖u_i‖.

    Attributes
    ----------
    u : ndarray
        (M, N)
    gamma : ndarray
        (M,)
    norm : ndarray
        (M,) ‖u_i‖
    """
    u: np.ndarray        # (M, N)
    gamma: np.ndarray    # (M,)
    norm: np.ndarray     # (M,) ‖u_i‖

    @property
    def direction(self) -> np.ndarray:
        """û = u/‖u‖ per row, (M, N)."""
        return self.u / self.norm[:, None]


class WeightNormGrads(NamedTuple):
    """The gradients of weight norm w = γ u/‖u‖ (P8), returned by `weightnorm_backward`.

    Attributes
    ----------
    du : ndarray
        (M, N), each row ⊥ the row of u
    dgamma : ndarray
        (M,)
    """
    du: np.ndarray       # (M, N), each row ⊥ the row of u
    dgamma: np.ndarray   # (M,)


def weightnorm_forward(u, gamma, *, out=None):
    """w = γ ⊙ u/‖u‖ per row. u (M, N) with no zero row, γ (M,). Returns (w, cache)."""
    u, gamma = v.weight_rows(u, gamma)
    norm = np.sqrt(np.einsum("ij,ij->i", u, u))
    if not np.all(norm > 0):
        i = int(np.argmin(norm > 0))
        raise ValueError(f"u: expected rows of nonzero norm (w = γ u/‖u‖), got ‖u[{i}]‖ = 0")
    w = v.out_array(out, u.shape, u.dtype)
    if out is not None:
        v.no_overlap(w, "out", u=u, gamma=gamma)
    np.multiply(u, (gamma / norm)[:, None], out=w)
    return w, WeightNormCache(u, gamma, norm)


def weightnorm_backward(dw, cache: WeightNormCache) -> WeightNormGrads:
    """du = (γ/‖u‖)(dw − (dw·û) û),  dγ = dw·û per row."""
    v.cache_of(cache, WeightNormCache, "weightnorm_forward")
    dw = v.upstream("dw", dw, cache.u.shape, cache.u.dtype)
    uh = cache.direction
    with np.errstate(all="ignore"):      # a non-finite dw propagates as NaN, no warning
        dgamma = np.einsum("ij,ij->i", dw, uh)
        du = (cache.gamma / cache.norm)[:, None] * (dw - dgamma[:, None] * uh)
    return WeightNormGrads(du.astype(cache.u.dtype, copy=False), dgamma.astype(cache.u.dtype))
