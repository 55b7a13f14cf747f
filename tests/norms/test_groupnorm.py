"""P8: group norm against a long-form NumPy transcription of its derivation
(written here), central differences, its two limits (1 group: layer norm,
C groups: instance norm), PyTorch's F.group_norm / nn.GroupNorm, and bad input."""
import numpy as np
import pytest

import nnkit as nk
import nnkit.norms as norms_module

EPS = 1e-5
TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


# ------------------------------------------------------------- reference
def gn_ref(X, gamma, beta, G, eps=EPS):
    """Group norm in float64, long form: X (B, C, ...) seen as (B, G, C/G, F),
    each (b, g) normalized over its C/G·F values; γ, β per channel.

    Returns the forward values and a function of dZ giving every gradient,
    with P2.3's total derivatives over the n = C/G·F values of a group:
        dv = Σ dx̂ (x − m) (−½)(v + ε)^(−3/2)
        dm = −Σ dx̂/√(v + ε) + dv (−2/n) Σ (x − m)
        dx = dx̂/√(v + ε) + dv 2(x − m)/n + dm/n
    """
    X = np.asarray(X, np.float64)
    B, C = X.shape[:2]
    Xg = X.reshape(B, G, C // G, -1)
    n = Xg.shape[2] * Xg.shape[3]
    m = Xg.mean(axis=(2, 3), keepdims=True)
    d = Xg - m
    v = (d * d).sum(axis=(2, 3), keepdims=True) / n
    s = np.sqrt(v + eps)
    xh = d / s
    g4 = np.asarray(gamma, np.float64).reshape(1, G, C // G, 1)
    b4 = np.asarray(beta, np.float64).reshape(1, G, C // G, 1)
    Z = g4 * xh + b4

    def backward(dZ):
        dZ = np.asarray(dZ, np.float64).reshape(Xg.shape)
        dxh = dZ * g4
        dvar = (dxh * d).sum(axis=(2, 3), keepdims=True) * -0.5 * (v + eps) ** -1.5
        dmean = (-(dxh / s).sum(axis=(2, 3), keepdims=True)
                 + dvar * (-2.0 / n) * d.sum(axis=(2, 3), keepdims=True))
        dX = dxh / s + dvar * 2.0 * d / n + dmean / n
        return dict(dX=dX.reshape(X.shape), dgamma=(dZ * xh).sum(axis=(0, 3)).reshape(C),
                    dbeta=dZ.sum(axis=(0, 3)).reshape(C), dmean=dmean.reshape(B, G),
                    dvar=dvar.reshape(B, G), dXhat=dxh.reshape(X.shape))

    return dict(Z=Z.reshape(X.shape), mean=m.reshape(B, G), var=v.reshape(B, G),
                xhat=xh.reshape(X.shape)), backward


def _inputs(rng, shape, dtype, loc=2.0, scale=3.0):
    C = shape[1]
    X = (loc + scale * rng.standard_normal(shape)).astype(dtype)
    gamma = (1 + 0.5 * rng.standard_normal(C)).astype(dtype)
    beta = (0.5 * rng.standard_normal(C)).astype(dtype)
    G = rng.standard_normal(shape).astype(dtype)
    return X, gamma, beta, G


# (B, C) with F = 1; groups of one channel and of all; rows shorter than a
# vector; rows over one kernel chunk (1024 float32); B·C·F above the threading
# threshold with uneven thread blocks; one over 8 MB in float32 (streamed
# stores) with odd rows. No group of 2 values: there x̂ = ±√(v/(v+ε)) and dX
# is O(ε) from O(1) terms, which float32 cannot resolve to 1e-5 of dX.
CASES = [((2, 6), 2), ((4, 2, 3), 1), ((4, 2, 3), 2), ((3, 6, 4, 5), 3), ((3, 6, 4, 5), 6),
         ((1, 4, 7), 2), ((5, 8, 300), 2), ((7, 12, 9, 11), 4), ((9, 32, 17, 13), 8),
         ((3, 30, 211, 167), 5)]


@pytest.mark.parametrize("shape, G", CASES, ids=lambda c: str(c))
def test_groupnorm_matches_long_form(ref, rng, dtype, shape, G):
    X, gamma, beta, dZ = _inputs(rng, shape, dtype)
    Z, cache = nk.groupnorm_forward(X, gamma, beta, G)
    f, back = gn_ref(X, gamma, beta, G)
    tol = TOL[dtype]
    assert Z.dtype == dtype and Z.shape == X.shape
    assert cache.mean.shape == cache.var.shape == cache.rstd.shape == (shape[0], G)
    for name, got in (("Z", Z), ("mean", cache.mean), ("var", cache.var),
                      ("xhat", cache.xhat)):
        ref.assert_rel(got, f[name], tol, name)
    ref.assert_rel(cache.rstd, 1 / np.sqrt(f["var"] + EPS), tol, "rstd")
    g = nk.groupnorm_backward(dZ, cache)
    assert isinstance(g, nk.GroupNormGrads)
    want = back(dZ)
    for name in g._fields:
        got = getattr(g, name)
        assert got.dtype == dtype, name
        ref.assert_rel(got, want[name], tol, name)
    lean = nk.groupnorm_backward(dZ, cache, full=False)
    assert lean.dXhat is None
    for name in ("dX", "dgamma", "dbeta", "dmean", "dvar"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(g, name))


def test_cache_is_frozen_and_inputs_untouched(rng):
    X, gamma, beta, dZ = _inputs(rng, (3, 4, 5), np.float64)
    copies = [a.copy() for a in (X, gamma, beta, dZ)]
    _, cache = nk.groupnorm_forward(X, gamma, beta, 2)
    nk.groupnorm_backward(dZ, cache)
    for a, c in zip((X, gamma, beta, dZ), copies):
        np.testing.assert_array_equal(a, c)
    with pytest.raises(AttributeError):
        cache.num_groups = 4
    assert cache.X is X and cache.num_groups == 2 and cache.eps == EPS


def test_out_buffers(rng):
    X, gamma, beta, dZ = _inputs(rng, (3, 4, 5), np.float32)
    Z, cache = nk.groupnorm_forward(X, gamma, beta, 2)
    g = nk.groupnorm_backward(dZ, cache)
    zbuf, dbuf = np.empty_like(X), np.empty_like(X)
    Zo, cache = nk.groupnorm_forward(X, gamma, beta, 2, out=zbuf)
    go = nk.groupnorm_backward(dZ, cache, out=dbuf)
    assert Zo is zbuf and go.dX is dbuf
    np.testing.assert_array_equal(zbuf, Z)
    np.testing.assert_array_equal(dbuf, g.dX)
    with pytest.raises(ValueError, match="^out: shares memory with input X"):
        nk.groupnorm_forward(X, gamma, beta, 2, out=X)
    with pytest.raises(ValueError, match="^out: shares memory with input dZ"):
        nk.groupnorm_backward(dZ, cache, out=dZ)
    with pytest.raises(TypeError, match="^out: expected dtype float32"):
        nk.groupnorm_forward(X, gamma, beta, 2, out=np.empty(X.shape))


@pytest.mark.parametrize("shape, G", [((3, 4, 5), 2), ((2, 6), 3), ((2, 6, 2, 3), 1),
                                      ((2, 3, 2, 2), 3)], ids=str)
def test_central_differences(rng, shape, G):
    X, gamma, beta, _ = _inputs(rng, shape, np.float64)
    report = nk.gradcheck(nk.groupnorm_forward, nk.groupnorm_backward,
                          dict(X=X, gamma=gamma, beta=beta), kwargs=dict(num_groups=G),
                          strict=True)
    assert report.passed, report.table()


def test_statistics_gradients_by_central_differences(rng):
    """dmean and dvar are total derivatives (m feeds v and x̂): perturb m and v
    of one group in a NumPy forward that takes them as inputs."""
    B, C, F, G, eps, h = 2, 6, 4, 3, EPS, 1e-6
    X, gamma, beta, dZ = _inputs(rng, (B, C, F), np.float64)
    _, cache = nk.groupnorm_forward(X, gamma, beta, G)
    g = nk.groupnorm_backward(dZ, cache)
    Xg = X.reshape(B, G, -1)
    m0, v0 = Xg.mean(axis=2), Xg.var(axis=2)

    def loss(m, v):     # v computed from m: m's total derivative includes v's path
        xh = (Xg - m[..., None]) / np.sqrt(v[..., None] + eps)
        Z = gamma[None, :, None] * xh.reshape(X.shape) + beta[None, :, None]
        return float((dZ * Z).sum())

    def v_of(m):
        return ((Xg - m[..., None]) ** 2).mean(axis=2)

    for idx in np.ndindex(B, G):
        mp, mm = m0.copy(), m0.copy()
        mp[idx] += h
        mm[idx] -= h
        num_m = (loss(mp, v_of(mp)) - loss(mm, v_of(mm))) / (2 * h)
        vp, vm = v0.copy(), v0.copy()
        vp[idx] += h
        vm[idx] -= h
        num_v = (loss(m0, vp) - loss(m0, vm)) / (2 * h)
        assert abs(g.dmean[idx] - num_m) <= 1e-6 * (1 + abs(num_m)), (idx, g.dmean[idx], num_m)
        assert abs(g.dvar[idx] - num_v) <= 1e-6 * (1 + abs(num_v)), (idx, g.dvar[idx], num_v)


def test_one_group_is_layer_norm_and_c_groups_instance_norm(ref, rng):
    """G = 1: layer norm over (C, F) with γ, β broadcast from (C,) to (C, F);
    G = C: instance norm. Forward and every backward result."""
    B, C, F = 3, 4, 5
    X, gamma, beta, dZ = _inputs(rng, (B, C, F), np.float64)
    Zg, cg = nk.groupnorm_forward(X, gamma, beta, 1)
    gC, bC = np.repeat(gamma[:, None], F, 1), np.repeat(beta[:, None], F, 1)
    Zl, cl = nk.layernorm_forward(X, gC, bC)
    ref.assert_rel(Zg, Zl, 1e-13, "Z (1 group)")
    ref.assert_rel(cg.mean[:, 0], cl.mean, 1e-13, "mean (1 group)")
    gg, gl = nk.groupnorm_backward(dZ, cg), nk.layernorm_backward(dZ, cl)
    ref.assert_rel(gg.dX, gl.dX, 1e-12, "dX (1 group)")
    ref.assert_rel(gg.dgamma, gl.dgamma.sum(axis=1), 1e-12, "dgamma (1 group)")
    ref.assert_rel(gg.dvar[:, 0], gl.dvar, 1e-12, "dvar (1 group)")
    Zg, cg = nk.groupnorm_forward(X, gamma, beta, C)
    Zi, ci = nk.instancenorm_forward(X, gamma, beta)
    ref.assert_rel(Zg, Zi, 1e-13, "Z (C groups)")
    ref.assert_rel(cg.var, ci.var, 1e-13, "var (C groups)")
    gg, gi = nk.groupnorm_backward(dZ, cg), nk.instancenorm_backward(dZ, ci)
    for name in ("dX", "dgamma", "dbeta", "dmean", "dvar", "dXhat"):
        ref.assert_rel(getattr(gg, name), getattr(gi, name), 1e-12, name + " (C groups)")


def test_threaded_equals_single_thread(rng, monkeypatch):
    X, gamma, beta, dZ = _inputs(rng, (9, 32, 17, 13), np.float32)
    outs = []
    for n in ("1", "2"):
        monkeypatch.setenv("NNKIT_NUM_THREADS", n)
        Z, c = nk.groupnorm_forward(X, gamma, beta, 8)
        g = nk.groupnorm_backward(dZ, c)
        outs.append((Z, g.dX, g.dgamma, g.dbeta))
    for a, b in zip(*outs):                       # rows are independent
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- layer
def test_layer_matches_functional(rng):
    X, _, _, dZ = _inputs(rng, (3, 6, 4, 2), np.float64)
    layer = nk.GroupNorm(3, 6)
    assert repr(layer) == "GroupNorm(3, 6, eps=1e-05)"
    assert repr(nk.GroupNorm(2, 4, eps=1e-3, dtype=np.float32)) == \
        "GroupNorm(2, 4, eps=0.001, dtype=float32)"
    layer.params["gamma"][...] = 1 + 0.3 * rng.standard_normal(6)
    layer.params["beta"][...] = 0.2 * rng.standard_normal(6)
    Z, cache = nk.groupnorm_forward(X, layer.params["gamma"], layer.params["beta"], 3)
    g = nk.groupnorm_backward(dZ, cache)
    np.testing.assert_array_equal(layer(X), Z)
    np.testing.assert_array_equal(layer.backward(dZ), g.dX)
    np.testing.assert_array_equal(layer.grads["gamma"], g.dgamma)
    np.testing.assert_array_equal(layer.grads["beta"], g.dbeta)
    layer(X)                                       # gradients accumulate
    layer.backward(dZ)
    np.testing.assert_allclose(layer.grads["beta"], 2 * g.dbeta, rtol=1e-15)
    layer.eval()                                   # no running statistics: the same
    np.testing.assert_array_equal(layer(X), Z)
    with pytest.raises(RuntimeError, match="already used"):
        layer.train()(X)
        layer.backward(dZ)
        layer.backward(dZ)


def test_layer_float32_and_in_a_conv_net(rng):
    X = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    net = nk.Sequential(nk.Conv2d(3, 8, 3, padding=1, seed=0, dtype=np.float32),
                        nk.GroupNorm(4, 8, dtype=np.float32), nk.ReLU())
    H = net(X)
    assert H.dtype == np.float32 and H.shape == (2, 8, 6, 6)
    dX = net.backward(np.ones_like(H))
    assert dX.shape == X.shape and np.isfinite(dX).all()


# ----------------------------------------------------------------- torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape, G", [((4, 6, 5), 3), ((3, 8, 4, 5), 2), ((5, 6), 2),
                                      ((2, 4, 3, 3), 1)], ids=str)
def test_functional_matches_torch(rng, dtype, shape, G):
    torch = pytest.importorskip("torch")
    X, gamma, beta, dZ = _inputs(rng, shape, dtype)
    Z, cache = nk.groupnorm_forward(X, gamma, beta, G, 1e-4)
    g = nk.groupnorm_backward(dZ, cache)
    t = [torch.tensor(a, requires_grad=True) for a in (X, gamma, beta)]
    Zt = torch.nn.functional.group_norm(t[0], G, t[1], t[2], 1e-4)
    Zt.backward(torch.tensor(dZ))
    tol = TOL[np.dtype(dtype)]
    for mine, theirs in zip((Z, g.dX, g.dgamma, g.dbeta),
                            (Zt.detach(), t[0].grad, t[1].grad, t[2].grad)):
        theirs = theirs.numpy()
        assert mine.dtype == theirs.dtype
        scale = np.abs(theirs).max()
        np.testing.assert_allclose(mine, theirs, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_layer_matches_torch_module(rng, dtype):
    torch = pytest.importorskip("torch")
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    X, gamma, beta, _ = _inputs(rng, (4, 6, 5, 3), dtype)
    layer = nk.GroupNorm(2, 6, eps=1e-5, dtype=dtype)
    tl = torch.nn.GroupNorm(2, 6, eps=1e-5, dtype=tdt)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(gamma))
        tl.bias.copy_(torch.tensor(beta))
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    tol = TOL[np.dtype(dtype)]
    for step in range(2):                         # gradients accumulate in both
        dZ = rng.standard_normal(X.shape).astype(dtype)
        Xt = torch.tensor(X, requires_grad=True)
        Zt = tl(Xt)
        Zt.backward(torch.tensor(dZ))
        Z = layer(X)
        dX = layer.backward(dZ)
        for mine, theirs in ((Z, Zt.detach()), (dX, Xt.grad), (layer.grads["gamma"],
                             tl.weight.grad), (layer.grads["beta"], tl.bias.grad)):
            theirs = theirs.numpy()
            np.testing.assert_allclose(mine, theirs, rtol=tol,
                                       atol=tol * np.abs(theirs).max(), err_msg=f"step {step}")


# ------------------------------------------------------------- bad input
class _NoKernel:
    """Stands in for nnkit._kernels.norms: a bad input must be refused first."""

    def __getattr__(self, name):
        raise AssertionError(f"kernel {name} ran on bad input")


def test_bad_input_refused_before_any_kernel(monkeypatch):
    X, g, b = np.ones((2, 6, 3)), np.ones(6), np.zeros(6)
    _, cache = nk.groupnorm_forward(X + np.arange(3), g, b, 3)
    _, inst_cache = nk.instancenorm_forward(X + np.arange(3), g, b)
    monkeypatch.setattr(norms_module, "_k", _NoKernel())
    cases = [
        (ValueError, "num_groups: expected a divisor of the 6 channels",
         lambda: nk.groupnorm_forward(X, g, b, 4)),
        (ValueError, "num_groups: expected a positive integer",
         lambda: nk.groupnorm_forward(X, g, b, 0)),
        (ValueError, "num_groups", lambda: nk.groupnorm_forward(X, g, b, 12)),
        (TypeError, "num_groups", lambda: nk.groupnorm_forward(X, g, b, 2.0)),
        (TypeError, "num_groups", lambda: nk.groupnorm_forward(X, g, b, True)),
        (TypeError, "num_groups", lambda: nk.groupnorm_forward(X, g, b, None)),
        (ValueError, "X: expected at least 2 axes", lambda: nk.groupnorm_forward(
            np.ones(6), g, b, 3)),
        (ValueError, "X: expected a non-empty", lambda: nk.groupnorm_forward(
            np.ones((0, 6, 3)), g, b, 3)),
        (TypeError, "X: expected dtype float32 or float64", lambda: nk.groupnorm_forward(
            X.astype(np.int64), g, b, 3)),
        (TypeError, "X: expected dtype float32 or float64", lambda: nk.groupnorm_forward(
            X.astype(np.float16), g, b, 3)),
        (ValueError, "gamma: expected shape (6,)", lambda: nk.groupnorm_forward(
            X, np.ones(3), b, 3)),
        (TypeError, "beta: expected dtype float64", lambda: nk.groupnorm_forward(
            X, g, b.astype(np.float32), 3)),
        (ValueError, "eps", lambda: nk.groupnorm_forward(X, g, b, 3, -1.0)),
        (TypeError, "eps", lambda: nk.groupnorm_forward(X, g, b, 3, "small")),
        (TypeError, "cache: expected the cache returned by groupnorm_forward",
         lambda: nk.groupnorm_backward(X, object())),
        (ValueError, "dZ: expected shape (2, 6, 3)", lambda: nk.groupnorm_backward(
            np.ones((2, 6, 4)), cache)),
        (TypeError, "dZ: expected dtype float64", lambda: nk.groupnorm_backward(
            X.astype(np.float32), cache)),
        (TypeError, "full", lambda: nk.groupnorm_backward(X, cache, full=1)),
        (ValueError, "num_groups: expected a divisor of the 6 channels",
         lambda: nk.GroupNorm(4, 6)),
        (ValueError, "num_channels", lambda: nk.GroupNorm(1, 0)),
        (TypeError, "dtype", lambda: nk.GroupNorm(2, 6, dtype=np.int32)),
        (ValueError, r"X: expected shape (B, 6, ...)", lambda: nk.GroupNorm(3, 6)(
            np.ones((2, 4, 3)))),
        (ValueError, r"X: expected shape (B, 6, ...)", lambda: nk.GroupNorm(3, 6)(np.ones(6))),
        (TypeError, "X: expected dtype float32", lambda: nk.GroupNorm(
            3, 6, dtype=np.float32)(X)),
    ]
    for exc, start, fn in cases:
        with pytest.raises(exc) as info:
            fn()
        assert str(info.value).startswith(start), str(info.value)
    with pytest.raises(TypeError, match="^cache: .* got RowNormCache"):   # instance norm's
        nk.groupnorm_backward(X, inst_cache)
