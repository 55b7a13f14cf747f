"""P8: layer norm, instance norm, group norm, and batch norm over channels.

For X of shape (B, C, F) (P8's example is (4, 2, 3)) the four normalizations
differ only in the axes they average over:

    batch norm     per channel c, over (batch, features):  mean (C,)
    layer norm     per sample b, over (channels, features): mean (B,)
    instance norm  per (sample, channel), over features:    mean (B, C)
    group norm     per (sample, group of C/G channels), over
                   (the group's channels, features):        mean (B, G)

each with v the biased variance over the same axes, x̂ = (X − m)/√(v + ε) and
Z = γ ⊙ x̂ + β. Group norm with G = 1 is layer norm over (C, F) (with γ one
per channel), with G = C instance norm. γ, β have shape X.shape[1:] for layer
norm (as PyTorch's ``F.layer_norm(X, X.shape[1:], weight, bias)``) and (C,)
for instance, group and channel batch norm (``F.instance_norm``,
``F.group_norm``, ``F.batch_norm``).

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
    """Every gradient of layer or instance norm, returned by `layernorm_backward` /
    `instancenorm_backward`.

    Attributes
    ----------
    dX : ndarray
        X's shape
    dgamma : ndarray
        γ's shape: Σ over samples of dZ ⊙ x̂
    dbeta : ndarray
        γ's shape: Σ dZ
    dmean : ndarray
        mean's shape: total derivative w.r.t. m
    dvar : ndarray
        mean's shape: total derivative w.r.t. v
    dXhat : ndarray | None
        X's shape: γ ⊙ dZ (None when full=False)
    """
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


# ---------------------------------------------------------------- group norm
@dataclass(frozen=True)
class GroupNormCache:
    """What group norm's backward needs: the input and the (B, G) statistics."""
    X: np.ndarray        # the input (B, C, ...), its own shape (never modified)
    gamma: np.ndarray    # (C,)
    beta: np.ndarray     # (C,)
    eps: float
    num_groups: int      # G, a divisor of C
    mean: np.ndarray     # (B, G): over the group's C/G channels and every other axis
    var: np.ndarray      # (B, G) biased
    rstd: np.ndarray     # (B, G) 1/√(v+ε)

    @property
    def xhat(self) -> np.ndarray:
        """x̂ = (X − m)/√(v+ε), X's shape (computed on each read)."""
        B, G = self.mean.shape
        X3 = self.X.reshape(B, G, -1)
        return ((X3 - self.mean[:, :, None]) * self.rstd[:, :, None]).reshape(self.X.shape)


class GroupNormGrads(NamedTuple):
    """Every gradient of group norm, returned by `groupnorm_backward`.

    Attributes
    ----------
    dX : ndarray
        X's shape
    dgamma : ndarray
        (C,): Σ over (batch, features) of dZ ⊙ x̂
    dbeta : ndarray
        (C,): Σ dZ over the same axes
    dmean : ndarray
        (B, G): total derivative w.r.t. m
    dvar : ndarray
        (B, G): total derivative w.r.t. v
    dXhat : ndarray | None
        X's shape: γ ⊙ dZ (None when full=False)
    """
    dX: np.ndarray            # X's shape
    dgamma: np.ndarray        # (C,): Σ over (batch, features) of dZ ⊙ x̂
    dbeta: np.ndarray         # (C,): Σ dZ over the same axes
    dmean: np.ndarray         # (B, G): total derivative w.r.t. m
    dvar: np.ndarray          # (B, G): total derivative w.r.t. v
    dXhat: np.ndarray | None  # X's shape: γ ⊙ dZ (None when full=False)


