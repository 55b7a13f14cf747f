#!/usr/bin/env python3
"""Conv2d 3x3, stride 1, padding 1, float32: forward and backward timed apart,
nnkit against PyTorch (torch.nn.functional.conv2d on 2 threads; its backward
is forward + backward less its forward), median of 7 calls after two
(nnkit bench's timer).

    python benchmarks/bench_conv_split.py

Says which half of `nnkit bench conv`'s forward + backward gap is where.
Needs PyTorch (pip install torch==2.13.0).
"""
import numpy as np
import torch

import nnkit as nk
from nnkit.bench._timing import median_time

SHAPES = [(16, 64, 56, 56, 64), (64, 32, 16, 16, 64), (32, 3, 32, 32, 16)]


def median_ms(f):
    """nnkit bench's timer: median of 7 calls after warm-up (and its cooldown)."""
    return 1e3 * median_time(f, repeats=7, min_seconds=0.0)


def main() -> None:
    torch.set_num_threads(2)
    F = torch.nn.functional
    print(f"{'B x C x H x W -> O':22} {'nnkit fwd':>9} {'torch fwd':>9} {'nnkit bwd':>9} "
          f"{'torch bwd':>9}  (ms; fwd GF/s nnkit / torch)")
    for B, C, H, W, O in SHAPES:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((B, C, H, W)).astype(np.float32)
        Wt = (0.05 * rng.standard_normal((O, C, 3, 3))).astype(np.float32)
        b = np.zeros(O, np.float32)
        Y, cache = nk.conv2d_forward(X, Wt, b, 1, 1)
        dY = rng.standard_normal(Y.shape).astype(np.float32)
        f_nk = median_ms(lambda: nk.conv2d_forward(X, Wt, b, 1, 1))
        b_nk = median_ms(lambda: nk.conv2d_backward(dY, cache))
        Xt, Wtt, bt = (torch.tensor(a, requires_grad=True) for a in (X, Wt, b))
        dYt = torch.tensor(dY)
        f_t = median_ms(lambda: F.conv2d(Xt.detach(), Wtt.detach(), bt.detach(), padding=1))

        def both():
            F.conv2d(Xt, Wtt, bt, padding=1).backward(dYt)
        fb_t = median_ms(both)
        gf = 2.0 * B * O * C * 9 * H * W / 1e6
        print(f"{f'{B}x{C}x{H}x{W} -> {O}':22} {f_nk:9.2f} {f_t:9.2f} {b_nk:9.2f} "
              f"{fb_t - f_t:9.2f}  ({gf / f_nk:.0f} / {gf / f_t:.0f})")


if __name__ == "__main__":
    main()
