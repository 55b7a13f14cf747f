"""Whitening batch norm on (B, C, H, W): the C channels whitened over (B, H, W),
as the decorrelated-batch-norm authors do for conv layers (nk.whitening_* and
nk.WhiteningBatchNorm on 4-D input). Against a NumPy reference written here
from P2.4's formulas (per channel group: m, Σ + εI, W = Σ^(−½) or L^(−ᵀ), and
ZCA's backward through the divided differences) and central differences."""
import numpy as np
import pytest

import nnkit as nk

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


# ------------------------------------------------------------- reference
def _zca(S):
    lam, D = np.linalg.eigh(S)
    return D @ np.diag(lam ** -0.5) @ D.T, lam, D


def white4d_ref(X, gamma, beta, eps, method="zca", group_size=None):
    """Forward in float64 on X (B, C, H, W): every (b, h, w) is a sample of the
    C channels. Returns Z, Ŷ (X's shape), m (C,), Σ (C, C) block diagonal, and
    a function of dZ giving dX, dγ, dβ for ZCA."""
    X = np.asarray(X, np.float64)
    B, C, H, W = X.shape
    n = B * H * W
    g = C if group_size is None else group_size
    m = X.mean(axis=(0, 2, 3))
    Xc = X - m[None, :, None, None]
    Sigma = np.zeros((C, C))
    Wm = np.zeros((C, C))
    blocks = []
    for a in range(0, C, g):
        sl = slice(a, min(a + g, C))
        # Σ_k = Σ over (b, h, w) of xc xcᵀ / n, one (g, g) block per group
        S = np.einsum("bihw,bjhw->ij", Xc[:, sl], Xc[:, sl]) / n + eps * np.eye(sl.stop - a)
        Sigma[sl, sl] = S
        if method == "zca":
            Wk, lam, D = _zca(S)
            blocks.append((sl, Wk, np.sqrt(lam), D))
        else:                                         # cholesky: Σ = L Lᵀ, W = L^(−ᵀ)
            Wk = np.linalg.inv(np.linalg.cholesky(S)).T
        Wm[sl, sl] = Wk
    # Ŷ[b, :, h, w] = Xc[b, :, h, w] W (a row vector times W)
    Yhat = np.einsum("bihw,ij->bjhw", Xc, Wm)
    gam, bet = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
    Z = gam[None, :, None, None] * Yhat + bet[None, :, None, None]

    def backward(dZ):
        assert method == "zca"
        dZ = np.asarray(dZ, np.float64)
        dYhat = dZ * gam[None, :, None, None]
        dgamma = (dZ * Yhat).sum(axis=(0, 2, 3))
        dbeta = dZ.sum(axis=(0, 2, 3))
        # Ŷ = Xc W: the direct path, then W = f(Σ) with f(λ) = λ^(−½)
        dXc = np.einsum("bjhw,ij->bihw", dYhat, Wm)
        dW = np.einsum("bihw,bjhw->ij", Xc, dYhat)
        dSigma = np.zeros((C, C))
        for sl, Wk, s, D in blocks:
            G = dW[sl, sl]
            G = (G + G.T) / 2
            K = -1.0 / (s[:, None] * s[None, :] * (s[:, None] + s[None, :]))
            dSigma[sl, sl] = D @ (K * (D.T @ G @ D)) @ D.T
        # Σ = Σ xc xcᵀ / n (dΣ symmetric): dXc += (2/n) Xc dΣ
        dXc += 2.0 / n * np.einsum("bihw,ij->bjhw", Xc, dSigma)
        # Xc = X − m: the mean's path
        dX = dXc - dXc.mean(axis=(0, 2, 3), keepdims=True)
        return dict(dY=dX, dgamma=dgamma, dbeta=dbeta, dcov=dSigma, dYhat=dYhat)

    return dict(Z=Z, yhat=Yhat, mean=m, cov=Sigma, W=Wm), backward


def _inputs(rng, shape, dtype):
    B, C, H, W = shape
    mix = np.eye(C) + 0.4 * rng.standard_normal((C, C))      # correlated channels
    X = np.einsum("bihw,ij->bjhw", rng.standard_normal(shape), mix) + rng.standard_normal(C)[
        None, :, None, None]
    gamma = 1 + 0.3 * rng.standard_normal(C)
    beta = 0.2 * rng.standard_normal(C)
    dZ = rng.standard_normal(shape)
    return (X.astype(dtype), gamma.astype(dtype), beta.astype(dtype), dZ.astype(dtype))


SHAPES = [((4, 3, 5, 5), None), ((2, 6, 4, 3), None), ((2, 6, 4, 3), 2), ((8, 16, 9, 7), 4),
          ((3, 5, 8, 8), 3)]


