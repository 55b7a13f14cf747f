"""Conv and pooling kernels against direct nested-loop NumPy references
written here, finite differences (nk.gradcheck, float64), float32 vs float64,
and PyTorch when installed."""
import numpy as np
import pytest

import nnkit as nk


# ------------------------------------------------ nested-loop references
def conv_ref(X, W, b, stride, padding, dilation):
    """Y[n, o, i, j] = b[o] + Σ_c,u,v W[o,c,u,v] X[n, c, i·sh − ph + u·dh, j·sw − pw + v·dw]."""
    X, W = np.asarray(X, np.float64), np.asarray(W, np.float64)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    B, C, H, Wd = X.shape
    Co, _, kh, kw = W.shape
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (Wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    Y = np.zeros((B, Co, Ho, Wo))
    for n in range(B):
        for o in range(Co):
            for i in range(Ho):
                for j in range(Wo):
                    acc = 0.0 if b is None else float(b[o])
                    for c in range(C):
                        for u in range(kh):
                            for v in range(kw):
                                r, s = i * sh - ph + u * dh, j * sw - pw + v * dw
                                if 0 <= r < H and 0 <= s < Wd:
                                    acc += W[o, c, u, v] * X[n, c, r, s]
                    Y[n, o, i, j] = acc
    return Y


def pool_ref(X, kind, k, s, p, lp=2.0):
    X = np.asarray(X, np.float64)
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    B, C, H, W = X.shape
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    Y = np.zeros((B, C, Ho, Wo))
    for n in range(B):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    vals = [X[n, c, i * sh - ph + u, j * sw - pw + v]
                            for u in range(kh) for v in range(kw)
                            if 0 <= i * sh - ph + u < H and 0 <= j * sw - pw + v < W]
                    if kind == "max":
                        Y[n, c, i, j] = max(vals)
                    elif kind == "avg":
                        Y[n, c, i, j] = sum(vals) / (kh * kw)
                    else:
                        Y[n, c, i, j] = sum(abs(x) ** lp for x in vals) ** (1 / lp)
    return Y


CONV_CASES = [  # (B, C, H, W, Co, k, stride, padding, dilation)
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1)),
    (2, 3, 5, 4, 2, (3, 3), (1, 1), (1, 1), (1, 1)),
    (3, 2, 7, 6, 4, (3, 2), (2, 1), (1, 0), (1, 2)),
    (2, 4, 6, 6, 3, (1, 1), (1, 1), (0, 0), (1, 1)),        # pointwise: no im2col copy
    (2, 2, 9, 8, 3, (2, 3), (3, 2), (2, 1), (2, 1)),
    (5, 1, 4, 9, 2, (4, 1), (1, 3), (0, 0), (1, 1)),
    (2, 3, 3, 3, 2, (3, 3), (1, 1), (2, 2), (1, 1)),        # padding wider than half
    # Wider outputs: where the build has the tile kernel, the float32
    # forward packs im2col into panels of 16 output positions; rows of 21,
    # 19, 40 or 17 positions straddle panels and a leftover block follows.
    (2, 3, 13, 21, 5, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 2, 10, 19, 3, (3, 3), (1, 1), (2, 1), (2, 2)),      # dilated
    (1, 2, 6, 40, 2, (1, 3), (1, 1), (0, 2), (1, 1)),       # p = d(k - 1)
    (2, 2, 9, 17, 3, (1, 3), (1, 1), (1, 0), (1, 1)),       # p > d(k - 1)
    (2, 3, 20, 33, 4, (3, 3), (2, 2), (1, 1), (1, 1)),      # stride 2: rows gathered
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_loops(case, ref, rng, dtype):
    B, C, H, W, Co, k, s, p, d = case
    X = rng.standard_normal((B, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((Co, C) + k).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype)
    Y, cache = nk.conv2d_forward(X, Wt, b, s, p, d)
    assert Y.dtype == dtype
    ref.assert_rel(Y, conv_ref(X, Wt, b, s, p, d), ref.RTOL[dtype], "Y")
    Y0, _ = nk.conv2d_forward(X, Wt, None, s, p, d)
    ref.assert_rel(Y0, conv_ref(X, Wt, None, s, p, d), ref.RTOL[dtype], "Y (no bias)")


def _conv_loss(s, p, d, G):
    def f(X, W, b):
        Y, _ = nk.conv2d_forward(X, W, b, s, p, d)
        return float(np.sum(Y * G))
    return f


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients_finite_differences(case, rng):
    B, C, H, W, Co, k, s, p, d = case
    X = rng.standard_normal((B, C, H, W))
    Wt = rng.standard_normal((Co, C) + k)
    b = rng.standard_normal(Co)
    Y, cache = nk.conv2d_forward(X, Wt, b, s, p, d)
    G = rng.standard_normal(Y.shape)
    g = nk.conv2d_backward(G, cache)
    f = _conv_loss(s, p, d, G)
    for name, arr, ana in (("X", X, g.dX), ("W", Wt, g.dW), ("b", b, g.db)):
        num = nk.numeric_gradient(lambda: f(X, Wt, b), arr)     # perturbs arr in place
        # central differences err by ~1e-9 of the gradient's scale: an entry
        # near 0 among entries of 10 is judged against that scale
        atol = 1e-8 * max(1.0, float(np.max(np.abs(num))))
        np.testing.assert_allclose(ana, num, rtol=1e-6, atol=atol, err_msg=name)


def test_conv_gradcheck_api(rng):
    # the same through nk.gradcheck, the API users call on their own pairs
    X = rng.standard_normal((2, 2, 5, 5))
    Wt = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    report = nk.gradcheck(lambda X, W, b: nk.conv2d_forward(X, W, b, 2, 1),
                          nk.conv2d_backward, dict(X=X, W=Wt, b=b), seed=0, strict=True)
    assert report.passed, report.table()


def test_conv_backward_matches_torch(rng, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for B, C, H, W, Co, k, s, p, d in CONV_CASES + [(4, 8, 12, 11, 6, (3, 3), (2, 2), (1, 1), (1, 1))]:
        X = rng.standard_normal((B, C, H, W)).astype(dtype)
        Wt = rng.standard_normal((Co, C) + k).astype(dtype)
        b = rng.standard_normal(Co).astype(dtype)
        Y, cache = nk.conv2d_forward(X, Wt, b, s, p, d)
        G = rng.standard_normal(Y.shape).astype(dtype)
        g = nk.conv2d_backward(G, cache)
        tX, tW, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (X, Wt, b))
        tY = F.conv2d(tX, tW, tb, stride=s, padding=p, dilation=d)
        tY.backward(torch.tensor(G, dtype=torch.float64))
        tol = 1e-12 if dtype == np.float64 else 1e-5
        for got, want in ((Y, tY), (g.dX, tX.grad), (g.dW, tW.grad), (g.db, tb.grad)):
            w = want.detach().numpy()
            assert np.max(np.abs(got - w)) <= tol * max(1.0, np.max(np.abs(w))) * 10


def test_float32_against_float64(rng):
    X = rng.standard_normal((8, 5, 14, 13))
    Wt = rng.standard_normal((7, 5, 3, 3)) / 5
    b = rng.standard_normal(7)
    Y64, c64 = nk.conv2d_forward(X, Wt, b, 2, 1)
    Y32, c32 = nk.conv2d_forward(X.astype(np.float32), Wt.astype(np.float32),
                                 b.astype(np.float32), 2, 1)
    G = rng.standard_normal(Y64.shape)
    g64, g32 = nk.conv2d_backward(G, c64), nk.conv2d_backward(G.astype(np.float32), c32)
    for a, e in ((Y32, Y64), (g32.dX, g64.dX), (g32.dW, g64.dW), (g32.db, g64.db)):
        assert a.dtype == np.float32
        err = np.max(np.abs(a - e)) / np.max(np.abs(e))
        assert err < 1e-5, err


def test_threads_and_batch_split_agree(rng, monkeypatch):
    # one thread (samples in order) and a team (samples split) give the same numbers
    X = rng.standard_normal((7, 3, 10, 9))
    Wt = rng.standard_normal((4, 3, 3, 3))
    G = rng.standard_normal((7, 4, 10, 9))
    out = {}
    for n in ("1", "2"):
        monkeypatch.setenv("NNKIT_NUM_THREADS", n)
        Y, c = nk.conv2d_forward(X, Wt, None, 1, 1)
        out[n] = (Y, nk.conv2d_backward(G, c))
    np.testing.assert_allclose(out["1"][0], out["2"][0], rtol=1e-13, atol=1e-13)
    for k in range(3):
        np.testing.assert_allclose(out["1"][1][k], out["2"][1][k], rtol=1e-12, atol=1e-12)


def conv_backward_ref(dY, X, W, stride, padding, dilation):
    """dX, dW, db one kernel tap at a time on the zero-padded input (einsum
    over the strided window of each tap), in float64."""
    dY, X, W = (np.asarray(a, np.float64) for a in (dY, X, W))
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = dY.shape[2:]
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dXp, dW = np.zeros_like(Xp), np.zeros_like(W)
    for i in range(W.shape[2]):
        for j in range(W.shape[3]):
            win = (slice(None), slice(None), slice(i * dh, i * dh + sh * (Ho - 1) + 1, sh),
                   slice(j * dw, j * dw + sw * (Wo - 1) + 1, sw))
            dW[:, :, i, j] = np.einsum("bohw,bchw->oc", dY, Xp[win])
            dXp[win] += np.einsum("bohw,oc->bchw", dY, W[:, :, i, j])
    H, Wd = X.shape[2:]
    return dXp[:, :, ph:ph + H, pw:pw + Wd], dW, dY.sum(axis=(0, 2, 3))


# The backward's two ways (nk.conv._tiled): BLAS on the
# whole column matrix, or blocks of output positions on the tile kernel;
# blocks read the input at one flat shift when W' = W with stride 1
# ("same" padding along W), else one run per output row. Blocks hold
# up to 400 positions: 900 positions in rows of 30 run as 400 + 400 + 100,
# blocks ending inside rows; 253 positions (rows of 23) as one block, 15
# panels of 16 and 13 left over.
BACKWARD_PATH_CASES = [  # (B, C, H, W, Co, k, stride, padding, dilation)
    (3, 64, 30, 30, 64, (3, 3), (1, 1), (1, 1), (1, 1)),    # flat, blocks cross rows
    (2, 64, 11, 23, 20, (3, 3), (1, 1), (1, 1), (1, 1)),    # flat, 20 = 16 + 4 channels
    (2, 3, 32, 32, 16, (3, 3), (1, 1), (1, 1), (1, 1)),     # flat, K = 27, one block
    (2, 5, 12, 17, 7, (3, 5), (1, 1), (2, 4), (2, 2)),      # flat, dilated
    (2, 4, 9, 16, 6, (3, 3), (1, 1), (3, 1), (1, 1)),       # flat, padding > d(k - 1) in H
    (2, 4, 9, 16, 6, (3, 3), (2, 1), (1, 1), (1, 1)),       # W' = W but stride 2 in H: runs
    (2, 64, 21, 19, 24, (3, 3), (2, 2), (1, 1), (1, 1)),    # stride 2: runs per row
    (2, 6, 10, 13, 5, (3, 2), (1, 1), (0, 0), (1, 1)),      # valid: runs per row
    (2, 8, 7, 9, 4, (1, 1), (1, 1), (0, 0), (1, 1)),        # pointwise
]


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "blas"])
@pytest.mark.parametrize("case", BACKWARD_PATH_CASES, ids=str)
def test_forward_against_tap_reference(case, tiled, rng, dtype, monkeypatch):
    # the same geometries through the forward (float32 tiled: packed panels,
    # by flat shift where the rows line up, else one run per output row)
    B, C, H, W, Co, k, s, p, d = case
    monkeypatch.setattr(nk.conv, "_tiled", lambda T: tiled)
    X = rng.standard_normal((B, C, H, W)).astype(dtype)
    Wt = (rng.standard_normal((Co, C) + k) / np.sqrt(C * k[0] * k[1])).astype(dtype)
    Y, _ = nk.conv2d_forward(X, Wt, None, s, p, d)
    (sh, sw), (ph, pw), (dh, dw) = s, p, d
    Ho, Wo = Y.shape[2:]
    Xp = np.pad(X.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    want = np.zeros(Y.shape)
    for i in range(k[0]):
        for j in range(k[1]):
            win = Xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
            want += np.einsum("bchw,oc->bohw", win, Wt[:, :, i, j].astype(np.float64))
    err = np.max(np.abs(Y - want)) / np.max(np.abs(want))
    assert err < (2e-6 if dtype == np.float32 else 1e-13), err


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "blas"])
@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("case", BACKWARD_PATH_CASES, ids=str)
def test_backward_paths_against_tap_reference(case, threads, tiled, rng, dtype, monkeypatch):
    B, C, H, W, Co, k, s, p, d = case
    monkeypatch.setenv("NNKIT_NUM_THREADS", threads)
    monkeypatch.setattr(nk.conv, "_tiled", lambda T: tiled)
    X = rng.standard_normal((B, C, H, W)).astype(dtype)
    Wt = (rng.standard_normal((Co, C) + k) / np.sqrt(C * k[0] * k[1])).astype(dtype)
    Y, cache = nk.conv2d_forward(X, Wt, None, s, p, d)
    G = rng.standard_normal(Y.shape).astype(dtype)
    g = nk.conv2d_backward(G, cache)
    for name, got, want in zip(("dX", "dW", "db"), g, conv_backward_ref(G, X, Wt, s, p, d)):
        err = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert err < (2e-6 if dtype == np.float32 else 1e-13), (name, err)


