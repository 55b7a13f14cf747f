"""LSTM forward + backward (BPTT): nnkit vs a plain NumPy BPTT vs PyTorch's
torch.nn.LSTM with autograd (CPU, all cores, when importable).

    nnkit bench lstm

Per (T, B, N, H): the median time of one forward over the whole sequence plus
the backward of every gradient (dX, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh),
µs per time step, and the ratios other/nnkit (> 1: nnkit is faster) against
issue 27's targets (at least 2× PyTorch at (100, 32, 64, 128), at least
PyTorch's speed at (50, 64, 256, 512)). Floor: the run's flops (forward
2B·4H(N + H), backward twice that, per step) at the rate of SciPy's BLAS on
the sequence's stacked product ((T·B, H) x (H, 4H)), measured in this run.
All three compute the same thing from the same weights; the largest output
difference is a note under the table, not asserted.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ._timing import SETTINGS, Table, gemm_rate, median_time, ratio, share, torch_module

# (T, B, N, H) and the target torch/nk ratio
SHAPES = [((100, 32, 64, 128), 2.0), ((50, 64, 256, 512), 1.0)]
QUICK_SHAPES = [((5, 2, 3, 4), 2.0)]
DTYPES = (np.float32, np.float64)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_lstm(X, h0, c0, W_ih, W_hh, b, dH):
    """The textbook NumPy LSTM and BPTT, one step at a time (b = b_ih + b_hh)."""
    T = X.shape[0]
    H = h0.shape[1]
    Hs, Cs, Gs = [], [], []
    h, c = h0, c0
    for t in range(T):
        a = X[t] @ W_ih.T + h @ W_hh.T + b
        i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), \
            _sig(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        Hs.append(h)
        Cs.append(c)
        Gs.append((i, f, g, o))
    dX = np.empty_like(X)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    dc_next = np.zeros_like(h0)
    f_next = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        i, f, g, o = Gs[t]
        c_prev = Cs[t - 1] if t > 0 else c0
        h_prev = Hs[t - 1] if t > 0 else h0
        dh = dH[t] + dh_next
        tc = np.tanh(Cs[t])
        dc = dh * o * (1 - tc * tc) + dc_next * f_next
        dA = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
        dX[t] = dA @ W_ih
        dW_ih += dA.T @ X[t]
        dW_hh += dA.T @ h_prev
        db += dA.sum(0)
        dh_next = dA @ W_hh
        dc_next, f_next = dc, f
    return np.stack(Hs), dX, dh_next, dW_ih, dW_hh, db


COLUMNS = [("T x B x N x H", "text"), ("dtype", "text"), ("nnkit ms", "ms"),
           ("us/step", "us"), ("numpy ms", "ms"), ("torch ms", "ms"), ("np/nk", "ratio"),
           ("torch/nk", "ratio"), ("floor ms", "ms"), ("nk@floor", "share"),
           ("torch@floor", "share"), ("target", "text"), ("met", "text")]
_COL = {name: i for i, (name, _) in enumerate(COLUMNS)}


def _verdict(row: list) -> list:
    """The `met` cell from the row's own (median) torch/nk ratio."""
    target = float(row[_COL["target"]].split()[-1])
    r = row[_COL["torch/nk"]]
    met = "n/a" if r is None else ("yes" if r >= target else "NO")
    return row[:_COL["met"]] + [met]


def run() -> list[Table]:
    torch = torch_module()
    shapes = QUICK_SHAPES if SETTINGS.quick else SHAPES
    repeats = 3 if SETTINGS.quick else 7
    t = Table("lstm", "LSTM forward+backward, T x B x N x H (ratio = other/nnkit; floor = "
              "flops / GEMM rate of the sequence's product, measured in this run)",
              list(COLUMNS), derive=_verdict)
    for dt in DTYPES:
        for (T, B, N, H), target in shapes:
            rng = np.random.default_rng(0)
            k = 1 / np.sqrt(H)
            X = rng.standard_normal((T, B, N)).astype(dt)
            h0 = rng.standard_normal((B, H)).astype(dt)
            c0 = rng.standard_normal((B, H)).astype(dt)
            W_ih = rng.uniform(-k, k, (4 * H, N)).astype(dt)
            W_hh = rng.uniform(-k, k, (4 * H, H)).astype(dt)
            b_ih = rng.uniform(-k, k, 4 * H).astype(dt)
            b_hh = rng.uniform(-k, k, 4 * H).astype(dt)
            dH = rng.standard_normal((T, B, H)).astype(dt)
            out = {}

            def ours():
                out["H"], cache = nk.lstm_forward(X, h0, c0, W_ih, W_hh, b_ih, b_hh)
                nk.lstm_backward(dH, cache, full=False)

            t_nk = median_time(ours, repeats=repeats)
            b = (b_ih + b_hh).astype(dt)
            t_np = median_time(lambda: numpy_lstm(X, h0, c0, W_ih, W_hh, b, dH),
                               repeats=repeats)
            diff_np = float(np.max(np.abs(numpy_lstm(X, h0, c0, W_ih, W_hh, b, dH)[0]
                                          - out["H"])))
            flops = T * 3 * 2.0 * B * 4 * H * (N + H)
            floor = flops / gemm_rate(dt, T * B, 4 * H, H)
            t_th = diff_th = None
            if torch is not None:
                m = torch.nn.LSTM(N, H)
                m = m.double() if dt == np.float64 else m.float()
                with torch.no_grad():
                    for name, a in (("weight_ih_l0", W_ih), ("weight_hh_l0", W_hh),
                                    ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
                        getattr(m, name).copy_(torch.from_numpy(a))
                tX = torch.from_numpy(X).requires_grad_(True)
                th0 = torch.from_numpy(h0[None]).requires_grad_(True)
                tc0 = torch.from_numpy(c0[None]).requires_grad_(True)
                tdH = torch.from_numpy(dH)

                def theirs():
                    o, _ = m(tX, (th0, tc0))
                    tX.grad = th0.grad = tc0.grad = None
                    m.zero_grad(set_to_none=True)
                    o.backward(tdH)
                    return o

                t_th = median_time(theirs, repeats=repeats)
                diff_th = float(np.abs(theirs().detach().numpy() - out["H"]).max())
            t.add(f"{T}x{B}x{N}x{H}", np.dtype(dt).name, t_nk, t_nk / T, t_np, t_th,
                  ratio(t_np, t_nk), ratio(t_th, t_nk), floor, share(floor, t_nk),
                  share(floor, t_th), f"torch/nk >= {target:g}", None)
            t.notes.append(f"{T}x{B}x{N}x{H} {np.dtype(dt).name}: max |H - H_numpy| = "
                           f"{diff_np:.1e}, max |H - H_torch| = "
                           + ("n/a" if diff_th is None else f"{diff_th:.1e}")
                           + f"; {flops / 1e6:.1f} Mflop")
    return [t]
