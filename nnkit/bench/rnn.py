"""tanh RNN forward + backward (BPTT): nnkit vs a plain NumPy BPTT vs PyTorch's
fused torch.nn.RNN with autograd (CPU, all cores, when importable).

    nnkit bench rnn

Per (T, B, N, M): the median time of one forward over the whole sequence plus
the backward of every gradient (dX, dh0, dWx, dWh, db), µs per time step, and
the ratios other/nnkit (> 1: nnkit is faster) against the issue's targets.
Floor: the run's flops (forward 2BMN + 2BM², backward 4BMN + 4BM² per step)
at the rate of SciPy's BLAS (the one the kernels call) measured in this run
on the sequence's own product shape ((T·B, M) x (M, M)): a step's products
are small, and the large-square peak is out of their reach. All three compute
the same thing from the same weights (torch's b_hh is zero); the largest state
difference is a note under the table, not asserted.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ._timing import SETTINGS, Table, gemm_rate, median_time, ratio, share, torch_module

def _serial_gemm_rate(dt, rows: int, M: int) -> float:
    """flop/s of the same (rows, M) x (M, M) SciPy GEMM with OpenBLAS on one
    thread, as the RNN kernels run (nnkit/_threads.py): the floor takes
    the better of this and the all-threads rate, the strictest this run
    supports (on a loaded machine one thread is often the faster)."""
    from scipy.linalg import blas

    from .._threads import serial_blas
    rng = np.random.default_rng(0)
    A = np.asfortranarray(rng.standard_normal((rows, M)).astype(dt))
    W = np.asfortranarray(rng.standard_normal((M, M)).astype(dt))
    C = np.empty((rows, M), dt, order="F")
    f = blas.sgemm if np.dtype(dt) == np.float32 else blas.dgemm
    with serial_blas():
        t = median_time(lambda: f(1.0, A, W, c=C, overwrite_c=True), repeats=7,
                        min_seconds=0.5)
    return 2.0 * rows * M * M / t


# (T, B, N, M) and the target: ("torch", x) = at least x times faster than
# PyTorch; ("floor", x) = within a factor x of the GEMM-bound time
SHAPES = [((1000, 8, 32, 64), ("torch", 10.0)), ((100, 1, 32, 32), ("torch", 10.0)),
          ((100, 32, 64, 128), ("torch", 3.0)), ((50, 64, 256, 512), ("floor", 1.25))]
QUICK_SHAPES = [((5, 2, 3, 4), ("torch", 10.0))]
DTYPES = (np.float32, np.float64)


def numpy_rnn(X, h0, Wx, Wh, b, dH):
    """The textbook NumPy BPTT: one step at a time, forward and backward."""
    T = X.shape[0]
    H = np.empty((T,) + h0.shape, X.dtype)
    h = h0
    for t in range(T):
        h = np.tanh(X[t] @ Wx.T + h @ Wh.T + b)
        H[t] = h
    dX = np.empty_like(X)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    carry = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        dA = (dH[t] + carry) * (1 - H[t] * H[t])
        prev = H[t - 1] if t > 0 else h0
        dWx += dA.T @ X[t]
        dWh += dA.T @ prev
        db += dA.sum(0)
        dX[t] = dA @ Wx
        carry = dA @ Wh
    return H, dX, carry, dWx, dWh, db


COLUMNS = [("T x B x N x M", "text"), ("dtype", "text"), ("nnkit ms", "ms"),
           ("us/step", "us"), ("numpy ms", "ms"), ("torch ms", "ms"), ("np/nk", "ratio"),
           ("torch/nk", "ratio"), ("floor ms", "ms"), ("nk@floor", "share"),
           ("torch@floor", "share"), ("target", "text"), ("met", "text")]
_COL = {name: i for i, (name, _) in enumerate(COLUMNS)}


def _verdict(row: list) -> list:
    """The `met` cell from the row's own torch/nk ratio or nk@floor share (after
    --runs N, from the medians the table prints, not from the last run)."""
    goal = row[_COL["target"]]
    target = float(goal.split()[-1])
    if goal.startswith("torch/nk"):
        r = row[_COL["torch/nk"]]
        met = "n/a" if r is None else ("yes" if r >= target else "NO")
    else:                                  # nk/floor <= target: share >= 1/target
        met = "yes" if row[_COL["nk@floor"]] >= 1 / target else "NO"
    return row[:_COL["met"]] + [met]


def run() -> list[Table]:
    torch = torch_module()
    shapes = QUICK_SHAPES if SETTINGS.quick else SHAPES
    repeats = 15
    t = Table("rnn", "tanh RNN forward+backward, T x B x N x M (ratio = other/nnkit; floor = "
              "flops / GEMM rate of the sequence's product, measured in this run)",
              list(COLUMNS), derive=_verdict)
    for dt in DTYPES:
        for (T, B, N, M), (kind, target) in shapes:
            rng = np.random.default_rng(0)
            k = 1 / np.sqrt(M)
            X = rng.standard_normal((T, B, N)).astype(dt)
            h0 = rng.standard_normal((B, M)).astype(dt)
            Wx = rng.uniform(-k, k, (M, N)).astype(dt)
            Wh = rng.uniform(-k, k, (M, M)).astype(dt)
            b = rng.uniform(-k, k, M).astype(dt)
            dH = rng.standard_normal((T, B, M)).astype(dt)
            H = np.empty((T, B, M), dt)
            dX = np.empty_like(X)

            def ours():
                _, cache = nk.rnn_forward(X, h0, Wx, Wh, b, "tanh", out=H)
                nk.rnn_backward(dH, cache, full=False, out=dX)

            t_nk = median_time(ours, repeats=repeats)
            t_np = median_time(lambda: numpy_rnn(X, h0, Wx, Wh, b, dH), repeats=repeats)
            ours()
            diff_np = float(np.max(np.abs(numpy_rnn(X, h0, Wx, Wh, b, dH)[0] - H)))
            flops = T * (6.0 * B * M * N + 6.0 * B * M * M)
            floor = flops / max(gemm_rate(dt, T * B, M, M), _serial_gemm_rate(dt, T * B, M))
            t_th = diff_th = None
            if torch is not None:
                rnn = torch.nn.RNN(N, M, nonlinearity="tanh")
                rnn = rnn.double() if dt == np.float64 else rnn.float()
                with torch.no_grad():
                    rnn.weight_ih_l0.copy_(torch.from_numpy(Wx))
                    rnn.weight_hh_l0.copy_(torch.from_numpy(Wh))
                    rnn.bias_ih_l0.copy_(torch.from_numpy(b))
                    rnn.bias_hh_l0.zero_()
                tX = torch.from_numpy(X).requires_grad_(True)
                th0 = torch.from_numpy(h0[None]).requires_grad_(True)
                tdH = torch.from_numpy(dH)

                def theirs():
                    out, _ = rnn(tX, th0)
                    tX.grad = th0.grad = None
                    rnn.zero_grad(set_to_none=True)
                    out.backward(tdH)
                    return out

                t_th = median_time(theirs, repeats=repeats)
                diff_th = float(np.abs(theirs().detach().numpy() - H).max())
            goal = (f"torch/nk >= {target:g}" if kind == "torch"
                    else f"nk/floor <= {target:g}")
            t.add(f"{T}x{B}x{N}x{M}", np.dtype(dt).name, t_nk, t_nk / T, t_np, t_th,
                  ratio(t_np, t_nk), ratio(t_th, t_nk), floor, share(floor, t_nk),
                  share(floor, t_th), goal, None)      # met: _verdict
            t.notes.append(f"{T}x{B}x{N}x{M} {np.dtype(dt).name}: max |H - H_numpy| = "
                           f"{diff_np:.1e}, max |H - H_torch| = "
                           + ("n/a" if diff_th is None else f"{diff_th:.1e}")
                           + f"; {flops / 1e6:.1f} Mflop")
    return [t]
