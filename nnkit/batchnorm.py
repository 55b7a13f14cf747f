"""P2: batch normalization (training and inference), alone or fused with ReLU.

Per feature j over the batch (rows are samples):
    m = mean_i Y        v = mean_i (Y - m)²  (biased: divide by B)
    Ŷ = (Y - m)/√(v+ε)  Z = γ ⊙ Ŷ + β       H = max(Z, 0)   (bn_relu_*)

Backward returns every gradient of P2.3, with m and v as graph nodes (dmean
and dvar are total derivatives: m feeds v and Ŷ; v feeds Ŷ).

Running statistics (inference) follow PyTorch's convention:
    running_mean ← (1 − momentum)·running_mean + momentum·m
    running_var  ← (1 − momentum)·running_var  + momentum·v·B/(B − 1)
i.e. the running variance tracks the *unbiased* batch variance, while the
batch itself is normalized with the biased one (P2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import batchnorm as _k
from ._threads import kernel_threads


@dataclass(frozen=True)
class BatchNormCache:
    """What `batchnorm_backward` / `bn_relu_backward` need: the input, the parameters
    and the batch statistics (Ŷ is the read-only property `yhat`, computed when
    read).

    Attributes
    ----------
    Y : ndarray
        (B, M) the input (never modified)
    gamma : ndarray
        (M,)
    beta : ndarray
        (M,)
    eps : float
        ε added to the variance
    mean : ndarray
        (M,) m
    var : ndarray
        (M,) v, biased
    inv_std : ndarray
        (M,) 1/√(v+ε)
    relu : bool
        True when the output is H = ReLU(Z)
    """
    Y: np.ndarray        # (B, M) the input (never modified)
    gamma: np.ndarray    # (M,)
    beta: np.ndarray     # (M,)
    eps: float
    mean: np.ndarray     # (M,) m
    var: np.ndarray      # (M,) v, biased
    inv_std: np.ndarray  # (M,) 1/√(v+ε)
    relu: bool           # True when the output is H = ReLU(Z)

    @property
    def yhat(self) -> np.ndarray:
        """Ŷ = (Y − m)/√(v+ε), (B, M), computed on each read (the kernels never store it)."""
        out = np.empty_like(self.Y)
        _k.normalize(self.Y, self.mean, self.inv_std, out, kernel_threads())
        return out


class BatchNormGrads(NamedTuple):
    """Every gradient of P2.3, returned by `batchnorm_backward`; `dmean` and `dvar` are
    total derivatives (m and v as graph nodes).

    Attributes
    ----------
    dY : ndarray
        (B, M)
    dgamma : ndarray
        (M,) Σ_i dZ ⊙ Ŷ
    dbeta : ndarray
        (M,) Σ_i dZ
    dmean : ndarray
        (M,) total derivative w.r.t. m
    dvar : ndarray
        (M,) total derivative w.r.t. v
    dYhat : ndarray | None
        (B, M) dZ ⊙ γ (None when full=False)
    """
    dY: np.ndarray       # (B, M)
    dgamma: np.ndarray   # (M,)  Σ_i dZ ⊙ Ŷ
    dbeta: np.ndarray    # (M,)  Σ_i dZ
    dmean: np.ndarray    # (M,)  total derivative w.r.t. m
    dvar: np.ndarray     # (M,)  total derivative w.r.t. v
    dYhat: np.ndarray | None  # (B, M) dZ ⊙ γ  (None when full=False)


class BNReLUGrads(NamedTuple):
    """Every gradient of P2.3 with the ReLU, returned by `bn_relu_backward`:
    `BatchNormGrads` plus `dZ`.

    Attributes
    ----------
    dY : ndarray
        (B, M)
    dgamma : ndarray
        (M,) Σ_i dZ ⊙ Ŷ
    dbeta : ndarray
        (M,) Σ_i dZ
    dmean : ndarray
        (M,) total derivative w.r.t. m
    dvar : ndarray
        (M,) total derivative w.r.t. v
    dYhat : ndarray | None
        (B, M) dZ ⊙ γ (None when full=False)
    dZ : ndarray | None
        (B, M) dH ⊙ [Z > 0] (None when full=False)
    """
    dY: np.ndarray
    dgamma: np.ndarray
    dbeta: np.ndarray
    dmean: np.ndarray
    dvar: np.ndarray
    dYhat: np.ndarray | None
    dZ: np.ndarray | None     # (B, M) dH ⊙ [Z > 0]  (None when full=False)


def _forward_train(Y, gamma, beta, eps, relu, out):
    Y, gamma, beta = v.feature_params(Y, gamma, beta)
    eps = v.eps_value(eps)
    v.batch_for_statistics("Y", Y.shape[0])
    B, M = Y.shape
    Z = v.out_array(out, (B, M), Y.dtype)
    if out is not None:
        v.no_overlap(Z, "out", Y=Y, gamma=gamma, beta=beta)
    # one allocation for the three (M,) statistics (small calls are
    # dominated by Python overhead, not by the kernel)
    stats = np.empty((3, M), Y.dtype)
    # rows by index: unpacking an array iterates it, and the iteration ends
    # on an IndexError whose message NumPy formats on every call
    mean, var, inv_std = stats[0], stats[1], stats[2]
    # with eps = 0 and a constant feature, 1/sqrt(0) = inf and 0*inf = nan in
    # the kernel: that is P2.1's point, and C arithmetic raises no warning
    _k.forward_train(Y, gamma, beta, eps, relu, Z, stats, kernel_threads())
    return Z, BatchNormCache(Y, gamma, beta, eps, mean, var, inv_std, relu)


def batchnorm_forward(Y, gamma, beta, eps=1e-5, *, out=None):
    """Training-mode batch norm.  Y (B, M), B ≥ 2 -> Z (B, M), cache."""
    return _forward_train(Y, gamma, beta, eps, False, out)


def bn_relu_forward(Y, gamma, beta, eps=1e-5, *, out=None):
    """Fused batch norm + ReLU (training mode): H = max(γ Ŷ + β, 0)."""
    return _forward_train(Y, gamma, beta, eps, True, out)


def _backward_train(dout, cache: BatchNormCache, full, out, name):
    v.cache_of(cache, BatchNormCache, "batchnorm_forward / bn_relu_forward")
    full = v.flag("full", full)
    Y = cache.Y
    dout = v.upstream(name, dout, Y.shape, Y.dtype)
    M = Y.shape[1]
    dY = v.out_array(out, Y.shape, Y.dtype)
    if out is not None:
        v.no_overlap(dY, "out", **{name: dout, "Y": Y})
    dZ = np.empty_like(Y) if (full and cache.relu) else None
    dYhat = np.empty_like(Y) if full else None
    dvecs = np.empty((4, M), Y.dtype)
    dgamma, dbeta, dmean, dvar = dvecs[0], dvecs[1], dvecs[2], dvecs[3]
    _k.backward_train(dout, Y, cache.gamma, cache.beta, cache.mean, cache.inv_std,
                      cache.relu, dY, dZ, dYhat, dvecs, kernel_threads())
    return dY, dgamma, dbeta, dmean, dvar, dYhat, dZ


def batchnorm_backward(dZ, cache: BatchNormCache, *, full=True, out=None) -> BatchNormGrads:
    """Every gradient of P2.3 given dZ = ∂L/∂Z.

    full=False skips writing the (B, M) intermediate dYhat (one pass less);
    `out` receives dY.
    """
    v.cache_of(cache, BatchNormCache, "batchnorm_forward")
    if cache.relu:
        raise ValueError("cache: comes from bn_relu_forward; use bn_relu_backward")
    return BatchNormGrads(*_backward_train(dZ, cache, full, out, "dZ")[:6])


def bn_relu_backward(dH, cache: BatchNormCache, *, full=True, out=None) -> BNReLUGrads:
    """Gradients of the fused BN + ReLU given dH = ∂L/∂H; also dZ = dH ⊙ [Z > 0]."""
    v.cache_of(cache, BatchNormCache, "bn_relu_forward")
    if not cache.relu:
        raise ValueError("cache: comes from batchnorm_forward; use batchnorm_backward")
    return BNReLUGrads(*_backward_train(dH, cache, full, out, "dH"))


def batchnorm_eval_forward(Y, gamma, beta, running_mean, running_var, eps=1e-5, *,
                           relu=False, out=None):
    """Inference: Z = γ (Y − running_mean)/√(running_var + ε) + β (+ ReLU). Any B ≥
    1."""
    Y, gamma, beta = v.feature_params(Y, gamma, beta)
    eps = v.eps_value(eps)
    M = Y.shape[1]
    rm = v.float_array("running_mean", running_mean, 1, "(M,)", dtype=Y.dtype)
    rv = v.float_array("running_var", running_var, 1, "(M,)", dtype=Y.dtype)
    v.same_dim("running_mean", rm.shape[0], M, "running_mean.shape[0] (M)")
    v.same_dim("running_var", rv.shape[0], M, "running_var.shape[0] (M)")
    if not np.all(rv >= 0):   # also catches NaN
        bad = rv[~(rv >= 0)][0]
        raise ValueError(f"running_var: expected finite values >= 0, got {bad}")
    Z = v.out_array(out, Y.shape, Y.dtype)
    v.no_overlap(Z, "out", Y=Y)
    with np.errstate(divide="ignore"):
        inv_std = (1.0 / np.sqrt(rv.astype(np.float64) + eps)).astype(Y.dtype)
    _k.forward_eval(Y, rm, inv_std, gamma, beta, v.flag("relu", relu), Z, kernel_threads())
    return Z


def update_running_stats(running_mean, running_var, cache: BatchNormCache,
                         momentum: float) -> None:
    """In place: running ← (1−momentum)·running + momentum·batch (unbiased variance)."""
    v.cache_of(cache, BatchNormCache, "batchnorm_forward / bn_relu_forward")
    momentum = v.momentum_value(momentum)
    v.running_stat("running_mean", running_mean, cache.mean.shape[0])
    v.running_stat("running_var", running_var, cache.mean.shape[0])
    B = cache.Y.shape[0]
    running_mean *= 1.0 - momentum
    running_mean += momentum * cache.mean
    running_var *= 1.0 - momentum
    running_var += (momentum * B / (B - 1)) * cache.var
