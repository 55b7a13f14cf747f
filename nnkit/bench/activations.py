"""Activations and losses, forward + backward: nnkit against NumPy and PyTorch CPU.

    nnkit bench activations

Per activation (tanh, sigmoid, leaky ReLU, GELU exact and tanh form) and per
loss (MSE, BCE with logits, mean reduction), float32 and float64, at a
memory-bound size: the median time of a forward + backward, the ratios
(other / nnkit: > 1 means nnkit is faster), and the bandwidth floor: the
bytes the computation must move, 5 passes of n values (activation: read X,
write H; read dH and X or H, write dX; loss: read pred and target; read them
again, write dpred), divided by the bandwidth measured in this same run
(_timing.bandwidth). "@floor" is floor / time.

NumPy: the formulas as plain ufunc expressions (scipy.special.erf for GELU,
which NumPy lacks), each a pass with a temporary. PyTorch: torch.nn.functional
with autograd, on every core.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

import nnkit as nk

from ._timing import (SETTINGS, Table, bandwidth, median_time, ratio, share, torch_module,
                      torch_train_time)

SHAPE = (4096, 1024)
QUICK_SHAPE = (4, 8)
DTYPES = (np.float32, np.float64)
SLOPE = 0.01
_K = math.sqrt(2 / math.pi)
_C = 0.044715


# ------------------------------------------------------- NumPy, as one would write it
def np_tanh(X, dH):
    H = np.tanh(X)
    return H, dH * (1 - H * H)


def np_sigmoid(X, dH):
    S = 1 / (1 + np.exp(-X))
    return S, dH * S * (1 - S)


def np_leaky_relu(X, dH):
    return np.where(X > 0, X, SLOPE * X), np.where(X > 0, dH, SLOPE * dH)


def np_gelu(X, dH):
    cdf = 0.5 * (1 + special.erf(X / math.sqrt(2)))
    pdf = np.exp(-0.5 * X * X) / math.sqrt(2 * math.pi)
    return X * cdf, dH * (cdf + X * pdf)


def np_gelu_tanh(X, dH):
    t = np.tanh(_K * (X + _C * X ** 3))
    H = 0.5 * X * (1 + t)
    return H, dH * (0.5 * (1 + t) + 0.5 * X * (1 - t * t) * _K * (1 + 3 * _C * X * X))


def np_mse(P, T):
    d = P - T
    return np.mean(d * d), d * (2 / d.size)


def np_bce(X, T):
    loss = np.mean(np.maximum(X, 0) - X * T + np.log1p(np.exp(-np.abs(X))))
    return loss, (1 / (1 + np.exp(-X)) - T) / X.size


# name: (nnkit forward(X, out), nnkit backward(dH, cache, out), NumPy, torch forward)
ACTIVATIONS = {
    "tanh": (lambda X, out: nk.tanh_forward(X, out=out), nk.tanh_backward, np_tanh,
             lambda F: F.tanh),
    "sigmoid": (lambda X, out: nk.sigmoid_forward(X, out=out), nk.sigmoid_backward,
                np_sigmoid, lambda F: F.sigmoid),
    "leaky_relu": (lambda X, out: nk.leaky_relu_forward(X, SLOPE, out=out),
                   nk.leaky_relu_backward, np_leaky_relu,
                   lambda F: (lambda x: F.leaky_relu(x, SLOPE))),
    "gelu": (lambda X, out: nk.gelu_forward(X, out=out), nk.gelu_backward, np_gelu,
             lambda F: F.gelu),
    "gelu_tanh": (lambda X, out: nk.gelu_forward(X, "tanh", out=out), nk.gelu_backward,
                  np_gelu_tanh, lambda F: (lambda x: F.gelu(x, approximate="tanh"))),
}
LOSSES = {
    "mse_loss": (nk.mse_loss, nk.mse_loss_backward, np_mse, lambda F: F.mse_loss),
    "bce_with_logits": (nk.bcewithlogits_loss, nk.bcewithlogits_loss_backward, np_bce,
                        lambda F: F.binary_cross_entropy_with_logits),
}


def run() -> list[Table]:
    torch = torch_module()
    F = None if torch is None else torch.nn.functional
    bw = bandwidth()
    repeats = 10
    B, D = QUICK_SHAPE if SETTINGS.quick else SHAPE
    t = Table("activations", f"Activations and losses, forward+backward, {B}x{D} (ratio = "
              f"other/nnkit; floor = 5 passes / {bw / 1e9:.1f} GB/s measured)",
              [("layer", "text"), ("dtype", "text"), ("nnkit ms", "ms"), ("numpy ms", "ms"),
               ("torch ms", "ms"), ("np/nk", "ratio"), ("torch/nk", "ratio"),
               ("floor ms", "ms"), ("nk@floor", "share"), ("torch@floor", "share")])
    for dtype in DTYPES:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((B, D)).astype(dtype)
        dH = rng.standard_normal((B, D)).astype(dtype)
        T = rng.random((B, D)).astype(dtype)
        H, dX = np.empty_like(X), np.empty_like(X)
        floor = 5 * X.nbytes / bw
        name_of = np.dtype(dtype).name

        for name, (fwd, bwd, numpy_version, torch_fn) in ACTIVATIONS.items():
            def ours(fwd=fwd, bwd=bwd):
                _, cache = fwd(X, H)
                bwd(dH, cache, out=dX)

            t_nk = median_time(ours, repeats=repeats)
            t_np = median_time(lambda f=numpy_version: f(X, dH), repeats=repeats)
            t_th = torch_train_time(torch, None if F is None else torch_fn(F), (X,), dH,
                                    repeats=repeats)
            t.add(name, name_of, t_nk, t_np, t_th, ratio(t_np, t_nk), ratio(t_th, t_nk),
                  floor, share(floor, t_nk), share(floor, t_th))

        for name, (fn, bwd, numpy_version, torch_fn) in LOSSES.items():
            def ours(fn=fn, bwd=bwd):
                _, cache = fn(X, T)
                bwd(1.0, cache, out=dX)

            t_nk = median_time(ours, repeats=repeats)
            t_np = median_time(lambda f=numpy_version: f(X, T), repeats=repeats)
            t_th = None
            if torch is not None:
                tT = torch.from_numpy(T)
                t_th = torch_train_time(torch, lambda x, f=torch_fn(F): f(x, tT), (X,),
                                        np.array(1.0, dtype), repeats=repeats)
            t.add(name, name_of, t_nk, t_np, t_th, ratio(t_np, t_nk), ratio(t_th, t_nk),
                  floor, share(floor, t_nk), share(floor, t_th))
    t.notes.append("nnkit: one kernel pass forward and one backward (pyx/activations.pyx), "
                   "vectorized (erfc and log1p in pyx/include/nnkit_act.h)")
    return [t]
