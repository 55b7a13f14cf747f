"""P2.4: whitening batch norm -- decorrelate the features, not just scale them.

Rows are samples; Y is (B, M). Training mode, per group of features (all M
features by default, `group_size` g otherwise):
    m  = mean_i Y                      Yc = Y − 1mᵀ                 (B, g)
    Σ  = YcᵀYc/B + εI                  (g, g), a graph node (dcov)
    Ŷ  = Yc W(Σ)                       W(Σ) by `method`:
        zca       W = Σ^(−½) = D Λ^(−½) Dᵀ          (Σ = D Λ Dᵀ, eigh)
        pca       W = D Λ^(−½)        (rotates into the eigenbasis: output axes
                                       follow the eigenvectors, which swap and flip
                                       between batches; eigenvector signs are fixed
                                       so the largest-magnitude entry is positive)
        cholesky  W = L^(−ᵀ)          (Σ = L Lᵀ)
        newton    W = Z_T/√tr Σ after T coupled Newton–Schulz steps on Σ/tr Σ
                  (IterNorm: no eigendecomposition; approximate for small T,
                   → Σ^(−½) as T grows, and stable once converged, so more
                   iterations never hurt; IterNorm's default is T = 5; see
                   nnkit._whitening_algebra)
    Z  = γ ⊙ Ŷ + β                     H = max(Z, 0)   (whitening_relu_*)
ZCA gives Cov(Ŷ) = ŶᵀŶ/B = Σ_Y (Σ_Y + εI)⁻¹ with Σ_Y = YcᵀYc/B: the identity
as ε → 0 when B > M. With B ≤ M, Σ_Y is rank deficient (rank ≤ B − 1) and
only ε keeps Σ invertible; the output is then whitened in the span of the
batch and shrunk to ~0 elsewhere, and `cache.cond` (the condition number of
Σ + εI) is ~λ_max/ε.

Groups: features [0, g), [g, 2g), ... are whitened independently; when g does
not divide M the last group is smaller (M mod g features). Σ is then block
diagonal: `cache.cov` and `dcov` are (M, M) with zeros outside the blocks
(those entries are never read, so their gradient is 0).

Backward (given dZ, or dH for the fused ReLU; dŶ = γ ⊙ dZ):
    dβ = Σ_i dZ, dγ = Σ_i dZ ⊙ Ŷ, dW = Ycᵀ dŶ
    dΣ from dW through the method (below), symmetric
    dm = −W(γ ⊙ dβ) − (2/B) dΣ Σ_i Yc          (total derivative: m feeds Σ and Ŷ)
    dY = (dŶ − colmean dŶ) Wᵀ + (2/B) Yc dΣ
ZCA's dΣ uses the divided-difference form of the derivative of the matrix
function f(Σ) = Σ^(−½): with s = √λ,
    dΣ = D (F ∘ Dᵀ sym(dW) D) Dᵀ,   F_ij = −1/(s_i s_j (s_i + s_j))
(F_ii = f′(λ_i) = −½ λ_i^(−3/2) is the same formula), finite for every λ > 0:
there is no 1/(λ_i − λ_j) anywhere, so repeated eigenvalues are harmless.
PCA's W depends on the eigenvectors themselves, so its gradient does contain
1/(λ_j − λ_i) and is undefined at repeated eigenvalues -- that is the point.
Cholesky's backward is the standard one (Murray 2016); Newton's runs back
through the T iterations exactly.

Σ is a graph node: the functions of Σ read its symmetric part (Σ + Σᵀ)/2, so
dcov is symmetric and a finite-difference check of entry (i, j) agrees with it.

The B-sized work (centering, the covariance syrk, the B×g×g products and the
elementwise passes) runs in the Cython kernels; the g×g algebra (eigh through
LAPACK, the divided differences) is nnkit._whitening_algebra, batched over
equal-size groups.

Convolutional input: Y (B, C, ...) -- a conv net's (B, C, H, W) -- whitens
the C channels over every other axis, as the decorrelated-batch-norm authors
do for conv layers (Huang et al. 2018): the (B·H·W, C) channel-last rows are
the B of the formulas above, and the results go back to Y's shape. The cache
then keeps the rows (Y, Yc, yhat are (B·H·W, C)) and `shape`, the input's
shape; dY and dYhat come back in it.

Running statistics (layer, inference): running_mean and the running whitening
matrix W (per group) are exponential averages with `momentum`:
    running ← (1 − momentum)·running + momentum·batch
W comes from the biased Σ + εI of the batch (as IterNorm and DBN do).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import whitening as _k
from .norms import channel_rows, from_channel_rows
from ._threads import kernel_threads, serial_blas
from ._whitening_algebra import (METHODS, backward_algebra, block_diag, blocks_of,
                                 forward_algebra, kernel_args, stacks, transpose)

# Below this many multiply-adds per group product (B·g²) a step runs with
# SciPy's OpenBLAS on one thread: the products are too small for a second
# thread to pay for its wake-up, and a pool beside other processes stalls at
# every synchronisation. Larger steps keep every thread (their GEMMs scale on
# an idle machine); NNKIT_SERIAL_BLAS=1 forces one thread for them too.
SERIAL_BLAS_MAX = 1 << 21


def _blas_policy(B: int, g: int):
    """OpenBLAS on one thread for small steps (or NNKIT_SERIAL_BLAS=1)."""
    return serial_blas(B * g * g < SERIAL_BLAS_MAX
                       or os.environ.get("NNKIT_SERIAL_BLAS", "") not in ("", "0"))


EPS_WHY = ("whitening needs Σ + εI positive definite: Σ is singular whenever "
           "B ≤ M or a feature is constant")


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class WhiteningCache:
    """What `whitening_backward` needs: the centred input, the covariance blocks and
    the whitening matrices of each group (`cond` is the condition number of Σ + εI).

    Attributes
    ----------
    Y : ndarray
        (B, M) the input (never modified), or the (B·F, C) channel-last rows of a (B, C,
        ...) input
    gamma : ndarray
        (M,)
    beta : ndarray
        (M,)
    eps : float
        ε added to the covariance's diagonal
    method : str
        "zca", "pca", "cholesky" or "newton"
    group_size : int
        g (M when no grouping)
    iterations : int
        T (newton)
    relu : bool
        True when the output is H = ReLU(Z)
    mean : ndarray
        (M,) m
    colsum : ndarray
        (M,) Σ_i Yc in float64 (~rounding; keeps dmean exact)
    Yc : ndarray
        (B, M) Y − m
    yhat : ndarray
        (B, M) Ŷ (a field: the kernels store it for the backward)
    covs : list
        stacks of Σ blocks, see _whitening_algebra.stacks
    Ws : list
        stacks of whitening matrices (Ŷ_k = Yc_k W_k)
    aux : list
        per stack: what the method's backward needs
    shape : tuple | None
        the input's shape when it was (B, C, ...), else None
    """
    Y: np.ndarray            # (B, M) the input (never modified), or the
                             # (B·F, C) channel-last rows of a (B, C, ...) input
    gamma: np.ndarray        # (M,)
    beta: np.ndarray         # (M,)
    eps: float
    method: str
    group_size: int          # g (M when no grouping)
    iterations: int          # T (newton)
    relu: bool
    mean: np.ndarray         # (M,) m
    colsum: np.ndarray       # (M,) Σ_i Yc in float64 (~rounding; keeps dmean exact)
    Yc: np.ndarray           # (B, M) Y − m
    yhat: np.ndarray         # (B, M) Ŷ (a field: the kernels store it for the backward)
    covs: list               # stacks of Σ blocks, see _whitening_algebra.stacks
    Ws: list                 # stacks of whitening matrices (Ŷ_k = Yc_k W_k)
    aux: list = field(repr=False)   # per stack: what the method's backward needs
    shape: tuple | None = None      # the input's shape when it was (B, C, ...), else None

    @property
    def cov(self) -> np.ndarray:
        """Σ = YcᵀYc/B + εI, (M, M) block diagonal (zeros between groups)."""
        return block_diag(self.covs)

    @property
    def cov_blocks(self) -> list[np.ndarray]:
        return [b for s in self.covs for b in s]

    @property
    def whitening_matrix(self) -> np.ndarray:
        """W with Ŷ = Yc W, (M, M) block diagonal."""
        return block_diag(self.Ws)

    @property
    def eigvals(self) -> list[np.ndarray]:
        """Eigenvalues of each group's Σ + εI (ascending); computed for zca/pca."""
        if self.method in ("zca", "pca"):
            return [lam for a in self.aux for lam in a["lam"]]
        return [np.linalg.eigvalsh(b) for b in self.cov_blocks]

    @property
    def conds(self) -> np.ndarray:
        """Condition number λ_max/λ_min of Σ + εI per group."""
        return np.array([float(l[-1] / l[0]) for l in self.eigvals])

    @property
    def cond(self) -> float:
        """Worst condition number of Σ + εI over the groups (~λ_max/ε when B ≤ M)."""
        return float(self.conds.max())



