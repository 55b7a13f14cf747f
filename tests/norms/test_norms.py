"""P8: layer norm, instance norm and batch norm over channels against a NumPy
transcription of the long-form derivation (written here), central differences
and PyTorch."""
import numpy as np
import pytest

import nnkit as nk

EPS = 1e-5


# ------------------------------------------------------------ references
def rownorm_ref(X, gamma, beta, axes, eps=EPS):
    """Normalize X over `axes`, γ/β broadcast; every gradient in long form (float64).

    Returns forward values and a function of G = ∂L/∂Z giving dX, dγ (summed over
    the axes γ does not have), dβ, dmean, dvar, dXhat.
    """
    X = np.asarray(X, np.float64)
    g = np.asarray(gamma, np.float64)
    b = np.asarray(beta, np.float64)
    n = np.prod([X.shape[a] for a in axes])
    m = X.mean(axis=axes, keepdims=True)
    d = X - m
    v = (d * d).sum(axis=axes, keepdims=True) / n
    s = np.sqrt(v + eps)
    xh = d / s
    Z = g * xh + b

    def backward(G, param_axes):
        G = np.asarray(G, np.float64)
        dxh = G * g
        dvar = (dxh * d).sum(axis=axes, keepdims=True) * -0.5 * (v + eps) ** -1.5
        dmean = -(dxh / s).sum(axis=axes, keepdims=True) + dvar * (-2.0 / n) * d.sum(
            axis=axes, keepdims=True)
        dX = dxh / s + dvar * 2.0 * d / n + dmean / n
        return dict(dX=dX, dgamma=(G * xh).sum(axis=param_axes),
                    dbeta=G.sum(axis=param_axes), dmean=dmean.squeeze(axes),
                    dvar=dvar.squeeze(axes), dXhat=dxh)
    return dict(Z=Z, mean=m.squeeze(axes), var=v.squeeze(axes), xhat=xh), backward


def _inputs(rng, shape, pshape, dtype, loc=2.0, scale=3.0):
    X = (loc + scale * rng.standard_normal(shape)).astype(dtype)
    gamma = (1 + 0.5 * rng.standard_normal(pshape)).astype(dtype)
    beta = (0.5 * rng.standard_normal(pshape)).astype(dtype)
    G = rng.standard_normal(shape).astype(dtype)
    return X, gamma, beta, G


def _compare(ref, got, want, tol, names, scale_of=None):
    for name in names:
        a, e = getattr(got, name) if not isinstance(got, dict) else got[name], want[name]
        ref.assert_rel(a, e, tol, name)


# Shapes: tiny, a row shorter than the 16 lanes, rows with a ragged lane tail,
# rows longer than one 1024-element chunk, odd B, and B·D above the threading
# threshold (65536 elements) with B odd so the thread blocks are uneven.
# The last of each list is over 8 MB even in float32: the outputs are written
# with streaming stores from a 2048-element buffer (pyx/_common.pxd), and an
# odd row length puts every row start off the vector alignment.
LN_SHAPES = [(2, 3), (1, 5), (7, 2, 3), (5, 17), (3, 1037), (4, 3, 900), (257, 301),
             (131, 4, 129), (1031, 2053)]
IN_SHAPES = [(3, 2, 5), (1, 1, 2), (5, 3, 7, 9), (2, 3, 1500), (67, 3, 400), (9, 7, 33, 37),
             (5, 7, 60013)]


@pytest.mark.parametrize("shape", LN_SHAPES, ids=str)
def test_layernorm_matches_long_form(ref, rng, dtype, shape):
    X, gamma, beta, G = _inputs(rng, shape, shape[1:], dtype)
    Z, cache = nk.layernorm_forward(X, gamma, beta)
    axes = tuple(range(1, len(shape)))
    f, back = rownorm_ref(X, gamma, beta, axes)
    tol = ref.RTOL[dtype]
    ref.assert_rel(Z, f["Z"], tol, "Z")
    ref.assert_rel(cache.mean, f["mean"], tol, "mean")
    ref.assert_rel(cache.var, f["var"], tol, "var")
    ref.assert_rel(cache.xhat, f["xhat"], tol, "xhat")
    g = nk.layernorm_backward(G, cache)
    want = back(G, 0)
    # ×10 on the conftest tolerances (1e-12 float64, 1e-5 float32): the gradients
    # are sums over up to 4·10⁵ products of normalized values and a rounded rstd
    for name in ("dgamma", "dbeta", "dXhat", "dvar"):
        ref.assert_rel(getattr(g, name), want[name], tol * 10, name)
    # dX and dmean are differences of cancelling terms (Σ(x − m) = 0 exactly):
    # measure against the size of the terms, rstd·|dXhat| (as test_batchnorm does)
    rstd = 1 / np.sqrt(f["var"] + EPS)
    term = np.max(np.abs(want["dXhat"]).reshape(shape[0], -1).sum(1) * rstd)
    assert np.max(np.abs(g.dmean - want["dmean"])) <= tol * 10 * term
    rows = np.abs(want["dXhat"]).reshape(shape[0], -1) * rstd[:, None]
    assert np.max(np.abs(g.dX - want["dX"])) <= tol * 10 * rows.max()
    assert g.dX.dtype == dtype and g.dgamma.shape == gamma.shape


