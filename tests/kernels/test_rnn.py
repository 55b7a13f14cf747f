"""P9: RNN and bidirectional RNN kernels, BPTT, layers, the birnn walkthrough.

The reference below is an independent float64 NumPy BPTT written from P9's
formulas with explicit loops over time (per-step outer products for dWh, the
activation derivative from the pre-activation a_t, not from h_t as the
kernels do); nothing in it calls nnkit.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnkit as nk
from nnkit.trace import Trace, registry

ACTS = ("tanh", "sigmoid", "relu")


# ------------------------------------------------------------- reference
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


RNN_GRADS = ("dX", "dh0", "dWx", "dWh", "db", "dA", "dh")
BIRNN_GRADS = ("dX", "dhf0", "dhb0", "dWxf", "dWhf", "dbf", "dWxb", "dWhb", "dbb",
               "dWy", "dby", "dhf", "dhb", "dAf", "dAb")


# ----------------------------------------------------- against the reference
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (5, 3, 4, 6), (7, 2, 3, 5), (3, 9, 17, 4)])
def test_rnn_matches_numpy_bptt(shape, act, dtype, rng, ref):
    T, B, N, M = shape
    p = make_rnn(rng, T, B, N, M, dtype)
    H, cache = nk.rnn_forward(p["X"], p["h0"], p["Wx"], p["Wh"], p["b"], act)
    assert H.dtype == dtype and H.shape == (T, B, M)
    dH = rng.standard_normal(H.shape).astype(dtype)
    g = nk.rnn_backward(dH, cache)
    r = rnn_bptt_ref(dH, p["X"], p["h0"], p["Wx"], p["Wh"], p["b"], act)
    # float32: rounding carried through up to 7 recurrent steps: 1e-5 -> 1e-4
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    ref.assert_rel(H, r["H"], tol, "H")
    for name in RNN_GRADS:
        got = getattr(g, name)
        assert got.dtype == dtype, name
        ref.assert_rel(got, r[name], tol, name)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bias", [False, True])
def test_birnn_matches_numpy_bptt(act, bias, dtype, rng, ref):
    T, B, N, M, K = 4, 3, 5, 6, 2
    p = make_birnn(rng, T, B, N, M, K, dtype, bias=bias)
    Y, cache = nk.birnn_forward(**p, activation=act)
    dY = rng.standard_normal(Y.shape).astype(dtype)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **p, act=act)
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    ref.assert_rel(Y, r["Y"], tol, "Y")
    for name in BIRNN_GRADS:
        ref.assert_rel(getattr(g, name), r[name], tol, name)


def test_birnn_without_bias_is_bias_zero(rng):
    p = make_birnn(rng, 3, 2, 3, 4, 2)
    Y0, c0 = nk.birnn_forward(**p)
    Y1, c1 = nk.birnn_forward(**p, bf=np.zeros(4), bb=np.zeros(4))
    np.testing.assert_array_equal(Y0, Y1)
    G = rng.standard_normal(Y0.shape)
    g0, g1 = nk.birnn_backward(G, c0), nk.birnn_backward(G, c1)
    for name in BIRNN_GRADS:
        np.testing.assert_allclose(getattr(g0, name), getattr(g1, name), rtol=1e-13, atol=1e-14)
    # the returned dbf is Σ dA^f (what a bias at 0 would receive)
    np.testing.assert_allclose(g0.dbf, g0.dAf.sum(axis=(0, 1)), rtol=1e-12)


def test_reversed_chain_is_the_forward_chain_on_the_reversed_sequence(rng):
    """birnn's backward chain equals an rnn run on X[::-1] (read back reversed)."""
    p = make_birnn(rng, 5, 2, 3, 4, 2, bias=True)
    Y, cache = nk.birnn_forward(**p, activation="tanh")
    Hb, _ = nk.rnn_forward(p["X"][::-1], p["hb0"], p["Wxb"], p["Whb"], p["bb"], "tanh")
    np.testing.assert_allclose(cache.Hb, Hb[::-1], rtol=1e-13, atol=1e-15)


