import numpy as np
WALKTHROUGH = "bn-relu"

def dH(G):
    return G

def dZ(dH, Z):
    return dH * (Z > 0)

def dgamma(dZ, Yhat):
    return (dZ * Yhat).sum(axis=0)

def dbeta(dZ):
    return dZ.sum(axis=0)

def dYhat(dZ, gamma):
    return dZ * gamma

def dv(dYhat, Y, m, v, eps):
    return (dYhat * (Y - m)).sum(axis=0) * -0.5 * (v + eps) ** -1.5

def dm(dYhat, dv, Y, m, v, eps, B):
    return -(dYhat / np.sqrt(v + eps)).sum(axis=0) + dv * (-2.0 / B) * (Y - m).sum(axis=0)

def dY(dYhat, dv, dm, Y, m, v, eps, B):
    return dYhat / np.sqrt(v + eps) + dv * 2 * (Y - m) / B + dm / B

def db(dY):
    return dY.sum(axis=0)

def dW(dY, X):
    return dY.T @ X

def dX(dY, W):
    return dY @ W
