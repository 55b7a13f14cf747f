"""The WhiteningBatchNorm layer: training, running statistics, inference."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk

from _whitening_ref import data, ref_forward

def test_layer_training_and_inference():
    Y, _, _, G = data(32, 6, seed=10)
    layer = nk.WhiteningBatchNorm(6, momentum=1.0, relu=True)
    H = layer.forward(Y).copy()
    ref, _ = ref_forward(Y, np.ones(6), np.zeros(6), 1e-5, relu=True)
    np.testing.assert_allclose(H, ref, atol=1e-10)
    dY = layer.backward(G).copy()
    _, cache = nk.whitening_relu_forward(Y, np.ones(6), np.zeros(6))
    np.testing.assert_allclose(dY, nk.whitening_relu_backward(G, cache).dY, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, Y.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_whitening, cache.whitening_matrix, rtol=1e-12)
    # eval with momentum 1: the running statistics are this batch's, so the
    # output equals the training output, also for a single sample
    layer.eval()
    np.testing.assert_allclose(layer.forward(Y), H, atol=1e-10)
    np.testing.assert_allclose(layer.forward(Y[:1]), H[:1], atol=1e-10)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(G)
    Z = nk.whitening_eval_forward(Y, np.ones(6), np.zeros(6), layer.running_mean,
                                  layer.running_whitening, relu=True)
    np.testing.assert_allclose(Z, H, atol=1e-10)


def test_layer_momentum_and_groups():
    Y1, _, _, _ = data(16, 5, seed=11)
    Y2, _, _, _ = data(16, 5, seed=12)
    layer = nk.WhiteningBatchNorm(5, momentum=0.25, group_size=2, method="newton")
    np.testing.assert_array_equal(layer.running_whitening, np.eye(5))
    layer.forward(Y1)
    W1 = layer._cache.whitening_matrix
    layer.forward(Y2)
    W2 = layer._cache.whitening_matrix
    expected = 0.75 * (0.75 * np.eye(5) + 0.25 * W1) + 0.25 * W2
    np.testing.assert_allclose(layer.running_whitening, expected, rtol=1e-12)
    assert layer.running_whitening[0, 2] == 0     # block diagonal, groups (2, 2, 1)
    layer.backward(np.ones_like(Y2))
    assert set(layer.grads) == {"gamma", "beta"}


def test_layer_in_sequential_float32():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    model = nk.Sequential(nk.Linear(4, 6, dtype=np.float32),
                          nk.WhiteningBatchNorm(6, relu=True, dtype=np.float32),
                          nk.Linear(6, 3, dtype=np.float32))
    out = model.forward(X)
    dX = model.backward(np.ones_like(out))
    assert out.dtype == dX.dtype == np.float32
    assert "1.gamma" in model.params