class WhiteningGrads(NamedTuple):
    """Every gradient of whitening batch norm (P2.4), returned by `whitening_backward`.

    Attributes
    ----------
    dY : ndarray
        (B, M)
    dgamma : ndarray
        (M,)
    dbeta : ndarray
        (M,)
    dmean : ndarray
        (M,) total derivative w.r.t. m
    dcov : ndarray | None
        (M, M) ∂L/∂Σ, symmetric, block diagonal (None if full=False)
    dYhat : ndarray | None
        (B, M) γ ⊙ dZ (None if full=False)
    """
    dY: np.ndarray            # (B, M)
    dgamma: np.ndarray        # (M,)
    dbeta: np.ndarray         # (M,)
    dmean: np.ndarray         # (M,) total derivative w.r.t. m
    dcov: np.ndarray | None   # (M, M) ∂L/∂Σ, symmetric, block diagonal (None if full=False)
    dYhat: np.ndarray | None  # (B, M) γ ⊙ dZ (None if full=False)


class WhiteningReLUGrads(NamedTuple):
    """`WhiteningGrads` plus `dZ`, returned by `whitening_relu_backward`.

    Attributes
    ----------
    dY : ndarray
        (B, M)
    dgamma : ndarray
        (M,)
    dbeta : ndarray
        (M,)
    dmean : ndarray
        (M,) total derivative w.r.t. m
    dcov : ndarray | None
        (M, M) ∂L/∂Σ (None if full=False)
    dYhat : ndarray | None
        (B, M) γ ⊙ dZ (None if full=False)
    dZ : ndarray | None
        (B, M) dH ⊙ [Z > 0] (None if full=False)
    """
    dY: np.ndarray
    dgamma: np.ndarray
    dbeta: np.ndarray
    dmean: np.ndarray
    dcov: np.ndarray | None
    dYhat: np.ndarray | None
    dZ: np.ndarray | None     # (B, M) dH ⊙ [Z > 0] (None if full=False)


