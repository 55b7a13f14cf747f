"""Whitening batch norm: bad arguments and arrays are refused before any kernel."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk

from _whitening_ref import data

def _good():
    Y, gm, bt, _ = data(6, 4)
    return Y, gm, bt


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=-1e-3), ValueError, "eps"),
    (dict(eps=float("nan")), ValueError, "eps"),
    (dict(eps="small"), TypeError, "eps"),
    (dict(method="svd"), ValueError, "method"),
    (dict(method=None), TypeError, "method"),
    (dict(group_size=0), ValueError, "group_size"),
    (dict(group_size=5), ValueError, "group_size"),
    (dict(group_size=2.0), TypeError, "group_size"),
    (dict(group_size=True), TypeError, "group_size"),
    (dict(method="newton", iterations=0), ValueError, "iterations"),
])
def test_bad_arguments(kwargs, exc, name):
    Y, gm, bt = _good()
    with pytest.raises(exc, match=name) as info:
        nk.whitening_forward(Y, gm, bt, **kwargs)
    msg = str(info.value)
    assert msg.startswith(name) and "expected" in msg and "got" in msg


def test_bad_arrays():
    Y, gm, bt = _good()
    with pytest.raises(ValueError, match=r"^Y: .*at least 2 rows.*B = 1"):
        nk.whitening_forward(Y[:1], gm, bt)
    with pytest.raises(ValueError, match=r"^gamma: expected gamma.shape\[0\]"):
        nk.whitening_forward(Y, gm[:3], bt)
    with pytest.raises(TypeError, match=r"^beta: expected dtype float64"):
        nk.whitening_forward(Y, gm, bt.astype(np.float32))
    with pytest.raises(TypeError, match=r"^Y: expected dtype float32 or float64, got int64"):
        nk.whitening_forward(np.ones((4, 3), np.int64), gm[:3], bt[:3])
    with pytest.raises(ValueError, match=r"^Y: expected a 2-D array"):
        nk.whitening_forward(Y[0], gm, bt)
    _, cache = nk.whitening_forward(Y, gm, bt)
    with pytest.raises(ValueError, match=r"^dZ: expected shape \(6, 4\)"):
        nk.whitening_backward(np.ones((6, 3)), cache)
    with pytest.raises(ValueError, match=r"^cache: .*whitening_relu_backward|^cache: "):
        nk.whitening_relu_backward(np.ones_like(Y), cache)
    with pytest.raises(ValueError, match=r"^out: shares memory with input Y"):
        nk.whitening_forward(Y, gm, bt, out=Y)


def test_inputs_not_modified():
    Y, gm, bt, G = data(12, 5, seed=9)
    copies = [a.copy() for a in (Y, gm, bt, G)]
    _, cache = nk.whitening_relu_forward(Y, gm, bt)
    nk.whitening_relu_backward(G, cache)
    for a, b in zip((Y, gm, bt, G), copies):
        np.testing.assert_array_equal(a, b)
