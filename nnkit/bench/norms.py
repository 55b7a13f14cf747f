"""Layer norm forward + backward: nnkit against NumPy and PyTorch CPU, float32.

    nnkit bench norms

Per shape: the median time of a training forward + backward (dX, dγ, dβ),
the ratios (other / nnkit: > 1 means nnkit is faster), and the bandwidth
floor: the bytes the computation must move, 5·B·D·4 (forward: read X, write
Y; backward: read dY and X, write dX), divided by the bandwidth measured in
this same run (_timing.bandwidth). "@floor" is floor / time.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ._timing import (SETTINGS, Table, bandwidth, median_time, ratio, share, torch_module,
                      torch_train_time)

SHAPES = [(64, 768), (4096, 1024), (16384, 512)]
QUICK_SHAPES = [(4, 8)]
EPS = 1e-5


def numpy_layernorm(X, g, b, dY):
    m = X.mean(1, keepdims=True)
    Xc = X - m
    rstd = 1.0 / np.sqrt((Xc * Xc).mean(1, keepdims=True) + EPS)
    xh = Xc * rstd
    _ = g * xh + b
    dxh = dY * g
    dX = rstd * (dxh - dxh.mean(1, keepdims=True) - xh * (dxh * xh).mean(1, keepdims=True))
    return dX, (dY * xh).sum(0), dY.sum(0)


def run() -> list[Table]:
    torch = torch_module()
    bw = bandwidth()
    repeats = 15
    t = Table("layernorm", f"Layer norm training forward+backward, float32 (ratio = "
              f"other/nnkit; floor = 5 passes / {bw / 1e9:.1f} GB/s measured)",
              [("B x D", "text"), ("nnkit ms", "ms"), ("numpy ms", "ms"), ("torch ms", "ms"),
               ("np/nk", "ratio"), ("torch/nk", "ratio"), ("floor ms", "ms"),
               ("nk@floor", "share"), ("torch@floor", "share")])
    for B, D in (QUICK_SHAPES if SETTINGS.quick else SHAPES):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((B, D)).astype(np.float32)
        dY = rng.standard_normal((B, D)).astype(np.float32)
        g = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)
        b = (0.1 * rng.standard_normal(D)).astype(np.float32)
        Y, dX = np.empty_like(X), np.empty_like(X)

        def ours():
            _, cache = nk.layernorm_forward(X, g, b, EPS, out=Y)
            nk.layernorm_backward(dY, cache, full=False, out=dX)

        t_nk = median_time(ours, repeats=repeats)
        t_np = median_time(lambda: numpy_layernorm(X, g, b, dY), repeats=repeats)
        t_th = torch_train_time(
            torch, lambda tX, tg, tb: torch.nn.functional.layer_norm(tX, (D,), tg, tb, EPS),
            (X, g, b), dY, repeats=repeats)
        floor = 5 * B * D * 4 / bw
        t.add(f"{B}x{D}", t_nk, t_np, t_th, ratio(t_np, t_nk), ratio(t_th, t_nk), floor,
              share(floor, t_nk), share(floor, t_th))
    return [t]