def test_bptt_carries_gradient_back_in_time(rng):
    """Only dH at the last step is nonzero; earlier steps still get gradient
    (and in the reversed chain, only at the first step)."""
    p = make_rnn(rng, 4, 2, 3, 3)
    H, cache = nk.rnn_forward(**p)
    dH = np.zeros_like(H)
    dH[-1] = 1.0
    g = nk.rnn_backward(dH, cache)
    assert np.all(np.abs(g.dh[:-1]).sum(axis=(1, 2)) > 0)
    np.testing.assert_array_equal(g.dh[-1], dH[-1])
    np.testing.assert_allclose(g.dh[:-1], np.einsum("tbm,mk->tbk", g.dA[1:], p["Wh"]),
                               rtol=1e-12, atol=1e-15)


# ------------------------------------------------------ finite differences
@pytest.mark.parametrize("act", ACTS)
def test_rnn_gradcheck(act, dtype, rng):
    p = make_rnn(rng, 4, 3, 2, 3, dtype)
    rep = nk.gradcheck(lambda **k: nk.rnn_forward(**k, activation=act), nk.rnn_backward, p)
    assert rep.passed, rep.table()


@pytest.mark.parametrize("bias", [False, True])
def test_birnn_gradcheck(bias, dtype, rng):
    p = make_birnn(rng, 3, 2, 3, 3, 2, dtype, bias=bias)
    rep = nk.gradcheck(nk.birnn_forward, nk.birnn_backward, p)
    assert rep.passed, rep.table()
    assert len(rep.checks) == len(p)


def test_gradcheck_catches_a_wrong_bptt(rng):
    """Truncated BPTT (dh_t = dH_t only) must fail: the check can fail."""
    p = make_rnn(rng, 3, 2, 2, 3)

    def truncated(dH, cache):
        g = nk.rnn_backward(dH, cache)
        X = cache.X
        dA = dH * (1 - cache.H ** 2)
        return g._replace(dWx=np.einsum("tbm,tbn->mn", dA, X))
    rep = nk.gradcheck(nk.rnn_forward, truncated, p)
    assert not rep["Wx"].passed and rep["Wh"].passed


# ------------------------------------------------------------ walkthrough
def test_birnn_walkthrough_graph():
    assert "birnn" in registry()
    t = Trace("birnn")
    T = t.cfg["T"]
    assert T == 3
    keys = {n.key for n in t.nodes}
    assert {f"hf[{i}]" for i in range(0, 4)} <= keys
    assert {f"hb[{i}]" for i in range(1, 5)} <= keys
    assert {f"y[{i}]" for i in range(1, 4)} <= keys
    assert t.node("hf[2]").chain == "forward" and t.node("hf[2]").time == 2
    assert t.node("hb[4]").chain == "backward" and t.node("hb[4]").time == 4
    assert t.descendants("hf[1]") == ["hf[2]", "hf[3]", "y[1]", "y[2]", "y[3]", "L"]
    assert t.descendants("hb[2]") == ["hb[1]", "y[1]", "y[2]", "L"]
    # the loss is Σ ½||y − z||², independently of the kernels
    Y = np.stack([t.value(f"y[{i}]") for i in range(1, 4)])
    Z = np.stack([t.value(f"z[{i}]") for i in range(1, 4)])
    assert t.loss == pytest.approx(0.5 * np.sum((Y - Z) ** 2), rel=1e-12)


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_birnn_walkthrough_every_node_passes(dt):
    w = registry()["birnn"]
    for cfg in w.check_configs()[:3]:
        rep = Trace(w, dtype=dt, **cfg).check_all(max_elements=32)
        assert rep.passed, rep.table()


