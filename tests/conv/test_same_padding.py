"""Issue 24, item 2: padding="same" with an even kernel pads unevenly, as
PyTorch: total d·(k − 1), ⌊total/2⌋ at the left / top, the rest at the right /
bottom. Checked against a plain NumPy convolution written here (explicit
np.pad, one product per kernel tap), the closed form of a one-tap kernel (a
shift of X), central differences, and PyTorch's F.conv2d(padding="same")
where torch is importable."""
import numpy as np
import pytest

import nnkit as nk


def same_pads(k, d):
    """PyTorch's rule for one axis: (before, after)."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def np_conv_same(X, W, b, dilation):
    """Y = W ⋆ X + b, stride 1, padded by same_pads on each axis; NCHW, float64."""
    X, W = np.asarray(X, np.float64), np.asarray(W, np.float64)
    dh, dw = dilation
    Co, C, kh, kw = W.shape
    (t, bo), (l, r) = same_pads(kh, dh), same_pads(kw, dw)
    Xp = np.pad(X, ((0, 0), (0, 0), (t, bo), (l, r)))
    B, _, H, Wd = X.shape
    Y = np.zeros((B, Co, H, Wd))
    for u in range(kh):
        for v in range(kw):
            tap = Xp[:, :, u * dh:u * dh + H, v * dw:v * dw + Wd]          # (B, C, H, W)
            Y += np.einsum("bchw,oc->bohw", tap, W[:, :, u, v])
    if b is not None:
        Y += np.asarray(b, np.float64)[None, :, None, None]
    return Y


def np_conv_same_backward(dY, X, W, dilation):
    """The adjoint of np_conv_same: (dX, dW, db)."""
    dY, X, W = (np.asarray(a, np.float64) for a in (dY, X, W))
    dh, dw = dilation
    Co, C, kh, kw = W.shape
    (t, bo), (l, r) = same_pads(kh, dh), same_pads(kw, dw)
    Xp = np.pad(X, ((0, 0), (0, 0), (t, bo), (l, r)))
    B, _, H, Wd = X.shape
    dXp, dW = np.zeros_like(Xp), np.zeros_like(W)
    for u in range(kh):
        for v in range(kw):
            sl = (slice(None), slice(None), slice(u * dh, u * dh + H), slice(v * dw, v * dw + Wd))
            dW[:, :, u, v] = np.einsum("bohw,bchw->oc", dY, Xp[sl])
            dXp[sl] += np.einsum("bohw,oc->bchw", dY, W[:, :, u, v])
    return dXp[:, :, t:t + H, l:l + Wd], dW, dY.sum(axis=(0, 2, 3))


CASES = [  # (B, C, H, W, C_out, (kh, kw), (dh, dw))
    (2, 3, 7, 6, 4, (2, 2), (1, 1)),
    (1, 2, 5, 9, 3, (4, 3), (1, 1)),          # even along H only
    (2, 2, 8, 7, 2, (3, 4), (1, 1)),          # even along W only
    (2, 1, 9, 9, 2, (2, 4), (3, 1)),          # d·(k − 1) = 3 and 3: dilated, odd totals
    (1, 3, 6, 10, 5, (2, 3), (2, 3)),         # d·(k − 1) = 2 and 6: even totals, symmetric
    (3, 2, 4, 21, 3, (4, 2), (1, 1)),         # a row wider than one tile panel
    (1, 1, 1, 1, 1, (2, 2), (1, 1)),          # a 1×1 image
]


@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_against_numpy(case, rng, dtype):
    B, C, H, W, Co, k, d = case
    X = rng.standard_normal((B, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((Co, C) + k).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype)
    Y, cache = nk.conv2d_forward(X, Wt, b, 1, "same", d)
    assert Y.shape == (B, Co, H, W) and Y.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    want = np_conv_same(X, Wt, b, d)
    assert np.max(np.abs(Y - want)) <= tol * max(1.0, np.max(np.abs(want)))
    G = rng.standard_normal(Y.shape).astype(dtype)
    g = nk.conv2d_backward(G, cache)
    assert g.dX.shape == X.shape and g.dW.shape == Wt.shape
    for name, got, ref in zip(("dX", "dW", "db"), g, np_conv_same_backward(G, X, Wt, d)):
        assert np.max(np.abs(got - ref)) <= tol * max(1.0, np.max(np.abs(ref))), name
    # out= receives dX in the caller's shape
    out = np.empty_like(X)
    assert nk.conv2d_backward(G, cache, out=out).dX is out
    np.testing.assert_array_equal(out, g.dX)


@pytest.mark.parametrize("case", CASES[:4])
def test_gradients_against_central_differences(case, rng):
    B, C, H, W, Co, k, d = case
    X = rng.standard_normal((B, C, H, W))
    Wt = rng.standard_normal((Co, C) + k)
    b = rng.standard_normal(Co)
    Y, cache = nk.conv2d_forward(X, Wt, b, 1, "same", d)
    G = rng.standard_normal(Y.shape)
    g = nk.conv2d_backward(G, cache)
    loss = lambda: float(np.sum(nk.conv2d_forward(X, Wt, b, 1, "same", d)[0] * G))
    for name, arr, ana in (("X", X, g.dX), ("W", Wt, g.dW), ("b", b, g.db)):
        num = nk.numeric_gradient(loss, arr)
        np.testing.assert_allclose(ana, num, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(num).max()),
                                   err_msg=name)


@pytest.mark.parametrize("k,d", [((2, 2), (1, 1)), ((4, 2), (1, 3)), ((2, 3), (1, 1))])
def test_one_tap_kernel_shifts_the_input(k, d, rng):
    # W = 1 at tap (u, v) only: Y[i, j] = X[i + u·dh − top, j + v·dw − left], 0 outside.
    # This pins which side gets the extra zero: an even kernel reads one row /
    # column past the bottom / right edge, never before the top / left.
    X = rng.standard_normal((1, 1, 6, 5))
    (top, _), (left, _) = same_pads(k[0], d[0]), same_pads(k[1], d[1])
    for u in range(k[0]):
        for v in range(k[1]):
            Wt = np.zeros((1, 1) + k)
            Wt[0, 0, u, v] = 1.0
            Y, _ = nk.conv2d_forward(X, Wt, None, 1, "same", d)
            want = np.zeros_like(X)
            for i in range(6):
                for j in range(5):
                    r, c = i + u * d[0] - top, j + v * d[1] - left
                    if 0 <= r < 6 and 0 <= c < 5:
                        want[0, 0, i, j] = X[0, 0, r, c]
            np.testing.assert_array_equal(Y, want)


def test_matches_pytorch_same(rng, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for B, C, H, W, Co, k, d in CASES:
        X = rng.standard_normal((B, C, H, W)).astype(dtype)
        Wt = rng.standard_normal((Co, C) + k).astype(dtype)
        b = rng.standard_normal(Co).astype(dtype)
        Y, cache = nk.conv2d_forward(X, Wt, b, 1, "same", d)
        G = rng.standard_normal(Y.shape).astype(dtype)
        g = nk.conv2d_backward(G, cache)
        tX, tW, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (X, Wt, b))
        tY = F.conv2d(tX, tW, tb, stride=1, padding="same", dilation=d)
        tY.backward(torch.tensor(G, dtype=torch.float64))
        tol = 1e-12 if dtype == np.float64 else 1e-5
        for got, want in ((Y, tY), (g.dX, tX.grad), (g.dW, tW.grad), (g.db, tb.grad)):
            w = want.detach().numpy()
            assert got.shape == w.shape
            assert np.max(np.abs(got - w)) <= 10 * tol * max(1.0, np.max(np.abs(w)))


# ---------------------------------------------------------------- shapes
def test_shapes_and_formulas_show_both_pads():
    s = nk.conv2d_output_shape((2, 3, 9, 7), 5, (4, 2), padding="same")
    assert s == (2, 5, 9, 7)
    assert s.lines == ("H' = ⌊(9 + 1 + 2 − 4)/1⌋ + 1 = 9", "W' = ⌊(7 + 0 + 1 − 2)/1⌋ + 1 = 7")
    (h, w) = s.axes
    assert (h.p, h.p_end, h.extra, w.p, w.p_end, w.extra) == (1, 2, 1, 0, 1, 1)
    s = nk.conv2d_output_shape((1, 1, 7, 7), 1, 2, padding="same", dilation=3)
    assert s.lines[0] == "H' = ⌊(7 + 1 + 2 − 3·(2 − 1) − 1)/1⌋ + 1 = 7"
    # an odd kernel keeps the symmetric form and extra 0
    s = nk.conv2d_output_shape((1, 1, 7, 7), 1, 3, padding="same")
    assert s.lines[0] == "H' = ⌊(7 + 2·1 − 3)/1⌋ + 1 = 7" and s.axes[0].extra == 0
    # P3's layout: pairs (W, H); the extra still goes to the end of each axis
    s = nk.conv2d_output_shape((2, 7, 9, 3), 5, (2, 4), padding="same", layout="BWHC")
    assert s == (2, 7, 9, 5)
    assert s.lines == ("W' = ⌊(7 + 0 + 1 − 2)/1⌋ + 1 = 7", "H' = ⌊(9 + 1 + 2 − 4)/1⌋ + 1 = 9")
    c = nk.conv.conv2d_count((2, 3, 9, 7), 5, (4, 2), padding="same")
    assert c.macs == 2 * 9 * 7 * 5 * 4 * 2 * 3


@pytest.mark.parametrize("n,k,d", [(n, k, d) for n in (1, 2, 5, 8) for k in (1, 2, 3, 4, 5, 6)
                                   for d in (1, 2, 3)])
def test_same_keeps_every_size(n, k, d):
    assert nk.conv2d_output_shape((1, 1, n, n + 1), 1, k, padding="same", dilation=d) \
        == (1, 1, n, n + 1)


def test_same_still_needs_stride_one():
    with pytest.raises(ValueError, match=r"padding: 'same' needs stride 1"):
        nk.conv2d_output_shape((1, 1, 8, 8), 1, 2, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"padding: 'same' needs stride 1"):
        nk.Conv2d(1, 1, 2, stride=(1, 2), padding="same")
    with pytest.raises(ValueError, match=r"kernel_size: expected sizes >= 1"):
        nk.conv2d_output_shape((1, 1, 8, 8), 1, (2, 0), padding="same")


# ------------------------------------------------------ layout and layer
def test_p3_layout_same_is_the_transposed_nchw(rng):
    Xn = rng.standard_normal((2, 3, 7, 6))                 # (B, C, H, W)
    Wn = rng.standard_normal((4, 3, 4, 2))                 # kh = 4, kw = 2
    b = rng.standard_normal(4)
    Xp3 = Xn.transpose(0, 3, 2, 1)                         # (B, W, H, C)
    Wp3 = Wn.transpose(0, 1, 3, 2)                         # k1 = 2 along W, k2 = 4 along H
    Y, cache = nk.conv2d_forward(Xp3, Wp3, b, 1, "same", layout="BWHC")
    np.testing.assert_allclose(Y, np_conv_same(Xn, Wn, b, (1, 1)).transpose(0, 3, 2, 1),
                               rtol=1e-12, atol=1e-12)
    G = rng.standard_normal(Y.shape)
    g = nk.conv2d_backward(G, cache)
    dX, dW, db = np_conv_same_backward(G.transpose(0, 3, 2, 1), Xn, Wn, (1, 1))
    np.testing.assert_allclose(g.dX, dX.transpose(0, 3, 2, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.dW, dW.transpose(0, 1, 3, 2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.db, db, rtol=1e-12, atol=1e-12)


def test_conv2d_layer_same_with_even_kernel(rng):
    layer = nk.Conv2d(2, 3, (2, 4), padding="same", seed=0)
    assert layer.padding == "same"                      # no pair says "1 left, 2 right"
    assert nk.Conv2d(2, 3, 3, padding="same").padding == (1, 1)
    assert nk.Conv2d(2, 3, 2, padding="same", dilation=2).padding == (1, 1)   # d(k−1) = 2
    X = rng.standard_normal((2, 2, 5, 6))
    Y = layer(X)
    np.testing.assert_allclose(Y, np_conv_same(X, layer.params["W"], layer.params["b"], (1, 1)),
                               rtol=1e-12, atol=1e-12)
    G = rng.standard_normal(Y.shape)
    dX = layer.backward(G)
    want = np_conv_same_backward(G, X, layer.params["W"], (1, 1))
    np.testing.assert_allclose(dX, want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], want[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], want[2], rtol=1e-12, atol=1e-12)
    # the summary reads the layer's "same" too
    s = nk.conv.summary([layer, nk.MaxPool2d(2)], (2, 2, 6, 6), print_table=False)
    assert [r.output_shape for r in s.rows] == [(2, 3, 6, 6), (2, 3, 3, 3)]
    assert "p=same" in s.rows[0].layer
    assert s.rows[0].macs == 2 * 6 * 6 * 3 * 2 * 4 * 2
    s3 = nk.conv.summary([layer], (2, 6, 6, 2), layout="BWHC", print_table=False)
    assert s3.rows[0].output_shape == (2, 6, 6, 3)