@pytest.mark.parametrize("shape, group_size", SHAPES, ids=str)
def test_zca_forward_backward_match_reference(ref, rng, dtype, shape, group_size):
    X, gamma, beta, dZ = _inputs(rng, shape, dtype)
    eps = 1e-3
    Z, cache = nk.whitening_forward(X, gamma, beta, eps, "zca", group_size)
    f, back = white4d_ref(X, gamma, beta, eps, "zca", group_size)
    tol = TOL[dtype]
    assert Z.shape == X.shape and Z.dtype == dtype and Z.flags.c_contiguous
    assert cache.shape == X.shape
    ref.assert_rel(Z, f["Z"], tol, "Z")
    ref.assert_rel(cache.mean, f["mean"], tol, "mean")
    ref.assert_rel(cache.cov, f["cov"], tol, "cov")
    ref.assert_rel(cache.whitening_matrix, f["W"], tol, "W")
    g = nk.whitening_backward(dZ, cache)
    want = back(dZ)
    for name in ("dY", "dgamma", "dbeta", "dcov", "dYhat"):
        got = getattr(g, name)
        assert got.dtype == dtype and got.shape == want[name].shape, name
        ref.assert_rel(got, want[name], tol, name)
    # the whitened channels: Cov over (B, H, W) of Ŷ = Σ_X (Σ_X + εI)⁻¹ ≈ I per group
    Yh = f["yhat"].transpose(1, 0, 2, 3).reshape(shape[1], -1)
    gs = shape[1] if group_size is None else group_size
    cov = Yh @ Yh.T / Yh.shape[1]
    for a in range(0, shape[1], gs):
        blk = cov[a:a + gs, a:a + gs]
        assert np.abs(blk - np.eye(len(blk))).max() < 0.05


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_cholesky_and_relu_forward(ref, rng, dtype):
    X, gamma, beta, dZ = _inputs(rng, (3, 4, 6, 5), dtype)
    Z, cache = nk.whitening_forward(X, gamma, beta, 1e-3, "cholesky")
    f, _ = white4d_ref(X, gamma, beta, 1e-3, "cholesky")
    ref.assert_rel(Z, f["Z"], TOL[np.dtype(dtype)], "Z cholesky")
    H, hc = nk.whitening_relu_forward(X, gamma, beta, 1e-3, "cholesky")
    ref.assert_rel(H, np.maximum(f["Z"], 0), TOL[np.dtype(dtype)], "H")
    g = nk.whitening_relu_backward(dZ, hc)
    assert g.dY.shape == g.dYhat.shape == g.dZ.shape == X.shape
    np.testing.assert_array_equal(g.dZ, dZ * (H > 0))


@pytest.mark.parametrize("method, group_size", [("zca", None), ("zca", 2), ("pca", None),
                                                ("cholesky", 3), ("newton", None)])
def test_central_differences(rng, method, group_size):
    X, gamma, beta, _ = _inputs(rng, (3, 4, 3, 2), np.float64)
    report = nk.gradcheck(nk.whitening_forward, nk.whitening_backward,
                          dict(Y=X, gamma=gamma, beta=beta),
                          kwargs=dict(eps=1e-2, method=method, group_size=group_size),
                          strict=True)
    assert report.passed, report.table()
    report = nk.gradcheck(nk.whitening_relu_forward, nk.whitening_relu_backward,
                          dict(Y=X, gamma=gamma, beta=beta),
                          kwargs=dict(eps=1e-2, method=method, group_size=group_size))
    assert report.passed, report.table()


def test_three_axes_and_out_buffers(ref, rng):
    """(B, C, L) as (B, C, L, 1); `out` receives Z and dY in the input's shape."""
    X, gamma, beta, dZ = _inputs(rng, (4, 3, 7, 1), np.float64)
    Z, cache = nk.whitening_forward(X[..., 0], gamma, beta, 1e-3)
    f, back = white4d_ref(X, gamma, beta, 1e-3)
    ref.assert_rel(Z, f["Z"][..., 0], 1e-10, "Z (B, C, L)")
    out = np.empty_like(Z)
    Zo, cache = nk.whitening_forward(X[..., 0], gamma, beta, 1e-3, out=out)
    assert Zo is out
    np.testing.assert_array_equal(out, Z)
    dout = np.empty_like(Z)
    g = nk.whitening_backward(dZ[..., 0], cache, out=dout, full=False)
    assert g.dY is dout and g.dYhat is None and g.dcov is None
    ref.assert_rel(dout, back(dZ)["dY"][..., 0], 1e-10, "dY (B, C, L)")
    with pytest.raises(ValueError, match=r"^out: expected shape \(4, 3, 7\)"):
        nk.whitening_forward(X[..., 0], gamma, beta, out=np.empty((28, 3)))