def groupnorm_forward(X, gamma, beta, num_groups, eps=1e-5, *, out=None):
    """Group norm: each sample's C channels in G groups of C/G consecutive
    channels, each (sample, group) normalized over its channels and every
    other axis; then γ, β per channel.

    X (B, C, ...) with at least 2 axes ((B, C) is F = 1); num_groups G divides
    C; gamma, beta (C,). Returns Z (X's shape) and the cache (mean, var, rstd
    of shape (B, G)). Equals ``torch.nn.functional.group_norm(X, G, gamma,
    beta, eps)``; G = 1 is layer norm over X.shape[1:] with γ per channel,
    G = C instance norm. `out` receives Z.
    """
    X = v.norm_input("X", X, 2, "(B, C, ...): channels on axis 1, in groups")
    B, C = X.shape[:2]
    G = v.num_groups(num_groups, C)
    gamma, beta = v.affine_params(X, gamma, beta, (C,), "(C,), one per channel")
    eps = v.eps_value(eps)
    R = B * G
    Z = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(Z, "out", X=X, gamma=gamma, beta=beta)
    mean, var, rstd = (np.empty((B, G), X.dtype), np.empty((B, G), X.dtype),
                       np.empty((B, G), X.dtype))
    # The statistics and x̂: the row kernel on the (B·G, C/G·F) view, in its
    # instance-norm mode with one (γ, β) = (1, 0) per row: it writes x̂.
    _k.forward(X.reshape(R, -1), np.ones(G, X.dtype), np.zeros(G, X.dtype), G, eps,
               Z.reshape(R, -1), mean.reshape(-1), var.reshape(-1), rstd.reshape(-1),
               kernel_threads())
    # The affine per channel in NumPy, in place: the row kernel takes γ either
    # per column, the same for every row (layer norm), or one per row
    # (instance norm); a group's row spans C/G channels whose γ change from
    # row to row, which is neither (and no new kernel can be built here).
    # Two in-place passes over Z, no temporary; a non-finite value propagates
    # as it does in the kernels (nan_policy), without NumPy's warnings.
    Z3 = Z.reshape(B, C, -1)
    with np.errstate(all="ignore"):
        np.multiply(Z3, gamma[:, None], out=Z3)
        np.add(Z3, beta[:, None], out=Z3)
    return Z, GroupNormCache(X, gamma, beta, eps, G, mean, var, rstd)


def groupnorm_backward(dZ, cache: GroupNormCache, *, full=True,
                       out=None) -> GroupNormGrads:
    """Every gradient of group norm given dZ = ∂L/∂Z (X's shape).

    full=False leaves dXhat out of the result (it is still computed: the
    statistics' backward reads it); `out` receives dX.
    """
    v.cache_of(cache, GroupNormCache, "groupnorm_forward")
    full = v.flag("full", full)
    X = cache.X
    dZ = v.upstream("dZ", dZ, X.shape, X.dtype)
    B, C = X.shape[:2]
    G = cache.num_groups
    Cg = C // G
    nt = kernel_threads()
    dX = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(dX, "out", dZ=dZ, X=X)
    dXhat = np.empty_like(X)
    dgamma, dbeta = np.empty(C, X.dtype), np.empty(C, X.dtype)
    dmean, dvar = np.empty((B, G), X.dtype), np.empty((B, G), X.dtype)
    # 1. Per channel, the row kernel in its instance-norm mode on the
    #    (B·C, F) view, each row given its group's m and rstd: it sums
    #    dgamma = Σ dZ ⊙ x̂ and dbeta = Σ dZ per channel (in double) and writes
    #    dXhat = γ ⊙ dZ. Its dX, dmean, dvar are those of a per-channel
    #    statistic, which this is not: dX goes to the buffer step 2 overwrites,
    #    dmean/dvar to scratch.
    m_c = np.repeat(cache.mean, Cg, axis=1).reshape(-1)
    rstd_c = np.repeat(cache.rstd, Cg, axis=1).reshape(-1)
    scratch = np.empty((2, B * C), X.dtype)
    _k.backward(dZ.reshape(B * C, -1), X.reshape(B * C, -1), m_c, rstd_c, cache.gamma, C,
                dX.reshape(B * C, -1), dXhat.reshape(B * C, -1), dgamma, dbeta,
                scratch[0], scratch[1], nt)
    # 2. The group statistics' backward: the same kernel on the (B·G, C/G·F)
    #    view with γ = 1 per row and dXhat as the upstream gradient gives
    #    dX = rstd (dx̂ − mean dx̂ − x̂ mean(dx̂ x̂)) and the group's dmean, dvar.
    #    Its dgamma/dbeta (sums of dx̂ per group) are scratch.
    R = B * G
    ones, gscratch = np.ones(G, X.dtype), np.empty((2, G), X.dtype)
    _k.backward(dXhat.reshape(R, -1), X.reshape(R, -1), cache.mean.reshape(-1),
                cache.rstd.reshape(-1), ones, G, dX.reshape(R, -1), None,
                gscratch[0], gscratch[1], dmean.reshape(-1), dvar.reshape(-1), nt)
    return GroupNormGrads(dX, dgamma, dbeta, dmean, dvar, dXhat if full else None)


