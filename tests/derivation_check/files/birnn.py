import numpy as np
WALKTHROUGH = "birnn"

def _dact(h, activation):
    if activation == "tanh":
        return 1 - h ** 2
    if activation == "sigmoid":
        return h * (1 - h)
    return (h > 0).astype(float)

def dy(t, y, z):
    return y[t] - z[t]

def dhf(t, dy, dhf, hf, Wf, Wy, M, activation):
    carried = (dhf[t + 1] * _dact(hf[t + 1], activation)) @ Wf if t + 1 in hf else 0
    return dy[t] @ Wy[:, :M] + carried

def dhb(t, dy, dhb, hb, Wb, Wy, M, activation):
    carried = (dhb[t - 1] * _dact(hb[t - 1], activation)) @ Wb if t - 1 in hb else 0
    return dy[t] @ Wy[:, M:] + carried

def _da(dh, h, t, activation):
    return dh[t] * _dact(h[t], activation)

def dWf(dhf, hf, T, activation):
    return sum(_da(dhf, hf, t, activation).T @ hf[t - 1] for t in range(1, T + 1))

def dUf(dhf, hf, x, T, activation):
    return sum(_da(dhf, hf, t, activation).T @ x[t] for t in range(1, T + 1))

def dWb(dhb, hb, T, activation):
    return sum(_da(dhb, hb, t, activation).T @ hb[t + 1] for t in range(1, T + 1))

def dUb(dhb, hb, x, T, activation):
    return sum(_da(dhb, hb, t, activation).T @ x[t] for t in range(1, T + 1))

def dWy(dy, hf, hb, T):
    return sum(dy[t].T @ np.concatenate([hf[t], hb[t]], axis=1) for t in range(1, T + 1))

def dby(dy, T):
    return sum(dy[t].sum(axis=0) for t in range(1, T + 1))

def dx(t, dhf, dhb, hf, hb, Uf, Ub, activation):
    return _da(dhf, hf, t, activation) @ Uf + _da(dhb, hb, t, activation) @ Ub