# ------------------------------------------------------------------ forward
CHANNELS_DOC = "(B, C, ...): the C channels whitened over every other axis"


def _channel_input(Y, gamma, beta):
    """A (B, C, ...) input checked, and its (B·F, C) channel-last rows."""
    Y = v.norm_input("Y", Y, 3, CHANNELS_DOC)
    gamma, beta = v.affine_params(Y, gamma, beta, (Y.shape[1],), "(C,), one per channel")
    return Y, channel_rows(Y), gamma, beta


def _forward(Y, gamma, beta, eps, method, group_size, iterations, relu, out):
    if v.ndim_of(Y) >= 3:     # (B, C, ...): whiten the channels, rows of (B·F, C)
        Y4, Y, gamma, beta = _channel_input(Y, gamma, beta)
        Z4 = v.out_array(out, Y4.shape, Y4.dtype)
        if out is not None:
            v.no_overlap(Z4, "out", Y=Y4, gamma=gamma, beta=beta)
        Z, cache = _forward(Y, gamma, beta, eps, method, group_size, iterations, relu, None)
        return (from_channel_rows(Z, Y4.shape, Z4),
                dataclasses.replace(cache, shape=Y4.shape))
    Y, gamma, beta = v.feature_params(Y, gamma, beta)
    eps = v.eps_positive(eps, EPS_WHY)
    method = v.choice("method", method, METHODS)
    iterations = v.positive_int("iterations", iterations)
    B, M = Y.shape
    v.batch_for_statistics("Y", B, "whitening batch norm")
    g = v.group_size(group_size, M)
    Z = v.out_array(out, (B, M), Y.dtype)
    v.no_overlap(Z, "out", Y=Y, gamma=gamma, beta=beta)
    nt = kernel_threads(beside_blas=True)
    with _blas_policy(B, g):
        return _forward_kernels(Y, gamma, beta, eps, method, g, iterations, relu, Z, nt)