def test_birnn_walkthrough_catches_a_truncated_bptt():
    w = registry()["birnn"]

    class Truncated(type(w)):
        def analytic(self, values, cfg):
            g = super().analytic(values, cfg)
            g["hf[1]"] = g["y[1]"] @ values["Wy"][:, :cfg["M"]]   # drops what h^f_2 sends back
            return g
    rep = Trace(Truncated()).check_all()
    assert not rep.passed and not rep["h^f_1"].passed
    assert rep["h^f_2"].passed and rep["h^b_1"].passed


def test_birnn_walkthrough_insights():
    t = Trace("birnn", w_scale=0.5)
    lines = t.insights("hf[2]")
    assert any("right to left" in s for s in lines)
    assert any("δ^T" in s for s in lines)
    assert any("left to right" in s for s in t.insights("hb[1]"))
    assert t.insights("Wy") == []
    v = t.views("hf[2]")
    assert len(v) == 2 and all(a.shape == (2, 3) for a in v.values())


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_rnn_walkthrough_every_node_passes(dt):
    w = registry()["rnn"]
    for cfg in w.check_configs()[:3]:
        t = Trace(w, dtype=dt, **cfg)
        rep = t.check_all(max_elements=32)
        assert rep.passed, rep.table()
        # h_0 plus T pre-activations and T states are time-indexed on one chain
        T = t.cfg["T"]
        assert sum(n.chain == "forward" for n in t.nodes) == 2 * T + 1


def test_rnn_walkthrough_nodes_against_the_reference():
    """The trace's a_t and h_t values (NumPy node functions) and the kernels'
    dA, dh gradients agree with the reference BPTT."""
    t = Trace("rnn", T=3, seed=5)
    v = t.values
    X = np.stack([v[f"x[{i}]"] for i in (1, 2, 3)])
    G = np.stack([v[f"G[{i}]"] for i in (1, 2, 3)])
    r = rnn_bptt_ref(G, X, v["h[0]"], v["Wx"], v["Wh"], v["b"], "tanh")
    for i in (1, 2, 3):
        np.testing.assert_allclose(v[f"h[{i}]"], r["H"][i - 1], rtol=1e-12)
        np.testing.assert_allclose(t.grad(f"a[{i}]"), r["dA"][i - 1], rtol=1e-11)
        np.testing.assert_allclose(t.grad(f"h[{i}]"), r["dh"][i - 1], rtol=1e-11)
    np.testing.assert_allclose(t.grad("h[0]"), r["dh0"], rtol=1e-11)
    assert any("δ^T" in s for s in t.insights("h[2]"))


# ----------------------------------------------------- P9.2 (vanishing)
@pytest.mark.parametrize("act,gamma", [("sigmoid", 0.25), ("tanh", 1.0)])
@pytest.mark.parametrize("T", [1, 3, 10, 25])
def test_p9_2_vanishing_bound(act, gamma, T, rng):
    """|σ′| ≤ γ and λ1(WᵀW) < δ²/γ² ⇒ ||∂h_T/∂h_0|| ≤ δ^T.

    The Jacobian ∏_t diag(σ′(a_t)) W is built here from the reference's
    pre-activations, and read from the kernel too: with B = M identical
    samples and dH_T = I (zero elsewhere), the backward's dh0 is ∂h_T/∂h_0.
    """
    M, N, delta = 4, 3, 0.9
    W = rng.standard_normal((M, M))
    W *= 0.99 * (delta / gamma) / np.sqrt(np.linalg.eigvalsh(W.T @ W)[-1])
    assert np.linalg.eigvalsh(W.T @ W)[-1] < delta ** 2 / gamma ** 2
    Wx = rng.standard_normal((M, N))
    x = rng.standard_normal((T, 1, N))
    h0 = rng.standard_normal((1, M))
    _, A = rnn_ref(x, h0, Wx, W, None, act)
    J = np.eye(M)
    for t in range(T):
        J = (_df(act, A[t, 0])[:, None] * W) @ J
    assert np.linalg.norm(J, 2) <= delta ** T
    # the same Jacobian from the kernel's BPTT
    X = np.repeat(x, M, axis=1)
    H, cache = nk.rnn_forward(X, np.repeat(h0, M, axis=0), Wx, W, None, act)
    dH = np.zeros_like(H)
    dH[-1] = np.eye(M)
    np.testing.assert_allclose(nk.rnn_backward(dH, cache).dh0, J, rtol=1e-10, atol=1e-14)