@pytest.mark.parametrize("shape", IN_SHAPES, ids=str)
def test_instancenorm_matches_long_form(ref, rng, dtype, shape):
    C = shape[1]
    X, gamma, beta, G = _inputs(rng, shape, (C,), dtype)
    Z, cache = nk.instancenorm_forward(X, gamma, beta)
    axes = tuple(range(2, len(shape)))
    bshape = (1, C) + (1,) * len(axes)
    f, back = rownorm_ref(X, gamma.reshape(bshape), beta.reshape(bshape), axes)
    tol = ref.RTOL[dtype]
    ref.assert_rel(Z, f["Z"], tol, "Z")
    assert cache.mean.shape == (shape[0], C)
    ref.assert_rel(cache.mean, f["mean"], tol, "mean")
    ref.assert_rel(cache.var, f["var"], tol, "var")
    g = nk.instancenorm_backward(G, cache)
    want = back(G, (0,) + axes)
    for name in ("dgamma", "dbeta", "dXhat", "dvar"):
        ref.assert_rel(getattr(g, name), want[name], tol * 10, name)
    rstd = 1 / np.sqrt(f["var"] + EPS)
    rows = np.abs(want["dXhat"]).reshape(shape[0] * C, -1) * rstd.reshape(-1, 1)
    assert np.max(np.abs(g.dX - want["dX"])) <= tol * 10 * rows.max()


@pytest.mark.parametrize("shape", [(4, 2, 3), (5, 3, 7), (33, 8, 301)], ids=str)
def test_batchnorm_channels_per_channel_reference(ref, rng, dtype, shape):
    C = shape[1]
    X, gamma, beta, G = _inputs(rng, shape, (C,), dtype)
    Z, cache = nk.batchnorm_channels_forward(X, gamma, beta)
    f, back = rownorm_ref(X, gamma.reshape(1, C, 1), beta.reshape(1, C, 1), (0, 2))
    tol = ref.RTOL[dtype]
    ref.assert_rel(Z, f["Z"], tol, "Z")
    ref.assert_rel(cache.mean, f["mean"], tol, "mean (C,)")
    ref.assert_rel(cache.var, f["var"], tol, "var (C,)")
    g = nk.batchnorm_channels_backward(G, cache)
    want = back(G, (0, 2))
    for name in ("dgamma", "dbeta", "dvar"):
        ref.assert_rel(getattr(g, name), want[name], tol * 10, name)
    ref.assert_rel(g.dX, want["dX"], tol * 100, "dX")   # a projection: cancellation, see above


def test_batchnorm_channels_intermediates(rng):
    """Like every backward, the channel batch norm names its intermediates:
    dXhat = γ ⊙ dZ; with the fused ReLU also its dZ = dH ⊙ [Z > 0]; full=False
    skips both (the layer's path) and leaves every other gradient as it was."""
    X, gamma, beta, G = _inputs(rng, (5, 3, 4), (3,), np.float64)
    _, cache = nk.batchnorm_channels_forward(X, gamma, beta)
    g = nk.batchnorm_channels_backward(G, cache)
    np.testing.assert_array_equal(g.dXhat, G * gamma.reshape(1, 3, 1))   # one rounding each
    assert g.dZ is None
    lean = nk.batchnorm_channels_backward(G, cache, full=False)
    assert lean.dXhat is None and lean.dZ is None
    for name in ("dX", "dgamma", "dbeta", "dmean", "dvar"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(g, name))
    H, cache = nk.batchnorm_channels_forward(X, gamma, beta, relu=True)
    g = nk.batchnorm_channels_backward(G, cache)
    np.testing.assert_array_equal(g.dZ, np.where(H > 0, G, 0.0))
    np.testing.assert_array_equal(g.dXhat, g.dZ * gamma.reshape(1, 3, 1))


