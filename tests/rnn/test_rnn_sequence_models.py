"""P9: sequence models built from layers: Sequential(RNN, LastStep, Linear) with
SoftmaxCrossEntropy on the last step, and Sequential(RNN, Linear) with the
loss on every step; their gradients against finite differences; a small
sequence task trained end to end; a long sequence with memory linear in T."""
import tracemalloc

import numpy as np
import pytest

import nnkit as nk
from rnn_reference import rnn_ref


def _model_pair(model, loss, labels, every_step):
    """forward(**params) -> (loss, None) and backward(G, None) -> {"d"+name}: the
    model and its loss as one function of its parameters and its input X, for
    nk.gradcheck."""
    K = model.layers[-1].params["W"].shape[0]

    def forward(X, **params):
        for name, value in params.items():
            model.params[name][...] = value
        out = model(X)
        if every_step:
            out = out.reshape(-1, K)
        return np.asarray(loss(out, labels)), None

    def backward(G, _):
        d = loss.backward(float(G))
        if every_step:       # (T·B, K) -> (T, B, K), time-major like the labels
            d = d.reshape(model.layers[0].cache().X.shape[:2] + (K,))
        dX = model.backward(d)
        return {"dX": dX, **{"d" + k: g.copy() for k, g in model.grads.items()}}
    return forward, backward


@pytest.mark.parametrize("every_step", [False, True])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
def test_sequence_model_gradients_by_finite_differences(every_step, act):
    rng = np.random.default_rng(7)
    T, B, N, M, K = 5, 3, 2, 4, 3
    layers = [nk.RNN(N, M, activation=act, seed=1)]
    if not every_step:
        layers.append(nk.LastStep())
    layers.append(nk.Linear(M, K, seed=2))
    model = nk.Sequential(*layers)
    labels = rng.integers(0, K, T * B if every_step else B)
    fwd, bwd = _model_pair(model, nk.SoftmaxCrossEntropy(), labels, every_step)
    inputs = {"X": rng.standard_normal((T, B, N)),
              **{k: p.copy() for k, p in model.params.items()}}
    rep = nk.gradcheck(fwd, bwd, inputs)
    assert rep.passed, rep.table()
    assert len(rep.checks) == len(inputs)


def test_gradcheck_of_the_model_can_fail():
    """A LastStep that drops the gradient (zeros everywhere) is caught."""
    class Broken(nk.LastStep):
        def backward(self, dY):
            return np.zeros_like(super().backward(dY))
    rng = np.random.default_rng(8)
    model = nk.Sequential(nk.RNN(2, 3, seed=1), Broken(), nk.Linear(3, 2, seed=2))
    labels = rng.integers(0, 2, 4)
    fwd, bwd = _model_pair(model, nk.SoftmaxCrossEntropy(), labels, False)
    rep = nk.gradcheck(fwd, bwd, {"X": rng.standard_normal((3, 4, 2)),
                                  **{k: p.copy() for k, p in model.params.items()}})
    assert not rep.passed and not rep["0.Wh"].passed and rep["2.W"].passed


def test_last_step_layer():
    H = np.arange(24.0).reshape(4, 2, 3)
    layer = nk.LastStep()
    Y = layer(H)
    np.testing.assert_array_equal(Y, H[-1])
    Y[...] = -1
    assert H[-1, 0, 0] == 18          # a fresh output, not a view of H
    dH = layer.backward(np.ones((2, 3)))
    assert dH.shape == (4, 2, 3) and dH[:-1].sum() == 0 and dH[-1].sum() == 6
    with pytest.raises(ValueError, match=r"H: expected a 3-D array \(T, B, C\)"):
        layer(np.zeros((2, 3)))
    layer(H)                          # one backward per forward: the last one spent it
    with pytest.raises(ValueError, match=r"dY: expected shape \(2, 3\)"):
        layer.backward(np.ones((3, 3)))
    with pytest.raises(RuntimeError, match="call forward first"):
        nk.LastStep().backward(np.ones((2, 3)))


