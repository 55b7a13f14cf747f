"""P8: layer norm, instance norm, and batch norm over channels.

For X of shape (B, C, F) (P8's example is (4, 2, 3)) the three normalizations
differ only in the axes they average over:

    batch norm     per channel c, over (batch, features):  mean (C,)
    layer norm     per sample b, over (channels, features): mean (B,)
    instance norm  per (sample, channel), over features:    mean (B, C)

each with v the biased variance over the same axes, x̂ = (X − m)/√(v + ε) and
Z = γ ⊙ x̂ + β. γ, β have shape X.shape[1:] for layer norm (as PyTorch's
``F.layer_norm(X, X.shape[1:], weight, bias)``) and (C,) for instance and
channel batch norm (``F.instance_norm``, ``F.batch_norm``).

Backward returns every gradient the derivation names: dX, dgamma, dbeta, the
total derivatives dmean, dvar (m feeds v and x̂) and dXhat = γ ⊙ dZ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v
from . import batchnorm as bn
from ._kernels import norms as _k
from ._threads import kernel_threads


@dataclass(frozen=True)
class RowNormCache:
    """What layer/instance norm's backward needs. X2 is the (R, D) row view."""
    X: np.ndarray        # the input, its own shape (never modified)
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    mean: np.ndarray     # (B,) layer norm, (B, C) instance norm
    var: np.ndarray      # same shape, biased
    rstd: np.ndarray     # same shape, 1/√(v+ε)
    channels: int        # 0: layer norm; C: instance norm

    @property
    def xhat(self) -> np.ndarray:
        """x̂ = (X − m)/√(v+ε), X's shape (computed on each read)."""
        R = self.mean.size
        X2 = self.X.reshape(R, -1)
        out = (X2 - self.mean.reshape(R, 1)) * self.rstd.reshape(R, 1)
        return out.reshape(self.X.shape)


class RowNormGrads(NamedTuple):
    dX: np.ndarray          # X's shape
    dgamma: np.ndarray      # γ's shape: Σ over samples of dZ ⊙ x̂
    dbeta: np.ndarray       # γ's shape: Σ dZ
    dmean: np.ndarray       # mean's shape: total derivative w.r.t. m
    dvar: np.ndarray        # mean's shape: total derivative w.r.t. v
    dXhat: np.ndarray | None  # X's shape: γ ⊙ dZ (None when full=False)


def _run_forward(X, gamma, beta, eps, C, stat_shape, out):
    R = math.prod(stat_shape)
    X2 = X.reshape(R, -1)
    Z = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(Z, "out", X=X, gamma=gamma, beta=beta)
    # three np.empty: cheaper than one (3, R) block unpacked into rows
    mean, var, rstd = (np.empty(stat_shape, X.dtype), np.empty(stat_shape, X.dtype),
                       np.empty(stat_shape, X.dtype))
    _k.forward(X2, gamma.reshape(-1), beta.reshape(-1), C, eps, Z.reshape(R, -1),
               mean.reshape(-1), var.reshape(-1), rstd.reshape(-1), kernel_threads())
    return Z, RowNormCache(X, gamma, beta, eps, mean, var, rstd, C)


def layernorm_forward(X, gamma, beta, eps=1e-5, *, out=None):
    """Layer norm: each sample X[b] over all its other axes.

    X (B, ...) with at least 2 axes; gamma, beta of shape X.shape[1:].
    Returns Z (X's shape) and the cache (mean, var, rstd of shape (B,)).
    Equals ``torch.nn.functional.layer_norm(X, X.shape[1:], gamma, beta, eps)``.
    """
    X = v.norm_input("X", X, 2, "(B, ...): one sample per X[b]")
    gamma, beta = v.affine_params(X, gamma, beta, X.shape[1:], "X.shape[1:], one per "
                                  "element of a sample")
    eps = v.eps_value(eps)
    return _run_forward(X, gamma, beta, eps, 0, (X.shape[0],), out)