# ------------------------------------------- the kernels' own tanh/sigmoid
def _act_only(a, act, dt):
    """H = act(a) from the kernel: T = 1, N = 1, Wx = 1, Wh = 0, no bias, h0 = 0."""
    X = np.asarray(a, dt).reshape(1, -1, 1)
    H, _ = nk.rnn_forward(X, None, np.ones((1, 1), dt), np.zeros((1, 1), dt), None, act)
    return H.ravel()


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_activation_accuracy_in_ulps(act, dtype, rng):
    """The kernels compute tanh and σ with their own vectorized exp: within a
    few ulps of libm (NumPy) in float64, correctly rounded in float32 (computed
    in double, rounded once), over ordinary, tiny, large and saturating
    arguments."""
    a = np.concatenate([3 * rng.standard_normal(20000), 1e-4 * rng.standard_normal(2000),
                        np.linspace(-40, 40, 4001), rng.uniform(-700, 700, 2000),
                        [0.0, -0.0, 1e-300, -1e-300, 19.06, 25.0, 30.0, 88.0, -88.0]])
    a = a.astype(dtype)
    got = _act_only(a, act, dtype).astype(np.float64)
    a64 = a.astype(np.float64)
    if act == "tanh":
        want = np.tanh(a64)
    else:   # stable σ in float64 from NumPy's exp
        z = np.exp(-np.abs(a64))
        want = np.where(a64 >= 0, 1 / (1 + z), z / (1 + z))
    want_dt = want.astype(dtype)
    ulps = np.abs(got - want_dt) / np.spacing(np.abs(want_dt)).astype(np.float64)
    limit = 4 if dtype == np.float64 else 1   # float32: the double result rounded once
    assert ulps.max() <= limit, (a[np.argmax(ulps)], ulps.max())
    assert np.all(np.sign(got) == np.sign(want_dt))


def test_activation_special_values(dtype):
    big = 800.0 if dtype == np.float64 else 200.0     # e^−big is 0 in the dtype
    a = np.array([np.nan, np.inf, -np.inf, big, -big])
    t = _act_only(a, "tanh", dtype)
    s = _act_only(a, "sigmoid", dtype)
    r = _act_only(a, "relu", dtype)
    assert np.isnan(t[0]) and np.isnan(s[0])
    assert r[0] == 0          # as nk.relu_forward: [NaN > 0] is false
    np.testing.assert_array_equal(t[1:], [1, -1, 1, -1])
    np.testing.assert_array_equal(s[1:], [1, 0, 1, 0])
    np.testing.assert_array_equal(r[1:], [np.inf, 0, big, 0])


