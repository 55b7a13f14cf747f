"""Independent float64 NumPy references for the RNN tests (nothing here calls nnkit).

Written from P9's formulas with explicit loops over time: per-step outer
products for dWh, the activation derivative from the pre-activation a_t (not
from h_t as the kernels do). Truncated BPTT is computed by literally cutting
the sequence into chunks whose initial state is a constant (detached), and
the preactivation form (P9.1) by its own loop.
"""
import numpy as np

ACTS = ("tanh", "sigmoid", "relu")
RNN_GRADS = ("dX", "dh0", "dWx", "dWh", "db", "dA", "dh")
BIRNN_GRADS = ("dX", "dhf0", "dhb0", "dWxf", "dWhf", "dbf", "dWxb", "dWhb", "dbb",
               "dWy", "dby", "dhf", "dhb", "dAf", "dAb")


def _f(act, a):
    if act == "tanh":
        return np.tanh(a)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-a))
    return np.maximum(a, 0.0)


def _df(act, a):
    if act == "tanh":
        return 1.0 / np.cosh(a) ** 2
    if act == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-a))
        return s * (1.0 - s)
    return (a > 0).astype(np.float64)


def rnn_ref(X, h0, Wx, Wh, b, act, reverse=False):
    """States H (T,B,M) and pre-activations A, float64, one step at a time."""
    X, h0, Wx, Wh = (np.asarray(a, np.float64) for a in (X, h0, Wx, Wh))
    b = np.zeros(Wx.shape[0]) if b is None else np.asarray(b, np.float64)
    T = X.shape[0]
    H = np.zeros((T, X.shape[1], Wx.shape[0]))
    A = np.zeros_like(H)
    h = h0
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        A[t] = X[t] @ Wx.T + h @ Wh.T + b
        H[t] = _f(act, A[t])
        h = H[t]
    return H, A


def rnn_bptt_ref(dH, X, h0, Wx, Wh, b, act, reverse=False):
    """BPTT: dh_t = dH_t + (dA_next Wh); dA_t = dh_t act'(a_t); sums over time."""
    H, A = rnn_ref(X, h0, Wx, Wh, b, act, reverse)
    dH, X, h0, Wx, Wh = (np.asarray(a, np.float64) for a in (dH, X, h0, Wx, Wh))
    T = X.shape[0]
    dA = np.zeros_like(H)
    dh = np.zeros_like(H)
    dX = np.zeros_like(X)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
    db = np.zeros(Wx.shape[0])
    carry = np.zeros_like(h0)
    order = range(T) if reverse else range(T - 1, -1, -1)
    for t in order:
        prev = h0
        if reverse and t < T - 1:
            prev = H[t + 1]
        if not reverse and t > 0:
            prev = H[t - 1]
        dh[t] = dH[t] + carry
        dA[t] = dh[t] * _df(act, A[t])
        for i in range(X.shape[1]):            # one sample at a time: outer products
            dWx += np.outer(dA[t, i], X[t, i])
            dWh += np.outer(dA[t, i], prev[i])
            db += dA[t, i]
        dX[t] = dA[t] @ Wx
        carry = dA[t] @ Wh
    return dict(H=H, dX=dX, dh0=carry, dWx=dWx, dWh=dWh, db=db, dA=dA, dh=dh)


def birnn_ref(dY, X, hf0, hb0, Wxf, Whf, Wxb, Whb, Wy, by, act, bf=None, bb=None):
    Hf, _ = rnn_ref(X, hf0, Wxf, Whf, bf, act)
    Hb, _ = rnn_ref(X, hb0, Wxb, Whb, bb, act, reverse=True)
    Wy = np.asarray(Wy, np.float64)
    M = Hf.shape[2]
    Y = np.concatenate([Hf, Hb], axis=2) @ Wy.T + np.asarray(by, np.float64)
    dY = np.asarray(dY, np.float64)
    gf = rnn_bptt_ref(dY @ Wy[:, :M], X, hf0, Wxf, Whf, bf, act)
    gb = rnn_bptt_ref(dY @ Wy[:, M:], X, hb0, Wxb, Whb, bb, act, reverse=True)
    cat = np.concatenate([Hf, Hb], axis=2).reshape(-1, 2 * M)
    return dict(Y=Y, dX=gf["dX"] + gb["dX"], dhf0=gf["dh0"], dhb0=gb["dh0"],
                dWxf=gf["dWx"], dWhf=gf["dWh"], dbf=gf["db"], dWxb=gb["dWx"],
                dWhb=gb["dWh"], dbb=gb["db"], dWy=dY.reshape(-1, Wy.shape[0]).T @ cat,
                dby=dY.sum(axis=(0, 1)), dhf=gf["dh"], dhb=gb["dh"], dAf=gf["dA"],
                dAb=gb["dA"])


