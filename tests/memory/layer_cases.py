"""Every layer with a small seeded input and upstream gradient: the cases the
leak and thread tests run (a new layer adds one line to LAYERS)."""
from __future__ import annotations

import numpy as np

import nnkit as nk


def _r(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# name -> (make() -> layer, (rng, dtype) -> (X, dY or None for a loss))
LAYERS = {
    "Linear": (lambda dt: nk.Linear(16, 8, seed=0, dtype=dt),
               lambda g, dt: (_r(g, 8, 16, dtype=dt), _r(g, 8, 8, dtype=dt))),
    "Linear(weight_norm)": (lambda dt: nk.Linear(16, 8, seed=0, dtype=dt, weight_norm=True),
                            lambda g, dt: (_r(g, 8, 16, dtype=dt), _r(g, 8, 8, dtype=dt))),
    "ReLU": (lambda dt: nk.ReLU(), lambda g, dt: (_r(g, 8, 16, dtype=dt), _r(g, 8, 16, dtype=dt))),
    "BatchNorm": (lambda dt: nk.BatchNorm(16, dtype=dt),
                  lambda g, dt: (_r(g, 8, 16, dtype=dt), _r(g, 8, 16, dtype=dt))),
    "BatchNorm(relu, 3-D)": (lambda dt: nk.BatchNorm(4, relu=True, dtype=dt),
                             lambda g, dt: (_r(g, 8, 4, 5, dtype=dt), _r(g, 8, 4, 5, dtype=dt))),
    "WhiteningBatchNorm": (lambda dt: nk.WhiteningBatchNorm(8, dtype=dt, eps=1e-3),
                           lambda g, dt: (_r(g, 16, 8, dtype=dt), _r(g, 16, 8, dtype=dt))),
    "WhiteningBatchNorm(newton)": (
        lambda dt: nk.WhiteningBatchNorm(8, dtype=dt, eps=1e-3, method="newton", group_size=4),
        lambda g, dt: (_r(g, 16, 8, dtype=dt), _r(g, 16, 8, dtype=dt))),
    "RNN": (lambda dt: nk.RNN(6, 8, seed=0, dtype=dt),
            lambda g, dt: (_r(g, 5, 4, 6, dtype=dt), _r(g, 5, 4, 8, dtype=dt))),
    "BiRNN": (lambda dt: nk.BiRNN(6, 8, 3, seed=0, dtype=dt),
              lambda g, dt: (_r(g, 5, 4, 6, dtype=dt), _r(g, 5, 4, 3, dtype=dt))),
    "Dropout": (lambda dt: nk.Dropout(0.7, seed=0),
                lambda g, dt: (_r(g, 8, 16, dtype=dt), _r(g, 8, 16, dtype=dt))),
    "LayerNorm": (lambda dt: nk.LayerNorm((4, 5), dtype=dt),
                  lambda g, dt: (_r(g, 8, 4, 5, dtype=dt), _r(g, 8, 4, 5, dtype=dt))),
    "InstanceNorm": (lambda dt: nk.InstanceNorm(4, dtype=dt),
                     lambda g, dt: (_r(g, 8, 4, 6, dtype=dt), _r(g, 8, 4, 6, dtype=dt))),
    "Conv2d": (lambda dt: nk.Conv2d(3, 4, 3, padding=1, seed=0, dtype=dt),
               lambda g, dt: (_r(g, 2, 3, 8, 8, dtype=dt), _r(g, 2, 4, 8, 8, dtype=dt))),
    "MaxPool2d": (lambda dt: nk.MaxPool2d(2),
                  lambda g, dt: (_r(g, 2, 3, 8, 8, dtype=dt), _r(g, 2, 3, 4, 4, dtype=dt))),
    "AvgPool2d": (lambda dt: nk.AvgPool2d(3, stride=2, padding=1),
                  lambda g, dt: (_r(g, 2, 3, 8, 8, dtype=dt), _r(g, 2, 3, 4, 4, dtype=dt))),
    "Flatten": (lambda dt: nk.Flatten(),
                lambda g, dt: (_r(g, 2, 3, 4, dtype=dt), _r(g, 2, 12, dtype=dt))),
    "LastStep": (lambda dt: nk.LastStep(),
                 lambda g, dt: (_r(g, 5, 4, 6, dtype=dt), _r(g, 4, 6, dtype=dt))),
    "SoftmaxCrossEntropy": (lambda dt: nk.SoftmaxCrossEntropy(),
                            lambda g, dt: (_r(g, 8, 5, dtype=dt), None)),
    "Sequential": (lambda dt: nk.Sequential(nk.Linear(16, 12, seed=1, dtype=dt),
                                            nk.BatchNorm(12, relu=True, dtype=dt),
                                            nk.Linear(12, 4, seed=2, dtype=dt)),
                   lambda g, dt: (_r(g, 8, 16, dtype=dt), _r(g, 8, 4, dtype=dt))),
}
LAYERS = {k: v for k, v in LAYERS.items() if hasattr(nk, k.split("(")[0])}


def step(layer, X, dY, labels=None):
    """One forward + backward; returns (output, input gradient, parameter gradients)."""
    if dY is None:                               # a loss layer
        out = layer.forward(X, labels)
        dX = layer.backward()
        return np.asarray(out), dX, {}
    out = layer.forward(X)
    dX = layer.backward(dY)
    return out, dX, {k: g.copy() for k, g in layer.grads.items()}


def labels_for(rng, X):
    return rng.integers(0, X.shape[1], X.shape[0])
