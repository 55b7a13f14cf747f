"""Small float64 NumPy references for the fuzz suite, written from the
formulas (not from nnkit): each takes the arguments a public function was
called with and returns its primary outputs, in the order `Spec.outputs`
lists them. They accept whatever nnkit accepted (ints, pairs, lists), so a
hostile-but-accepted scalar is checked too.
"""
from __future__ import annotations

import numpy as np


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


# ------------------------------------------------------------------ dense
def affine(X, W, b):
    return f64(X) @ f64(W).T + f64(b)


def affine_backward(dY, X, W):
    dY, X, W = f64(dY), f64(X), f64(W)
    return [dY @ W, dY.T @ X, dY.sum(axis=0)]


def relu(Y):
    Y = f64(Y)
    return np.where(Y > 0, Y, 0.0)


def relu_backward(dH, Y):
    return np.where(f64(Y) > 0, f64(dH), 0.0)


# ---------------------------------------------------------------- softmax
def softmax_xent(logits, labels):
    z = f64(logits)
    B, K = z.shape
    lab = np.asarray(labels)
    T = np.eye(K)[lab] if lab.ndim == 1 else f64(lab)
    mx = z.max(axis=1, keepdims=True)
    logp = z - (mx + np.log(np.exp(z - mx).sum(axis=1, keepdims=True)))
    P = np.exp(logp)
    return float(-(T * logp).sum() / B), P, T


def softmax_xent_backward(P, T, dloss):
    return float(dloss) * (P - T) / P.shape[0]


# -------------------------------------------------------------- batchnorm
def bn(Y, gamma, beta, eps, relu_=False):
    Y = f64(Y)
    m = Y.mean(axis=0)
    var = ((Y - m) ** 2).mean(axis=0)
    Z = f64(gamma) * (Y - m) / np.sqrt(var + float(eps)) + f64(beta)
    return np.maximum(Z, 0.0) if relu_ else Z


def bn_backward(dZ, Y, gamma, eps, relu_=False, beta=None):
    """Long form of P2.3 (dŶ, dv, dm, then dY)."""
    dZ, Y, gamma = f64(dZ), f64(Y), f64(gamma)
    B = Y.shape[0]
    m = Y.mean(axis=0)
    d = Y - m
    v = (d * d).mean(axis=0)
    s = np.sqrt(v + float(eps))
    Yhat = d / s
    if relu_:
        dZ = np.where(gamma * Yhat + f64(beta) > 0, dZ, 0.0)
    dYhat = dZ * gamma
    dvar = (dYhat * d).sum(axis=0) * -0.5 * (v + float(eps)) ** -1.5
    dmean = -(dYhat / s).sum(axis=0) + dvar * (-2.0 / B) * d.sum(axis=0)
    dY = dYhat / s + dvar * 2.0 * d / B + dmean / B
    return [dY, (dZ * Yhat).sum(axis=0), dZ.sum(axis=0)]


def bn_eval(Y, gamma, beta, rm, rv, eps, relu_=False):
    Z = f64(gamma) * (f64(Y) - f64(rm)) / np.sqrt(f64(rv) + float(eps)) + f64(beta)
    return np.maximum(Z, 0.0) if relu_ else Z


# -------------------------------------------------------------- whitening
def whitening(Y, gamma, beta, eps, method, group_size, relu_=False):
    """ZCA and Cholesky whitening per group, from eigh/cholesky of Σ + εI."""
    Y = f64(Y)
    B, M = Y.shape
    g = M if group_size is None else int(group_size)
    Yc = Y - Y.mean(axis=0)
    Yhat = np.empty_like(Y)
    for a in range(0, M, g):
        sl = slice(a, min(a + g, M))
        S = Yc[:, sl].T @ Yc[:, sl] / B + float(eps) * np.eye(sl.stop - sl.start)
        if method == "zca":
            lam, D = np.linalg.eigh(S)
            W = D @ np.diag(lam ** -0.5) @ D.T
        else:                                     # cholesky: W = L^{-T}
            W = np.linalg.inv(np.linalg.cholesky(S)).T
        Yhat[:, sl] = Yc[:, sl] @ W
    Z = f64(gamma) * Yhat + f64(beta)
    return np.maximum(Z, 0.0) if relu_ else Z


