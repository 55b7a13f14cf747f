"""Whitening matrices of Σ and their derivatives, per group of features (P2.4).

The (g, g) algebra of whitening batch norm (nnkit.whitening holds the
functional pairs; the B-sized work runs in pyx/whitening.pyx): for each
method, the forward W(Σ) with Ŷ = Yc W, and the backward map dW -> dΣ.
Groups travel as stacks of equal-size blocks so batched NumPy and BLAS calls
act on all groups at once; ZCA's steps (the default method's eigh, W and
dW -> dΣ) are kernel calls on the whole stack (pyx/whitening.pyx), the other
methods NumPy on it.

Newton (IterNorm) uses the *coupled* Newton–Schulz iteration (Higham,
Functions of Matrices, §6.3; IterNorm's own form): with A = Σ/tr Σ,
    Y_0 = A, Z_0 = I,  T_k = ½(3I − Z_k Y_k),  Y_{k+1} = Y_k T_k,  Z_{k+1} = T_k Z_k
    Z_k -> A^(−½),  Y_k -> A^(½),   W = Z_T/√tr Σ.
In exact arithmetic Z_k equals the uncoupled P_k = ½(3P − P³A); but the
uncoupled form amplifies rounding once converged (max |Cov(Ŷ) − I| went 6e-4
at T = 10, 1e139 at T = 20, NaN at T = 40 on a 256×8 batch), while in the
coupled form T_k -> I and errors do not grow: more iterations never hurt.
Its backward runs exactly back through the T steps.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.lapack as _lapack_mod

from ._threads import serial_blas
from ._kernels import whitening as _k

METHODS = ("zca", "pca", "cholesky", "newton")


# ---------------------------------------------------------------- groups
# Group matrices travel as a list of 3-D stacks: [full (n_full, g, g)] plus
# [rem (1, r, r)] when g does not divide M. Batched NumPy calls act on each
# stack; the kernels take full and rem[0] (or None).

def stacks(M: int, g: int, dtype) -> list[np.ndarray]:
    out = [np.empty((M // g, g, g), dtype)]
    if M % g:
        out.append(np.empty((1, M % g, M % g), dtype))
    return out


def kernel_args(stacks: list[np.ndarray]):
    """(full, rem) as the kernels take them."""
    return stacks[0], (stacks[1][0] if len(stacks) > 1 else None)


def transpose(A: np.ndarray) -> np.ndarray:
    return np.swapaxes(A, -1, -2)


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + transpose(A))


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


def blocks_of(A: np.ndarray, M: int, g: int) -> list[np.ndarray]:
    """Inverse of block_diag: the diagonal (g, g) blocks of an (M, M) matrix."""
    full = np.stack([A[c:c + g, c:c + g] for c in range(0, M - M % g, g)])
    out = [np.ascontiguousarray(full)]
    if M % g:
        r = M % g
        # a copy, not ascontiguousarray: a 1×1 (or otherwise contiguous) slice
        # would stay a view of A, read-only when A is
        out.append(A[M - r:, M - r:].copy()[None])
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
    _k.gemm_stack(A, B, ta, tb, alpha, C)
    return C


def _lapack(name: str, dtype):
    return getattr(_lapack_mod, ("s" if dtype == np.float32 else "d") + name)


def _eigh(S: np.ndarray):
    """Eigenvalues (ascending) and eigenvectors of each block, LAPACK syevd (SciPy's),
    in the input's precision (float32 Σ -> ssyevd), on ONE OpenBLAS thread.

    One thread: syevd's tridiagonal reduction is BLAS-2 (memory-bound) and its
    small BLAS-3 pieces do not pay for waking the pool; with two threads one
    descheduled thread stalls the other at every synchronisation.
    float32 input keeps a float32 eigendecomposition: its eigenvalues carry
    ~1e-7 λ_max absolute error, so Σ + εI with cond up to ~1e5 (ε = 1e-5 on
    unit-scale features) is still resolved; float64 input for worse-
    conditioned batches (B ≤ M with a tiny ε) -- `cache.cond` reports it.
    """
    S = np.ascontiguousarray(S)
    lam = np.empty(S.shape[:-1], S.dtype)
    D = np.empty_like(S)
    info = np.zeros(S.shape[0], np.intc)
    with serial_blas():
        _k.eigh_stack(S, lam, D, info)
    bad = np.flatnonzero(info)
    if bad.size:
        raise np.linalg.LinAlgError(f"syevd failed (info = {info[bad[0]]}) on group {bad[0]}")
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


def forward_algebra(S: np.ndarray, method: str, iterations: int) -> tuple:
    if method in ("zca", "pca"):
        lam, D = _eigh(S)                         # ascending
        if method == "pca":
            D = _fix_signs(D)
        if method == "pca":
            W = D / np.sqrt(lam)[..., None, :]                 # D Λ^(−½)
        else:
            W = np.empty_like(D)                               # D Λ^(−½) Dᵀ, symmetric
            _k.zca_matrix_stack(D, lam, W)
        return np.ascontiguousarray(W), dict(lam=lam, D=D)
    if method == "cholesky":
        L, Linv = _cholesky_inverse(S)
        return np.ascontiguousarray(transpose(Linv)), dict(L=L)
    # newton, coupled: Y_0 = A = Σ/tr Σ, Z_0 = I, T = ½(3I − Z Y), Y ← Y T, Z ← T Z
    t = np.trace(S, axis1=-2, axis2=-1)[:, None, None]      # (k, 1, 1)
    I = np.broadcast_to(np.eye(S.shape[-1], dtype=S.dtype), S.shape)
    Yk, Zk = S / t, I.copy()
    Ys, Zs = [Yk], [Zk]
    for _ in range(iterations):
        Tk = 1.5 * I - _mm(Zk, Yk, alpha=0.5)
        Yk, Zk = _mm(Yk, Tk), _mm(Tk, Zk)
        Ys.append(Yk)
        Zs.append(Zk)
    W = Zk / np.sqrt(t)
    return np.ascontiguousarray(W), dict(t=t, Ys=Ys, Zs=Zs)


def backward_algebra(dW: np.ndarray, S: np.ndarray, W: np.ndarray, method: str,
                      aux: dict) -> np.ndarray:
    if method == "zca":
        # dΣ = D (F ∘ Dᵀ sym(dW) D) Dᵀ, F_ij = −1/(s_i s_j (s_i + s_j))
        # (one kernel call for the stack: zca_backward_stack in pyx/whitening.pyx)
        dS = np.empty_like(dW)
        _k.zca_backward_stack(dW, aux["D"], aux["lam"], dS)
        return dS
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
    # newton: back through W = Z_T/√t and the T coupled steps. For one step
    # T = 1.5I − ½ Z Y, Y' = Y T, Z' = T Z, the adjoints are
    #   T̄ = Yᵀ Ȳ' + Z̄' Zᵀ,  Ȳ = Ȳ' Tᵀ − ½ Zᵀ T̄,  Z̄ = Tᵀ Z̄' − ½ T̄ Yᵀ
    t, Ys, Zs = aux["t"], aux["Ys"], aux["Zs"]
    I = np.broadcast_to(np.eye(S.shape[-1], dtype=S.dtype), S.shape)
    Zbar = dW / np.sqrt(t)
    Ybar = np.zeros_like(Zbar)
    dt = -0.5 * t ** -1.5 * np.sum(dW * Zs[-1], axis=(-2, -1), keepdims=True)
    for Yk, Zk in zip(reversed(Ys[:-1]), reversed(Zs[:-1])):
        Tk = 1.5 * I - _mm(Zk, Yk, alpha=0.5)
        Tbar = _mm(Yk, Ybar, ta=True) + _mm(Zbar, Zk, tb=True)
        Ybar = _mm(Ybar, Tk, tb=True) - _mm(Zk, Tbar, ta=True, alpha=0.5)
        Zbar = _mm(Tk, Zbar, ta=True) - _mm(Tbar, Yk, tb=True, alpha=0.5)
    dA = Ybar                                          # Y_0 = A = Σ/t
    dt = dt - np.sum(dA * S, axis=(-2, -1), keepdims=True) / t ** 2
    dS = dA / t + dt * I
    return _sym(dS)
