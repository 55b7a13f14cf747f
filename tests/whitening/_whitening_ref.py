"""An independent float64 NumPy reference for whitening batch norm (P2.4),
shared by the test_whitening_*.py files.

Written from the textbook formulas; shares no code with nnkit.whitening: the
ZCA backward solves the Sylvester equation of Σ^(½)
(scipy.linalg.solve_sylvester) instead of using divided differences.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla


def ref_groups(M, g):
    g = g or M
    return [(c, min(g, M - c)) for c in range(0, M, g)]


def ref_whiten(S, method, T=5):
    """W with Ŷ = Yc W, from the definitions (float64)."""
    if method == "zca":
        # Σ^(−½) = (Σ^(½))⁻¹ via scipy's matrix square root (Schur based)
        return np.linalg.inv(np.real(sla.sqrtm(S)))
    if method == "pca":
        lam, D = np.linalg.eigh(S)
        for j in range(D.shape[1]):          # largest |entry| positive
            if D[np.argmax(np.abs(D[:, j])), j] < 0:
                D[:, j] *= -1
        return D @ np.diag(lam ** -0.5)
    if method == "cholesky":
        L = np.linalg.cholesky(S)
        return sla.solve_triangular(L, np.eye(len(S)), lower=True).T
    t = np.trace(S)
    P = np.eye(len(S))
    for _ in range(T):
        P = 0.5 * (3 * P - np.linalg.matrix_power(P, 3) @ (S / t))
    return P / np.sqrt(t)


def ref_forward(Y, gamma, beta, eps, method="zca", g=None, T=5, relu=False):
    Y = np.asarray(Y, np.float64)
    B, M = Y.shape
    Yc = Y - Y.mean(axis=0)
    Yh = np.empty_like(Y)
    for c, k in ref_groups(M, g):
        S = Yc[:, c:c + k].T @ Yc[:, c:c + k] / B + eps * np.eye(k)
        Yh[:, c:c + k] = Yc[:, c:c + k] @ ref_whiten(S, method, T)
    Z = gamma * Yh + beta
    return (np.maximum(Z, 0) if relu else Z), Yh


def ref_zca_backward(Y, gamma, beta, eps, dZ, g=None):
    """dY, dgamma, dbeta, dcov (block diagonal) by the Sylvester route.

    R = Σ^(½), W = R⁻¹: dW = −W dR W and R dR + dR R = dΣ, so with
    Ḡ = sym(Ycᵀ dŶ): R̄ = −W Ḡ W and dΣ solves R dΣ + dΣ R = R̄.
    """
    Y = np.asarray(Y, np.float64)
    B, M = Y.shape
    Yc = Y - Y.mean(axis=0)
    _, Yh = ref_forward(Y, gamma, beta, eps, "zca", g)
    dbeta = dZ.sum(axis=0)
    dgamma = (dZ * Yh).sum(axis=0)
    dYh = dZ * gamma
    dYc = np.empty_like(Y)
    dcov = np.zeros((M, M))
    for c, k in ref_groups(M, g):
        Ycg = Yc[:, c:c + k]
        S = Ycg.T @ Ycg / B + eps * np.eye(k)
        R = np.real(sla.sqrtm(S))
        W = np.linalg.inv(R)
        Gs = Ycg.T @ dYh[:, c:c + k]
        Gs = 0.5 * (Gs + Gs.T)
        dS = sla.solve_sylvester(R, R, -W @ Gs @ W)
        dcov[c:c + k, c:c + k] = dS
        dYc[:, c:c + k] = dYh[:, c:c + k] @ W.T + Ycg @ (dS + dS.T) / B
    dY = dYc - dYc.mean(axis=0)
    return dY, dgamma, dbeta, dcov


def data(B, M, seed=0, mix=0.8, dtype=np.float64, offset=3.0):
    """Correlated features with a controlled spectrum (eigenvalues of the mixing in [0.5, 1.5])."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, M))
    Q = np.linalg.qr(rng.standard_normal((M, M)))[0]
    mixing = Q @ np.diag(rng.uniform(0.5, 1.5, M)) @ Q.T + mix * np.ones((M, M)) / M
    Y = X @ mixing + offset
    gamma = 1 + 0.3 * rng.standard_normal(M)
    beta = 0.2 * rng.standard_normal(M)
    G = rng.standard_normal((B, M))
    return [a.astype(dtype) for a in (Y, gamma, beta, G)]


def offdiag(C):
    return np.max(np.abs(C - np.diag(np.diag(C))))


def latent_batch(B=256, M=8, factors=3, seed=0):
    """B samples of M features driven by 3 latent factors plus small noise: a
    Σ with 3 large and 5 small eigenvalues (cond ~1e2 to 1e3)."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((B, factors)) @ rng.standard_normal((factors, M))
    return Y + 0.1 * rng.standard_normal((B, M))