def whitening_eval(Y, gamma, beta, rm, RW, group_size, relu_=False):
    Y, RW = f64(Y), f64(RW)
    M = Y.shape[1]
    g = M if group_size is None else int(group_size)
    mask = np.zeros((M, M))
    for a in range(0, M, g):
        mask[a:a + g, a:a + g] = 1.0
    Z = f64(gamma) * ((Y - f64(rm)) @ (RW * mask)) + f64(beta)
    return np.maximum(Z, 0.0) if relu_ else Z


# -------------------------------------------------------------------- rnn
ACT = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
       "relu": lambda a: np.maximum(a, 0.0)}
DACT = {"tanh": lambda h: 1 - h * h, "sigmoid": lambda h: h * (1 - h),
        "relu": lambda h: (h > 0).astype(np.float64)}


def rnn(X, h0, Wx, Wh, b, activation, reverse=False):
    X, Wx, Wh = f64(X), f64(Wx), f64(Wh)
    T, B, _ = X.shape
    M = Wx.shape[0]
    h = np.zeros((B, M)) if h0 is None else f64(h0)
    H = np.empty((T, B, M))
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        a = X[t] @ Wx.T + h @ Wh.T + (0.0 if b is None else f64(b))
        h = H[t] = ACT[activation](a)
    return H


def rnn_backward(dH, X, h0, Wx, Wh, H, activation):
    dH, X, Wx, Wh, H = f64(dH), f64(X), f64(Wx), f64(Wh), f64(H)
    T, B, M = H.shape
    h0 = np.zeros((B, M)) if h0 is None else f64(h0)
    dX, dWx, dWh, db = np.zeros_like(X), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(M)
    carry = np.zeros((B, M))
    for t in range(T - 1, -1, -1):
        dA = (dH[t] + carry) * DACT[activation](H[t])
        prev = H[t - 1] if t else h0
        dX[t] = dA @ Wx
        dWx += dA.T @ X[t]
        dWh += dA.T @ prev
        db += dA.sum(axis=0)
        carry = dA @ Wh
    return [dX, carry, dWx, dWh, db]


def birnn(X, hf0, hb0, Wxf, Whf, Wxb, Whb, Wy, by, activation, bf=None, bb=None):
    Hf = rnn(X, hf0, Wxf, Whf, bf, activation)
    Hb = rnn(X, hb0, Wxb, Whb, bb, activation, reverse=True)
    return np.concatenate([Hf, Hb], axis=2) @ f64(Wy).T + f64(by)


# ------------------------------------------------------------------ norms
def rownorm(X, gamma, beta, eps, axes_from):
    """Normalize over axes >= axes_from; gamma/beta broadcast as given."""
    X = f64(X)
    ax = tuple(range(axes_from, X.ndim))
    m = X.mean(axis=ax, keepdims=True)
    v = ((X - m) ** 2).mean(axis=ax, keepdims=True)
    return (X - m) / np.sqrt(v + float(eps)), m, v


def layernorm(X, gamma, beta, eps):
    xh, _, _ = rownorm(X, gamma, beta, eps, 1)
    return f64(gamma) * xh + f64(beta)


def _cshape(X):
    X = np.asarray(X)
    return (1, X.shape[1]) + (1,) * (X.ndim - 2)


def instancenorm(X, gamma, beta, eps):
    xh, _, _ = rownorm(X, gamma, beta, eps, 2)
    return f64(gamma).reshape(_cshape(X)) * xh + f64(beta).reshape(_cshape(X))


def norm_backward(dZ, X, gamma, eps, axes_from, gshape):
    """dX = rstd (dx̂ − mean dx̂ − x̂ mean(dx̂ x̂)) over the normalized axes."""
    xh, m, v = rownorm(X, None, None, eps, axes_from)
    dZ = f64(dZ)
    g = f64(gamma).reshape(gshape)
    dxh = dZ * g
    ax = tuple(range(axes_from, xh.ndim))
    dX = (dxh - dxh.mean(axis=ax, keepdims=True)
          - xh * (dxh * xh).mean(axis=ax, keepdims=True)) / np.sqrt(v + float(eps))
    red = tuple(i for i in range(xh.ndim) if gshape[i] == 1)
    return [dX, (dZ * xh).sum(axis=red).reshape(np.shape(gamma)),
            dZ.sum(axis=red).reshape(np.shape(gamma))]


