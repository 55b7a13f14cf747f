"""Side-by-side timings of a tanh RNN's forward+backward (BPTT): nnkit vs a
plain NumPy BPTT vs torch.nn.RNN autograd (CPU, when installed).

    python benchmarks/bench_rnn.py [--quick]

Prints, per (T, B, N, M) and dtype, the median time of one forward over the
whole sequence plus the backward of every gradient (dX, dh0, dWx, dWh, db),
and the ratios (other / nnkit: > 1 means nnkit is faster). The three compute
the same thing from the same weights (torch's second bias b_hh is zero); the
largest difference of the states is printed under the table as a sanity
check, not asserted.
"""
from __future__ import annotations

import argparse

import numpy as np

import nnkit as nk
from _timing import fmt_ms, fmt_ratio, median_time, print_table, torch

SHAPES = [(50, 64, 128, 256), (100, 32, 256, 512)]


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


def bench(shapes, dtypes, repeats):
    rows, notes = [], []
    for dt in dtypes:
        for T, B, N, M in shapes:
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
            rows.append([f"{T}x{B}x{N}x{M}", np.dtype(dt).name, fmt_ms(t_nk), fmt_ms(t_np),
                         fmt_ms(t_th), fmt_ratio(t_np, t_nk), fmt_ratio(t_th, t_nk)])
            notes.append(f"  {T}x{B}x{N}x{M} {np.dtype(dt).name}: max |H - H_numpy| = "
                         f"{diff_np:.1e}, max |H - H_torch| = "
                         + ("n/a" if diff_th is None else f"{diff_th:.1e}"))
    print_table("tanh RNN forward+backward, T x B x N x M (ms; ratio = other/nnkit)",
                ["T x B x N x M", "dtype", "nnkit", "numpy", "torch", "np/nk", "torch/nk"],
                rows)
    print("\n".join(notes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="first shape only, few repeats")
    args = ap.parse_args()
    repeats = 5 if args.quick else 15
    shapes = SHAPES[:1] if args.quick else SHAPES
    print(f"nnkit {nk.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch is not None else 'not installed'}, "
          f"{nk._threads.kernel_threads()} threads")
    bench(shapes, (np.float32, np.float64), repeats)


if __name__ == "__main__":
    main()
