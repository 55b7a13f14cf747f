"""P3, P10: output shapes against a brute-force sliding-window count, every
impossible case's message, counting, summary, and P3's bottleneck numbers."""
import math
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

import nnkit as nk
from nnkit import conv_shapes as cs


def windows(n, k, s, p, d):
    """Count window positions by sliding one: starts -p, -p+s, ...; a window
    covers start .. start + d(k-1) and must stay inside the padded input."""
    count, start = 0, -p
    while start + d * (k - 1) <= n + p - 1:
        count += 1
        start += s
    return count


geom = st.tuples(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4),
                 st.integers(0, 4), st.integers(1, 3))


@given(a=geom, b=geom, layout=st.sampled_from(["BWHC", "NCHW"]),
       B=st.integers(1, 3), C=st.integers(1, 4), Co=st.integers(1, 5))
def test_conv_shape_matches_brute_force(a, b, layout, B, C, Co):
    # pairs follow the layout's spatial order: (W, H) in BWHC, (H, W) in NCHW
    (n1, k1, s1, p1, d1), (n2, k2, s2, p2, d2) = a, b
    shape = (B, n1, n2, C) if layout == "BWHC" else (B, C, n1, n2)
    o1, o2 = windows(n1, k1, s1, p1, d1), windows(n2, k2, s2, p2, d2)
    args = (shape, Co, (k1, k2), (s1, s2), (p1, p2), (d1, d2), layout)
    if o1 >= 1 and o2 >= 1:
        r = nk.conv2d_output_shape(*args)
        want = (B, o1, o2, Co) if layout == "BWHC" else (B, Co, o1, o2)
        assert r == want and r.shape == want and isinstance(r.shape, tuple)
        assert len(r.lines) == 2 and r.lines[0].endswith(f"= {o1}")
        assert r.lines[1].endswith(f"= {o2}")
    else:
        with pytest.raises(ValueError, match="larger than the padded input") as e:
            nk.conv2d_output_shape(*args)
        bad = 1 if o1 < 1 else 2
        n, k, s, p, d = a if bad == 1 else b
        assert f"⌊({n} + 2·{p} − " in str(e.value) and "≤ 0" in str(e.value)


