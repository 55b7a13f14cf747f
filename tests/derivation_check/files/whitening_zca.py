"""P2.4: affine → whitening batch norm → ReLU, derived by hand.

Forward (rows are samples):  Yc = Y − 1mᵀ,  Σ = YcᵀYc/B + εI (only the
diagonal blocks with groups),  Ŷ = Yc W(Σ) with W per block of sym(Σ):
    zca       W = Σ^(−½) = U Λ^(−½) Uᵀ
    pca       W = D Λ^(−½)  (each eigenvector's largest |entry| positive)
    cholesky  W = L^(−ᵀ),  Σ = L Lᵀ
    newton    coupled Newton–Schulz on Σ/tr Σ, W = Z_T/√tr Σ
Z = γ ⊙ Ŷ + β, H = max(Z, 0), L = Σ G ⊙ H.

Backward: ∂L/∂W(Σ) = Ycᵀ ∂L/∂Ŷ, taken back through each method:
    zca       Daleckii–Krein: ∂L/∂Σ = U (K ∘ Uᵀ sym(W̄) U) Uᵀ with the divided
              differences K_ij = (λ_i^(−½) − λ_j^(−½))/(λ_i − λ_j)
              = −1/(s_i s_j (s_i + s_j)), s = √λ: finite at repeated λ
    pca       eigenvector derivatives: ∂L/∂Σ = D (diag(λ̄) + F ∘ DᵀD̄) Dᵀ,
              F_ij = 1/(λ_j − λ_i) (i ≠ j), D̄ = W̄ Λ^(−½),
              λ̄_j = −½ λ_j^(−3/2) (DᵀW̄)_jj
    cholesky  L̄ = −L^(−ᵀ) W̄ᵀ L^(−ᵀ) (lower part), ∂L/∂Σ = L^(−ᵀ) Φ(Lᵀ L̄) L^(−1)
              with Φ the lower triangle, its diagonal halved
    newton    reverse mode through the T iterations
each symmetrised (the forward reads sym(Σ)). Then, with m and Σ as nodes:
    ∂L/∂m = −Σ_i (∂L/∂Ŷ Wᵀ)_i − (Σ̄ + Σ̄ᵀ) Σ_i Yc_i / B   (the last is ~0)
    ∂L/∂Y = ∂L/∂Ŷ Wᵀ + Yc (Σ̄ + Σ̄ᵀ)/B + 1 (∂L/∂m)ᵀ/B
and P1's affine backward for b, W, X.
"""
import numpy as np

WALKTHROUGH = "whitening-zca"


# ------------------------------------------------------------ helpers
def _groups(M, g):
    g = g or M
    return [(c, min(g, M - c)) for c in range(0, M, g)]


def _mask(M, g):
    out = np.zeros((M, M), bool)
    for c, k in _groups(M, g):
        out[c:c + k, c:c + k] = True
    return out


def _sym(A):
    return 0.5 * (A + A.T)


def _pca_basis(S):
    lam, D = np.linalg.eigh(S)
    top = D[np.argmax(np.abs(D), axis=0), np.arange(D.shape[1])]
    return lam, D * np.where(top < 0, -1.0, 1.0)


def _newton_iterates(S, T):
    t = np.trace(S)
    I = np.eye(S.shape[0])
    Ys, Zs, Ts = [S / t], [I], []
    for _ in range(T):
        Tk = 1.5 * I - 0.5 * Zs[-1] @ Ys[-1]
        Ts.append(Tk)
        Ys.append(Ys[-1] @ Tk)
        Zs.append(Tk @ Zs[-1])
    return t, Ys, Zs, Ts


def _whiten(S, method, T):
    if method == "zca":
        lam, U = np.linalg.eigh(S)
        return (U / np.sqrt(lam)) @ U.T
    if method == "pca":
        lam, D = _pca_basis(S)
        return D / np.sqrt(lam)
    if method == "cholesky":
        return np.linalg.inv(np.linalg.cholesky(S)).T
    t, Ys, Zs, Ts = _newton_iterates(S, T)
    return Zs[-1] / np.sqrt(t)


