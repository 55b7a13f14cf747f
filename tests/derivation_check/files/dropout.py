"""P6: affine → ReLU → inverted dropout D = H ⊙ R / p, L = Σ G ⊙ D."""
import numpy as np

WALKTHROUGH = "dropout"


def dD(G):
    return G


def dH(dD, R, keep):
    return dD * R / keep


def dY(dH, Y):
    return dH * (Y > 0)


def db(dY):
    return dY.sum(axis=0)


def dW(dY, X):
    return dY.T @ X


def dX(dY, W):
    return dY @ W
