import numpy as np
WALKTHROUGH = "gru"

# gate blocks r, z, n; hn_t = h_{t-1} W_hn^T + b_hn; h_t = (1 - z_t) n_t + z_t h_{t-1}


def _sig_grad(d, s):
    return d * s * (1 - s)


def dh(t, G, dr, dz, dhn, dh, z, r, W_hh, H, T):
    out = G[t] if t >= 1 else 0
    if t < T:
        out = (out + z[t + 1] * dh[t + 1]
               + _sig_grad(dr[t + 1], r[t + 1]) @ W_hh[:H]
               + _sig_grad(dz[t + 1], z[t + 1]) @ W_hh[H:2 * H]
               + dhn[t + 1] @ W_hh[2 * H:])
    return out


def dn(t, dh, z):
    return dh[t] * (1 - z[t])


def dhn(t, dn, n, r):
    return dn[t] * (1 - n[t] ** 2) * r[t]


def dz(t, dh, n, h):
    return dh[t] * (h[t - 1] - n[t])


def dr(t, dn, n, hn):
    return dn[t] * (1 - n[t] ** 2) * hn[t]


def _pre_x(t, dr, dz, dn, r, z, n):
    """dL/d(x W_ih^T + b_ih) at step t: r, z, n blocks."""
    return np.concatenate([_sig_grad(dr[t], r[t]), _sig_grad(dz[t], z[t]),
                           dn[t] * (1 - n[t] ** 2)], axis=1)


def _pre_h(t, dr, dz, dhn, r, z):
    """dL/d(h W_hh^T + b_hh) at step t."""
    return np.concatenate([_sig_grad(dr[t], r[t]), _sig_grad(dz[t], z[t]), dhn[t]], axis=1)


def dx(t, dr, dz, dn, r, z, n, W_ih):
    return _pre_x(t, dr, dz, dn, r, z, n) @ W_ih


def db_hh(dr, dz, dhn, r, z, T):
    return sum(_pre_h(t, dr, dz, dhn, r, z).sum(axis=0) for t in range(1, T + 1))


def db_ih(dr, dz, dn, r, z, n, T):
    return sum(_pre_x(t, dr, dz, dn, r, z, n).sum(axis=0) for t in range(1, T + 1))


def dW_hh(dr, dz, dhn, r, z, h, T):
    return sum(_pre_h(t, dr, dz, dhn, r, z).T @ h[t - 1] for t in range(1, T + 1))


def dW_ih(dr, dz, dn, r, z, n, x, T):
    return sum(_pre_x(t, dr, dz, dn, r, z, n).T @ x[t] for t in range(1, T + 1))