def _whiten_back(S, Wbar, method, T):
    """∂L/∂S (symmetric) from ∂L/∂W(S) for one symmetric block S."""
    if method == "zca":
        lam, U = np.linalg.eigh(S)
        s = np.sqrt(lam)
        K = -1.0 / (s[:, None] * s[None, :] * (s[:, None] + s[None, :]))
        return _sym(U @ (K * (U.T @ _sym(Wbar) @ U)) @ U.T)
    if method == "pca":
        lam, D = _pca_basis(S)
        Dbar = Wbar / np.sqrt(lam)
        lbar = -0.5 * lam ** -1.5 * np.einsum("ij,ij->j", D, Wbar)
        diff = lam[None, :] - lam[:, None]
        F = np.where(np.eye(len(lam), dtype=bool), 0.0,
                     1.0 / np.where(diff == 0, 1.0, diff))
        return _sym(D @ (np.diag(lbar) + F * (D.T @ Dbar)) @ D.T)
    if method == "cholesky":
        L = np.linalg.cholesky(S)
        Li = np.linalg.inv(L)
        Lbar = np.tril(-Li.T @ Wbar.T @ Li.T)
        P = np.tril(L.T @ Lbar)
        P[np.diag_indices_from(P)] *= 0.5
        return _sym(Li.T @ P @ Li)
    # newton: W = Z_T/√t with t = tr S, Y_0 = S/t, Z_0 = I,
    # T_k = 1.5I − ½ Z_k Y_k, Y_{k+1} = Y_k T_k, Z_{k+1} = T_k Z_k
    t, Ys, Zs, Ts = _newton_iterates(S, T)
    Zbar = Wbar / np.sqrt(t)
    tbar = -0.5 * t ** -1.5 * np.sum(Wbar * Zs[-1])
    Ybar = np.zeros_like(S)
    for k in range(T - 1, -1, -1):
        Tk, Yk, Zk = Ts[k], Ys[k], Zs[k]
        Tbar = Yk.T @ Ybar + Zbar @ Zk.T
        Ybar, Zbar = Ybar @ Tk.T, Tk.T @ Zbar
        Zbar = Zbar - 0.5 * Tbar @ Yk.T
        Ybar = Ybar - 0.5 * Zk.T @ Tbar
    Sbar = Ybar / t
    tbar += -np.sum(Ybar * S) / t ** 2
    return _sym(Sbar + tbar * np.eye(S.shape[0]))


def _wmat(Sigma, method, iterations, group_size):
    """the block-diagonal whitening matrix of sym(Σ)."""
    Ss = _sym(Sigma)
    Wm = np.zeros_like(Ss)
    for c, k in _groups(Ss.shape[0], group_size):
        Wm[c:c + k, c:c + k] = _whiten(Ss[c:c + k, c:c + k], method, iterations)
    return Wm


# ------------------------------------------------------------ formulas
def dH(G):
    return G


def dZ(dH, Z):
    return dH * (Z > 0)


def dbeta(dZ):
    return dZ.sum(axis=0)


def dgamma(dZ, Yhat):
    return (dZ * Yhat).sum(axis=0)


def dYhat(dZ, gamma):
    return dZ * gamma


def dSigma(dYhat, Y, m, Sigma, method, iterations, group_size):
    Wbar = (Y - m).T @ dYhat
    Ss = _sym(Sigma)
    out = np.zeros_like(Ss)
    for c, k in _groups(Ss.shape[0], group_size):
        blk = slice(c, c + k)
        out[blk, blk] = _whiten_back(Ss[blk, blk], Wbar[blk, blk], method, iterations)
    return out


def dm(dYhat, dSigma, Y, m, Sigma, B, method, iterations, group_size):
    Yc = Y - m
    Wm = _wmat(Sigma, method, iterations, group_size)
    dS = np.where(_mask(len(m), group_size), dSigma, 0.0)
    return -(dYhat @ Wm.T).sum(axis=0) - (dS + dS.T) @ Yc.sum(axis=0) / B


def dY(dYhat, dSigma, dm, Y, m, Sigma, B, method, iterations, group_size):
    Yc = Y - m
    Wm = _wmat(Sigma, method, iterations, group_size)
    dS = np.where(_mask(len(m), group_size), dSigma, 0.0)
    return dYhat @ Wm.T + Yc @ (dS + dS.T) / B + dm / B


def db(dY):
    return dY.sum(axis=0)


def dW(dY, X):
    return dY.T @ X


def dX(dY, W):
    return dY @ W
