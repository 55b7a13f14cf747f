"""Gradients accumulate as in PyTorch: backward adds into `grads` until
`zero_grad()`; a layer used twice gets the sum of its uses; one backward per
forward. References: dW = dYᵀX and db = Σ_rows dY written here (P1), and
central differences of the model's loss."""
import numpy as np
import pytest

import nnkit as nk


def _affine_grads(X, dY):
    """P1's gradients, written from the formulas: dW = dYᵀ X, db = Σ_rows dY."""
    return dY.T @ X, dY.sum(axis=0)


def test_two_backwards_add_until_zero_grad(rng):
    lin = nk.Linear(3, 4, seed=0)
    X1, X2 = rng.standard_normal((5, 3)), rng.standard_normal((6, 3))
    d1, d2 = rng.standard_normal((5, 4)), rng.standard_normal((6, 4))
    lin(X1)
    lin.backward(d1)
    lin(X2)
    lin.backward(d2)                 # micro-batch accumulation: the sum of both
    W1, b1 = _affine_grads(X1, d1)
    W2, b2 = _affine_grads(X2, d2)
    np.testing.assert_allclose(lin.grads["W"], W1 + W2, rtol=1e-12)
    np.testing.assert_allclose(lin.grads["b"], b1 + b2, rtol=1e-12)
    lin.zero_grad()
    assert not lin.grads["W"].any() and not lin.grads["b"].any()
    lin(X2)
    lin.backward(d2)
    np.testing.assert_allclose(lin.grads["W"], W2, rtol=1e-12)


@pytest.mark.parametrize("zero", ["optimizer", "model"])
def test_zero_grad_on_the_optimizer_and_on_sequential(rng, zero):
    model = nk.Sequential(nk.Linear(3, 4, seed=0), nk.ReLU(), nk.Linear(4, 2, seed=1))
    opt = nk.optim.SGD(model, lr=0.1)
    X = rng.standard_normal((5, 3))
    model(X)
    model.backward(rng.standard_normal((5, 2)))
    assert all(g.any() for g in model.grads.values())
    (opt if zero == "optimizer" else model).zero_grad()
    assert not any(g.any() for g in model.grads.values())
    # the layers' own arrays, not copies
    assert not model[0].grads["W"].any() and not model[2].grads["b"].any()


def _loss(model, X, G):
    return float(np.sum(G * model(X)))


def test_a_layer_used_twice_gets_the_sum_of_its_uses(rng):
    """Sequential(lin, ReLU, lin): ∂L/∂W against central differences of L(W)."""
    lin = nk.Linear(4, 4, seed=3)
    lin.params["b"][...] = 0.3 * rng.standard_normal(4)
    model = nk.Sequential(lin, nk.ReLU(), lin)
    X, G = rng.standard_normal((7, 4)), rng.standard_normal((7, 4))
    model(X)
    model.backward(G)
    for name in ("W", "b"):
        p = lin.params[name]
        num = np.zeros_like(p)
        h = 1e-6
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = _loss(model, X, G)
            p[i] = old - h
            down = _loss(model, X, G)
            p[i] = old
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(lin.grads[name], num, rtol=1e-6, atol=1e-8)
    # listed once, so an optimizer steps the shared W once
    assert list(model.params) == ["0.W", "0.b"]


def test_shared_layer_steps_once_with_the_summed_gradient(rng):
    lin = nk.Linear(3, 3, seed=1)
    model = nk.Sequential(lin, nk.ReLU(), lin)
    W0 = lin.params["W"].copy()
    X, G = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    opt = nk.optim.SGD(model, lr=0.5)
    opt.zero_grad()
    model(X)
    model.backward(G)
    g = lin.grads["W"].copy()
    opt.step()
    np.testing.assert_allclose(lin.params["W"], W0 - 0.5 * g, rtol=1e-14)


