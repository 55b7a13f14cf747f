"""P9: the RNN and BiRNN layers, and sequence models built from layers."""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref)


# ---------------------------------------------------------------- layers
def test_rnn_layer_matches_functional(rng):
    layer = nk.RNN(3, 4, dtype=np.float64, seed=1)
    assert isinstance(layer, nk.Layer)
    X = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal((2, 4))
    H = layer(X, h0).copy()
    p = layer.params
    r = rnn_bptt_ref(np.ones_like(H), X, h0, p["Wx"], p["Wh"], p["b"], "tanh")
    np.testing.assert_allclose(H, r["H"], rtol=1e-12)
    dX = layer.backward(np.ones_like(H))
    np.testing.assert_allclose(dX, r["dX"], rtol=1e-11)
    for k in ("Wx", "Wh", "b"):
        np.testing.assert_allclose(layer.grads[k], r["d" + k], rtol=1e-11)
    np.testing.assert_allclose(layer.dh0, r["dh0"], rtol=1e-11)
    with pytest.raises(TypeError, match="X: expected dtype float64 \\(the layer's dtype\\), got float32"):
        layer(X.astype(np.float32))
    with pytest.raises(ValueError, match="hidden_size: expected a positive integer, got 0"):
        nk.RNN(3, 0)
    with pytest.raises(RuntimeError, match="call forward first"):
        nk.RNN(2, 2).backward(np.zeros((1, 1, 2)))


def test_birnn_layer_matches_functional(rng):
    layer = nk.BiRNN(3, 4, 2, bias=True, dtype=np.float32, seed=2)
    assert set(layer.params) == {"Wxf", "Whf", "bf", "Wxb", "Whb", "bb", "Wy", "by"}
    X = rng.standard_normal((4, 3, 3)).astype(np.float32)
    Y = layer(X).copy()
    G = rng.standard_normal(Y.shape).astype(np.float32)
    dX = layer.backward(G).copy()
    p = {k: a.astype(np.float64) for k, a in layer.params.items()}
    r = birnn_ref(G, X, np.zeros((3, 4)), np.zeros((3, 4)), act="sigmoid", **p)
    np.testing.assert_allclose(Y, r["Y"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dX, r["dX"], rtol=1e-4, atol=1e-5)
    for k in layer.params:
        np.testing.assert_allclose(layer.grads[k], r["d" + k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert set(nk.BiRNN(2, 2, 2).params) == {"Wxf", "Whf", "Wxb", "Whb", "Wy", "by"}