def test_batchnorm_layer_on_three_axes(ref, rng):
    X, _, _, G = _inputs(rng, (6, 3, 5), (3,), np.float64)
    layer = nk.BatchNorm(3)
    Z = layer(X)
    f, back = rownorm_ref(X, np.ones((1, 3, 1)), np.zeros((1, 3, 1)), (0, 2))
    ref.assert_rel(Z, f["Z"], 1e-12, "Z")
    dX = layer.backward(G)
    ref.assert_rel(dX, back(G, (0, 2))["dX"], 1e-10, "dX")
    ref.assert_rel(layer.grads["gamma"], back(G, (0, 2))["dgamma"], 1e-12, "dgamma")
    # running variance: unbiased over the B·F values of each channel (BatchNorm1d)
    n = 6 * 5
    ref.assert_rel(layer.running_var, 0.9 + 0.1 * X.var(axis=(0, 2)) * n / (n - 1), 1e-12,
                   "running_var")
    layer.eval()
    Ze = layer(X)
    want = (X - layer.running_mean[None, :, None]) / np.sqrt(layer.running_var[None, :, None] + EPS)
    ref.assert_rel(Ze, want, 1e-12, "eval")
    with pytest.raises(ValueError, match="dZ"):
        layer.train()
        layer(X)
        layer.backward(G[:, :, :4])


@pytest.mark.parametrize("fwd, bwd, shape, pshape", [
    (nk.layernorm_forward, nk.layernorm_backward, (3, 2, 4), (2, 4)),
    (nk.instancenorm_forward, nk.instancenorm_backward, (3, 2, 5), (2,)),
    (nk.batchnorm_channels_forward, nk.batchnorm_channels_backward, (3, 2, 4), (2,)),
], ids=["layer", "instance", "batch-channels"])
def test_central_differences(rng, fwd, bwd, shape, pshape):
    X, gamma, beta, _ = _inputs(rng, shape, pshape, np.float64)
    report = nk.gradcheck(fwd, bwd, dict(X=X, gamma=gamma, beta=beta), strict=True)
    assert report.passed, report.table()


def test_float32_sums_accurate_with_a_large_offset(rng):
    """float32 statistics of rows with mean 1000 and unit spread, D = 65536 (64 chunks):
    as accurate as the float64 statistics of the same float32 numbers to ~1e-6 relative
    of the variance. A plain float32 running sum is off by ~1e-3 here."""
    X = (1000 + rng.standard_normal((3, 65536))).astype(np.float32)
    _, c = nk.layernorm_forward(X, np.ones(65536, np.float32), np.zeros(65536, np.float32))
    X64 = X.astype(np.float64)
    assert np.max(np.abs(c.mean - X64.mean(1)) / 1000) < 1e-7
    assert np.max(np.abs(c.var - X64.var(1)) / X64.var(1)) < 1e-5
    naive = np.float32(0)
    for x in X[0, :4096]:        # what a single float32 accumulator does
        naive += x
    assert abs(naive / 4096 - X64[0, :4096].mean()) > 1e-5


def test_torch_semantics(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for fwd, bwd, shape, pshape, tfn in (
        (nk.layernorm_forward, nk.layernorm_backward, (5, 3, 7), (3, 7),
         lambda x, g, b: F.layer_norm(x, (3, 7), g, b, EPS)),
        (nk.instancenorm_forward, nk.instancenorm_backward, (5, 3, 7, 2), (3,),
         lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=EPS)),
        (nk.batchnorm_channels_forward, nk.batchnorm_channels_backward, (5, 3, 7), (3,),
         lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=EPS)),
    ):
        X, gamma, beta, G = _inputs(rng, shape, pshape, np.float64)
        Z, cache = fwd(X, gamma, beta)
        g = bwd(G, cache)
        t = [torch.tensor(a, requires_grad=True) for a in (X, gamma, beta)]
        Zt = tfn(*t)
        Zt.backward(torch.tensor(G))
        np.testing.assert_allclose(Z, Zt.detach().numpy(), rtol=1e-12, atol=1e-12)
        for mine, theirs in zip((g.dX, g.dgamma, g.dbeta), t):
            np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_layers_match_functional_and_torch_modules(rng):
    torch = pytest.importorskip("torch")
    X, _, _, G = _inputs(rng, (4, 6, 8), (8,), np.float64)
    ln = nk.LayerNorm(8)                          # over the last axis of (T, B, D)
    Z = ln(X)
    tl = torch.nn.LayerNorm(8, dtype=torch.float64)
    Xt = torch.tensor(X, requires_grad=True)
    Zt = tl(Xt)
    Zt.backward(torch.tensor(G))
    np.testing.assert_allclose(Z, Zt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ln.backward(G), Xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ln.grads["gamma"], tl.weight.grad.numpy(), atol=1e-11)
    inn = nk.InstanceNorm(6)
    ti = torch.nn.InstanceNorm1d(6, affine=True, dtype=torch.float64)
    Xt = torch.tensor(X, requires_grad=True)
    Zt = ti(Xt)
    Zt.backward(torch.tensor(G))
    np.testing.assert_allclose(inn(X), Zt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(inn.backward(G), Xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(inn.grads["beta"], ti.bias.grad.numpy(), atol=1e-11)


def test_threaded_equals_single_thread(rng, monkeypatch):
    X, gamma, beta, G = _inputs(rng, (257, 301), (301,), np.float32)
    outs = []
    for n in ("1", "2"):
        monkeypatch.setenv("NNKIT_NUM_THREADS", n)
        Z, c = nk.layernorm_forward(X, gamma, beta)
        g = nk.layernorm_backward(G, c)
        outs.append((Z, g.dX, g.dgamma))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])    # rows are independent
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_allclose(outs[0][2], outs[1][2], rtol=1e-6)   # merged partials