def instancenorm_forward(X, gamma, beta, eps=1e-5, *, out=None):
    """Instance norm: each (sample, channel) X[b, c] over the remaining axes.

    X (B, C, ...) with at least 3 axes and at least 2 elements per X[b, c];
    gamma, beta (C,). Returns Z and the cache (mean, var, rstd of shape (B, C)).
    Equals ``torch.nn.functional.instance_norm(X, weight=gamma, bias=beta, eps=eps)``.
    """
    X = v.norm_input("X", X, 3, "(B, C, ...): X[b, c] is normalized over the rest")
    gamma, beta = v.affine_params(X, gamma, beta, (X.shape[1],), "(C,), one per channel")
    eps = v.eps_value(eps)
    v.spatial_for_statistics("X", X.size // (X.shape[0] * X.shape[1]))
    return _run_forward(X, gamma, beta, eps, X.shape[1], X.shape[:2], out)


def _row_backward(dZ, cache, full, out, producer):
    v.cache_of(cache, RowNormCache, producer)
    full = v.flag("full", full)
    X = cache.X
    dZ = v.upstream("dZ", dZ, X.shape, X.dtype)
    R = cache.mean.size
    dX = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(dX, "out", dZ=dZ, X=X)
    dXhat = np.empty_like(X) if full else None
    dgamma, dbeta = np.empty(cache.gamma.shape, X.dtype), np.empty(cache.gamma.shape, X.dtype)
    dmean, dvar = np.empty(cache.mean.shape, X.dtype), np.empty(cache.mean.shape, X.dtype)
    _k.backward(dZ.reshape(R, -1), X.reshape(R, -1), cache.mean.reshape(-1),
                cache.rstd.reshape(-1), cache.gamma.reshape(-1), cache.channels,
                dX.reshape(R, -1), None if dXhat is None else dXhat.reshape(R, -1),
                dgamma.reshape(-1), dbeta.reshape(-1), dmean.reshape(-1),
                dvar.reshape(-1), kernel_threads())
    return RowNormGrads(dX, dgamma, dbeta, dmean, dvar, dXhat)


def layernorm_backward(dZ, cache: RowNormCache, *, full=True, out=None) -> RowNormGrads:
    """Every gradient of layer norm given dZ = ∂L/∂Z (X's shape).

    full=False skips writing dXhat (one pass less); `out` receives dX.
    """
    v.cache_of(cache, RowNormCache, "layernorm_forward")
    if cache.channels:
        raise ValueError("cache: comes from instancenorm_forward; use instancenorm_backward")
    return _row_backward(dZ, cache, full, out, "layernorm_forward")


def instancenorm_backward(dZ, cache: RowNormCache, *, full=True, out=None) -> RowNormGrads:
    """Every gradient of instance norm given dZ = ∂L/∂Z (X's shape)."""
    v.cache_of(cache, RowNormCache, "instancenorm_forward")
    if not cache.channels:
        raise ValueError("cache: comes from layernorm_forward; use layernorm_backward")
    return _row_backward(dZ, cache, full, out, "instancenorm_forward")


# ------------------------------------------------ batch norm over channels
@dataclass(frozen=True)
class ChannelBatchNormCache:
    shape: tuple                  # X's shape (B, C, ...)
    bn: bn.BatchNormCache         # the (B·F, C) batch norm underneath

    @property
    def mean(self) -> np.ndarray:
        return self.bn.mean

    @property
    def var(self) -> np.ndarray:
        return self.bn.var

    @property
    def xhat(self) -> np.ndarray:
        return _from_rows(self.bn.yhat, self.shape)


class ChannelBatchNormGrads(NamedTuple):
    dX: np.ndarray
    dgamma: np.ndarray     # (C,)
    dbeta: np.ndarray      # (C,)
    dmean: np.ndarray      # (C,)
    dvar: np.ndarray       # (C,)
    dXhat: np.ndarray | None = None  # X's shape: γ ⊙ dZ (None when full=False)
    dZ: np.ndarray | None = None     # X's shape: dH ⊙ [Z > 0] (relu=True and full only)


def _to_rows(X):
    """(B, C, ...) -> (B·F, C): channel last, one row per (sample, position)."""
    B, C = X.shape[:2]
    return np.ascontiguousarray(np.moveaxis(X.reshape(B, C, -1), 1, 2)).reshape(-1, C)


def _from_rows(A, shape):
    B, C = shape[:2]
    return np.ascontiguousarray(np.moveaxis(A.reshape(B, -1, C), 2, 1)).reshape(shape)


def batchnorm_channels_forward(X, gamma, beta, eps=1e-5, *, relu=False):
    """Batch norm of X (B, C, ...) per channel over (batch, every other axis) (P8).

    gamma, beta (C,). As ``torch.nn.functional.batch_norm(X, None, None, gamma,
    beta, training=True, eps=eps)`` (BatchNorm1d/2d/3d in training mode);
    relu=True fuses the ReLU that follows (the output is H = max(Z, 0)). Runs
    the batch-norm kernel on the (B·F, C) transpose of X (one copy in, one out).
    """
    X = v.norm_input("X", X, 3, "(B, C, ...): per channel over every other axis")
    gamma, beta = v.affine_params(X, gamma, beta, (X.shape[1],), "(C,), one per channel")
    eps = v.eps_value(eps)
    relu = v.flag("relu", relu)
    v.batch_for_statistics("X", X.size // X.shape[1], "batch norm over (batch, features)")
    fwd = bn.bn_relu_forward if relu else bn.batchnorm_forward
    Z2, c = fwd(_to_rows(X), gamma, beta, eps)
    return _from_rows(Z2, X.shape), ChannelBatchNormCache(X.shape, c)


def batchnorm_channels_eval_forward(X, gamma, beta, running_mean, running_var, eps=1e-5, *,
                                    relu=False):
    """Inference for X (B, C, ...): the running statistics (C,) per channel (+ ReLU)."""
    X = v.norm_input("X", X, 3, "(B, C, ...): per channel over every other axis")
    gamma, beta = v.affine_params(X, gamma, beta, (X.shape[1],), "(C,), one per channel")
    Z2 = bn.batchnorm_eval_forward(_to_rows(X), gamma, beta, running_mean, running_var, eps,
                                   relu=relu)
    return _from_rows(Z2, X.shape)


def batchnorm_channels_backward(dZ, cache: ChannelBatchNormCache, *,
                                full=True) -> ChannelBatchNormGrads:
    """dX, dgamma, dbeta, dmean, dvar, dXhat of batchnorm_channels_forward (with
    its ReLU when the forward had relu=True: dZ is then ∂L/∂H, and the result
    also has the ReLU's dZ). full=False skips the X-sized intermediates dXhat
    and dZ (the layer's path)."""
    v.cache_of(cache, ChannelBatchNormCache, "batchnorm_channels_forward")
    full = v.flag("full", full)
    dZ = v.upstream("dZ", dZ, cache.shape, cache.bn.Y.dtype)
    back = bn.bn_relu_backward if cache.bn.relu else bn.batchnorm_backward
    g = back(_to_rows(dZ), cache.bn, full=full)
    relu_dZ = getattr(g, "dZ", None)
    return ChannelBatchNormGrads(
        _from_rows(g.dY, cache.shape), g.dgamma, g.dbeta, g.dmean, g.dvar,
        None if g.dYhat is None else _from_rows(g.dYhat, cache.shape),
        None if relu_dZ is None else _from_rows(relu_dZ, cache.shape))