def batchnorm_channels(X, gamma, beta, eps):
    X = f64(X)
    ax = (0,) + tuple(range(2, X.ndim))
    m = X.mean(axis=ax, keepdims=True)
    v = ((X - m) ** 2).mean(axis=ax, keepdims=True)
    cs = _cshape(X)
    return f64(gamma).reshape(cs) * (X - m) / np.sqrt(v + float(eps)) + f64(beta).reshape(cs)


def groupnorm(X, gamma, beta, G, eps):
    """Per (sample, group of C/G channels) over the group's channels and the rest."""
    X = f64(X)
    B, C = X.shape[:2]
    Xg = X.reshape(B, int(G), -1)
    m = Xg.mean(axis=2, keepdims=True)
    v = ((Xg - m) ** 2).mean(axis=2, keepdims=True)
    xh = ((Xg - m) / np.sqrt(v + float(eps))).reshape(X.shape)
    return f64(gamma).reshape(_cshape(X)) * xh + f64(beta).reshape(_cshape(X))


def groupnorm_backward(dZ, X, gamma, G, eps):
    """[dX, dγ, dβ, dx̂]: the row formula on the (B, G, C/G·F) view, γ per channel."""
    X, dZ = f64(X), f64(dZ)
    B, C = X.shape[:2]
    Xg = X.reshape(B, int(G), -1)
    m = Xg.mean(axis=2, keepdims=True)
    v = ((Xg - m) ** 2).mean(axis=2, keepdims=True)
    xh = (Xg - m) / np.sqrt(v + float(eps))
    dxh = (dZ * f64(gamma).reshape(_cshape(X))).reshape(xh.shape)
    dX = (dxh - dxh.mean(axis=2, keepdims=True)
          - xh * (dxh * xh).mean(axis=2, keepdims=True)) / np.sqrt(v + float(eps))
    red = (0,) + tuple(range(2, X.ndim))
    return [dX.reshape(X.shape), (dZ * xh.reshape(X.shape)).sum(axis=red), dZ.sum(axis=red),
            dxh.reshape(X.shape)]


def weightnorm(u, gamma):
    u = f64(u)
    return f64(gamma)[:, None] * u / np.linalg.norm(u, axis=1, keepdims=True)


def weightnorm_backward(dw, u, gamma):
    dw, u = f64(dw), f64(u)
    n = np.linalg.norm(u, axis=1, keepdims=True)
    uh = u / n
    dg = (dw * uh).sum(axis=1)
    return [f64(gamma)[:, None] / n * (dw - dg[:, None] * uh), dg]