def test_eval_forward_per_channel(ref, rng, dtype):
    X, gamma, beta, _ = _inputs(rng, (2, 4, 3, 3), dtype)
    C = 4
    rm = rng.standard_normal(C).astype(dtype)
    RW = (np.eye(C) + 0.1 * rng.standard_normal((C, C))).astype(dtype)
    Z = nk.whitening_eval_forward(X, gamma, beta, rm, RW)
    want = (gamma[None, :, None, None].astype(np.float64)
            * np.einsum("bihw,ij->bjhw", X.astype(np.float64) - rm[None, :, None, None], RW)
            + beta[None, :, None, None])
    ref.assert_rel(Z, want, TOL[dtype], "eval Z")
    H = nk.whitening_eval_forward(X, gamma, beta, rm, RW, group_size=2, relu=True)
    mask = np.kron(np.eye(2), np.ones((2, 2)))
    want = (gamma[None, :, None, None].astype(np.float64)
            * np.einsum("bihw,ij->bjhw", X.astype(np.float64) - rm[None, :, None, None],
                        RW * mask) + beta[None, :, None, None])
    ref.assert_rel(H, np.maximum(want, 0), TOL[dtype], "eval H, groups of 2")


# ----------------------------------------------------------------- layer
def test_layer_on_4d_input(ref, rng):
    X, _, _, dZ = _inputs(rng, (4, 3, 5, 5), np.float64)
    layer = nk.WhiteningBatchNorm(3, eps=1e-3, momentum=0.25)
    Z = layer(X)
    f, back = white4d_ref(X, np.ones(3), np.zeros(3), 1e-3)
    ref.assert_rel(Z, f["Z"], 1e-10, "Z")
    ref.assert_rel(layer.backward(dZ), back(dZ)["dY"], 1e-10, "dX")
    ref.assert_rel(layer.grads["gamma"], back(dZ)["dgamma"], 1e-10, "dgamma")
    # running statistics: the momentum average of the batch's m and W
    ref.assert_rel(layer.running_mean, 0.25 * f["mean"], 1e-12, "running_mean")
    ref.assert_rel(layer.running_whitening, 0.75 * np.eye(3) + 0.25 * f["W"], 1e-10,
                   "running W")
    layer.eval()
    rm, RW = layer.running_mean, layer.running_whitening
    want = np.einsum("bihw,ij->bjhw", X - rm[None, :, None, None], RW)
    ref.assert_rel(layer(X), want, 1e-12, "eval")
    with pytest.raises(RuntimeError, match="training-mode forward"):
        layer.backward(dZ)
    # reused buffers: the same numbers
    layer.train()
    a = nk.WhiteningBatchNorm(3, eps=1e-3, group_size=2).reuse()
    b = nk.WhiteningBatchNorm(3, eps=1e-3, group_size=2)
    for _ in range(2):
        np.testing.assert_array_equal(a(X), b(X))
        np.testing.assert_array_equal(a.backward(dZ), b.backward(dZ))


def test_layer_float32_in_a_conv_net(rng):
    X = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    net = nk.Sequential(nk.Conv2d(3, 4, 3, padding=1, seed=0, dtype=np.float32),
                        nk.WhiteningBatchNorm(4, relu=True, dtype=np.float32))
    H = net(X)
    assert H.dtype == np.float32 and H.shape == (4, 4, 6, 6)
    assert net.backward(np.ones_like(H)).shape == X.shape


# ------------------------------------------------------------- bad input
def test_bad_input():
    X, g, b = np.random.default_rng(0).standard_normal((2, 3, 2, 2)), np.ones(3), np.zeros(3)
    _, cache = nk.whitening_forward(X, g, b)
    cases = [
        (ValueError, r"gamma: expected shape (3,) ((C,), one per channel), got (4,)",
         lambda: nk.whitening_forward(X, np.ones(4), b)),
        (TypeError, "beta: expected dtype float64", lambda: nk.whitening_forward(
            X, g, b.astype(np.float32))),
        (TypeError, "Y: expected dtype float32 or float64", lambda: nk.whitening_forward(
            X.astype(int), g, b)),
        (ValueError, "Y: expected a non-empty array", lambda: nk.whitening_forward(
            np.ones((2, 3, 0, 2)), g, b)),
        (ValueError, "Y: whitening batch norm needs a batch of at least 2 rows",
         lambda: nk.whitening_forward(np.ones((1, 3, 1, 1)), g, b)),
        (ValueError, "group_size", lambda: nk.whitening_forward(X, g, b, group_size=4)),
        (ValueError, "out: shares memory with input Y", lambda: nk.whitening_forward(
            X, g, b, out=X)),
        (ValueError, "dZ: expected a 4-D array (2, 3, 2, 2)", lambda: nk.whitening_backward(
            np.ones((8, 3)), cache)),
        (ValueError, "cache: comes from whitening_forward", lambda: nk.whitening_relu_backward(
            X, cache)),
        (ValueError, "running_whitening: expected shape (3, 3)",
         lambda: nk.whitening_eval_forward(X, g, b, np.zeros(3), np.eye(4))),
        (ValueError, r"Y: expected Y.shape[1] (num_features) = 4",
         lambda: nk.WhiteningBatchNorm(4)(X)),
        (TypeError, "Y: expected dtype float32", lambda: nk.WhiteningBatchNorm(
            3, dtype=np.float32)(X)),
    ]
    for exc, start, fn in cases:
        with pytest.raises(exc) as info:
            fn()
        assert str(info.value).startswith(start), str(info.value)
