"""P3 + P10 + P4: conv → ReLU → 2×2 pool → affine → softmax cross-entropy (NCHW).

Y[n,f,i,j] = b[f] + Σ_{c,u,v} K[f,c,u,v] Xp[n,c,i+u,j+v]   (Xp: X zero-padded)
so dK[f,c,u,v] = Σ_{n,i,j} dY[n,f,i,j] Xp[n,c,i+u,j+v], db[f] = Σ_{n,i,j} dY,
and dXp[n,c,i+u,j+v] += Σ_f dY[n,f,i,j] K[f,c,u,v] (then crop the padding).
Pooling (P10): max routes ∂L/∂P to each window's arg-max, avg spreads it /4,
the 2-norm weighs it by A/P (0 where P = 0).
"""
import numpy as np

WALKTHROUGH = "conv"


def _softmax(Z):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _up(P):
    """each pooled value copied back over its 2×2 window."""
    return np.repeat(np.repeat(P, 2, axis=2), 2, axis=3)


def dZ(Z, y, B):
    p = _softmax(Z)
    p[np.arange(B), y] -= 1.0
    return p / B


def dc(dZ):
    return dZ.sum(axis=0)


def dV(dZ, P):
    return dZ.T @ P.reshape(P.shape[0], -1)


def dP(dZ, V, P):
    return (dZ @ V).reshape(P.shape)


def dA(dP, A, P, pool):
    if pool == "avg":
        return _up(dP) / 4.0
    if pool == "lp":
        Pu = _up(P)
        safe = np.where(Pu > 0, Pu, 1.0)
        return np.where(Pu > 0, _up(dP) * A / safe, 0.0)
    # max: the first arg-max of each window (row-major in the window) takes it all
    Bn, F, H, W = A.shape
    win = A.reshape(Bn, F, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(Bn, F, H // 2, W // 2, 4)
    first = np.argmax(win, axis=-1)
    onehot = (np.arange(4) == first[..., None]) * dP[..., None]
    onehot = onehot.reshape(Bn, F, H // 2, W // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return onehot.reshape(A.shape)


def dY(dA, Y):
    return dA * (Y > 0)


def db(dY):
    return dY.sum(axis=(0, 2, 3))


def dK(dY, X, K, padding):
    k = K.shape[2]
    Xp = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho, Wo = dY.shape[2], dY.shape[3]
    out = np.zeros(K.shape)
    for u in range(k):
        for v in range(k):
            out[:, :, u, v] = np.einsum("nfij,ncij->fc", dY, Xp[:, :, u:u + Ho, v:v + Wo])
    return out


def dX(dY, X, K, padding):
    k = K.shape[2]
    Bn, C, H, W = X.shape
    Ho, Wo = dY.shape[2], dY.shape[3]
    dXp = np.zeros((Bn, C, H + 2 * padding, W + 2 * padding))
    for u in range(k):
        for v in range(k):
            dXp[:, :, u:u + Ho, v:v + Wo] += np.einsum("nfij,fc->ncij", dY, K[:, :, u, v])
    return dXp[:, :, padding:padding + H, padding:padding + W]
