"""The kernels' own tanh, sigmoid and relu: accuracy in ulps, special values, NaN."""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref)


# ------------------------------------------- the kernels' own tanh/sigmoid
def _act_only(a, act, dt):
    """H = act(a) from the kernel: T = 1, N = 1, Wx = 1, Wh = 0, no bias, h0 = 0."""
    X = np.asarray(a, dt).reshape(1, -1, 1)
    H, _ = nk.rnn_forward(X, None, np.ones((1, 1), dt), np.zeros((1, 1), dt), None, act)
    return H.ravel()


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_activation_accuracy_in_ulps(act, dtype, rng):
    """The kernels compute tanh and σ with their own vectorized exp: within a
    few ulps of libm (NumPy) in float64, correctly rounded in float32 (computed
    in double, rounded once), over ordinary, tiny, large and saturating
    arguments."""
    a = np.concatenate([3 * rng.standard_normal(20000), 1e-4 * rng.standard_normal(2000),
                        np.linspace(-40, 40, 4001), rng.uniform(-700, 700, 2000),
                        [0.0, -0.0, 1e-300, -1e-300, 19.06, 25.0, 30.0, 88.0, -88.0]])
    a = a.astype(dtype)
    got = _act_only(a, act, dtype).astype(np.float64)
    a64 = a.astype(np.float64)
    if act == "tanh":
        want = np.tanh(a64)
    else:   # stable σ in float64 from NumPy's exp
        z = np.exp(-np.abs(a64))
        want = np.where(a64 >= 0, 1 / (1 + z), z / (1 + z))
    want_dt = want.astype(dtype)
    ulps = np.abs(got - want_dt) / np.spacing(np.abs(want_dt)).astype(np.float64)
    limit = 4 if dtype == np.float64 else 1   # float32: the double result rounded once
    assert ulps.max() <= limit, (a[np.argmax(ulps)], ulps.max())
    assert np.all(np.sign(got) == np.sign(want_dt))


def test_activation_special_values(dtype):
    big = 800.0 if dtype == np.float64 else 200.0     # e^−big is 0 in the dtype
    a = np.array([np.nan, np.inf, -np.inf, big, -big])
    t = _act_only(a, "tanh", dtype)
    s = _act_only(a, "sigmoid", dtype)
    r = _act_only(a, "relu", dtype)
    assert np.isnan(t[0]) and np.isnan(s[0])
    assert np.isnan(r[0])     # relu(NaN) = NaN, as PyTorch (issue 8.1)
    np.testing.assert_array_equal(t[1:], [1, -1, 1, -1])
    np.testing.assert_array_equal(s[1:], [1, 0, 1, 0])
    np.testing.assert_array_equal(r[1:], [np.inf, 0, big, 0])


def test_relu_nan_propagates_forward_and_backward(dtype):
    """One NaN input element: its state is NaN at every later step (relu keeps
    NaN; through Wh it reaches every unit), and BPTT carries NaN into the
    gradients instead of a silently finite result. The backward mask agrees
    with the forward: where h is NaN the gradient passes (PyTorch's
    threshold_backward: zero only where h <= 0), where a < 0 it is cut."""
    rng = np.random.default_rng(3)
    p = make_rnn(rng, 4, 2, 3, 5, dtype)
    p["X"][1, 0, 2] = np.nan
    H, cache = nk.rnn_forward(**p, activation="relu")
    assert not np.isnan(H[0]).any()
    assert np.isnan(H[1, 0]).all() and not np.isnan(H[1, 1]).any()   # sample 1 is clean
    assert np.isnan(H[2:, 0]).all()
    g = nk.rnn_backward(np.ones_like(H), cache)
    assert np.isnan(g.dWh).all() and np.isnan(g.dWx).any()
    assert not np.isnan(g.dX[:, 1]).all()
    # the mask alone: one step, h = relu(a) with a = [NaN, -1, 0, 2]
    a = np.array([np.nan, -1.0, 0.0, 2.0], dtype)
    X = a.reshape(1, 4, 1)                # four samples, one unit: no GEMM mixes them
    Hs, c = nk.rnn_forward(X, None, np.ones((1, 1), dtype), np.zeros((1, 1), dtype),
                           None, "relu")
    np.testing.assert_array_equal(Hs.ravel(), [np.nan, 0.0, 0.0, 2.0])
    gs = nk.rnn_backward(np.full_like(Hs, 3.0), c)
    np.testing.assert_array_equal(gs.dA.ravel(), [3.0, 0.0, 0.0, 3.0])


def test_relu_nan_in_the_preactivation_form(dtype):
    """The preactivation form applies relu to the state before Wh: a NaN
    state stays NaN, and its gradient mask agrees (NaN passes)."""
    rng = np.random.default_rng(4)
    p = make_rnn(rng, 3, 1, 2, 3, dtype)
    p["h0"][0, 1] = np.nan
    H, cache = nk.rnn_forward(**p, activation="relu", form="preactivation")
    assert np.isnan(H).all()