# ------------------------------------------------------- conv and pooling
def _windows(Xp, kh, kw, sh, sw, dh, dw, Ho, Wo):
    """(i, j, view (B, C, Ho, Wo)) for every kernel offset."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(i * dh, i * dh + sh * (Ho - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (Wo - 1) + 1, sw))


def _out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv_geometry(X, W, stride, padding, dilation):
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    kh, kw = W.shape[2:]
    eh = ew = 0     # extra padding at the end (bottom/right)
    if isinstance(padding, str):
        if padding == "valid":
            ph = pw = 0
        else:     # "same", stride 1: total d(k-1), the odd one at the end (PyTorch)
            ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
            eh, ew = dh * (kh - 1) - 2 * ph, dw * (kw - 1) - 2 * pw
    else:
        ph, pw = pair(padding)
    H, Wd = X.shape[2:]
    return (kh, kw, sh, sw, ph, pw, dh, dw, _out(H + eh, kh, sh, ph, dh),
            _out(Wd + ew, kw, sw, pw, dw), eh, ew)


def conv2d(X, W, b, stride, padding, dilation):
    X, W = f64(X), f64(W)
    kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, eh, ew = conv_geometry(X, W, stride, padding,
                                                                  dilation)
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)))
    Y = np.zeros((X.shape[0], W.shape[0], Ho, Wo))
    for i, j, (si, sj) in _windows(Xp, kh, kw, sh, sw, dh, dw, Ho, Wo):
        Y += np.einsum("bchw,oc->bohw", Xp[:, :, si, sj], W[:, :, i, j])
    if b is not None:
        Y += f64(b)[None, :, None, None]
    return Y


def conv2d_backward(dY, X, W, stride, padding, dilation):
    dY, X, W = f64(dY), f64(X), f64(W)
    kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, eh, ew = conv_geometry(X, W, stride, padding,
                                                                  dilation)
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)))
    dXp, dW = np.zeros_like(Xp), np.zeros_like(W)
    for i, j, (si, sj) in _windows(Xp, kh, kw, sh, sw, dh, dw, Ho, Wo):
        dW[:, :, i, j] = np.einsum("bohw,bchw->oc", dY, Xp[:, :, si, sj])
        dXp[:, :, si, sj] += np.einsum("bohw,oc->bchw", dY, W[:, :, i, j])
    H, Wd = X.shape[2:]
    return [dXp[:, :, ph:ph + H, pw:pw + Wd], dW, dY.sum(axis=(0, 2, 3))]


def _pool_geometry(X, kernel_size, stride, padding):
    kh, kw = pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
    ph, pw = pair(padding)
    H, Wd = X.shape[2:]
    return kh, kw, sh, sw, ph, pw, _out(H, kh, sh, ph, 1), _out(Wd, kw, sw, pw, 1)


def pool2d(kind, X, kernel_size, stride, padding, p=None):
    X = f64(X)
    kh, kw, sh, sw, ph, pw, Ho, Wo = _pool_geometry(X, kernel_size, stride, padding)
    fill = -np.inf if kind == "max" else 0.0
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    views = [Xp[:, :, si, sj] for _, _, (si, sj) in _windows(Xp, kh, kw, sh, sw, 1, 1, Ho, Wo)]
    S = np.stack(views)                   # (kh·kw, B, C, Ho, Wo), row-major window order
    if kind == "max":
        return S.max(axis=0)
    if kind == "avg":
        return S.sum(axis=0) / (kh * kw)
    return (np.abs(S) ** float(p)).sum(axis=0) ** (1.0 / float(p))


def pool2d_backward(kind, dY, X, kernel_size, stride, padding, p=None):
    dY, X = f64(dY), f64(X)
    kh, kw, sh, sw, ph, pw, Ho, Wo = _pool_geometry(X, kernel_size, stride, padding)
    fill = -np.inf if kind == "max" else 0.0
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    wins = list(_windows(Xp, kh, kw, sh, sw, 1, 1, Ho, Wo))
    S = np.stack([Xp[:, :, si, sj] for _, _, (si, sj) in wins])
    dXp = np.zeros_like(Xp)
    if kind == "max":
        first = S.argmax(axis=0)           # ties: the first in row-major window order
        for n, (_, _, (si, sj)) in enumerate(wins):
            dXp[:, :, si, sj] += np.where(first == n, dY, 0.0)
    elif kind == "avg":
        for _, _, (si, sj) in wins:
            dXp[:, :, si, sj] += dY / (kh * kw)
    else:
        p = float(p)
        y = (np.abs(S) ** p).sum(axis=0) ** (1.0 / p)
        with np.errstate(all="ignore"):
            scale = np.where(y > 0, dY / y ** (p - 1), 0.0)
        for n, (_, _, (si, sj)) in enumerate(wins):
            x = S[n]
            dXp[:, :, si, sj] += scale * np.sign(x) * np.abs(x) ** (p - 1)
    H, Wd = X.shape[2:]
    return dXp[:, :, ph:ph + H, pw:pw + Wd]


# ---------------------------------------------------------------- optimizers
def optim_first_step(kind, p, g, kw):
    """θ after one step from zero state (every optimizer's first step in closed form)."""
    p, g = f64(p), f64(g)
    lr = float(kw.get("lr", {"SGD": 1e-3, "Adam": 1e-3}.get(kind, 1e-2)))
    gp = g + float(kw.get("weight_decay", 0.0)) * p
    if kind == "SGD":
        mu = float(kw.get("momentum", 0.0))
        step = gp + mu * gp if kw.get("nesterov", False) else gp
        return p - lr * step
    if kind == "Momentum":
        return p - lr * gp
    if kind == "RunningAverage":
        beta = float(kw.get("beta", 0.9))
        v = (1 - beta) * gp
        return p - (lr / (1 - beta) if kw.get("bias_correction", False) else lr) * v
    if kind == "Adam":
        eps = float(kw.get("eps", 1e-8))
        return p - lr * gp / (np.abs(gp) + eps)
    if kind == "AdaGrad":
        eps = float(kw.get("eps", 1e-10))
        S = float(kw.get("initial_accumulator_value", 0.0)) + gp * gp
        return p - lr * gp / (np.sqrt(S) + eps)
    raise KeyError(kind)
