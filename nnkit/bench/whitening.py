"""ZCA whitening batch norm, training forward + backward: nnkit vs NumPy vs PyTorch.

    nnkit bench whitening

Per (B, M) and dtype: the median time of one forward + backward (Z = γ Ŷ + β,
then dY, dγ, dβ from dZ), and the ratios other / nnkit (> 1: nnkit faster).
  numpy  the textbook NumPy version: eigh, W = D Λ^(−½) Dᵀ, divided-difference backward
  torch  PyTorch autograd through torch.linalg.eigh (CPU, all cores), when importable
PyTorch runs in a child process: its OpenMP/MKL thread pool spins after each
call and would steal the cores from OpenBLAS in the same process (and vice
versa), which distorts both sides.

Floor: the step's BLAS work at the GEMM rate measured in this run plus its
eigendecomposition timed alone (the LAPACK call nnkit makes, on this Σ):
  O(B M²)  9 B M² flops: Σ (syrk, B M²), Ŷ = Yc W (2 B M²), P = Ycᵀ dZc
           (2 B M²), dY = dZc A + Yc X (4 B M²)
  O(M³)    10 M³: W = (D Λ^(−½)) Dᵀ (2 M³), the backward's four M×M
           products (8 M³)
The O(B M) passes (centering, the elementwise output and gradient passes)
are left out of it: at these shapes they are a few per cent.
BLAS calls: the step's BLAS and LAPACK calls alone, in nnkit's order on
operands of its shapes, with nothing between them (SciPy's BLAS, the library
and thread policy nnkit's kernels use): nnkit's time with every pass, every
g x g elementwise step and all of Python free. Where its share of the floor
is below 80 %, the calls themselves, not nnkit's code around them, keep the
step from 1.25x the floor.
The second table says where nnkit's time goes, stage by stage.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from ._timing import (SETTINGS, Table, gemm_rate, median_time, ratio, share, torch_module)

SHAPES = [(256, 64), (1024, 256), (4096, 512)]
QUICK_SHAPES = [(16, 4)]
ZCA_M3_FLOPS = 10.0      # flops / M³ of the g×g products (the docstring)
DTYPES = ("float64", "float32")
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


def torch_times(shapes, dtypes, quick: bool) -> dict:
    """Run in the child process: {"float64 1024 256": seconds, ...}."""
    from . import _timing
    _timing.SETTINGS.quick = quick
    torch = torch_module()
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

            out[f"{dt} {B} {M}"] = median_time(step, repeats=9)
    return out


def _torch_in_child(shapes) -> tuple[dict, str | None]:
    if not SETTINGS.torch:
        return {}, None
    cmd = [sys.executable, "-m", __name__, "--torch-worker",
           json.dumps(dict(shapes=shapes, dtypes=DTYPES, quick=SETTINGS.quick))]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {}, f"PyTorch not timed: {why}"
    return json.loads(res.stdout.strip().splitlines()[-1]), None


def _inputs(B, M, dt):
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((B, M)).astype(dt)
    dZ = rng.standard_normal((B, M)).astype(dt)
    return Y, dZ, np.ones(M, dt), np.zeros(M, dt)


def run() -> list[Table]:
    import nnkit as nk
    from .. import _whitening_algebra as alg

    shapes = QUICK_SHAPES if SETTINGS.quick else SHAPES
    th, why = _torch_in_child(shapes)
    t = Table("whitening", "ZCA whitening BN, training forward + backward (ratio = "
              "other/nnkit; floor = BLAS flops / measured GEMM rate + eigh alone)",
              [("dtype", "text"), ("(B, M)", "text"), ("nnkit ms", "ms"), ("numpy ms", "ms"),
               ("torch ms", "ms"), ("np/nk", "ratio"), ("torch/nk", "ratio"),
               ("eigh ms", "ms"), ("floor ms", "ms"), ("nk@floor", "share"),
               ("torch@floor", "share"), ("BLAS calls ms", "ms"), ("calls@floor", "share")])
    if why:
        t.notes.append(why)
    parts = Table("whitening_stages", "Where nnkit's ZCA step goes (ms, median of each "
                  "stage timed alone)", [("dtype", "text"), ("(B, M)", "text")]
                  + [(f"{s} ms", "ms") for s in STAGES] + [("sum ms", "ms")])
    for dt in DTYPES:
        rate = gemm_rate(dt)
        for B, M in shapes:
            Y, dZ, g, b = _inputs(B, M, dt)
            Z = np.empty_like(Y)
            dY = np.empty_like(Y)

            def ours():
                _, cache = nk.whitening_forward(Y, g, b, EPS, out=Z)
                nk.whitening_backward(dZ, cache, full=False, out=dY)

            t_nk = median_time(ours, repeats=9)
            t_np = median_time(lambda: numpy_zca(Y, g, b, dZ), repeats=9)
            t_th = th.get(f"{dt} {B} {M}")
            _, cache = nk.whitening_forward(Y, g, b, EPS)
            S = cache.covs[0]
            t_eig = median_time(lambda: alg._eigh(S), repeats=9)
            floor = (9.0 * B * M * M + ZCA_M3_FLOPS * M ** 3) / rate + t_eig
            t_blas = blas_sequence(B, M, dt, S)
            t.add(dt, f"({B}, {M})", t_nk, t_np, t_th, ratio(t_np, t_nk), ratio(t_th, t_nk),
                  t_eig, floor, share(floor, t_nk), share(floor, t_th), t_blas,
                  share(floor, t_blas))
            st = stage_times(Y, dZ, g, b)
            parts.add(dt, f"({B}, {M})", *[st[s] for s in STAGES], sum(st.values()))
    return [t, parts]


def blas_sequence(B: int, M: int, dt: str, S: np.ndarray) -> float:
    """Seconds of one ZCA step's BLAS and LAPACK calls alone (g = M): the calls
    nnkit makes, in its order, on operands of its shapes, with nothing between
    them (no pass, no g x g elementwise step, no Python beyond the calls):
    syrk (Σ), eigh (the LAPACK call nnkit makes, on this Σ), W = D Dᵀ, Ŷ = Yc W,
    P = Ycᵀ dZc, the backward's four g x g products, dY = dZc A + Yc X.
    Column-major operands, so no call copies. Its flops are the floor's."""
    from scipy.linalg import blas
    from .. import _whitening_algebra as alg
    from ..whitening import _blas_policy
    p = "s" if dt == "float32" else "d"
    gemm, syrk = getattr(blas, p + "gemm"), getattr(blas, p + "syrk")
    rng = np.random.default_rng(1)
    YcT = np.asfortranarray(rng.standard_normal((M, B)).astype(dt))   # row-major Yc (B, M)
    dZT = np.asfortranarray(rng.standard_normal((M, B)).astype(dt))
    YhT, dYT = (np.empty((M, B), dt, order="F") for _ in range(2))
    C, W, P, T1, T2 = (np.empty((M, M), dt, order="F") for _ in range(5))

    def step():
        syrk(1.0 / B, YcT, c=C, overwrite_c=True)
        D = alg._eigh(S)[1][0].T                 # row-major D = column-major Dᵀ
        gemm(1.0, D, D, trans_b=True, c=W, overwrite_c=True)
        gemm(1.0, W, YcT, c=YhT, overwrite_c=True)
        gemm(1.0, YcT, dZT, trans_b=True, c=P, overwrite_c=True)
        gemm(1.0, D, P, trans_a=True, c=T1, overwrite_c=True)
        gemm(1.0, T1, D, c=T2, overwrite_c=True)
        gemm(1.0, D, T2, c=T1, overwrite_c=True)
        gemm(1.0, T1, D, trans_b=True, c=T2, overwrite_c=True)
        gemm(1.0, W, dZT, c=dYT, overwrite_c=True)
        gemm(1.0, T2, YcT, beta=1.0, c=dYT, overwrite_c=True)

    with _blas_policy(B, M):          # the thread policy nnkit.whitening applies
        return median_time(step, repeats=9)


