"""P3: convolution output shapes and parameter counts; the ResNet bottleneck width."""
from __future__ import annotations

import math

import numpy as np

from .. import conv, conv_shapes
from ..layers import Conv2d
from . import Result, lesson


def _out(n: int, k: int, s: int, p: int) -> int:
    """P3's formula for one axis: ⌊(n + 2p − k)/s⌋ + 1."""
    return (n + 2 * p - k) // s + 1


@lesson("p3-conv-output-shape", "P3", "W′ = ⌊(W + 2p1 − k1)/s1⌋ + 1, H′ = ⌊(H + 2p2 − k2)/s2⌋ "
        "+ 1; k1·k2·C_in·C_out weights + C_out biases")
def output_shape(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    rows, mismatches = [], 0
    while len(rows) < 10:
        W, H = (int(x) for x in rng.integers(4, 17, 2))
        k1, k2 = (int(x) for x in rng.integers(1, 6, 2))
        s1, s2 = (int(x) for x in rng.integers(1, 4, 2))
        p1, p2 = int(rng.integers(0, k1 // 2 + 1)), int(rng.integers(0, k2 // 2 + 1))
        C_in, C_out, B = int(rng.integers(1, 4)), int(rng.integers(1, 5)), 2
        if W + 2 * p1 < k1 or H + 2 * p2 < k2:
            continue
        want = (B, _out(W, k1, s1, p1), _out(H, k2, s2, p2), C_out)      # P3's (B, W′, H′, C)
        # the kernel runs NCHW: P3's W axis (k1, s1, p1) is the kernel's first spatial axis
        X = rng.standard_normal((B, C_in, W, H))
        layer = Conv2d(C_in, C_out, (k1, k2), (s1, s2), (p1, p2), seed=seed)
        Y, _ = conv.conv2d_forward(X, layer.params["W"], layer.params["b"], (s1, s2), (p1, p2))
        ran = (Y.shape[0], Y.shape[2], Y.shape[3], Y.shape[1])
        calc = tuple(conv_shapes.conv2d_output_shape((B, W, H, C_in), C_out, (k1, k2),
                                                     (s1, s2), (p1, p2), layout="BWHC"))
        params = sum(p.size for p in layer.params.values())
        formula_params = k1 * k2 * C_in * C_out + C_out
        ok = ran == want and calc == want and params == formula_params
        mismatches += not ok
        rows.append({"input (B, W, H, C_in)": str((B, W, H, C_in)), "k": f"{k1}×{k2}",
                     "s": f"{s1},{s2}", "p": f"{p1},{p2}", "formula (B, W′, H′, C_out)": str(want),
                     "conv2d_forward ran": str(ran), "params (layer / formula)":
                     f"{params} / {formula_params}", "agree": ok})
    return Result(discrepancy=float(mismatches), tolerance=0.0, rows=rows, notes=[
        "Random geometries (seeded): the formula by hand, the shape of the output that "
        "nnkit.conv2d_forward actually returns (its kernels run NCHW; the table shows it in "
        "P3's (B, W, H, C) order) and nnkit.conv2d_output_shape all agree.",
        "params: the Conv2d layer's arrays counted element by element, against "
        "k1·k2·C_in·C_out + C_out.",
        "discrepancy: the number of rows that disagree (tolerance 0)."])


def _bottleneck_count(C: int, w: int, bias: bool) -> int:
    """Parameters of 1×1 C→w, 3×3 w→w, 1×1 w→C, counted on real layers."""
    layers = (Conv2d(C, w, 1, bias=bias, seed=0), Conv2d(w, w, 3, bias=bias, seed=0),
              Conv2d(w, C, 1, bias=bias, seed=0))
    return sum(p.size for layer in layers for p in layer.params.values())


@lesson("p3-bottleneck", "P3", "ResNet bottleneck 64→k→k→64: a 50–60 % parameter cut needs "
        "k ∈ [50.57, 57.28] (with biases [50.46, 57.18]); widths 51…57")
def bottleneck(seed: int) -> Result:
    C = 64
    rows, worst = [], 0.0
    for bias, printed in ((False, (50.57, 57.28)), (True, (50.46, 57.18))):
        plain = sum(p.size for layer in (Conv2d(C, C, 3, bias=bias, seed=0),
                                         Conv2d(C, C, 3, bias=bias, seed=0))
                    for p in layer.params.values())
        # 9k² + 128k (+ 2k + 64 with biases) = (1 − cut)·plain, solved by hand
        a, b, c = 9.0, 128.0 + (2.0 if bias else 0.0), 64.0 if bias else 0.0
        roots = [(-b + math.sqrt(b * b - 4 * a * (c - f * plain))) / (2 * a) for f in (0.4, 0.5)]
        # the integer widths, by counting real layers at every width around the interval
        widths = [w for w in range(40, 70)
                  if 0.4 * plain <= _bottleneck_count(C, w, bias) <= 0.5 * plain]
        sol = conv_shapes.solve_bottleneck(bias=bias)
        err = max(abs(roots[0] - printed[0]), abs(roots[1] - printed[1]))
        agree = (tuple(widths) == tuple(range(51, 58)) == tuple(sol.widths)
                 and max(abs(sol.interval[0] - roots[0]), abs(sol.interval[1] - roots[1])) < 1e-9)
        worst = max(worst, err / 0.005, 0.0 if agree else np.inf)
        rows.append({"biases": bias, "plain block F": plain,
                     "k interval (solved)": f"[{roots[0]:.4f}, {roots[1]:.4f}]",
                     "P3 prints": f"[{printed[0]}, {printed[1]}]",
                     "widths by counting layers": f"{widths[0]}…{widths[-1]}" if widths else "none",
                     "count at 51 / 57": f"{_bottleneck_count(C, 51, bias)} / "
                                         f"{_bottleneck_count(C, 57, bias)}",
                     "solve_bottleneck agrees": agree})
    return Result(discrepancy=worst, tolerance=1.0, rows=rows, notes=[
        "plain block F: two 3×3 convs 64→64 (73,728 weights; 73,856 with biases), counted "
        "on real Conv2d layers; the bottleneck is 1×1 64→k, 3×3 k→k, 1×1 k→64.",
        "a 50–60 % cut: 0.4·F ≤ 9k² + 128k (+ 2k + 64) ≤ 0.5·F; the roots of the two "
        "quadratics give the interval, and counting the layers' parameters at every width "
        "40…69 gives the same integers, 51…57.",
        "One published solution prints [50.43, 57.17] for the biased case: an arithmetic "
        "slip; the roots are 50.46 and 57.18.",
        "discrepancy: the worst |root − printed| / 0.005 (the printed rounding); widths or "
        "nnkit.solve_bottleneck disagreeing fails."])