def make_rnn(rng, T, B, N, M, dtype=np.float64, scale=0.5, bias=True):
    d = dict(X=rng.standard_normal((T, B, N)), h0=rng.standard_normal((B, M)),
             Wx=scale * rng.standard_normal((M, N)), Wh=scale * rng.standard_normal((M, M)),
             b=rng.standard_normal(M) if bias else None)
    return {k: None if a is None else a.astype(dtype) for k, a in d.items()}


def make_birnn(rng, T, B, N, M, K, dtype=np.float64, bias=False):
    d = dict(X=rng.standard_normal((T, B, N)), hf0=rng.standard_normal((B, M)),
             hb0=rng.standard_normal((B, M)), Wxf=0.5 * rng.standard_normal((M, N)),
             Whf=0.5 * rng.standard_normal((M, M)), Wxb=0.5 * rng.standard_normal((M, N)),
             Whb=0.5 * rng.standard_normal((M, M)), Wy=rng.standard_normal((K, 2 * M)),
             by=rng.standard_normal(K))
    if bias:
        d["bf"] = rng.standard_normal(M)
        d["bb"] = rng.standard_normal(M)
    return {k: a.astype(dtype) for k, a in d.items()}




def grad_norms_ref(dh):
    """||dh_t||_F over each (B, M) slice."""
    return np.sqrt((np.asarray(dh, np.float64) ** 2).sum(axis=(1, 2)))


def truncated_bptt_ref(dH, X, h0, Wx, Wh, b, act, k):
    """Truncated BPTT by detaching: the sequence is cut after t = k, 2k, ...
    (1-based); each chunk runs full BPTT from its initial state, which is a
    constant (the previous chunk's last state, not differentiated). Weight
    gradients add over chunks; dh0 is the first chunk's."""
    H, _ = rnn_ref(X, h0, Wx, Wh, b, act)
    T = X.shape[0]
    out = dict(H=H, dX=[], dA=[], dh=[], dWx=0.0, dWh=0.0, db=0.0, dh0=None)
    for start in range(0, T, k):
        stop = min(start + k, T)
        init = h0 if start == 0 else H[start - 1]
        r = rnn_bptt_ref(dH[start:stop], X[start:stop], init, Wx, Wh, b, act)
        for name in ("dX", "dA", "dh"):
            out[name].append(r[name])
        for name in ("dWx", "dWh", "db"):
            out[name] = out[name] + r[name]
        if start == 0:
            out["dh0"] = r["dh0"]
    for name in ("dX", "dA", "dh"):
        out[name] = np.concatenate(out[name])
    return out


def preact_ref(X, h0, Wx, Wh, b, act):
    """P9.1: h_t = act(h_{t-1}) Wh^T + x_t Wx^T + b (the state is the pre-activation)."""
    X, h0, Wx, Wh = (np.asarray(a, np.float64) for a in (X, h0, Wx, Wh))
    b = np.zeros(Wx.shape[0]) if b is None else np.asarray(b, np.float64)
    H = np.zeros((X.shape[0], X.shape[1], Wx.shape[0]))
    h = h0
    for t in range(X.shape[0]):
        h = _f(act, h) @ Wh.T + X[t] @ Wx.T + b
        H[t] = h
    return H


def preact_bptt_ref(dH, X, h0, Wx, Wh, b, act):
    """BPTT of the preactivation form: dh_t = dH_t + (dh_{t+1} Wh) * act'(h_t);
    dWh = Σ_t dh_t^T act(h_{t-1}); dWx = Σ dh_t^T x_t; db = Σ dh_t;
    dh0 = (dh_1 Wh) * act'(h0)."""
    H = preact_ref(X, h0, Wx, Wh, b, act)
    dH, X, h0, Wx, Wh = (np.asarray(a, np.float64) for a in (dH, X, h0, Wx, Wh))
    T = X.shape[0]
    dh = np.zeros_like(H)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wx.shape[0])
    nxt = None
    for t in range(T - 1, -1, -1):
        dh[t] = dH[t] + (0 if nxt is None else (nxt @ Wh) * _df(act, H[t]))
        prev = H[t - 1] if t > 0 else h0
        dWh += dh[t].T @ _f(act, prev)
        dWx += dh[t].T @ X[t]
        db += dh[t].sum(axis=0)
        nxt = dh[t]
    return dict(H=H, dh=dh, dA=dh, dX=dh @ Wx, dWx=dWx, dWh=dWh, db=db,
                dh0=(dh[0] @ Wh) * _df(act, h0))
