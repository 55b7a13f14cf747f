"""Side-by-side timings of a tanh RNN's forward+backward (BPTT): nnkit vs a
plain NumPy BPTT vs PyTorch's fused torch.nn.RNN with autograd (CPU, when
installed; torch.set_num_threads(2), the machine's cores).

    python benchmarks/bench_rnn.py [--quick] [--float64]

Per (T, B, N, M): the median time of one forward over the whole sequence plus
the backward of every gradient (dX, dh0, dWx, dWh, db), µs per time step,
and the ratios other/nnkit (> 1: nnkit is faster) against the issue's
targets. The GEMM floor is the run's flops (forward 2BMN + 2BM², backward
4BMN + 4BM² per step) at the sgemm/dgemm rate measured in this run on one
large product ((T·B, M) x (M, M), SciPy's BLAS, the one the kernels call);
nnkit/floor is how far the RNN is from it. All three compute the same thing
from the same weights (torch's b_hh is zero); the largest state difference is
printed under the table, not asserted.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.linalg import blas

import nnkit as nk
from _timing import fmt_ms, fmt_ratio, median_time, print_table, torch

# (T, B, N, M) and the target: ("torch", x) = at least x times faster
# than PyTorch; ("floor", x) = within a factor x of the GEMM-bound time
SHAPES = [((1000, 8, 32, 64), ("torch", 10.0)), ((100, 1, 32, 32), ("torch", 10.0)),
          ((100, 32, 64, 128), ("torch", 3.0)), ((50, 64, 256, 512), ("floor", 1.25))]


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


def gemm_rate(rows, M, dt, repeats):
    """flop/s of SciPy's BLAS on (rows, M) x (M, M), the kernels' library."""
    rng = np.random.default_rng(1)
    A = np.asfortranarray(rng.standard_normal((rows, M)).astype(dt))
    W = np.asfortranarray(rng.standard_normal((M, M)).astype(dt))
    C = np.empty((rows, M), dt, order="F")
    gemm = blas.sgemm if dt == np.float32 else blas.dgemm
    t = median_time(lambda: gemm(1.0, A, W, c=C, overwrite_c=True), repeats=repeats,
                    min_seconds=0.3)
    return 2.0 * rows * M * M / t


def bench(shapes, dtypes, repeats):
    rows, notes = [], []
    for dt in dtypes:
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
            floor = flops / gemm_rate(T * B, M, dt, repeats)
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
                diff_th = float((theirs().detach().numpy() - H).__abs__().max())
            if kind == "torch":
                got = None if t_th is None else t_th / t_nk
                goal = f"torch/nk >= {target:g}"
                met = "n/a" if got is None else ("yes" if got >= target else "NO")
            else:
                got = t_nk / floor
                goal = f"nk/floor <= {target:g}"
                met = "yes" if got <= target else "NO"
            rows.append([f"{T}x{B}x{N}x{M}", np.dtype(dt).name, fmt_ms(t_nk),
                         f"{t_nk / T * 1e6:7.2f}", fmt_ms(t_np), fmt_ms(t_th),
                         fmt_ms(floor), fmt_ratio(t_np, t_nk), fmt_ratio(t_th, t_nk),
                         f"{t_nk / floor:5.2f}", goal, met])
            notes.append(f"  {T}x{B}x{N}x{M} {np.dtype(dt).name}: max |H - H_numpy| = "
                         f"{diff_np:.1e}, max |H - H_torch| = "
                         + ("n/a" if diff_th is None else f"{diff_th:.1e}")
                         + f"; GEMM floor = {flops / 1e6:.1f} Mflop at the measured rate")
    print_table("tanh RNN forward+backward, T x B x N x M (ms; µs/step of nnkit; "
                "ratio = other/nnkit)",
                ["T x B x N x M", "dtype", "nnkit", "us/step", "numpy", "torch", "floor",
                 "np/nk", "torch/nk", "nk/floor", "target", "met"], rows)
    print("\n".join(notes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="first shape only, few repeats")
    ap.add_argument("--float64", action="store_true", help="also time float64")
    args = ap.parse_args()
    repeats = 5 if args.quick else 15
    shapes = SHAPES[:1] if args.quick else SHAPES
    if torch is not None:
        torch.set_num_threads(2)
    print(f"nnkit {nk.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch is not None else 'not installed'} "
          f"({torch.get_num_threads() if torch is not None else 0} threads), "
          f"{nk._threads.kernel_threads()} kernel threads")
    dtypes = (np.float32, np.float64) if args.float64 else (np.float32,)
    bench(shapes, dtypes, repeats)


if __name__ == "__main__":
    main()