def test_rnn_layer_truncate_form_and_grad_norms(rng):
    X = rng.standard_normal((9, 2, 3))
    full = nk.RNN(3, 4, seed=3)
    cut = nk.RNN(3, 4, seed=3, truncate=3)
    pre = nk.RNN(3, 4, seed=3, form="preactivation")
    G = rng.standard_normal((9, 2, 4))
    for layer in (full, cut, pre):
        layer(X)
        layer.backward(G)
        assert layer.grad_norms.shape == (9,)
    H, c = nk.rnn_forward(X, None, full.params["Wx"], full.params["Wh"], full.params["b"])
    g = nk.rnn_backward(G, c, truncate=3)
    np.testing.assert_allclose(cut.grads["Wh"], g.dWh, rtol=1e-13)
    np.testing.assert_allclose(cut.grad_norms, g.grad_norms, rtol=1e-13)
    assert not np.allclose(cut.grads["Wh"], full.grads["Wh"])
    Hp, _ = nk.rnn_forward(X, None, full.params["Wx"], full.params["Wh"], full.params["b"],
                           form="preactivation")
    np.testing.assert_allclose(pre(X), Hp, rtol=1e-13)
    with pytest.raises(ValueError, match="truncate: expected a positive integer or None"):
        nk.RNN(3, 4, truncate=0)
    with pytest.raises(ValueError, match="form: expected one of"):
        nk.RNN(3, 4, form="x")
    b = nk.BiRNN(3, 4, 2, seed=1)
    b.backward(rng.standard_normal(b(X).shape))
    assert b.grad_norms.shape == (2, 9)


def test_long_sequence_memory_is_linear_in_T():
    """T = 10,000 runs; peak memory of forward + backward (full=True) is the
    states, dA, dh (B·M each), dX (B·N) and grad_norms (8 bytes) per step:
    824 bytes at B = 2, N = 3, M = 16 float64 (the README's figure), and
    doubling T doubles it."""
    rng = np.random.default_rng(9)
    B, N, M = 2, 3, 16
    Wx, Wh = 0.3 * rng.standard_normal((M, N)), 0.2 * rng.standard_normal((M, M))
    per_step = 8 * (3 * B * M + B * N) + 8
    peaks = {}
    for T in (5000, 10000):
        X, dH = rng.standard_normal((T, B, N)), rng.standard_normal((T, B, M))
        tracemalloc.start()
        H, cache = nk.rnn_forward(X, None, Wx, Wh, np.zeros(M))
        g = nk.rnn_backward(dH, cache)
        peaks[T] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.isfinite(g.dWh).all() and g.grad_norms.shape == (T,)
        assert per_step * T <= peaks[T] <= per_step * T * 1.02 + 65536
    assert abs((peaks[10000] - peaks[5000]) - 5000 * per_step) <= 0.02 * 5000 * per_step


def test_readme_sequence_task_learns():
    """The README's example in small: the sum of T = 6 bits reaches well above
    chance (1/7) after a few epochs."""
    nk.seed(0)
    rng = np.random.default_rng(0)
    T = 6
    bits = rng.integers(0, 2, (T, 1024))
    X, y = (2.0 * bits - 1.0)[:, :, None], bits.sum(axis=0)
    model = nk.Sequential(nk.RNN(1, 12), nk.LastStep(), nk.Linear(12, T + 1))
    loss = nk.SoftmaxCrossEntropy()
    opt = nk.optim.Adam(model, lr=1e-2)
    for _ in range(6):
        for i in range(0, 1024, 32):
            model.zero_grad()
            loss(model(X[:, i:i + 32]), y[i:i + 32])
            model.backward(loss.backward())
            opt.step()
    assert (model(X).argmax(axis=1) == y).mean() > 0.8
