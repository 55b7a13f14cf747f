"""ZCA whitening batch norm, training forward + backward: nnkit vs NumPy vs PyTorch.

    python benchmarks/bench_whitening.py [--quick] [--repeats N]

Per (B, M) and dtype: the median time of one forward + backward (Z = γ Ŷ + β,
then dY, dγ, dβ from dZ), and the ratios other / nnkit (> 1: nnkit faster).
  numpy  the textbook NumPy version: eigh, W = D Λ^(−½) Dᵀ, divided-difference backward
  torch  PyTorch autograd through torch.linalg.eigh (CPU, 2 threads), when importable
PyTorch runs in a child process: its OpenMP/MKL thread pool spins after each
call and would steal the 2 cores from OpenBLAS in the same process (and vice
versa), which distorts both sides.

Where the time goes (nnkit, per step): O(B M²) BLAS work = one syrk (Σ) +
four gemm-sized products (Ŷ = Yc W, P = Ycᵀ dZ, dY = dZc A + Yc X), i.e.
9 B M² flops against PyTorch's 12 B M² (it forms YcᵀYc with a full gemm, and
autograd differentiates both operands of it); O(M³): one eigh (LAPACK syevd)
and four M×M products; O(B M): four elementwise passes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

SHAPES = [(256, 64), (1024, 256), (4096, 512)]
EPS = 1e-5


def numpy_zca(Y, g, b, dZ):
    """Plain NumPy ZCA whitening BN, forward and backward (divided differences)."""
    B = Y.shape[0]
    Yc = Y - Y.mean(0)
    S = Yc.T @ Yc / B + EPS * np.eye(Y.shape[1], dtype=Y.dtype)
    lam, D = np.linalg.eigh(S)
    s = np.sqrt(lam)
    W = (D / s) @ D.T
    Yh = Yc @ W
    Z = g * Yh + b
    dbeta = dZ.sum(0)
    dgamma = (dZ * Yh).sum(0)
    dYh = dZ * g
    dW = Yc.T @ dYh
    F = -1.0 / (s[:, None] * s[None, :] * (s[:, None] + s[None, :]))
    dS = D @ (F * (D.T @ (0.5 * (dW + dW.T)) @ D)) @ D.T
    dYc = dYh @ W + Yc @ (2.0 / B * dS)
    dY = dYc - dYc.mean(0)
    return Z, dY, dgamma, dbeta


def torch_times(shapes, dtypes, repeats):
    """Run in the child process: {"float64 1024 256": seconds, ...}."""
    import torch
    from _timing import median_time
    torch.set_num_threads(2)
    out = {}
    for dt in dtypes:
        tdt = dict(float32=torch.float32, float64=torch.float64)[dt]
        for B, M in shapes:
            rng = np.random.default_rng(0)
            Y = torch.tensor(rng.standard_normal((B, M)), dtype=tdt, requires_grad=True)
            g = torch.ones(M, dtype=tdt, requires_grad=True)
            b = torch.zeros(M, dtype=tdt, requires_grad=True)
            dZ = torch.tensor(rng.standard_normal((B, M)), dtype=tdt)
            eye = torch.eye(M, dtype=tdt)

            def step():
                Yc = Y - Y.mean(0, keepdim=True)
                S = Yc.T @ Yc / B + EPS * eye
                lam, D = torch.linalg.eigh(S)
                W = (D * lam.rsqrt()) @ D.T
                Z = g * (Yc @ W) + b
                Z.backward(dZ)
                Y.grad = g.grad = b.grad = None

            out[f"{dt} {B} {M}"] = median_time(step, repeats=repeats)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the two smaller shapes only")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    args = p.parse_args(argv)
    shapes = SHAPES[:2] if args.quick else SHAPES
    dtypes = ["float64", "float32"]
    if args.torch_worker:
        print(json.dumps(torch_times(shapes, dtypes, args.repeats)))
        return

    import nnkit as nk
    from _timing import fmt_ms, fmt_ratio, median_time, print_table

    th = {}
    if not args.no_torch:
        cmd = [sys.executable, __file__, "--torch-worker", "--repeats", str(args.repeats)]
        if args.quick:
            cmd.append("--quick")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode == 0:
            th = json.loads(res.stdout.strip().splitlines()[-1])
        else:
            print("(PyTorch not available: " + (res.stderr.strip().splitlines() or ["?"])[-1] + ")")

    rows = []
    for dt in dtypes:
        for B, M in shapes:
            rng = np.random.default_rng(0)
            Y = rng.standard_normal((B, M)).astype(dt)
            dZ = rng.standard_normal((B, M)).astype(dt)
            g = np.ones(M, dt)
            b = np.zeros(M, dt)
            Z = np.empty_like(Y)
            dY = np.empty_like(Y)

            def ours():
                _, cache = nk.whitening_forward(Y, g, b, EPS, out=Z)
                nk.whitening_backward(dZ, cache, full=False, out=dY)

            t_nk = median_time(ours, repeats=args.repeats)
            t_np = median_time(lambda: numpy_zca(Y, g, b, dZ), repeats=args.repeats)
            t_th = th.get(f"{dt} {B} {M}")
            rows.append([dt, f"({B}, {M})", fmt_ms(t_nk), fmt_ms(t_np), fmt_ms(t_th),
                         fmt_ratio(t_np, t_nk), fmt_ratio(t_th, t_nk)])
    print_table("ZCA whitening BN, training forward + backward (ms, median)",
                ["dtype", "(B, M)", "nnkit", "numpy", "torch", "numpy/nnkit",
                 "torch/nnkit"], rows)


if __name__ == "__main__":
    main()
