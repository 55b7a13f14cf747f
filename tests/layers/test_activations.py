"""Tanh, Sigmoid, LeakyReLU, GELU, MSELoss, BCEWithLogitsLoss (nnkit.activations):
against NumPy references written here from the formulas, central differences,
and bad input."""
import math

import numpy as np
import pytest

import nnkit as nk

rng = np.random.default_rng(0)
X = rng.standard_normal((5, 7)) * 3


def phi(x):
    return np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def Phi(x):
    return np.array([0.5 * (1 + math.erf(t / math.sqrt(2))) for t in x.ravel()]).reshape(x.shape)


K = math.sqrt(2 / math.pi)
REFS = {   # name: (layer, f, f')
    "tanh": (nk.Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "sigmoid": (nk.Sigmoid(), lambda x: 1 / (1 + np.exp(-x)),
                lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "leaky": (nk.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x),
              lambda x: np.where(x > 0, 1, 0.2)),
    "gelu": (nk.GELU(), lambda x: x * Phi(x), lambda x: Phi(x) + x * phi(x)),
    "gelu_tanh": (nk.GELU("tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(K * (x + 0.044715 * x ** 3))),
                  lambda x: 0.5 * (1 + np.tanh(K * (x + 0.044715 * x ** 3)))
                  + 0.5 * x * (1 - np.tanh(K * (x + 0.044715 * x ** 3)) ** 2)
                  * K * (1 + 3 * 0.044715 * x ** 2)),
}


@pytest.mark.parametrize("name", list(REFS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation_layer_against_numpy(name, dtype):
    layer, f, df = REFS[name]
    x = X.astype(dtype)
    dH = rng.standard_normal(x.shape).astype(dtype)
    H = layer(x)
    dX = layer.backward(dH)
    tol = 1e-12 if dtype == np.float64 else 1e-5       # float64 exact; float32 rounding
    assert H.dtype == dtype and dX.dtype == dtype
    np.testing.assert_allclose(H, f(X.astype(np.float64)), rtol=tol, atol=tol)
    np.testing.assert_allclose(dX, dH.astype(np.float64) * df(X.astype(np.float64)),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "leaky_relu", "gelu"])
def test_functional_pair_central_differences(name):
    fwd = getattr(nk, f"{name}_forward")
    bwd = getattr(nk, f"{name}_backward")
    x = X + 0.01            # away from leaky ReLU's kink at 0
    x[np.abs(x) < 1e-3] = 0.5
    dH = rng.standard_normal(x.shape)
    _, cache = fwd(x)
    dX = bwd(dH, cache)
    h = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = np.sum(dH * (fwd(xp)[0] - fwd(xm)[0])) / (2 * h)
    np.testing.assert_allclose(dX, num, rtol=1e-6, atol=1e-8)   # central differences, h = 1e-6


def test_losses_against_numpy():
    P = rng.standard_normal((6, 3))
    T = rng.standard_normal((6, 3))
    mse = nk.MSELoss()
    assert mse(P, T) == pytest.approx(np.mean((P - T) ** 2), rel=1e-14)
    np.testing.assert_allclose(mse.backward(), 2 * (P - T) / P.size, rtol=1e-14)
    Tb = rng.random((6, 3))
    bce = nk.BCEWithLogitsLoss()
    s = 1 / (1 + np.exp(-P))
    ref = -np.mean(Tb * np.log(s) + (1 - Tb) * np.log(1 - s))
    assert bce(P, Tb) == pytest.approx(ref, rel=1e-12)
    np.testing.assert_allclose(bce.backward(2.0), 2.0 * (s - Tb) / P.size, rtol=1e-12)


def test_bce_is_stable_for_large_logits():
    z = np.array([-1000.0, 1000.0, 0.0])
    t = np.array([0.0, 1.0, 0.5])
    loss, cache = nk.bcewithlogits_loss(z, t)
    assert loss == pytest.approx(math.log(2) / 3, rel=1e-14)
    assert np.all(np.isfinite(nk.bcewithlogits_loss_backward(1.0, cache)))
    loss, _ = nk.bcewithlogits_loss(np.array([-1000.0]), np.array([1.0]))
    assert loss == pytest.approx(1000.0)


def test_losses_central_differences():
    P = rng.standard_normal((4, 3))
    T = rng.random((4, 3))
    for fn, bwd in ((nk.mse_loss, nk.mse_loss_backward),
                    (nk.bcewithlogits_loss, nk.bcewithlogits_loss_backward)):
        _, c = fn(P, T)
        d = bwd(1.0, c)
        num = np.zeros_like(P)
        for i in np.ndindex(P.shape):
            a, b = P.copy(), P.copy()
            a[i] += 1e-6
            b[i] -= 1e-6
            num[i] = (fn(a, T)[0] - fn(b, T)[0]) / 2e-6
        np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)   # central differences


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="approximate"):
        nk.GELU("erf")
    with pytest.raises(TypeError, match="negative_slope"):
        nk.LeakyReLU("0.1")
    with pytest.raises(TypeError, match="X"):
        nk.tanh_forward(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="target"):
        nk.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="target"):
        nk.BCEWithLogitsLoss()(np.zeros(3))
    with pytest.raises(TypeError, match="target"):
        nk.mse_loss(np.zeros(3), np.zeros(3, np.float32))
    _, c = nk.sigmoid_forward(np.zeros(3))
    with pytest.raises(ValueError, match="dS"):
        nk.sigmoid_backward(np.zeros(4), c)
    with pytest.raises(TypeError, match="cache"):
        nk.tanh_backward(np.zeros(3), c)