@given(a=geom, b=geom, kind=st.sampled_from(["max", "avg"]))
def test_pool_shape_matches_brute_force(a, b, kind):
    (n1, k1, s1, p1, _), (n2, k2, s2, p2, _) = a, b
    p1, p2 = min(p1, k1 // 2), min(p2, k2 // 2)
    o1, o2 = windows(n1, k1, s1, p1, 1), windows(n2, k2, s2, p2, 1)
    args = ((2, 3, n1, n2), (k1, k2), (s1, s2), (p1, p2), "NCHW", kind)
    if o1 >= 1 and o2 >= 1:
        assert nk.pool2d_output_shape(*args) == (2, 3, o1, o2)
    else:
        with pytest.raises(ValueError, match="window"):
            nk.pool2d_output_shape(*args)


def test_p3_formula_text():
    r = nk.conv2d_output_shape((8, 32, 32, 3), 16, 3, stride=2, padding=1, layout="BWHC")
    assert r == (8, 16, 16, 16)
    assert r.formula == "W' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16\nH' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16"
    # P3's pairs: (k1, k2) with k1 along W; p1 pads left/right (W), p2 top/bottom (H)
    r = nk.conv2d_output_shape((1, 10, 20, 3), 4, (3, 5), (1, 2), (2, 0), layout="BWHC")
    assert r == (1, 12, 8, 4)
    assert r.lines == ("W' = ⌊(10 + 2·2 − 3)/1⌋ + 1 = 12", "H' = ⌊(20 + 2·0 − 5)/2⌋ + 1 = 8")
    # NCHW (the default): PyTorch's (H, W) pair order
    assert nk.conv2d_output_shape((1, 3, 20, 10), 4, (5, 3), (2, 1), (0, 2)) == (1, 4, 8, 12)
    # dilation form
    r = nk.conv2d_output_shape((1, 9, 9, 1), 1, 3, dilation=2, layout="BWHC")
    assert r.lines[0] == "W' = ⌊(9 + 2·0 − 2·(3 − 1) − 1)/1⌋ + 1 = 5"


def test_valid_and_same():
    assert nk.conv2d_output_shape((2, 7, 9, 3), 5, 3, padding="valid", layout="BWHC") \
        == (2, 5, 7, 5)
    assert nk.conv2d_output_shape((2, 7, 9, 3), 5, (3, 5), padding="same", dilation=2,
                                  layout="BWHC") == (2, 7, 9, 5)
    with pytest.raises(ValueError, match=r"padding: 'same' needs stride 1"):
        nk.conv2d_output_shape((2, 7, 9, 3), 5, 3, stride=2, padding="same")
    # an even kernel pads unevenly, as PyTorch (tests/conv/test_same_padding.py)
    assert nk.conv2d_output_shape((2, 3, 7, 9), 5, 4, padding="same") == (2, 5, 7, 9)
    with pytest.raises(ValueError, match=r"padding: expected one of"):
        nk.conv2d_output_shape((2, 7, 9, 3), 5, 3, padding="full")


@pytest.mark.parametrize("kwargs,msg", [
    (dict(input_shape=(8, 2, 2, 3), kernel_size=5),
     "kernel_size: the kernel (5) is larger than the padded input (2 + 2·0 = 2) along W, "
     "so the output is empty: W' = ⌊(2 + 2·0 − 5)/1⌋ + 1 = −2 ≤ 0"),
    (dict(input_shape=(8, 32, 3, 3), kernel_size=3, dilation=2),
     "kernel_size: the kernel (3, dilated to 2·(3 − 1) + 1 = 5) is larger than the padded "
     "input (3 + 2·0 = 3) along H, so the output is empty: "
     "H' = ⌊(3 + 2·0 − 2·(3 − 1) − 1)/1⌋ + 1 = −1 ≤ 0"),
    (dict(input_shape=(8, 32, 32, 3), kernel_size=3, stride=0),
     "stride: expected strides >= 1, got s1 = 0 (along W): "
     "W' = ⌊(32 + 2·0 − 3)/0⌋ + 1 (division by zero)"),
    (dict(input_shape=(8, 32, 32, 3), kernel_size=3, stride=(1, -2)),
     "stride: expected strides >= 1, got s2 = -2 (along H): "
     "H' = ⌊(32 + 2·0 − 3)/(−2)⌋ + 1 (a negative stride walks backwards)"),
    (dict(input_shape=(8, 32, 32, 3), kernel_size=3, dilation=(0, 1)),
     "dilation: expected dilations >= 1, got d1 = 0 (along W): "
     "W' = ⌊(32 + 2·0 − 0·(3 − 1) − 1)/1⌋ + 1 = 32"),
    (dict(input_shape=(8, 32, 32, 3), kernel_size=3, padding=-1),
     "padding: expected paddings >= 0, got p1 = -1 (along W): "
     "W' = ⌊(32 + 2·(−1) − 3)/1⌋ + 1 = 28"),
    (dict(input_shape=(8, 32, 32, 3), kernel_size=(3, 0)),
     "kernel_size: expected sizes >= 1, got k2 = 0 (along H): H' = ⌊(32 + 2·0 − 0)/1⌋ + 1 = 33"),
    (dict(input_shape=(8, -3, 32, 3), kernel_size=3),
     "input_shape: expected sizes >= 1, got W = -3: W' = ⌊((−3) + 2·0 − 3)/1⌋ + 1 = −5 ≤ 0"),
    (dict(input_shape=(8, 32, 32, 3), kernel_size=3, in_channels=4),
     "in_channels: expected C_in = 3 (the channel axis of input_shape (8, 32, 32, 3) in "
     "BWHC), got 4; the weights are k1·k2·C_in·C_out, so C_in must match the input"),
    (dict(input_shape=(0, 32, 32, 3), kernel_size=3),
     "input_shape: expected every size >= 1, got B = 0 in (0, 32, 32, 3) (BWHC (B, W, H, C))"),
    (dict(input_shape=(1, 32, 32, -1), kernel_size=3),
     "input_shape: expected every size >= 1, got C = -1"),
])
def test_impossible_geometry_messages(kwargs, msg):
    with pytest.raises(ValueError) as e:
        nk.conv2d_output_shape(out_channels=4, layout="BWHC", **kwargs)
    assert str(e.value).startswith(msg)


def test_pool_messages():
    with pytest.raises(ValueError, match=r"padding: expected p1 <= k1/2 = 3/2 for pooling"):
        nk.pool2d_output_shape((1, 8, 8, 1), 3, padding=2, layout="BWHC")
    with pytest.raises(ValueError, match=r"kernel_size: the window \(5\) is larger than the "
                       r"padded input \(4 \+ 2·0 = 4\) along W.*W' = ⌊\(4 \+ 2·0 − 5\)/5⌋ \+ 1"):
        nk.pool2d_output_shape((1, 4, 8, 1), 5, layout="BWHC")
    with pytest.raises(ValueError, match="Lp pooling takes no padding"):
        nk.pool2d_output_shape((1, 8, 8, 1), 2, padding=1, kind="lp")
    r = nk.pool2d_output_shape((4, 56, 56, 64), 2, layout="BWHC")   # stride: the kernel
    assert r == (4, 28, 28, 64) and r.lines[0] == "W' = ⌊(56 + 2·0 − 2)/2⌋ + 1 = 28"


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: nk.conv2d_output_shape((1, 8, 8), 4, 3), ValueError, "input_shape: expected 4 sizes"),
    (lambda: nk.conv2d_output_shape(np.zeros(4), 4, 3), TypeError, "input_shape: expected a shape"),
    (lambda: nk.conv2d_output_shape((1, 8.0, 8, 1), 4, 3), TypeError, "input_shape: expected 4 ints"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 0, 3), ValueError, "out_channels"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2.0, 3), TypeError, "out_channels"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2, 3.0), TypeError, "kernel_size"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2, (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2, True), TypeError, "kernel_size"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2, 3, stride="1"), TypeError, "stride"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2, 3, layout="NHWC"), ValueError, "layout"),
    (lambda: nk.conv2d_output_shape((1, 8, 8, 1), 2, 3, padding=None), TypeError, "padding"),
    (lambda: nk.pool2d_output_shape((1, 8, 8, 1), 2, kind="min"), ValueError, "kind"),
    (lambda: cs.linear_count(0, 3), ValueError, "in_features"),
    (lambda: cs.receptive_field([(3,)]), TypeError, "layers[0]"),
    (lambda: cs.solve_bottleneck(reduction=(0.6, 0.5)), ValueError, "reduction"),
    (lambda: cs.solve_bottleneck(reduction=0.5), TypeError, "reduction"),
    (lambda: cs.basic_block_params(0), ValueError, "channels"),
    (lambda: cs.bottleneck_params(64, 1.5), TypeError, "width"),
    (lambda: nk.conv.summary([object()], (1, 1, 8, 8), print_table=False), TypeError, "layers[0]"),
    (lambda: nk.conv.summary([nk.Flatten(), nk.Linear(5, 2)], (1, 1, 8, 8), print_table=False),
     ValueError, "Linear expects 5 input features"),
])
def test_bad_arguments(call, exc, msg):
    with pytest.raises(exc) as e:
        call()
    assert msg in str(e.value)