def _forward_kernels(Y, gamma, beta, eps, method, g, iterations, relu, Z, nt):
    B, M = Y.shape
    mean = np.empty(M, Y.dtype)
    colsum = np.empty(M, np.float64)
    Yc = np.empty_like(Y)
    _k.center(Y, mean, colsum, Yc, nt)
    covs = stacks(M, g, Y.dtype)
    _k.covariance(Yc, g, eps, *kernel_args(covs))
    Ws, aux = [], []
    with np.errstate(all="ignore"):      # a non-finite Y propagates as NaN
        for S in covs:
            W, a = forward_algebra(S, method, iterations)
            Ws.append(W.astype(Y.dtype, copy=False))
            aux.append(a)
    yhat = np.empty_like(Y)
    _k.apply(Yc, g, *kernel_args(Ws), gamma, beta, relu, yhat, Z, nt)
    return Z, WhiteningCache(Y, gamma, beta, eps, method, g, iterations, relu, mean,
                             colsum, Yc, yhat, covs, Ws, aux)


def whitening_forward(Y, gamma, beta, eps=1e-5, method="zca", group_size=None, *,
                      iterations=5, out=None):
    """Whitening batch norm (training mode).  Y (B, M), B ≥ 2 -> Z (B, M), cache.

    Z = γ ⊙ Ŷ + β with Ŷ = Yc W(Σ); method in zca, pca, cholesky, newton
    (`iterations` T for newton); group_size g whitens groups of g features
    (the last group is smaller when g does not divide M). eps must be > 0.
    Y (B, C, ...) with γ, β (C,) whitens the C channels over every other
    axis (the (B·F, C) rows; Z in Y's shape, see the module doc).
    """
    return _forward(Y, gamma, beta, eps, method, group_size, iterations, False, out)


def whitening_relu_forward(Y, gamma, beta, eps=1e-5, method="zca", group_size=None, *,
                           iterations=5, out=None):
    """Fused whitening BN + ReLU: H = max(γ ⊙ Ŷ + β, 0)."""
    return _forward(Y, gamma, beta, eps, method, group_size, iterations, True, out)


# ----------------------------------------------------------------- backward
def _backward(dout, cache: WhiteningCache, full, out, name):
    full = v.flag("full", full)
    Y = cache.Y
    if cache.shape is not None:     # a (B, C, ...) input: through its channel rows
        dout = v.upstream(name, dout, cache.shape, Y.dtype)
        dY4 = v.out_array(out, cache.shape, Y.dtype)
        if out is not None:
            v.no_overlap(dY4, "out", **{name: dout, "Y": Y})
        g = list(_backward(channel_rows(dout), dataclasses.replace(cache, shape=None), full,
                           None, name))
        g[0] = from_channel_rows(g[0], cache.shape, dY4)
        for i in (5, 6):            # dYhat, the ReLU's dZ
            if g[i] is not None:
                g[i] = from_channel_rows(g[i], cache.shape)
        return tuple(g)
    dout = v.upstream(name, dout, Y.shape, Y.dtype)
    B, M = Y.shape
    g = cache.group_size
    dY = v.out_array(out, Y.shape, Y.dtype)
    v.no_overlap(dY, "out", **{name: dout, "Y": Y})
    nt = kernel_threads(beside_blas=True)
    with _blas_policy(B, g):
        return _backward_kernels(dout, cache, full, dY, nt)


def _backward_kernels(dout, cache, full, dY, nt):
    Y = cache.Y
    B, M = Y.shape
    g = cache.group_size
    dZ = np.empty_like(Y) if (full and cache.relu) else None
    dYhat = np.empty_like(Y) if full else None
    dZc = np.empty_like(Y)
    dgamma = np.empty(M, Y.dtype)
    dbeta = np.empty(M, Y.dtype)
    _k.backward_pointwise(dout, cache.yhat, cache.gamma, cache.beta, cache.relu,
                          dZc, dZ, dYhat, dgamma, dbeta, nt)
    Ps = stacks(M, g, Y.dtype)
    _k.backward_reduce(cache.Yc, dZc, g, *kernel_args(Ps))

    # per stack: dW = Ycᵀ dŶ, the method's dΣ, then the factors of the
    # expansion and dm (the g×g steps as kernels, see pyx/whitening.pyx)
    As, Xs, dcovs, dmean = [], [], [], np.empty(M, Y.dtype)
    c = 0
    for P, S, W, a in zip(Ps, cache.covs, cache.Ws, cache.aux):
        k, gs = P.shape[0], P.shape[-1]
        sl = slice(c, c + k * gs)
        gam, cs, db = (vec[sl].reshape(k, gs) for vec in (cache.gamma, cache.colsum, dbeta))
        dW = np.empty_like(P)
        _k.whitening_matrix_grad(P, gam, cs, db, B, dW)
        with np.errstate(all="ignore"):
            dS = backward_algebra(dW, S, W, cache.method, a).astype(Y.dtype, copy=False)
        A, X = np.empty_like(P), np.empty_like(P)
        _k.expansion_factors(np.ascontiguousarray(dS), W, gam, cs, db, B, A, X,
                             dmean[sl].reshape(k, gs))
        As.append(A)
        Xs.append(X)
        dcovs.append(dS)
        c += k * gs
    _k.backward_expand(dZc, cache.Yc, g, *kernel_args(As), *kernel_args(Xs), dY)
    dcov = block_diag(dcovs) if full else None
    return dY, dgamma, dbeta, dmean, dcov, dYhat, dZ


