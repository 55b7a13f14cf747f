import numpy as np
WALKTHROUGH = "lstm"

# gate blocks i, f, g, o; c_t = f_t c_{t-1} + i_t g_t; h_t = o_t tanh(c_t)


def dh(t, G, da, W_hh):
    return (G[t] if t >= 1 else 0) + da[t + 1] @ W_hh


def dc(t, dh, dc, o, f, c, T):
    direct = dh[t] * o[t] * (1 - np.tanh(c[t]) ** 2) if t >= 1 else 0
    carried = f[t + 1] * dc[t + 1] if t < T else 0
    return direct + carried


def do(t, dh, c):
    return dh[t] * np.tanh(c[t])


def dg(t, dc, i):
    return dc[t] * i[t]


def df(t, dc, c):
    return dc[t] * c[t - 1]


def di(t, dc, g):
    return dc[t] * g[t]


def da(t, di, df, dg, do, i, f, g, o):
    return np.concatenate([di[t] * i[t] * (1 - i[t]), df[t] * f[t] * (1 - f[t]),
                           dg[t] * (1 - g[t] ** 2), do[t] * o[t] * (1 - o[t])], axis=1)


def dx(t, da, W_ih):
    return da[t] @ W_ih


def db_hh(da, T):
    return sum(da[t].sum(axis=0) for t in range(1, T + 1))


def db_ih(da, T):
    return sum(da[t].sum(axis=0) for t in range(1, T + 1))


def dW_hh(da, h, T):
    return sum(da[t].T @ h[t - 1] for t in range(1, T + 1))


def dW_ih(da, x, T):
    return sum(da[t].T @ x[t] for t in range(1, T + 1))