def test_a_second_backward_without_a_forward_is_refused(rng):
    lin = nk.Linear(3, 2, seed=0)
    X, dY = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    lin(X)
    lin.backward(dY)
    with pytest.raises(RuntimeError, match="already used by a backward"):
        lin.backward(dY)
    # applied twice by hand: the second backward would silently reuse the
    # second forward's cache, so it is refused
    lin(X)
    lin(2 * X)
    lin.backward(dY)
    with pytest.raises(RuntimeError, match="nk.Sequential"):
        lin.backward(dY)


def test_a_failed_backward_leaves_the_cache_for_a_retry(rng):
    lin = nk.Linear(3, 2, seed=0)
    X, dY = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    lin(X)
    with pytest.raises(ValueError, match="dY"):
        lin.backward(dY[:, :1])
    assert not lin.grads["W"].any()              # nothing added by the failed call
    lin.backward(dY)
    np.testing.assert_allclose(lin.grads["W"], _affine_grads(X, dY)[0], rtol=1e-12)


def test_batchnorm_3d_and_layernorm_keep_one_cache_per_use(rng):
    """The per-call shape lives in the cache, so a shared norm layer's two
    uses (different shapes) each backpropagate with their own."""
    bn = nk.BatchNorm(3)
    model = nk.Sequential(bn, nk.Flatten())
    X = rng.standard_normal((4, 3, 5))
    model(X)
    dX = model.backward(rng.standard_normal((4, 15)))
    assert dX.shape == (4, 3, 5)
    ln = nk.LayerNorm(4)
    twice = nk.Sequential(ln, ln)
    Y = twice(rng.standard_normal((2, 3, 4)))
    assert twice.backward(np.ones_like(Y)).shape == (2, 3, 4)


def test_fit_zeroes_the_gradients_before_each_batch(rng):
    """Two batches of SGD through fit equal the same loop written out with
    zero_grad; without it the second step would use the sum of both batches."""
    X = rng.standard_normal((8, 3))
    y = rng.integers(0, 2, 8)

    def model():
        return nk.Sequential(nk.Linear(3, 4, seed=5), nk.ReLU(), nk.Linear(4, 2, seed=6))

    fitted = model()
    nk.train.fit(fitted, nk.SoftmaxCrossEntropy(), nk.optim.SGD(fitted, lr=0.3), X, y,
                 epochs=1, batch_size=4, shuffle=False, progress=False)
    by_hand, loss = model(), nk.SoftmaxCrossEntropy()
    opt = nk.optim.SGD(by_hand, lr=0.3)
    for i in (0, 4):
        opt.zero_grad()
        loss(by_hand(X[i:i + 4]), y[i:i + 4])
        by_hand.backward(loss.backward())
        opt.step()
    for k in fitted.params:
        np.testing.assert_allclose(fitted.params[k], by_hand.params[k], rtol=1e-14)


def test_reuse_buffers_with_a_shared_layer_is_refused():
    lin = nk.Linear(3, 3)
    with pytest.raises(ValueError, match="reuse_buffers: expected False when a layer appears twice"):
        nk.Sequential(lin, nk.ReLU(), lin, reuse_buffers=True)


def test_sequential_len_index_iter_and_repr():
    lin = nk.Linear(4, 3, dtype=np.float32)
    model = nk.Sequential(lin, nk.ReLU(), nk.Sequential(nk.Dropout(0.8)))
    assert len(model) == 3 and model[0] is lin and list(model)[1] is model[1]
    assert isinstance(model[1:], nk.Sequential) and len(model[1:]) == 2
    assert model[-1][0].keep == 0.8
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=3, bias=True, dtype=float32)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Dropout(keep=0.8)\n"
        "  )\n"
        ")")
    assert repr(nk.BatchNorm(5, relu=True)) == "BatchNorm(5, eps=1e-05, momentum=0.1, relu=True)"
    assert repr(nk.RNN(2, 3)) == "RNN(2, 3, activation='tanh', bias=True)"