def whitening_backward(dZ, cache: WhiteningCache, *, full=True, out=None) -> WhiteningGrads:
    """Every gradient of whitening BN given dZ = ∂L/∂Z: dY, dγ, dβ, dm, dΣ, dŶ.

    full=False skips the (M, M) dcov and the (B, M) dYhat (the layer's path);
    `out` receives dY. For a (B, C, ...) input dY and dYhat have its shape.
    """
    v.cache_of(cache, WhiteningCache, "whitening_forward")
    if cache.relu:
        raise ValueError("cache: comes from whitening_relu_forward; use whitening_relu_backward")
    return WhiteningGrads(*_backward(dZ, cache, full, out, "dZ")[:6])


def whitening_relu_backward(dH, cache: WhiteningCache, *, full=True,
                            out=None) -> WhiteningReLUGrads:
    """Gradients of the fused whitening BN + ReLU given dH; also dZ = dH ⊙ [Z > 0]."""
    v.cache_of(cache, WhiteningCache, "whitening_relu_forward")
    if not cache.relu:
        raise ValueError("cache: comes from whitening_forward; use whitening_backward")
    return WhiteningReLUGrads(*_backward(dH, cache, full, out, "dH"))


# ---------------------------------------------------------------- inference
def whitening_eval_forward(Y, gamma, beta, running_mean, running_whitening, *,
                           group_size=None, relu=False, out=None):
    """Inference: Z = γ ⊙ (Y − running_mean) W_run + β (+ ReLU). Any B ≥ 1.

    running_whitening is the (M, M) block-diagonal W (only its diagonal
    blocks of the group size are read). Y (B, C, ...) with M = C: per
    channel over every other axis, Z in Y's shape.
    """
    if v.ndim_of(Y) >= 3:
        Y4, Y, gamma, beta = _channel_input(Y, gamma, beta)
        Z4 = v.out_array(out, Y4.shape, Y4.dtype)
        if out is not None:
            v.no_overlap(Z4, "out", Y=Y4)
        Z = whitening_eval_forward(Y, gamma, beta, running_mean, running_whitening,
                                   group_size=group_size, relu=relu)
        return from_channel_rows(Z, Y4.shape, Z4)
    Y, gamma, beta = v.feature_params(Y, gamma, beta)
    B, M = Y.shape
    g = v.group_size(group_size, M)
    rm = v.float_array("running_mean", running_mean, 1, "(M,)", dtype=Y.dtype)
    v.same_dim("running_mean", rm.shape[0], M, "running_mean.shape[0] (M)")
    rw = v.float_array("running_whitening", running_whitening, 2, "(M, M)", dtype=Y.dtype)
    if rw.shape != (M, M):
        raise ValueError(f"running_whitening: expected shape {(M, M)}, got {rw.shape}")
    return whitening_eval_stacks(Y, gamma, beta, rm, blocks_of(rw, M, g), g, relu, out)


def whitening_eval_stacks(Y, gamma, beta, rm, Wstacks, g, relu, out=None):
    """Inference on checked arrays with W as group stacks (the layer's fast path)."""
    Z = v.out_array(out, Y.shape, Y.dtype)
    v.no_overlap(Z, "out", Y=Y)
    Yc = Y - rm
    yhat = np.empty_like(Y)
    _k.apply(Yc, g, *kernel_args(Wstacks), gamma, beta, v.flag("relu", relu), yhat, Z,
             kernel_threads(beside_blas=True))
    return Z
