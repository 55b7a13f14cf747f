"""Issue 24, item 1: one default layout for every conv function, NCHW (the
kernels' and PyTorch's), and P3's (B, W, H, C) everywhere by layout="BWHC".

The shapes are checked against P3's closed form written here, the tensors
against plain NumPy (sliding windows) written here, and the shape functions
against the arrays the kernels really return."""
import inspect

import numpy as np
import pytest

import nnkit as nk
from nnkit import conv as nconv
from nnkit import conv_shapes as cs


def out_len(n, k, s=1, p=0, d=1):
    """P3: ⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


# --------------------------------------------------------- the default
def test_the_issue_example_nchw_by_default():
    # an NCHW shape was read as P3's (B, W, H, C): (8, 1, 30, 16)
    s = nk.conv2d_output_shape((8, 3, 32, 32), 16, 3)
    assert s == (8, 16, 30, 30) and s.layout == "NCHW"
    assert s.lines == ("H' = ⌊(32 + 2·0 − 3)/1⌋ + 1 = 30", "W' = ⌊(32 + 2·0 − 3)/1⌋ + 1 = 30")
    assert nk.pool2d_output_shape((8, 16, 30, 30), 2) == (8, 16, 15, 15)
    # P3's layout by name
    assert nk.conv2d_output_shape((8, 32, 32, 3), 16, 3, layout="BWHC") == (8, 30, 30, 16)
    assert nk.pool2d_output_shape((8, 30, 30, 16), 2, layout="BWHC") == (8, 15, 15, 16)


LAYOUT_FUNCTIONS = [cs.conv2d_output_shape, cs.pool2d_output_shape, cs.conv2d_count,
                    cs.pool2d_count, cs.summary, nconv.conv2d_forward,
                    nconv.maxpool2d_forward, nconv.avgpool2d_forward, nconv.lppool2d_forward]


@pytest.mark.parametrize("fn", LAYOUT_FUNCTIONS, ids=lambda f: f.__name__)
def test_every_conv_function_defaults_to_nchw(fn):
    assert inspect.signature(fn).parameters["layout"].default == "NCHW"


def test_public_names_are_the_same_functions():
    for name in ("conv2d_output_shape", "pool2d_output_shape", "conv2d_forward",
                 "maxpool2d_forward", "avgpool2d_forward", "lppool2d_forward"):
        assert getattr(nk, name) is getattr(nconv, name)


GEOMETRIES = [  # (B, C, H, W, C_out, k, s, p, d)
    (2, 3, 11, 7, 4, (3, 2), (2, 1), (1, 0), (1, 2)),
    (1, 5, 6, 9, 2, (1, 3), (1, 3), (0, 1), (1, 1)),
    (3, 2, 8, 8, 3, 3, 1, "same", 2),
    (2, 4, 5, 12, 6, (4, 1), 1, "valid", 1),
]


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_default_shape_is_the_shape_conv2d_forward_returns(geom, rng):
    B, C, H, W, Co, k, s, p, d = geom
    kh, kw = (k, k) if isinstance(k, int) else k
    X = rng.standard_normal((B, C, H, W))
    Wt = rng.standard_normal((Co, C, kh, kw))
    Y, _ = nk.conv2d_forward(X, Wt, None, s, p, d)
    assert nk.conv2d_output_shape(X.shape, Co, (kh, kw), s, p, d) == Y.shape
    c = nk.conv.conv2d_count(X.shape, Co, (kh, kw), s, p, d)
    assert c.weights == kh * kw * C * Co and c.biases == Co
    assert c.macs == B * Y.shape[2] * Y.shape[3] * Co * kh * kw * C


@pytest.mark.parametrize("kind", ["max", "avg", "lp"])
def test_default_pool_shape_is_the_shape_the_pools_return(kind, rng):
    X = np.abs(rng.standard_normal((2, 3, 9, 7))) + 0.1
    k, s, p = (3, 2), (2, 1), (1 if kind != "lp" else 0)
    if kind == "lp":
        Y, _ = nk.lppool2d_forward(X, 2.0, k, s)
    else:
        Y, _ = getattr(nk, f"{kind}pool2d_forward")(X, k, s, p)
    want = (2, 3, out_len(9, 3, 2, p), out_len(7, 2, 1, p))
    assert Y.shape == want
    assert nk.pool2d_output_shape(X.shape, k, s, p, kind=kind) == want
    assert nk.conv.pool2d_count(X.shape, k, s, p, kind=kind).macs == 2 * 3 * want[2] * want[3] * 6


def test_summary_default_reads_nchw():
    m = nk.Sequential(nk.Conv2d(3, 4, 3, seed=0), nk.MaxPool2d(2))
    s = nk.conv.summary(m, (2, 3, 10, 10), print_table=False)
    assert s.layout == "NCHW" and [r.output_shape for r in s.rows] == [(2, 4, 8, 8), (2, 4, 4, 4)]


def test_unknown_layouts_are_still_refused():
    for bad in ("NHWC", "bwhc", "nchw"):
        with pytest.raises(ValueError, match="layout"):
            nk.conv2d_output_shape((1, 1, 8, 8), 2, 3, layout=bad)
        with pytest.raises(ValueError, match="layout"):
            nk.maxpool2d_forward(np.zeros((1, 1, 4, 4)), 2, layout=bad)


# ------------------------------------------------ P3's layout everywhere
def np_pool(X, kind, k, s, p, q=2.0):
    """NCHW pooling in plain NumPy: pad (with −inf for max, 0 otherwise), take
    every window with sliding_window_view, reduce."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    fill = -np.inf if kind == "max" else 0.0
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(Xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    if kind == "max":
        return win.max(axis=(4, 5))
    if kind == "avg":
        return win.sum(axis=(4, 5)) / (kh * kw)
    return (np.abs(win) ** q).sum(axis=(4, 5)) ** (1 / q)


def to_p3(A):
    """(B, C, H, W) -> P3's (B, W, H, C)."""
    return np.ascontiguousarray(A.transpose(0, 3, 2, 1))


@pytest.mark.parametrize("kind", ["max", "avg", "lp"])
def test_pools_take_p3_layout(kind, rng, dtype):
    # P3's pairs are (W-axis, H-axis): k = (k1 along W, k2 along H)
    Xn = (rng.standard_normal((2, 3, 9, 8)) + (0.2 if kind == "lp" else 0.0)).astype(dtype)
    k_hw, s_hw, p_hw = (3, 2), (2, 1), ((1, 1) if kind != "lp" else (0, 0))
    flip = lambda t: (t[1], t[0])
    Xp3 = to_p3(Xn)
    if kind == "lp":
        Y, cache = nk.lppool2d_forward(Xp3, 2.0, flip(k_hw), flip(s_hw), layout="BWHC")
    else:
        Y, cache = getattr(nk, f"{kind}pool2d_forward")(Xp3, flip(k_hw), flip(s_hw),
                                                       flip(p_hw), layout="BWHC")
    want = to_p3(np_pool(Xn.astype(np.float64), kind, k_hw, s_hw, p_hw))
    assert Y.shape == want.shape == nk.pool2d_output_shape(
        Xp3.shape, flip(k_hw), flip(s_hw), flip(p_hw), layout="BWHC", kind=kind)
    assert Y.dtype == dtype
    np.testing.assert_allclose(Y, want, rtol=1e-12 if dtype == np.float64 else 1e-5, atol=0)
    # backward answers in P3's layout: the transposed NCHW gradient
    G = rng.standard_normal(Y.shape).astype(dtype)
    dX = getattr(nk, f"{kind}pool2d_backward")(G, cache)
    if kind == "lp":
        _, cn = nk.lppool2d_forward(Xn, 2.0, k_hw, s_hw)
    else:
        _, cn = getattr(nk, f"{kind}pool2d_forward")(Xn, k_hw, s_hw, p_hw)
    dXn = getattr(nk, f"{kind}pool2d_backward")(np.ascontiguousarray(G.transpose(0, 3, 2, 1)), cn)
    assert dX.shape == Xp3.shape
    np.testing.assert_array_equal(dX, to_p3(dXn))
    if dtype == np.float64:        # and against central differences, in P3's layout
        fwd = (lambda: nk.lppool2d_forward(Xp3, 2.0, flip(k_hw), flip(s_hw), layout="BWHC")[0]) \
            if kind == "lp" else (lambda: getattr(nk, f"{kind}pool2d_forward")(
                Xp3, flip(k_hw), flip(s_hw), flip(p_hw), layout="BWHC")[0])
        num = nk.numeric_gradient(lambda: float(np.sum(fwd() * G)), Xp3)
        np.testing.assert_allclose(dX, num, rtol=1e-6, atol=1e-8)


def test_pool_p3_layout_checks_shapes():
    X = np.zeros((1, 8, 6, 2))                         # B, W, H, C
    Y, cache = nk.maxpool2d_forward(X, (4, 3), layout="BWHC")
    assert Y.shape == (1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"dY: expected shape \(1, 2, 2, 2\)"):
        nk.maxpool2d_backward(np.zeros((1, 2, 2, 3)), cache)
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 2, 2, 2\)"):
        nk.maxpool2d_forward(X, (4, 3), layout="BWHC", out=np.zeros((1, 2, 2, 1)))
    out = np.empty((1, 2, 2, 2))
    assert nk.maxpool2d_forward(X, (4, 3), layout="BWHC", out=out)[0] is out