# ------------------------------------------------ batch norm over channels
@dataclass(frozen=True)
class ChannelBatchNormCache:
    """What `batchnorm_channels_backward` needs: batch norm per channel of (B, C, ...)
    input, run as a (B·F, C) batch norm.

    Attributes
    ----------
    shape : tuple
        X's shape (B, C, ...)
    bn : bn.BatchNormCache
        the (B·F, C) batch norm underneath
    """
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
        return from_channel_rows(self.bn.yhat, self.shape)


class ChannelBatchNormGrads(NamedTuple):
    """Every gradient of channel batch norm, returned by `batchnorm_channels_backward`.

    Attributes
    ----------
    dX : ndarray
        X's shape
    dgamma : ndarray
        (C,)
    dbeta : ndarray
        (C,)
    dmean : ndarray
        (C,)
    dvar : ndarray
        (C,)
    dXhat : ndarray | None
        X's shape: γ ⊙ dZ (None when full=False)
    dZ : ndarray | None
        X's shape: dH ⊙ [Z > 0] (relu=True and full only)
    """
    dX: np.ndarray
    dgamma: np.ndarray     # (C,)
    dbeta: np.ndarray      # (C,)
    dmean: np.ndarray      # (C,)
    dvar: np.ndarray       # (C,)
    dXhat: np.ndarray | None = None  # X's shape: γ ⊙ dZ (None when full=False)
    dZ: np.ndarray | None = None     # X's shape: dH ⊙ [Z > 0] (relu=True and full only)


def channel_rows(X):
    """(B, C, ...) -> (B·F, C): channel last, one row per (sample, position)."""
    B, C = X.shape[:2]
    return np.ascontiguousarray(np.moveaxis(X.reshape(B, C, -1), 1, 2)).reshape(-1, C)


def from_channel_rows(A, shape, out=None):
    """(B·F, C) rows -> (B, C, ...) of `shape`; into `out` (C-contiguous) when given.
    Shared with whitening's (B, C, ...) input."""
    B, C = shape[:2]
    back = np.moveaxis(A.reshape(B, -1, C), 2, 1)
    if out is None:
        return np.ascontiguousarray(back).reshape(shape)
    np.copyto(out.reshape(back.shape), back)
    return out


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
    Z2, c = fwd(channel_rows(X), gamma, beta, eps)
    return from_channel_rows(Z2, X.shape), ChannelBatchNormCache(X.shape, c)


def batchnorm_channels_eval_forward(X, gamma, beta, running_mean, running_var, eps=1e-5, *,
                                    relu=False):
    """Inference for X (B, C, ...): the running statistics (C,) per channel (+ ReLU)."""
    X = v.norm_input("X", X, 3, "(B, C, ...): per channel over every other axis")
    gamma, beta = v.affine_params(X, gamma, beta, (X.shape[1],), "(C,), one per channel")
    Z2 = bn.batchnorm_eval_forward(channel_rows(X), gamma, beta, running_mean, running_var, eps,
                                   relu=relu)
    return from_channel_rows(Z2, X.shape)


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
    g = back(channel_rows(dZ), cache.bn, full=full)
    relu_dZ = getattr(g, "dZ", None)
    return ChannelBatchNormGrads(
        from_channel_rows(g.dY, cache.shape), g.dgamma, g.dbeta, g.dmean, g.dvar,
        None if g.dYhat is None else from_channel_rows(g.dYhat, cache.shape),
        None if relu_dZ is None else from_channel_rows(relu_dZ, cache.shape))