# ---------------------------------------------------- dtypes, edge cases
def test_float32_agrees_with_float64(rng):
    p = make_rnn(rng, 6, 4, 5, 7)
    G = rng.standard_normal((6, 4, 7))
    H64, c64 = nk.rnn_forward(**p)
    H32, c32 = nk.rnn_forward(**{k: a.astype(np.float32) for k, a in p.items()})
    g64, g32 = nk.rnn_backward(G, c64), nk.rnn_backward(G.astype(np.float32), c32)
    np.testing.assert_allclose(H32, H64, rtol=1e-5, atol=1e-6)
    for name in RNN_GRADS:   # float32 rounding through 6 steps and T·B sums
        np.testing.assert_allclose(getattr(g32, name), getattr(g64, name), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_single_step_single_sample_single_feature(rng, ref):
    X, h0 = np.array([[[0.7]]]), np.array([[-0.3]])
    Wx, Wh, b = np.array([[1.5]]), np.array([[0.5]]), np.array([0.2])
    H, cache = nk.rnn_forward(X, h0, Wx, Wh, b)
    a = 0.7 * 1.5 - 0.3 * 0.5 + 0.2
    assert H[0, 0, 0] == pytest.approx(np.tanh(a), rel=1e-15)
    g = nk.rnn_backward(np.ones_like(H), cache)
    d = 1 - np.tanh(a) ** 2
    assert g.dX[0, 0, 0] == pytest.approx(d * 1.5, rel=1e-14)
    assert g.dh0[0, 0] == pytest.approx(d * 0.5, rel=1e-14)
    assert g.dWx[0, 0] == pytest.approx(d * 0.7, rel=1e-14)
    assert g.dWh[0, 0] == pytest.approx(d * -0.3, rel=1e-14)
    assert g.db[0] == pytest.approx(d, rel=1e-14)


def test_defaults_zero_state_and_no_bias(rng):
    p = make_rnn(rng, 3, 2, 2, 3, bias=False)
    H, cache = nk.rnn_forward(p["X"], None, p["Wx"], p["Wh"], None)
    r, _ = rnn_ref(p["X"], np.zeros((2, 3)), p["Wx"], p["Wh"], None, "tanh")
    np.testing.assert_allclose(H, r, rtol=1e-13)


def test_non_contiguous_inputs(rng):
    p = make_rnn(rng, 4, 3, 5, 6)
    big = rng.standard_normal((4, 3, 10))
    Xs = big[:, :, ::2]                          # strided view
    Wx_f = np.asfortranarray(p["Wx"])
    Wh_t = np.ascontiguousarray(p["Wh"].T).T     # transposed view
    h0_s = np.repeat(p["h0"], 2, axis=0)[::2]
    assert not Xs.flags.c_contiguous and not Wh_t.flags.c_contiguous
    H, cache = nk.rnn_forward(Xs, h0_s, Wx_f, Wh_t, p["b"])
    Hc, cc = nk.rnn_forward(np.ascontiguousarray(Xs), p["h0"], p["Wx"], p["Wh"], p["b"])
    np.testing.assert_array_equal(H, Hc)
    G = rng.standard_normal((8, 3, 6))[::2]
    g, gc = nk.rnn_backward(G, cache), nk.rnn_backward(np.ascontiguousarray(G), cc)
    for name in RNN_GRADS:
        np.testing.assert_array_equal(getattr(g, name), getattr(gc, name))
    # birnn: Wy as a transposed view
    q = make_birnn(rng, 3, 2, 3, 4, 2)
    Wy = q["Wy"]
    q["Wy"] = np.ascontiguousarray(Wy.T).T
    Y, _ = nk.birnn_forward(**q)
    q["Wy"] = Wy
    np.testing.assert_array_equal(Y, nk.birnn_forward(**q)[0])


def test_inputs_are_not_modified_and_out_is_used(rng):
    p = make_rnn(rng, 3, 2, 2, 3)
    copies = {k: a.copy() for k, a in p.items()}
    out = np.empty((3, 2, 3))
    H, cache = nk.rnn_forward(**p, out=out)
    assert H is out
    G = rng.standard_normal(H.shape)
    Gc = G.copy()
    nk.rnn_backward(G, cache)
    for k in p:
        np.testing.assert_array_equal(p[k], copies[k])
    np.testing.assert_array_equal(G, Gc)
    buf = p["X"].copy().reshape(-1)            # X (3, 2, 2) and out (3, 2, 3) on one buffer
    buf = np.concatenate([buf, np.zeros(6)])
    p["X"] = buf[:12].reshape(3, 2, 2)
    with pytest.raises(ValueError, match="out: shares memory with input X"):
        nk.rnn_forward(**p, out=buf.reshape(3, 2, 3))


@given(T=st.integers(1, 5), B=st.integers(1, 4), N=st.integers(1, 5), M=st.integers(1, 5),
       act=st.sampled_from(ACTS), seed=st.integers(0, 2**16))
def test_hypothesis_rnn_shapes(T, B, N, M, act, seed):
    rng = np.random.default_rng(seed)
    p = make_rnn(rng, T, B, N, M)
    H, cache = nk.rnn_forward(**p, activation=act)
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache)
    r = rnn_bptt_ref(dH, **p, act=act)
    np.testing.assert_allclose(H, r["H"], rtol=1e-12, atol=1e-13)
    for name in RNN_GRADS:
        np.testing.assert_allclose(getattr(g, name), r[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@given(T=st.integers(1, 4), B=st.integers(1, 3), N=st.integers(1, 4), M=st.integers(1, 4),
       K=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_hypothesis_birnn_shapes(T, B, N, M, K, seed):
    rng = np.random.default_rng(seed)
    p = make_birnn(rng, T, B, N, M, K, bias=seed % 2 == 1)
    Y, cache = nk.birnn_forward(**p)
    dY = rng.standard_normal(Y.shape)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **p, act="sigmoid")
    np.testing.assert_allclose(Y, r["Y"], rtol=1e-12, atol=1e-13)
    for name in BIRNN_GRADS:
        np.testing.assert_allclose(getattr(g, name), r[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


# ------------------------------------------------------------ bad input
def _ok(rng):
    return make_rnn(rng, 3, 2, 4, 5)


@pytest.mark.parametrize("change,exc,match", [
    (dict(X=np.zeros((2, 4))), ValueError, r"X: expected a 3-D array \(T, B, N\).*got shape \(2, 4\)"),
    (dict(X=np.zeros((0, 2, 4))), ValueError, r"X: expected at least one time step \(T ≥ 1\)"),
    (dict(X=np.zeros((3, 0, 4))), ValueError, r"X: expected a non-empty array"),
    (dict(X=np.zeros((3, 2, 4), np.int64)), TypeError, r"X: expected dtype float32 or float64, got int64"),
    (dict(X=np.zeros((3, 2, 4), np.float32)), TypeError, r"Wx: expected dtype float32"),
    (dict(Wx=np.zeros((5, 3))), ValueError, r"Wx: expected Wx.shape\[1\] \(N, the features of X\) = 4, got 3"),
    (dict(Wh=np.zeros((5, 4))), ValueError, r"Wh: expected shape \(5, 5\).*got \(5, 4\)"),
    (dict(b=np.zeros(4)), ValueError, r"b: expected b.shape\[0\] \(M = Wx.shape\[0\]\) = 5, got 4"),
    (dict(h0=np.zeros((3, 5))), ValueError, r"h0: expected shape \(2, 5\).*got \(3, 5\)"),
    (dict(h0=np.zeros(5)), ValueError, r"h0: expected a 2-D array \(B, M\)"),
])
def test_rnn_forward_bad_input(change, exc, match, rng):
    p = _ok(rng)
    p.update(change)
    with pytest.raises(exc, match=match):
        nk.rnn_forward(**p)


def test_bad_activation_and_upstream(rng):
    p = _ok(rng)
    with pytest.raises(ValueError, match=r"activation: expected one of \['tanh', 'sigmoid', 'relu'\], got 'softplus'"):
        nk.rnn_forward(**p, activation="softplus")
    H, cache = nk.rnn_forward(**p)
    with pytest.raises(ValueError, match=r"dH: expected shape \(3, 2, 5\) \(the forward output\), got \(3, 2, 4\)"):
        nk.rnn_backward(np.zeros((3, 2, 4)), cache)
    with pytest.raises(TypeError, match=r"dH: expected dtype float64"):
        nk.rnn_backward(H.astype(np.float32), cache)
    _, bcache = nk.birnn_forward(**make_birnn(rng, 2, 2, 2, 2, 2))
    with pytest.raises(TypeError, match=r"cache: expected the cache returned by rnn_forward \(RNNCache\), got BiRNNCache"):
        nk.rnn_backward(H, bcache)
    with pytest.raises(TypeError, match=r"cache: expected the cache returned by birnn_forward"):
        nk.birnn_backward(H, cache)


@pytest.mark.parametrize("change,match", [
    (dict(Wy=np.zeros((2, 5))), r"Wy: expected Wy.shape\[1\] \(2M: it reads \[h\^f_t, h\^b_t\]\) = 6, got 5"),
    (dict(by=np.zeros(3)), r"by: expected by.shape\[0\] \(K = Wy.shape\[0\]\) = 2, got 3"),
    (dict(Wxb=np.zeros((4, 2)), Whb=np.zeros((4, 4))), r"Wxb: expected Wxb.shape\[0\] \(M, the hidden units"),
    (dict(Whf=np.zeros((3, 2))), r"Whf: expected shape \(3, 3\)"),
    (dict(hb0=np.zeros((2, 4))), r"hb0: expected shape \(2, 3\)"),
    (dict(bf=np.zeros(2)), r"bf: expected bf.shape\[0\] \(M = Wxf.shape\[0\]\) = 3, got 2"),
])
def test_birnn_forward_bad_input(change, match, rng):
    p = make_birnn(rng, 2, 2, 2, 3, 2)
    p.update(change)
    with pytest.raises(ValueError, match=match):
        nk.birnn_forward(**p)


# ---------------------------------------------------------------- layers
def test_rnn_layer_matches_functional(rng):
    layer = nk.RNN(3, 4, dtype=np.float64, seed=1)
    assert isinstance(layer, nk.Layer)
    X = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal((2, 4))
    H = layer(X, h0).copy()
    p = layer.params
    r = rnn_bptt_ref(np.ones_like(H), X, h0, p["Wx"], p["Wh"], p["b"], "tanh")
    np.testing.assert_allclose(H, r["H"], rtol=1e-12)
    dX = layer.backward(np.ones_like(H))
    np.testing.assert_allclose(dX, r["dX"], rtol=1e-11)
    for k in ("Wx", "Wh", "b"):
        np.testing.assert_allclose(layer.grads[k], r["d" + k], rtol=1e-11)
    np.testing.assert_allclose(layer.dh0, r["dh0"], rtol=1e-11)
    with pytest.raises(TypeError, match="X: expected dtype float64 \\(the layer's dtype\\), got float32"):
        layer(X.astype(np.float32))
    with pytest.raises(ValueError, match="hidden_size: expected a positive integer, got 0"):
        nk.RNN(3, 0)
    with pytest.raises(RuntimeError, match="call forward first"):
        nk.RNN(2, 2).backward(np.zeros((1, 1, 2)))


def test_birnn_layer_matches_functional(rng):
    layer = nk.BiRNN(3, 4, 2, bias=True, dtype=np.float32, seed=2)
    assert set(layer.params) == {"Wxf", "Whf", "bf", "Wxb", "Whb", "bb", "Wy", "by"}
    X = rng.standard_normal((4, 3, 3)).astype(np.float32)
    Y = layer(X).copy()
    G = rng.standard_normal(Y.shape).astype(np.float32)
    dX = layer.backward(G).copy()
    p = {k: a.astype(np.float64) for k, a in layer.params.items()}
    r = birnn_ref(G, X, np.zeros((3, 4)), np.zeros((3, 4)), act="sigmoid", **p)
    np.testing.assert_allclose(Y, r["Y"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dX, r["dX"], rtol=1e-4, atol=1e-5)
    for k in layer.params:
        np.testing.assert_allclose(layer.grads[k], r["d" + k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert set(nk.BiRNN(2, 2, 2).params) == {"Wxf", "Whf", "Wxb", "Whb", "Wy", "by"}
