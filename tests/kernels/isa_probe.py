"""Run a fixed set of kernels, forward and backward of every family, and save
every output to an .npz: `python isa_probe.py OUT.npz`. tests/kernels/test_isa.py
runs it once per ISA level (NNKIT_ISA) and compares the files.

Sizes are odd and larger than a 512-bit vector (37 rows, 70 and 50 columns)
so both the vector loops and their scalar tails run. Inputs are seeded: every
level sees the same numbers.
"""
import sys

import numpy as np

import nnkit as nk
from nnkit import _kernels


def _put(out, name, value):
    """Store an array, or each array of a named tuple of gradients (skipping None)."""
    if hasattr(value, "_fields"):
        for field, v in zip(value._fields, value):
            if v is not None:
                out[f"{name}.{field}"] = np.asarray(v)
    else:
        out[name] = np.asarray(value)


def run(dtype) -> dict:
    rng = np.random.default_rng(20261207)
    t = np.dtype(dtype).name
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    out = {}
    B, N, M = 37, 70, 50
    X, W, b = r(B, N), r(M, N), r(M)
    Y, c = nk.affine_forward(X, W, b)
    _put(out, f"{t}.affine", Y)
    _put(out, f"{t}.affine_bw", nk.affine_backward(r(B, M), c))
    H, c = nk.relu_forward(Y)
    _put(out, f"{t}.relu", H)
    _put(out, f"{t}.relu_bw", nk.relu_backward(r(B, M), c))
    loss, c = nk.softmax_cross_entropy(Y, rng.integers(0, M, B))
    _put(out, f"{t}.softmax_ce", loss)
    _put(out, f"{t}.softmax_ce_bw", nk.softmax_cross_entropy_backward(c))
    gamma, beta = r(M), r(M)
    Z, c = nk.batchnorm_forward(Y, gamma, beta)
    _put(out, f"{t}.batchnorm", Z)
    _put(out, f"{t}.batchnorm_bw", nk.batchnorm_backward(r(B, M), c))
    Z, c = nk.bn_relu_forward(Y, gamma, beta)
    _put(out, f"{t}.bn_relu", Z)
    _put(out, f"{t}.bn_relu_bw", nk.bn_relu_backward(r(B, M), c))
    Yw = r(B, 12)
    Z, c = nk.whitening_forward(Yw, r(12), r(12))
    _put(out, f"{t}.whitening", Z)
    _put(out, f"{t}.whitening_bw", nk.whitening_backward(r(B, 12), c))
    T, Hd = 9, 21
    Xs = r(T, B, N)
    Hs, c = nk.rnn_forward(Xs, r(B, Hd), 0.2 * r(Hd, N), 0.2 * r(Hd, Hd), r(Hd))
    _put(out, f"{t}.rnn", Hs)
    _put(out, f"{t}.rnn_bw", nk.rnn_backward(r(T, B, Hd), c))
    Hs, c = nk.lstm_forward(Xs, r(B, Hd), r(B, Hd), 0.2 * r(4 * Hd, N), 0.2 * r(4 * Hd, Hd),
                            r(4 * Hd), r(4 * Hd))
    _put(out, f"{t}.lstm", Hs)
    _put(out, f"{t}.lstm_bw", nk.lstm_backward(r(T, B, Hd), c))
    Hs, c = nk.gru_forward(Xs, r(B, Hd), 0.2 * r(3 * Hd, N), 0.2 * r(3 * Hd, Hd),
                           r(3 * Hd), r(3 * Hd))
    _put(out, f"{t}.gru", Hs)
    _put(out, f"{t}.gru_bw", nk.gru_backward(r(T, B, Hd), c))
    Xc = r(5, 3, 17, 19)
    Yc, c = nk.conv2d_forward(Xc, r(6, 3, 3, 3), r(6), 2, 1, 2)
    _put(out, f"{t}.conv", Yc)
    _put(out, f"{t}.conv_bw", nk.conv2d_backward(r(*Yc.shape), c))
    for kind in ("maxpool2d", "avgpool2d"):
        Yp, c = getattr(nk, f"{kind}_forward")(Xc, 3, 1, 1)
        _put(out, f"{t}.{kind}", Yp)
        _put(out, f"{t}.{kind}_bw", getattr(nk, f"{kind}_backward")(r(*Yp.shape), c))
    Xn = r(B, 6, 5, 7)
    for kind in ("layernorm", "instancenorm"):
        shape = (6, 5, 7) if kind == "layernorm" else (6,)
        Zn, c = getattr(nk, f"{kind}_forward")(Xn, r(*shape), r(*shape))
        _put(out, f"{t}.{kind}", Zn)
        _put(out, f"{t}.{kind}_bw", getattr(nk, f"{kind}_backward")(r(*Xn.shape), c))
    Zn, c = nk.groupnorm_forward(Xn, r(6), r(6), 3)
    _put(out, f"{t}.groupnorm", Zn)
    _put(out, f"{t}.groupnorm_bw", nk.groupnorm_backward(r(*Xn.shape), c))
    Zn, c = nk.batchnorm_channels_forward(Xn, r(6), r(6))
    _put(out, f"{t}.batchnorm_channels", Zn)
    _put(out, f"{t}.batchnorm_channels_bw", nk.batchnorm_channels_backward(r(*Xn.shape), c))
    p, g = r(B, M), r(B, M)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for step in (1, 2, 3):
        nk.optim.functional.adam(p, g, m, v, step, lr=1e-2, weight_decay=1e-3)
    _put(out, f"{t}.adam", p)
    return out


if __name__ == "__main__":
    result = {"level": np.array(_kernels.level())}
    for dtype in (np.float64, np.float32):
        result.update(run(dtype))
    np.savez(sys.argv[1], **result)
