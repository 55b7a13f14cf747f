"""P10: max, average and Lp pooling -- output shapes as in P3, and where each
sends the gradient (max to the arg-max, average evenly)."""
from __future__ import annotations

import numpy as np

from .. import conv
from . import Result, lesson

# (kernel, stride, padding) per case: disjoint windows, and overlapping ones
CASES = (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (0, 0)))


def _windows(H, W, k, s, p):
    """Every window as (oh, ow, [(ih, iw) inside the input]), P3's output size."""
    Ho, Wo = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    out = []
    for oh in range(Ho):
        for ow in range(Wo):
            cells = [(oh * s[0] - p[0] + a, ow * s[1] - p[1] + b)
                     for a in range(k[0]) for b in range(k[1])]
            out.append((oh, ow, [(i, j) for i, j in cells if 0 <= i < H and 0 <= j < W]))
    return (Ho, Wo), out


def _reference(kind, X, dY, k, s, p, q=2.0):
    """dX by the rule P10 states, one window at a time (padding never wins a max
    and counts as zeros in the average)."""
    B, C, H, W = X.shape
    (Ho, Wo), wins = _windows(H, W, k, s, p)
    dX = np.zeros_like(X)
    for b in range(B):
        for c in range(C):
            for oh, ow, cells in wins:
                g = dY[b, c, oh, ow]
                vals = np.array([X[b, c, i, j] for i, j in cells])
                if kind == "max":
                    i, j = cells[int(np.argmax(vals))]      # first maximum, row-major
                    dX[b, c, i, j] += g
                elif kind == "avg":
                    for i, j in cells:
                        dX[b, c, i, j] += g / (k[0] * k[1])
                else:                                        # Lp: y = (Σ|x|^q)^(1/q)
                    y = (np.abs(vals) ** q).sum() ** (1 / q)
                    for (i, j), x in zip(cells, vals):
                        dX[b, c, i, j] += g * np.sign(x) * abs(x) ** (q - 1) / y ** (q - 1)
    return (Ho, Wo), dX


def _kept_share(H, W, k, s, p):
    """Per window, the share of its k1·k2 cells inside the input: (Ho, Wo)."""
    (Ho, Wo), wins = _windows(H, W, k, s, p)
    share = np.empty((Ho, Wo))
    for oh, ow, cells in wins:
        share[oh, ow] = len(cells) / (k[0] * k[1])
    return share


@lesson("p10-pool-gradients", "P10", "Pooling: output shapes as in P3; max routes dY to each "
        "window's arg-max, average spreads dY/(k1·k2) evenly, Lp sends dY·|x|^(p−1)/y^(p−1)")
def pool_gradients(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, 2, 7, 8))          # distinct values: one arg-max per window
    rows, worst = [], 0.0
    pools = {"max": (conv.maxpool2d_forward, conv.maxpool2d_backward),
             "avg": (conv.avgpool2d_forward, conv.avgpool2d_backward),
             "Lp, p = 2": (lambda X, k, s, p: conv.lppool2d_forward(X, 2.0, k, s),
                           conv.lppool2d_backward)}
    for name, (fwd, bwd) in pools.items():
        kind = {"max": "max", "avg": "avg"}.get(name, "lp")
        for k, s, p in CASES:
            if kind == "lp" and p != (0, 0):
                continue                              # Lp pooling takes no padding
            Y, cache = fwd(X, k, s, p)
            dY = rng.standard_normal(Y.shape)
            dX = bwd(dY, cache)
            (Ho, Wo), ref = _reference(kind, X, dY, k, s, p)
            err = float(np.abs(dX - ref).max())
            # max and average hand each window's dY to its inputs: Σ dX = Σ dY, less
            # the average's share of cells that fall on padding
            kept = (1.0 if kind == "max" else
                    _kept_share(X.shape[2], X.shape[3], k, s, p)[None, None])
            mass = float(abs(dX.sum() - (dY * kept).sum())) if kind != "lp" else float("nan")
            shape_ok = Y.shape[2:] == (Ho, Wo)
            worst = max(worst, err / 1e-12, 0.0 if np.isnan(mass) else mass / 1e-12,
                        0.0 if shape_ok else np.inf)
            rows.append({"pool": name, "k": f"{k[0]}×{k[1]}", "s": f"{s[0]},{s[1]}",
                         "p": f"{p[0]},{p[1]}", "output (P3 formula)": f"{Ho}×{Wo}",
                         "kernel output": f"{Y.shape[2]}×{Y.shape[3]}",
                         "max|dX − rule|": err, "|Σ dX − Σ kept·dY|": mass})
    return Result(discrepancy=worst, tolerance=1.0, rows=rows, notes=[
        "X (2, 2, 7, 8) standard normal. The rule, one window at a time in plain Python: max "
        "adds the window's dY to its (first) arg-max, average adds dY/(k1·k2) to each input "
        "(padding counts as zeros), Lp adds dY·sign(x)|x|^(p−1)/y^(p−1); overlapping "
        "windows (stride < kernel) add up.",
        "max and average hand each window's dY to its inputs, so Σ dX = Σ dY; with padding "
        "the average keeps only the share of its k1·k2 cells inside the input (kept = "
        "cells inside / k1·k2, 1 for max).",
        "discrepancy: the worst of max|dX − rule| / 1e-12 and |Σ dX − Σ kept·dY| / 1e-12."])
