import numpy as np
WALKTHROUGH = "rnn"

def _dact(h, activation):
    if activation == "tanh":
        return 1 - h ** 2
    if activation == "sigmoid":
        return h * (1 - h)
    return (h > 0).astype(float)

def dh(t, G, da, Wh):
    return (G[t] if t >= 1 else 0) + da[t + 1] @ Wh

def da(t, dh, h, activation):
    return dh[t] * _dact(h[t], activation)

def dx(t, da, Wx):
    return da[t] @ Wx

def dWh(da, h, T):
    return sum(da[t].T @ h[t - 1] for t in range(1, T + 1))

def dWx(da, x, T):
    return sum(da[t].T @ x[t] for t in range(1, T + 1))

def db(da, T):
    return sum(da[t].sum(axis=0) for t in range(1, T + 1))