# ------------------------------------------------------------------- counting
def test_counts_by_hand():
    c = cs.conv2d_count((8, 32, 32, 3), 16, 3, 2, 1, layout="BWHC")
    assert (c.weights, c.biases, c.params) == (3 * 3 * 3 * 16, 16, 448)
    assert c.macs == 8 * 16 * 16 * 16 * 3 * 3 * 3
    assert cs.conv2d_count((8, 3, 32, 32), 16, 3, 2, 1) == c       # NCHW, the default
    assert cs.conv2d_count((8, 32, 32, 3), 16, 3, bias=False).biases == 0
    assert cs.pool2d_count((2, 4, 8, 8), 2).macs == 2 * 4 * 4 * 4 * 4
    assert cs.linear_count(128, 10, 32) == (1280, 10, 40960)
    # receptive field of two 3x3 convs = 5, of 3x3 -> pool 2 -> 3x3 = 8
    assert cs.receptive_field([(3, 1), (3, 1)]) == (5, 1)
    assert cs.receptive_field([(3, 1), (2, 2), (3, 1)]) == (8, 2)
    assert cs.receptive_field([(3, 1, 2)]) == (5, 1)


def test_summary_rows_and_totals(capsys):
    m = nk.Sequential(nk.Conv2d(1, 8, 3, padding=1, seed=0), nk.ReLU(), nk.MaxPool2d(2),
                      nk.Conv2d(8, 4, 3, stride=2, bias=False, seed=1), nk.Flatten(),
                      nk.Linear(4, 10, seed=2))
    s = nk.conv.summary(m, (32, 1, 8, 8))
    printed = capsys.readouterr().out
    assert "Conv2d(1→8" in printed and "total" in printed
    shapes = [r.output_shape for r in s.rows]
    assert shapes == [(32, 8, 8, 8), (32, 8, 8, 8), (32, 8, 4, 4), (32, 4, 1, 1), (32, 4),
                      (32, 10)]
    params = [r.params for r in s.rows]
    assert params == [8 * 9 + 8, 0, 0, 4 * 8 * 9, 0, 4 * 10 + 10]
    assert s.total_params == sum(p.size for p in m.params.values())
    assert s.rows[0].macs == 32 * 8 * 8 * 8 * 9 and s.rows[3].macs == 32 * 4 * 1 * 1 * 8 * 9
    # receptive field: 3, then pool (+1) = 4, then 3x3 at jump 2 (+4) = 8
    assert [r.receptive_field for r in s.rows[:4]] == [(3, 3), (3, 3), (4, 4), (8, 8)]
    assert s.total_macs == sum(r.macs for r in s.rows)
    # BWHC input gives the same counts, shapes in P3's layout
    s2 = nk.conv.summary(m, (32, 8, 8, 1), layout="BWHC", print_table=False)
    assert s2.rows[2].output_shape == (32, 4, 4, 8) and s2.total_macs == s.total_macs


