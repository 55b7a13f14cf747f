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
        newton    W = P_T/√tr Σ, P_0 = I, P_k = ½(3P_{k−1} − P_{k−1}³ Σ/tr Σ)
                  (IterNorm: T Newton–Schulz iterations, no eigendecomposition;
                   approximate for small T, → Σ^(−½) as T grows until it has
                   converged; this uncoupled iteration then amplifies rounding
                   errors (~3× per step in float64 on a cond ~10 Σ: 1e-14 at
                   T = 8, 1e-9 at T = 20, 1e-3 at T = 30), so keep T small --
                   IterNorm uses 5)
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
LAPACK, the divided differences) is NumPy, batched over equal-size groups.

Running statistics (layer, inference): running_mean and the running whitening
matrix W (per group) are exponential averages with `momentum`:
    running ← (1 − momentum)·running + momentum·batch
W comes from the biased Σ + εI of the batch (as IterNorm and DBN do).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

import scipy.linalg.lapack as _lapack_mod

from . import _validate as v
from ._kernels import whitening as _k
from .layers import Layer

METHODS = ("zca", "pca", "cholesky", "newton")


# ---------------------------------------------------------------- groups
# Group matrices travel as a list of 3-D stacks: [full (n_full, g, g)] plus
# [rem (1, r, r)] when g does not divide M. Batched NumPy calls act on each
# stack; the kernels take full and rem[0] (or None).

