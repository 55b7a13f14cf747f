"""P8: weight norm w_i = γ_i u_i/‖u_i‖, then Y = X wᵀ + b, L = Σ G ⊙ Y.

∂L/∂γ_i = ∂L/∂w_i · u_i/‖u_i‖ and
∂L/∂u_i = (γ_i/‖u_i‖) (I − û_i û_iᵀ) ∂L/∂w_i  (û_i = u_i/‖u_i‖ = w_i/γ_i up to sign),
orthogonal to u_i.
"""
import numpy as np

WALKTHROUGH = "weightnorm"


def dY(G):
    return G


def db(dY):
    return dY.sum(axis=0)


def dX(dY, w):
    return dY @ w


def dw(dY, X):
    return dY.T @ X


def dgamma(dw, u):
    norm = np.sqrt((u * u).sum(axis=1))
    return (dw * u).sum(axis=1) / norm


def du(dw, u, gamma):
    norm = np.sqrt((u * u).sum(axis=1, keepdims=True))
    uhat = u / norm
    proj = (dw * uhat).sum(axis=1, keepdims=True) * uhat
    return gamma[:, None] / norm * (dw - proj)