STAGES = ("center", "cov", "eigh", "W", "apply", "bwd pointwise", "bwd reduce",
          "bwd algebra", "bwd expand")


def stage_times(Y, dZ, g, b) -> dict:
    """Each stage of nnkit's ZCA forward + backward timed alone: the calls
    nnkit.whitening makes, in its order, on its own intermediates."""
    from .._kernels import whitening as k
    from .. import _whitening_algebra as alg
    from .._threads import kernel_threads
    B, M = Y.shape
    nt = kernel_threads(beside_blas=True)
    mean, colsum, Yc = np.empty(M, Y.dtype), np.empty(M), np.empty_like(Y)
    covs = alg.stacks(M, M, Y.dtype)
    yhat, Z = np.empty_like(Y), np.empty_like(Y)
    dZc, dgamma, dbeta = np.empty_like(Y), np.empty(M, Y.dtype), np.empty(M, Y.dtype)
    Ps = alg.stacks(M, M, Y.dtype)
    dY = np.empty_like(Y)
    k.center(Y, mean, colsum, Yc, nt)
    k.covariance(Yc, M, EPS, *alg.kernel_args(covs))
    S = covs[0]
    W, aux = alg.forward_algebra(S, "zca", 5)
    W = W.astype(Y.dtype, copy=False)
    k.backward_pointwise(dZ, yhat, g, b, False, dZc, None, None, dgamma, dbeta, nt)
    k.backward_reduce(Yc, dZc, M, *alg.kernel_args(Ps))
    dW = Ps[0] * g[None, None, :]
    dS = alg.backward_algebra(dW, S, W, "zca", aux).astype(Y.dtype, copy=False)
    A = np.ascontiguousarray(g[None, :, None] * alg.transpose(W))
    X = np.ascontiguousarray((2.0 / B) * dS, dtype=Y.dtype)
    fns = {
        "center": lambda: k.center(Y, mean, colsum, Yc, nt),
        "cov": lambda: k.covariance(Yc, M, EPS, *alg.kernel_args(covs)),
        "eigh": lambda: alg._eigh(S),
        "W": lambda: alg.forward_algebra(S, "zca", 5),
        "apply": lambda: k.apply(Yc, M, W, None, g, b, False, yhat, Z, nt),
        "bwd pointwise": lambda: k.backward_pointwise(dZ, yhat, g, b, False, dZc, None,
                                                      None, dgamma, dbeta, nt),
        "bwd reduce": lambda: k.backward_reduce(Yc, dZc, M, *alg.kernel_args(Ps)),
        "bwd algebra": lambda: alg.backward_algebra(dW, S, W, "zca", aux),
        "bwd expand": lambda: k.backward_expand(dZc, Yc, M, A, None, X, None, dY),
    }
    from ..whitening import _blas_policy
    with _blas_policy(B, M):          # the thread policy nnkit.whitening applies
        out = {name: median_time(fns[name], repeats=9, min_seconds=0.3) for name in STAGES}
    out["W"] = max(0.0, out["W"] - out["eigh"])     # forward_algebra includes the eigh
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--torch-worker":
        cfg = json.loads(sys.argv[2])
        print(json.dumps(torch_times([tuple(s) for s in cfg["shapes"]], cfg["dtypes"],
                                     cfg["quick"])))
