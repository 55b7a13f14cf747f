"""Conv2d, MaxPool2d, AvgPool2d, Flatten layers: init, gradients, and a small
conv net that trains (synthetic bars; scikit-learn's digits when installed)."""

import numpy as np
import pytest

import nnkit as nk


def test_conv2d_init_like_pytorch():
    layer = nk.Conv2d(3, 16, (3, 5), seed=0)
    W, b = layer.params["W"], layer.params["b"]
    bound = 1 / np.sqrt(3 * 3 * 5)
    assert W.shape == (16, 3, 3, 5) and b.shape == (16,)
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.9 * bound
    # U(−a, a) has variance a²/3
    assert abs(W.var() - bound ** 2 / 3) < 0.15 * bound ** 2 / 3
    assert "b" not in nk.Conv2d(3, 4, 3, bias=False).params
    assert nk.Conv2d(3, 4, 3, padding="same").padding == (1, 1)
    a, b2 = nk.Conv2d(2, 2, 3), nk.Conv2d(2, 2, 3)   # the library generator: different
    assert not np.array_equal(a.params["W"], b2.params["W"])
    np.testing.assert_array_equal(nk.Conv2d(2, 2, 3, seed=5).params["W"],
                                  nk.Conv2d(2, 2, 3, seed=5).params["W"])


def test_layers_delegate_to_the_pairs(rng):
    X = rng.standard_normal((2, 3, 6, 6))
    conv = nk.Conv2d(3, 4, 3, stride=1, padding=1, seed=1)
    Y = conv(X)
    Yf, cache = nk.conv2d_forward(X, conv.params["W"], conv.params["b"], 1, 1)
    np.testing.assert_array_equal(Y, Yf)
    G = rng.standard_normal(Y.shape)
    dX = conv.backward(G)
    g = nk.conv2d_backward(G, cache)
    np.testing.assert_array_equal(dX, g.dX)
    np.testing.assert_array_equal(conv.grads["W"], g.dW)
    np.testing.assert_array_equal(conv.grads["b"], g.db)
    for pool, fwd in ((nk.MaxPool2d(2), nk.maxpool2d_forward), (nk.AvgPool2d(3, 1, 1), nk.avgpool2d_forward)):
        P = pool(Y)
        np.testing.assert_array_equal(P, fwd(Y, pool.kernel_size, pool.stride, pool.padding)[0])
        assert pool.backward(np.ones_like(P)).shape == Y.shape
    f = nk.Flatten()
    F = f(Y)
    assert F.shape == (2, 4 * 36)
    np.testing.assert_array_equal(f.backward(F), Y)
    f(Y)                              # a fresh cache: each forward serves one backward
    with pytest.raises(ValueError, match="dY: expected shape"):
        f.backward(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="call forward first"):
        nk.Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1)))


def test_layer_bad_arguments():
    with pytest.raises(ValueError, match="in_channels"):
        nk.Conv2d(0, 4, 3)
    with pytest.raises(TypeError, match="kernel_size"):
        nk.Conv2d(1, 4, 2.5)
    with pytest.raises(TypeError, match="dtype"):
        nk.Conv2d(1, 4, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="padding: 'same' needs stride 1"):
        nk.Conv2d(1, 4, 3, stride=2, padding="same")
    with pytest.raises(TypeError, match="stride"):
        nk.MaxPool2d(2, stride="2")
    with pytest.raises(ValueError, match=r"X: expected X.shape\[1\] \(in_channels\)"):
        nk.Conv2d(3, 4, 3)(np.zeros((1, 2, 5, 5)))


def _bars(rng, n):
    """8x8 images: a horizontal bar, a vertical bar, or a diagonal, plus noise."""
    y = rng.integers(0, 3, n)
    X = 0.3 * rng.standard_normal((n, 1, 8, 8))
    pos = rng.integers(1, 7, n)
    for i in range(n):
        if y[i] == 0:
            X[i, 0, pos[i], :] += 1.0
        elif y[i] == 1:
            X[i, 0, :, pos[i]] += 1.0
        else:
            X[i, 0][np.eye(8, k=pos[i] - 4, dtype=bool)] += 1.0
    return X, y


def _net(classes, dtype=np.float64):
    return nk.Sequential(nk.Conv2d(1, 8, 3, padding=1, dtype=dtype, seed=0), nk.ReLU(),
                         nk.MaxPool2d(2), nk.Flatten(),
                         nk.Linear(8 * 4 * 4, classes, dtype=dtype, seed=1))


def _train(model, X, y, epochs, lr=0.1, batch=32, seed=0):
    loss_fn, rng, losses = nk.SoftmaxCrossEntropy(), np.random.default_rng(seed), []
    for _ in range(epochs):
        order, total = rng.permutation(len(X)), 0.0
        for i in range(0, len(X), batch):
            idx = order[i:i + batch]
            total += loss_fn(model(X[idx]), y[idx]) * len(idx)
            model.zero_grad()                # gradients accumulate, as in PyTorch
            model.backward(loss_fn.backward())
            for _, p, g in model.named_parameters_and_grads():
                p -= lr * g
        losses.append(total / len(X))
    return losses


def _accuracy(model, X, y):
    return float(np.mean(np.argmax(model(X), axis=1) == y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_net_trains_on_bars(dtype):
    rng = np.random.default_rng(0)
    X, y = _bars(rng, 600)
    X = X.astype(dtype)
    model = _net(3, dtype)
    before = _accuracy(model, X[400:], y[400:])
    losses = _train(model, X[:400], y[:400], epochs=8)
    assert losses[-1] < 0.5 * losses[0]
    acc = _accuracy(model, X[400:], y[400:])
    assert acc > 0.9 > before + 0.2, (before, acc)


def test_conv_net_trains_on_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    X = (d.images / 16.0)[:, None, :, :]
    y = d.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, test = order[:1400], order[1400:]
    model = _net(10)
    losses = _train(model, X[train], y[train], epochs=6)
    assert losses[-1] < 0.3 * losses[0]
    assert _accuracy(model, X[test], y[test]) > 0.9     # chance is 0.1