def _stacks(M: int, g: int, dtype) -> list[np.ndarray]:
    out = [np.empty((M // g, g, g), dtype)]
    if M % g:
        out.append(np.empty((1, M % g, M % g), dtype))
    return out


def _kargs(stacks: list[np.ndarray]):
    """(full, rem) as the kernels take them."""
    return stacks[0], (stacks[1][0] if len(stacks) > 1 else None)


def _tr(A: np.ndarray) -> np.ndarray:
    return np.swapaxes(A, -1, -2)


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + _tr(A))


def block_diag(stacks: list[np.ndarray]) -> np.ndarray:
    """The (M, M) block-diagonal matrix of the groups' (g, g) blocks."""
    blocks = [b for s in stacks for b in s]
    M = sum(b.shape[0] for b in blocks)
    out = np.zeros((M, M), blocks[0].dtype)
    c = 0
    for b in blocks:
        k = b.shape[0]
        out[c:c + k, c:c + k] = b
        c += k
    return out


def _blocks_of(A: np.ndarray, M: int, g: int) -> list[np.ndarray]:
    """Inverse of block_diag: the diagonal (g, g) blocks of an (M, M) matrix."""
    full = np.stack([A[c:c + g, c:c + g] for c in range(0, M - M % g, g)])
    out = [np.ascontiguousarray(full)]
    if M % g:
        r = M % g
        out.append(np.ascontiguousarray(A[M - r:, M - r:])[None])
    return out


# ------------------------------------------------------ method algebra (g×g)
# Each forward returns W (Ŷ = Yc W) and what its backward needs; each backward
# maps dW = Ycᵀ dŶ to the symmetric dΣ. All act on one stack (k, g, g).

def _mm(A: np.ndarray, B: np.ndarray, ta: bool = False, tb: bool = False,
        alpha: float = 1.0) -> np.ndarray:
    """Stacked op(A) @ op(B) for (k, g, g) stacks through the kernels' BLAS."""
    A = np.ascontiguousarray(A)
    B = np.ascontiguousarray(B, dtype=A.dtype)
    C = np.empty(A.shape, A.dtype)
    _k.gemm_stack(A, B, C, ta, tb, alpha)
    return C


def _lapack(name: str, dtype):
    return getattr(_lapack_mod, ("s" if dtype == np.float32 else "d") + name)


def _eigh(S: np.ndarray):
    """Eigenvalues (ascending) and eigenvectors of each block, LAPACK syevd (SciPy's)."""
    syevd = _lapack("syevd", S.dtype)
    lam = np.empty(S.shape[:-1], S.dtype)
    D = np.empty_like(S)
    for k in range(S.shape[0]):
        w, vec, info = syevd(S[k], compute_v=1, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"syevd failed (info = {info}) on group {k}")
        lam[k], D[k] = w, vec
    return lam, D


def _cholesky_inverse(S: np.ndarray):
    """L (Σ = L Lᵀ, lower) and L⁻¹ per block: LAPACK potrf + trtri."""
    potrf, trtri = _lapack("potrf", S.dtype), _lapack("trtri", S.dtype)
    L = np.empty_like(S)
    Linv = np.empty_like(S)
    for k in range(S.shape[0]):
        c, info = potrf(S[k], lower=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"potrf: Σ of group {k} is not positive definite "
                                        f"(info = {info})")
        L[k] = np.tril(c)
        inv, info = trtri(L[k], lower=1)
        Linv[k] = np.tril(inv)
    return L, Linv


def _fix_signs(D: np.ndarray) -> np.ndarray:
    """Eigenvector signs: the largest-magnitude entry of each column positive.

    LAPACK's signs are arbitrary; this choice is locally constant, so W and
    its derivative are well defined wherever the eigenvalues are distinct.
    """
    idx = np.argmax(np.abs(D), axis=-2)                     # (k, g)
    top = np.take_along_axis(D, idx[..., None, :], axis=-2)  # (k, 1, g)
    return D * np.where(top < 0, -1, 1).astype(D.dtype)


def _forward_algebra(S: np.ndarray, method: str, iterations: int) -> tuple:
    if method in ("zca", "pca"):
        lam, D = _eigh(S)                         # ascending
        if method == "pca":
            D = _fix_signs(D)
        s = np.sqrt(lam)
        Ds = D / s[..., None, :]                  # D Λ^(−½)
        W = Ds if method == "pca" else _mm(Ds, D, tb=True)
        return np.ascontiguousarray(W), dict(lam=lam, D=D)
    if method == "cholesky":
        L, Linv = _cholesky_inverse(S)
        return np.ascontiguousarray(_tr(Linv)), dict(L=L)
    # newton: P_k = ½(3 P_{k−1} − P_{k−1}³ S_N), S_N = Σ/tr Σ, W = P_T/√tr Σ
    t = np.trace(S, axis1=-2, axis2=-1)[:, None, None]      # (k, 1, 1)
    SN = S / t
    P = np.broadcast_to(np.eye(S.shape[-1], dtype=S.dtype), S.shape).copy()
    Ps = [P]
    for _ in range(iterations):
        P = 1.5 * P - _mm(_mm(_mm(P, P), P), SN, alpha=0.5)
        Ps.append(P)
    W = P / np.sqrt(t)
    return np.ascontiguousarray(W), dict(t=t, SN=SN, Ps=Ps)


def _backward_algebra(dW: np.ndarray, S: np.ndarray, W: np.ndarray, method: str,
                      aux: dict) -> np.ndarray:
    if method == "zca":
        # dΣ = D (F ∘ Dᵀ sym(dW) D) Dᵀ, F_ij = −1/(s_i s_j (s_i + s_j))
        lam, D = aux["lam"], aux["D"]
        s = np.sqrt(lam)
        F = -1.0 / (s[..., :, None] * s[..., None, :] * (s[..., :, None] + s[..., None, :]))
        inner = F * _mm(D, _mm(_sym(dW), D), ta=True)
        return _mm(_mm(D, inner), D, tb=True)
    if method == "pca":
        # W = D Λ^(−½): D̄ = dW Λ^(−½), λ̄_j = −½ λ_j^(−3/2) (Dᵀ dW)_jj;
        # eigenvector adjoint: dΣ = D (diag λ̄ + Fp ∘ Dᵀ D̄) Dᵀ, Fp_ij = 1/(λ_j − λ_i)
        lam, D = aux["lam"], aux["D"]
        s = np.sqrt(lam)
        Dbar = dW / s[..., None, :]
        lbar = -0.5 * np.sum(D * dW, axis=-2) / (lam * s)
        diff = lam[..., None, :] - lam[..., :, None]
        with np.errstate(divide="ignore"):
            Fp = np.where(diff != 0, 1.0 / np.where(diff != 0, diff, 1), 0.0)
        inner = Fp * _mm(D, Dbar, ta=True)
        idx = np.arange(lam.shape[-1])
        inner[..., idx, idx] += lbar
        return _sym(_mm(_mm(D, inner), D, tb=True))
    if method == "cholesky":
        # W = L⁻ᵀ: L̄ = −tril(W dWᵀ W); Murray: dΣ = sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹),
        # Φ = lower triangle with the diagonal halved
        L = aux["L"]
        Lbar = -np.tril(_mm(_mm(W, dW, tb=True), W))
        Phi = np.tril(_mm(L, Lbar, ta=True))
        idx = np.arange(L.shape[-1])
        Phi[..., idx, idx] *= 0.5
        return _sym(_mm(_mm(W, Phi), W, tb=True))
    # newton: back through W = P_T/√t and the T iterations
    t, SN, Ps = aux["t"], aux["SN"], aux["Ps"]
    PT = Ps[-1]
    G = dW / np.sqrt(t)
    dt = -0.5 * t ** -1.5 * np.sum(dW * PT, axis=(-2, -1), keepdims=True)
    dSN = np.zeros_like(SN)
    for Q in reversed(Ps[:-1]):
        # P = 1.5 Q − 0.5 Q Q Q S_N: adjoints of the three Q factors and of S_N
        Q2 = _mm(Q, Q)
        Q2S = _mm(Q2, SN)
        QS = _mm(Q, SN)
        dSN -= _mm(_mm(Q2, Q), G, ta=True, alpha=0.5)
        G = 1.5 * G - 0.5 * (_mm(G, Q2S, tb=True) + _mm(_mm(Q, G, ta=True), QS, tb=True)
                             + _mm(_mm(Q2, G, ta=True), SN, tb=True))
    # S_N = Σ/t with t = tr Σ
    dt = dt - np.sum(dSN * S, axis=(-2, -1), keepdims=True) / t ** 2
    dS = dSN / t + dt * np.eye(S.shape[-1], dtype=S.dtype)
    return _sym(dS)


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class WhiteningCache:
    Y: np.ndarray            # (B, M) the input (never modified)
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
    yhat: np.ndarray         # (B, M) Ŷ
    covs: list               # stacks of Σ blocks, see _stacks
    Ws: list                 # stacks of whitening matrices (Ŷ_k = Yc_k W_k)
    aux: list = field(repr=False)   # per stack: what the method's backward needs

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

    def yhat_cov(self) -> np.ndarray:
        """Cov(Ŷ) = ŶᵀŶ/B (Ŷ has zero column means), (M, M)."""
        Yh = self.yhat.astype(np.float64)
        return Yh.T @ Yh / Yh.shape[0]

    def z(self) -> np.ndarray:
        return self.yhat * self.gamma + self.beta


class WhiteningGrads(NamedTuple):
    dY: np.ndarray            # (B, M)
    dgamma: np.ndarray        # (M,)
    dbeta: np.ndarray         # (M,)
    dmean: np.ndarray         # (M,) total derivative w.r.t. m
    dcov: np.ndarray | None   # (M, M) ∂L/∂Σ, symmetric, block diagonal (None if full=False)
    dYhat: np.ndarray | None  # (B, M) γ ⊙ dZ (None if full=False)


class WhiteningReLUGrads(NamedTuple):
    dY: np.ndarray
    dgamma: np.ndarray
    dbeta: np.ndarray
    dmean: np.ndarray
    dcov: np.ndarray | None
    dYhat: np.ndarray | None
    dZ: np.ndarray | None     # (B, M) dH ⊙ [Z > 0] (None if full=False)


# --------------------------------------------------------------- validation
def _eps_positive(eps) -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps: expected a finite number > 0, got {eps!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"eps: expected a finite number > 0, got {value} (whitening "
                         f"needs Σ + εI positive definite: Σ is singular whenever "
                         f"B ≤ M or a feature is constant)")
    return value


def _method(method) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method: expected one of {list(METHODS)}, got "
                        f"{type(method).__name__} {method!r}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    return method


def _group_size(group_size, M: int) -> int:
    if group_size is None:
        return M
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise TypeError(f"group_size: expected an integer in [1, M = {M}] or None, "
                        f"got {type(group_size).__name__} {group_size!r}")
    if not 1 <= group_size <= M:
        raise ValueError(f"group_size: expected an integer in [1, M = {M}] or None, "
                         f"got {group_size}")
    return int(group_size)


def _iterations(iterations) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise TypeError(f"iterations: expected a positive integer, got "
                        f"{type(iterations).__name__} {iterations!r}")
    if iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations}")
    return int(iterations)


def _check_params(Y, gamma, beta):
    Y = v.float_array("Y", Y, 2, "(B, M)")
    v.nonempty("Y", Y, "(B, M)")
    M = Y.shape[1]
    gamma = v.float_array("gamma", gamma, 1, "(M,)", dtype=Y.dtype)
    beta = v.float_array("beta", beta, 1, "(M,)", dtype=Y.dtype)
    v.same_dim("gamma", gamma.shape[0], M, "gamma.shape[0] (M, the columns of Y)")
    v.same_dim("beta", beta.shape[0], M, "beta.shape[0] (M, the columns of Y)")
    return Y, gamma, beta


# ------------------------------------------------------------------ forward
def _elementwise_threads() -> int:
    """OpenMP threads for the O(B·M) passes of whitening: 1 unless NNKIT_NUM_THREADS asks.

    Each pass sits between BLAS calls whose OpenBLAS threads keep spinning on
    both cores for a while after returning; a second (OpenMP) team then
    fights them for the 2 cores. Measured (B, M) = (1024, 64): 15.9 ms per
    forward + backward with 2 OpenMP threads, 5.1 ms with 1; the passes are
    O(BM) against the O(BM²) BLAS work, so one thread costs little.
    """
    import os
    return v.num_threads() if os.environ.get("NNKIT_NUM_THREADS") else 1


def _forward(Y, gamma, beta, eps, method, group_size, iterations, relu, out):
    Y, gamma, beta = _check_params(Y, gamma, beta)
    eps = _eps_positive(eps)
    method = _method(method)
    iterations = _iterations(iterations)
    B, M = Y.shape
    v.batch_for_statistics("Y", B, "whitening batch norm")
    g = _group_size(group_size, M)
    Z = v.out_array(out, (B, M), Y.dtype)
    v.no_overlap(Z, "out", Y=Y, gamma=gamma, beta=beta)
    nt = _elementwise_threads()

    mean = np.empty(M, Y.dtype)
    colsum = np.empty(M, np.float64)
    Yc = np.empty_like(Y)
    _k.center(Y, mean, colsum, Yc, nt)
    covs = _stacks(M, g, Y.dtype)
    _k.covariance(Yc, g, eps, *_kargs(covs))
    Ws, aux = [], []
    with np.errstate(all="ignore"):      # a non-finite Y propagates as NaN
        for S in covs:
            W, a = _forward_algebra(S, method, iterations)
            Ws.append(W.astype(Y.dtype, copy=False))
            aux.append(a)
    yhat = np.empty_like(Y)
    _k.apply(Yc, g, *_kargs(Ws), gamma, beta, relu, yhat, Z, nt)
    return Z, WhiteningCache(Y, gamma, beta, eps, method, g, iterations, relu, mean,
                             colsum, Yc, yhat, covs, Ws, aux)


def whitening_forward(Y, gamma, beta, eps=1e-5, method="zca", group_size=None, *,
                      iterations=5, out=None):
    """Whitening batch norm (training mode).  Y (B, M), B ≥ 2 -> Z (B, M), cache.

    Z = γ ⊙ Ŷ + β with Ŷ = Yc W(Σ); method in zca, pca, cholesky, newton
    (`iterations` T for newton); group_size g whitens groups of g features
    (the last group is smaller when g does not divide M). eps must be > 0.
    """
    return _forward(Y, gamma, beta, eps, method, group_size, iterations, False, out)


def whitening_relu_forward(Y, gamma, beta, eps=1e-5, method="zca", group_size=None, *,
                           iterations=5, out=None):
    """Fused whitening BN + ReLU: H = max(γ ⊙ Ŷ + β, 0)."""
    return _forward(Y, gamma, beta, eps, method, group_size, iterations, True, out)


# ----------------------------------------------------------------- backward
def _backward(dout, cache: WhiteningCache, full, out, name):
    Y = cache.Y
    dout = v.float_array(name, dout, 2, "(B, M)", dtype=Y.dtype)
    if dout.shape != Y.shape:
        raise ValueError(f"{name}: expected shape {Y.shape} (the forward output), "
                         f"got {dout.shape}")
    B, M = Y.shape
    g = cache.group_size
    dY = v.out_array(out, Y.shape, Y.dtype)
    v.no_overlap(dY, "out", **{name: dout, "Y": Y})
    nt = _elementwise_threads()
    dZ = np.empty_like(Y) if (full and cache.relu) else None
    dYhat = np.empty_like(Y) if full else None
    dZc = np.empty_like(Y)
    dgamma = np.empty(M, Y.dtype)
    dbeta = np.empty(M, Y.dtype)
    _k.backward_pointwise(dout, cache.yhat, cache.gamma, cache.beta, cache.relu,
                          dZc, dZ, dYhat, dgamma, dbeta, nt)
    Ps = _stacks(M, g, Y.dtype)
    _k.backward_reduce(cache.Yc, dZc, g, *_kargs(Ps))

    # per stack: dW = Ycᵀ dŶ = (Ycᵀ dZc + colsum(Yc) (dβ/B)ᵀ) diag γ, then dΣ
    As, Xs, dcovs, dmean = [], [], [], np.empty(M, Y.dtype)
    c = 0
    for P, S, W, a in zip(Ps, cache.covs, cache.Ws, cache.aux):
        k, gs = P.shape[0], P.shape[-1]
        sl = slice(c, c + k * gs)
        gam = cache.gamma[sl].reshape(k, gs)
        cs = cache.colsum[sl].reshape(k, gs).astype(Y.dtype)
        db = dbeta[sl].reshape(k, gs)
        dW = (P + cs[:, :, None] * (db / B)[:, None, :]) * gam[:, None, :]
        with np.errstate(all="ignore"):
            dS = _backward_algebra(dW, S, W, cache.method, a).astype(Y.dtype, copy=False)
        X = (2.0 / B) * dS
        As.append(np.ascontiguousarray(gam[:, :, None] * _tr(W)))   # diag(γ) Wᵀ
        Xs.append(np.ascontiguousarray(X, dtype=Y.dtype))
        dcovs.append(dS)
        # dm = −W (γ ⊙ dβ) − X colsum(Yc)
        # (einsum: no BLAS call, see gemm_stack in pyx/whitening.pyx)
        dm = -np.einsum("kij,kj->ki", W, gam * db) - np.einsum("kij,kj->ki", X, cs)
        dmean[sl] = dm.reshape(-1)
        c += k * gs
    _k.backward_expand(dZc, cache.Yc, g, *_kargs(As), *_kargs(Xs), dY)
    dcov = block_diag(dcovs) if full else None
    return dY, dgamma, dbeta, dmean, dcov, dYhat, dZ


def whitening_backward(dZ, cache: WhiteningCache, *, full=True, out=None) -> WhiteningGrads:
    """Every gradient of whitening BN given dZ = ∂L/∂Z: dY, dγ, dβ, dm, dΣ, dŶ.

    full=False skips the (M, M) dcov and the (B, M) dYhat (the layer's path);
    `out` receives dY.
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
    blocks of the group size are read).
    """
    Y, gamma, beta = _check_params(Y, gamma, beta)
    B, M = Y.shape
    g = _group_size(group_size, M)
    rm = v.float_array("running_mean", running_mean, 1, "(M,)", dtype=Y.dtype)
    v.same_dim("running_mean", rm.shape[0], M, "running_mean.shape[0] (M)")
    rw = v.float_array("running_whitening", running_whitening, 2, "(M, M)", dtype=Y.dtype)
    if rw.shape != (M, M):
        raise ValueError(f"running_whitening: expected shape {(M, M)}, got {rw.shape}")
    return _eval(Y, gamma, beta, rm, _blocks_of(rw, M, g), g, relu, out)


def _eval(Y, gamma, beta, rm, Wstacks, g, relu, out):
    Z = v.out_array(out, Y.shape, Y.dtype)
    v.no_overlap(Z, "out", Y=Y)
    Yc = Y - rm
    yhat = np.empty_like(Y)
    _k.apply(Yc, g, *_kargs(Wstacks), gamma, beta, bool(relu), yhat, Z,
             _elementwise_threads())
    return Z


# -------------------------------------------------------------------- layer
class WhiteningBatchNorm(Layer):
    """Whitening batch norm over features (P2.4), optionally fused with ReLU.

    Training: whiten with the batch's mean and Σ, update running_mean and the
    running whitening matrix (per group, momentum average). Eval: use them.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 method: str = "zca", group_size: int | None = None, iterations: int = 5,
                 relu: bool = False, dtype=np.float64):
        super().__init__()
        num_features = v.positive_int("num_features", num_features)
        self.eps = _eps_positive(eps)
        self.momentum = v.momentum_value(momentum)
        self.method = _method(method)
        self.group_size = _group_size(group_size, num_features)
        self.iterations = _iterations(iterations)
        self.relu = bool(relu)
        dtype = np.dtype(dtype)
        if dtype not in v.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        M, g = num_features, self.group_size
        self.params["gamma"] = np.ones(M, dtype)
        self.params["beta"] = np.zeros(M, dtype)
        self.grads = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.running_mean = np.zeros(M, dtype)
        self._running_W = [np.broadcast_to(np.eye(s.shape[-1], dtype=dtype), s.shape).copy()
                           for s in _stacks(M, g, dtype)]
        self._cache = None

    @property
    def running_whitening(self) -> np.ndarray:
        """The running W, (M, M) block diagonal."""
        return block_diag(self._running_W)

    def forward(self, Y):
        Y = v.float_array("Y", Y, 2, "(B, M)", dtype=self.params["gamma"].dtype)
        v.same_dim("Y", Y.shape[1], self.params["gamma"].shape[0], "Y.shape[1] (num_features)")
        out = self._buffer("Z", Y.shape, Y.dtype)
        gm, bt = self.params["gamma"], self.params["beta"]
        if not self.training:
            self._cache = None
            return _eval(Y, gm, bt, self.running_mean, self._running_W, self.group_size,
                         self.relu, out)
        fwd = whitening_relu_forward if self.relu else whitening_forward
        Z, self._cache = fwd(Y, gm, bt, self.eps, self.method, self.group_size,
                             iterations=self.iterations, out=out)
        mom = self.momentum
        self.running_mean *= 1.0 - mom
        self.running_mean += mom * self._cache.mean
        for run, W in zip(self._running_W, self._cache.Ws):
            run *= 1.0 - mom
            run += mom * W
        return Z

    def backward(self, dout):
        if self._cache is None:
            raise RuntimeError("backward: needs a training-mode forward first "
                               "(eval mode treats the statistics as constants)")
        out = self._buffer("dY", self._cache.Y.shape, self._cache.Y.dtype)
        bwd = whitening_relu_backward if self.relu else whitening_backward
        g = bwd(dout, self._cache, full=False, out=out)
        self.grads["gamma"][...] = g.dgamma
        self.grads["beta"][...] = g.dbeta
        return g.dY