# ------------------------------------------------------------- bad input
def test_bad_input():
    X = np.ones((3, 4))
    g, b = np.ones(4), np.zeros(4)
    cases = [
        (TypeError, "X", lambda: nk.layernorm_forward(X.astype(int), g, b)),
        (ValueError, "X", lambda: nk.layernorm_forward(np.ones(4), np.ones(()), np.ones(()))),
        (ValueError, "X", lambda: nk.layernorm_forward(np.ones((0, 4)), g, b)),
        (ValueError, "gamma", lambda: nk.layernorm_forward(X, np.ones(3), b)),
        (TypeError, "beta", lambda: nk.layernorm_forward(X, g, b.astype(np.float32))),
        (ValueError, "eps", lambda: nk.layernorm_forward(X, g, b, -1.0)),
        (TypeError, "eps", lambda: nk.layernorm_forward(X, g, b, "small")),
        (ValueError, "X", lambda: nk.instancenorm_forward(X, g, b)),
        (ValueError, "X", lambda: nk.instancenorm_forward(np.ones((2, 3, 1)), np.ones(3),
                                                          np.zeros(3))),
        (ValueError, "gamma", lambda: nk.instancenorm_forward(np.ones((2, 3, 4)), g, b)),
        (ValueError, "X", lambda: nk.batchnorm_channels_forward(X, g, b)),
        (ValueError, "X", lambda: nk.batchnorm_channels_forward(np.ones((1, 3, 1)),
                                                                np.ones(3), np.zeros(3))),
        (TypeError, "cache", lambda: nk.layernorm_backward(X, object())),
        (TypeError, "cache", lambda: nk.batchnorm_channels_backward(X, object())),
    ]
    for exc, start, fn in cases:
        with pytest.raises(exc) as info:
            fn()
        assert str(info.value).startswith(start), str(info.value)
    _, c = nk.layernorm_forward(X, g, b)
    with pytest.raises(ValueError, match="^dZ"):
        nk.layernorm_backward(np.ones((3, 5)), c)
    with pytest.raises(ValueError, match="^cache: comes from layernorm"):
        nk.instancenorm_backward(X, c)
    _, ci = nk.instancenorm_forward(np.ones((2, 3, 4)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="^cache: comes from instancenorm"):
        nk.layernorm_backward(np.ones((2, 3, 4)), ci)
    with pytest.raises(ValueError, match="^out"):
        nk.layernorm_forward(X, g, b, out=X)
    for bad in (lambda: nk.LayerNorm(0), lambda: nk.LayerNorm((4, 0)),
                lambda: nk.InstanceNorm(0)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError, match="^normalized_shape"):
        nk.LayerNorm(2.5)
    with pytest.raises(ValueError, match="^X"):
        nk.LayerNorm(4)(np.ones((3, 5)))
    with pytest.raises(RuntimeError):
        nk.InstanceNorm(3).backward(np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="^X: expected dtype float64 .the layer's dtype"):
        nk.InstanceNorm(3)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="^X: expected dtype float32 .the layer's dtype"):
        nk.LayerNorm(4, dtype=np.float32)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="^X"):
        nk.InstanceNorm(3)(np.ones((2, 4, 5)))
