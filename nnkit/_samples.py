"""Sample statistics and synthetic samples shared by the lessons, the
whitening walkthroughs and the P2.4 report (NumPy only, float64)."""
from __future__ import annotations

import numpy as np


def cov(A) -> np.ndarray:
    """Biased sample covariance of the columns of A (rows are samples), float64."""
    A = np.asarray(A, np.float64)
    Ac = A - A.mean(axis=0)
    return Ac.T @ Ac / A.shape[0]


def offdiag(C) -> float:
    """max |off-diagonal entry| of a square matrix (0 for 1×1)."""
    C = np.asarray(C)
    if C.shape[0] < 2:
        return 0.0
    return float(np.max(np.abs(C - np.diag(np.diag(C)))))


def correlated(B: int, M: int, factors: int, rng, noise: float = 0.1) -> np.ndarray:
    """(B, M) features driven by `factors` shared latent variables plus noise."""
    Zl = rng.standard_normal((B, factors))
    A = rng.standard_normal((factors, M))
    return Zl @ A + noise * rng.standard_normal((B, M)) + rng.standard_normal(M)


def whitened_sample(n: int, d: int, rng) -> np.ndarray:
    """n samples of d features with sample mean exactly 0 and sample covariance exactly I."""
    A = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    A -= A.mean(axis=0)
    lam, V = np.linalg.eigh(A.T @ A / n)
    return A @ V @ np.diag(lam ** -0.5) @ V.T