# --------------------------------------------------------------- P3 ResNet
def test_p3_bottleneck_numbers():
    assert cs.basic_block_params(64) == 73_728
    assert cs.basic_block_params(64, bias=True) == 73_856
    for k in (1, 51, 64):
        assert cs.bottleneck_params(64, k) == 9 * k * k + 128 * k
        assert cs.bottleneck_params(64, k, bias=True) == 9 * k * k + 130 * k + 64
    a = cs.solve_bottleneck()
    b = cs.solve_bottleneck(bias=True)
    assert (round(a.interval[0], 2), round(a.interval[1], 2)) == (50.57, 57.28)
    assert (round(b.interval[0], 2), round(b.interval[1], 2)) == (50.46, 57.18)
    assert a.widths == b.widths == tuple(range(51, 58))
    assert a.basic_params == 73_728 and b.basic_params == 73_856
    # the endpoints solve the quadratics exactly (independent of the formula used)
    for sol, P, f in ((a, 73_728, lambda k: 9 * k * k + 128 * k),
                      (b, 73_856, lambda k: 9 * k * k + 130 * k + 64)):
        assert math.isclose(f(sol.interval[0]), 0.4 * P, rel_tol=1e-12)
        assert math.isclose(f(sol.interval[1]), 0.5 * P, rel_tol=1e-12)
    assert "k ∈ [50.57, 57.28]; integer widths 51…57" in "\n".join(a.lines())
    assert "k ∈ [50.46, 57.18]" in "\n".join(b.lines())


def test_bottleneck_widths_by_enumeration():
    # every integer width in 1..200 whose count lies in the range, counted directly
    for C, lo, hi, bias in ((64, 0.5, 0.6, False), (128, 0.3, 0.7, True), (16, 0.0, 0.1, False)):
        P = 2 * 9 * C * C + (2 * C if bias else 0)
        want = tuple(w for w in range(1, 400) if (1 - hi) * P <=
                     (C * w + 9 * w * w + w * C + ((2 * w + C) if bias else 0)) <= (1 - lo) * P)
        assert cs.solve_bottleneck(C, (lo, hi), bias=bias).widths == want
