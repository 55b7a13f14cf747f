"""The activations walkthrough, from the formulas: H = act(Y), L = mean loss."""
import math

import numpy as np

WALKTHROUGH = "activations"


def _phi(Y):
    return np.exp(-0.5 * Y ** 2) / math.sqrt(2 * math.pi)


def _Phi(Y):
    return 0.5 * (1 + np.vectorize(math.erf)(Y / math.sqrt(2)))


def dH(H, T, loss, B, M):
    if loss == "mse":
        return 2 * (H - T) / (B * M)
    return (1 / (1 + np.exp(-H)) - T) / (B * M)


def dY(dH, Y, H, activation):
    if activation == "tanh":
        return dH * (1 - H ** 2)
    if activation == "sigmoid":
        return dH * H * (1 - H)
    if activation == "leaky_relu":
        return dH * np.where(Y > 0, 1.0, 0.01)
    if activation == "gelu":
        return dH * (_Phi(Y) + Y * _phi(Y))
    c = math.sqrt(2 / math.pi)
    t = np.tanh(c * (Y + 0.044715 * Y ** 3))
    return dH * (0.5 * (1 + t) + 0.5 * Y * (1 - t ** 2) * c * (1 + 3 * 0.044715 * Y ** 2))


def db(dY):
    return dY.sum(axis=0)


def dW(dY, X):
    return dY.T @ X


def dX(dY, W):
    return dY @ W