def test_bwhc_layout_is_a_transpose(rng):
    # P3's layout: X (B, W, H, C), W (C_out, C_in, k1, k2) with k1 along W
    X = rng.standard_normal((2, 7, 5, 3))            # W = 7, H = 5
    Wt = rng.standard_normal((4, 3, 3, 2))           # k1 = 3 along W, k2 = 2 along H
    b = rng.standard_normal(4)
    Y, cache = nk.conv2d_forward(X, Wt, b, (2, 1), (1, 0), layout="BWHC")
    assert Y.shape == nk.conv2d_output_shape(X.shape, 4, (3, 2), (2, 1), (1, 0), layout="BWHC")
    Xn, Wn = X.transpose(0, 3, 2, 1), Wt.transpose(0, 1, 3, 2)
    want = conv_ref(Xn, Wn, b, (1, 2), (0, 1), (1, 1)).transpose(0, 3, 2, 1)
    np.testing.assert_allclose(Y, want, rtol=1e-12, atol=1e-12)
    G = rng.standard_normal(Y.shape)
    g = nk.conv2d_backward(G, cache)
    _, cn = nk.conv2d_forward(Xn, Wn, b, (1, 2), (0, 1))
    gn = nk.conv2d_backward(G.transpose(0, 3, 2, 1), cn)
    np.testing.assert_allclose(g.dX, gn.dX.transpose(0, 3, 2, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.dW, gn.dW.transpose(0, 1, 3, 2), rtol=1e-12, atol=1e-12)
    assert g.dX.shape == X.shape and g.dW.shape == Wt.shape


# ----------------------------------------------------------------- pooling
POOL_CASES = [((2, 2), (2, 2), (0, 0), (2, 3, 6, 8)), ((3, 3), (2, 2), (1, 1), (2, 2, 7, 7)),
              ((3, 2), (1, 2), (1, 0), (1, 3, 5, 6)), ((2, 2), (2, 2), (0, 0), (1, 2, 7, 5)),
              ((1, 1), (1, 1), (0, 0), (2, 1, 3, 3)), ((4, 3), (3, 1), (2, 1), (2, 2, 9, 6))]


@pytest.mark.parametrize("k,s,p,shape", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_forward_and_gradients(kind, k, s, p, shape, ref, rng, dtype):
    X = rng.standard_normal(shape).astype(dtype)
    fwd = getattr(nk, f"{kind}pool2d_forward")
    bwd = getattr(nk, f"{kind}pool2d_backward")
    Y, cache = fwd(X, k, s, p)
    ref.assert_rel(Y, pool_ref(X, kind, k, s, p), ref.RTOL[dtype], "Y")
    if dtype == np.float64:
        G = rng.standard_normal(Y.shape)
        dX = bwd(G, cache)
        num = nk.numeric_gradient(lambda: float(np.sum(fwd(X, k, s, p)[0] * G)), X)
        np.testing.assert_allclose(dX, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("lp", [1.0, 2.0, 3.0, 1.5])
def test_lppool(lp, ref, rng, dtype):
    X = (rng.standard_normal((2, 3, 7, 6)) + 0.1).astype(dtype)
    Y, cache = nk.lppool2d_forward(X, lp, (3, 2), (2, 2))
    ref.assert_rel(Y, pool_ref(X, "lp", (3, 2), (2, 2), (0, 0), lp), 10 * ref.RTOL[dtype], "Y")
    if dtype == np.float64:
        G = rng.standard_normal(Y.shape)
        num = nk.numeric_gradient(
            lambda: float(np.sum(nk.lppool2d_forward(X, lp, (3, 2), (2, 2))[0] * G)), X)
        np.testing.assert_allclose(nk.lppool2d_backward(G, cache), num, rtol=1e-6, atol=1e-8)


def test_max_ties_go_to_the_first_in_row_major_order():
    X = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 0.0, 0.0],
                    [5.0, 5.0, 1.0, 1.0],
                    [5.0, 5.0, 1.0, 1.0]]]])
    for k in ((2, 2), (2, 3)):          # the tiled 2x2 kernel and the general one
        Y, cache = nk.maxpool2d_forward(X, k, (2, 1) if k == (2, 3) else None)
        dX = nk.maxpool2d_backward(np.ones_like(Y), cache)
        if k == (2, 2):
            want = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], float)
            np.testing.assert_array_equal(dX[0, 0], want)
            np.testing.assert_array_equal(cache.argmax[0, 0], [[1, 2], [8, 10]])
        else:  # windows at columns 0..2 and 1..3 of rows 0-1, then rows 2-3
            np.testing.assert_array_equal(cache.argmax[0, 0], [[1, 1], [8, 9]])


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 4, 514, 520)], ids=str)
def test_max2x2_backward_against_numpy_windows(shape, rng, dtype):
    """The 2x2 stride-2 backward (its own kernel; at (2, 4, 514, 520), over
    8 MB, dX is written with streaming stores): dy at each window's arg-max,
    0 elsewhere, built here from NumPy's argmax over the reshaped windows."""
    B, C, H, W = shape
    X = rng.standard_normal(shape).astype(dtype)
    Y, cache = nk.maxpool2d_forward(X, 2)
    G = rng.standard_normal(Y.shape).astype(dtype)
    dX = nk.maxpool2d_backward(G, cache)
    win = X.reshape(B, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    hot = np.arange(4) == win.reshape(B, C, H // 2, W // 2, 4).argmax(-1)[..., None]
    want = (hot * G[..., None]).reshape(B, C, H // 2, W // 2, 2, 2)
    want = want.transpose(0, 1, 2, 4, 3, 5).reshape(shape)
    np.testing.assert_array_equal(dX, want)


def test_max_routes_and_avg_spreads(rng):
    X = rng.standard_normal((1, 1, 4, 4))
    Y, c = nk.maxpool2d_forward(X, 2)
    dX = nk.maxpool2d_backward(np.full(Y.shape, 2.0), c)
    assert np.count_nonzero(dX) == 4 and dX.sum() == 8.0
    for i in range(2):
        for j in range(2):
            win = X[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            assert dX[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2][win == win.max()] == 2.0
    Y, c = nk.avgpool2d_forward(X, 2)
    np.testing.assert_array_equal(nk.avgpool2d_backward(np.full(Y.shape, 2.0), c), 0.5)


def test_pools_match_torch(rng, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    X = rng.standard_normal((3, 4, 11, 10)).astype(dtype)
    for name, fn, tfn, kw in (("max", nk.maxpool2d_forward, F.max_pool2d, dict(padding=1)),
                              ("avg", nk.avgpool2d_forward, F.avg_pool2d, dict(padding=1)),
                              ("lp", None, None, {})):
        for k, s in (((2, 2), None), ((3, 2), (2, 1))):
            tX = torch.tensor(np.abs(X) if name == "lp" else X, requires_grad=True)
            if name == "lp":
                Y, c = nk.lppool2d_forward(np.abs(X), 2, k, s)
                tY = F.lp_pool2d(tX, 2, k, s)
            else:
                Y, c = fn(X, k, s, **kw)
                tY = tfn(tX, k, s, **kw)
            G = rng.standard_normal(Y.shape).astype(dtype)
            tY.backward(torch.tensor(G))
            dX = getattr(nk, f"{name}pool2d_backward")(G, c)
            tol = 1e-12 if dtype == np.float64 else 2e-5
            np.testing.assert_allclose(Y, tY.detach().numpy(), rtol=tol, atol=tol)
            np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=tol, atol=tol)


# ------------------------------------------------------------- bad input
X4 = np.zeros((2, 3, 8, 8))
W4 = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: nk.conv2d_forward(X4.astype(np.int64), W4), TypeError, "X: expected dtype"),
    (lambda: nk.conv2d_forward(X4[0], W4), ValueError, "X: expected a 4-D array"),
    (lambda: nk.conv2d_forward(X4, W4.astype(np.float32)), TypeError, "W: expected dtype float64"),
    (lambda: nk.conv2d_forward(X4, np.zeros((4, 2, 3, 3))), ValueError, "W: expected W.shape[1]"),
    (lambda: nk.conv2d_forward(X4, W4, np.zeros(3)), ValueError, "b: expected b.shape[0]"),
    (lambda: nk.conv2d_forward(X4, np.zeros((4, 3, 9, 3))), ValueError, "kernel_size: the kernel (9)"),
    (lambda: nk.conv2d_forward(X4, W4, stride=0), ValueError, "stride: expected strides >= 1"),
    (lambda: nk.conv2d_forward(X4, W4, padding=1.5), TypeError, "padding"),
    (lambda: nk.conv2d_forward(X4, W4, layout="NHWC"), ValueError, "layout"),
    (lambda: nk.conv2d_forward(np.zeros((0, 3, 8, 8)), W4), ValueError, "X: expected a non-empty"),
    (lambda: nk.conv2d_forward(X4, W4, out=np.zeros((2, 4, 5, 5))), ValueError, "out: expected shape"),
    (lambda: nk.conv2d_backward(np.zeros((2, 4, 6, 6)), "cache"), TypeError, "cache: expected"),
    (lambda: nk.conv2d_backward(np.zeros((2, 4, 5, 6)), nk.conv2d_forward(X4, W4)[1]),
     ValueError, "dY: expected shape (2, 4, 6, 6)"),
    (lambda: nk.conv2d_backward(np.zeros((2, 4, 6, 6), np.float32), nk.conv2d_forward(X4, W4)[1]),
     TypeError, "dY: expected dtype float64"),
    (lambda: nk.maxpool2d_forward(X4, 3, padding=2), ValueError, "padding: expected p1 <= k1/2"),
    (lambda: nk.maxpool2d_forward(X4, 9), ValueError, "kernel_size: the window (9)"),
    (lambda: nk.maxpool2d_forward(X4.astype(np.int32), 2), TypeError, "X: expected dtype"),
    (lambda: nk.avgpool2d_forward(X4[0], 2), ValueError, "X: expected a 4-D array"),
    (lambda: nk.avgpool2d_forward(X4, (2, 2, 2)), ValueError, "kernel_size"),
    (lambda: nk.lppool2d_forward(X4, 0, 2), ValueError, "p: expected a finite number > 0"),
    (lambda: nk.lppool2d_forward(X4, "2", 2), TypeError, "p: expected"),
    (lambda: nk.maxpool2d_backward(np.zeros((2, 3, 4, 4)), nk.avgpool2d_forward(X4, 2)[1]),
     TypeError, "cache: expected the cache of maxpool2d_forward"),
    (lambda: nk.avgpool2d_backward(np.zeros((2, 3, 4, 5)), nk.avgpool2d_forward(X4, 2)[1]),
     ValueError, "dY: expected shape (2, 3, 4, 4)"),
    (lambda: nk.lppool2d_backward(np.zeros((2, 3, 4, 4)), nk.conv2d_forward(X4, W4)[1]),
     TypeError, "cache: expected"),
])
def test_bad_input(call, exc, msg):
    with pytest.raises(exc) as e:
        call()
    assert msg in str(e.value)
