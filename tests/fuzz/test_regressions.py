"""Regression tests for what the fuzz suite found (issue 12), one per finding.

Each was a call that crashed with an unrelated exception, named no argument,
or silently returned a wrong answer; each now raises TypeError/ValueError
naming the argument, or returns the right answer.
"""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk


@pytest.fixture
def bn_cache():
    rng = np.random.default_rng(0)
    return nk.batchnorm_forward(rng.standard_normal((4, 3)), np.ones(3), np.zeros(3))[1]


# ---------------------------------------------------------- update_running_stats
@pytest.mark.parametrize("momentum, exc", [(object(), TypeError),
                                           (np.array([2, 2]), TypeError), (1e300, ValueError),
                                           (-0.5, ValueError)])
def test_update_running_stats_checks_momentum(bn_cache, momentum, exc):
    # was: TypeError "unsupported operand type(s) for -" / overflow to inf
    with pytest.raises(exc, match=r"^momentum: "):
        nk.update_running_stats(np.zeros(3), np.ones(3), bn_cache, momentum)


def test_update_running_stats_checks_arrays_and_cache(bn_cache):
    with pytest.raises(TypeError, match=r"^running_mean: "):
        nk.update_running_stats([0.0, 0.0, 0.0], np.ones(3), bn_cache, 0.1)
    with pytest.raises(ValueError, match=r"^running_var: .*shape"):
        nk.update_running_stats(np.zeros(3), np.ones(4), bn_cache, 0.1)
    ro = np.broadcast_to(np.ones(1), (3,))            # a stride-0 read-only view
    with pytest.raises(ValueError, match=r"^running_var: .*writeable"):
        nk.update_running_stats(np.zeros(3), ro, bn_cache, 0.1)
    pool_cache = nk.maxpool2d_forward(np.zeros((1, 1, 2, 2)), 2)[1]
    with pytest.raises(TypeError, match=r"^cache: "):    # was: AttributeError 'mean'
        nk.update_running_stats(np.zeros(3), np.ones(3), pool_cache, 0.1)


def test_update_running_stats_values(bn_cache):
    rm, rv = np.zeros(3), np.ones(3)
    nk.update_running_stats(rm, rv, bn_cache, 0.25)
    np.testing.assert_allclose(rm, 0.25 * bn_cache.mean, rtol=1e-15)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * 4 / 3 * bn_cache.var, rtol=1e-15)


# ------------------------------------------------------ numeric_gradient, gradcheck
@pytest.mark.parametrize("h, exc", [(0.0, ValueError), (-1e-6, ValueError), (None, TypeError),
                                    ("1e-6", TypeError), (float("inf"), ValueError)])
def test_numeric_gradient_checks_h(h, exc):
    x = np.ones(3)
    # was: ZeroDivisionError, TypeError "unsupported operand", or NaN/0 gradients
    with pytest.raises(exc, match=r"^h: "):
        nk.numeric_gradient(lambda: float(np.sum(x * x)), x, h)


def test_numeric_gradient_refuses_a_layout_it_cannot_perturb():
    """Was a silent wrong answer: x.reshape(-1) of a Fortran array is a copy, so
    the perturbation never reached f and the gradient came back all zeros."""
    x = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match=r"^x: .*C-contiguous"):
        nk.numeric_gradient(lambda: float(np.sum(x * x)), x)
    with pytest.raises(TypeError, match=r"^x: "):
        nk.numeric_gradient(lambda: 0.0, [1.0, 2.0])


@pytest.mark.parametrize("layout", ["fortran", "broadcast", "transposed"])
def test_gradcheck_passes_on_any_input_layout(layout):
    """Was a false FAIL (numeric gradient 0) for a W in Fortran order or a
    broadcast view: gradcheck's float64 copy kept the layout, and the
    perturbation went to a reshape copy."""
    rng = np.random.default_rng(1)
    X, W, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    W = {"fortran": np.asfortranarray(W), "broadcast": np.broadcast_to(W[:1], W.shape),
         "transposed": np.ascontiguousarray(W.T).T}[layout]
    rep = nk.gradcheck(nk.affine_forward, nk.affine_backward, {"X": X, "W": W, "b": b})
    assert rep.passed, rep


def test_gradcheck_refuses_non_array_inputs():
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    with pytest.raises(TypeError, match=r"^inputs\['b'\]: "):   # was: AttributeError 'shape'
        nk.gradcheck(nk.affine_forward, nk.affine_backward, {"X": X, "W": W, "b": (0.0,) * 5})
    with pytest.raises(ValueError, match=r"^h: "):
        nk.gradcheck(nk.affine_forward, nk.affine_backward,
                     {"X": X, "W": W, "b": np.zeros(5)}, h=0.0)


# ------------------------------------------------------------------ sizes
def test_sizes_beyond_32_bit_blas_are_value_errors():
    # was: numpy's "Maximum allowed dimension exceeded" / a 48 GiB allocation
    with pytest.raises(ValueError, match=r"^out_features: "):
        nk.Linear(3, 2**63)
    with pytest.raises(ValueError, match=r"^hidden_size: "):
        nk.RNN(3, 2**31)
    # was: OverflowError "Python int too large to convert to C long" in conv.pyx
    with pytest.raises(ValueError, match=r"^padding: "):
        nk.AvgPool2d(2, padding=2**63)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"^stride: "):
        nk.conv2d_output_shape((1, 5, 5, 1), 2, 3, stride=-2**63)


# ------------------------------------------------------------------ layers
def test_conv2d_layer_names_its_input():
    layer = nk.Conv2d(3, 4, 3, dtype=np.float32)
    # was: "W: expected dtype float32 ..." (the layer's weight, not the argument)
    with pytest.raises(TypeError, match=r"^X: expected dtype float32"):
        layer(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"^X: expected X.shape\[1\]"):
        layer(np.zeros((1, 2, 5, 5), np.float32))
    # was: RuntimeWarning divide by zero, then "W: expected a non-empty array"
    with pytest.raises(ValueError, match=r"^kernel_size: "):
        nk.Conv2d(3, 4, (0, 3))


@pytest.mark.parametrize("X, exc", [(np.zeros((2, 3), object), TypeError),
                                    ([[1.0, 2.0], [3.0]], TypeError),
                                    (np.zeros((2, 3), np.int64), TypeError)])
def test_flatten_refuses_non_float_input(X, exc):
    # was: object arrays accepted, a ragged list a numpy ValueError naming nothing
    with pytest.raises(exc, match=r"^X: "):
        nk.Flatten()(X)


def test_flatten_output_is_a_view_of_a_float_input():
    X = np.zeros((2, 3, 4))
    assert np.shares_memory(nk.Flatten()(X), X)       # documented: a view


def test_ragged_lists_reach_the_argument_checks():
    """np.asarray(ragged) used to raise numpy's ValueError before any check."""
    rng = np.random.default_rng(2)
    ragged = [[1.0, 2.0], [3.0]]
    with pytest.raises(TypeError, match=r"^labels: "):
        nk.softmax_cross_entropy(rng.standard_normal((2, 3)), ragged)
    with pytest.raises(TypeError, match=r"^labels: "):
        nk.SoftmaxCrossEntropy()(rng.standard_normal((2, 3)), ragged)
    with pytest.raises(TypeError, match=r"^Y: "):
        nk.ReLU()(ragged)
    for layer, X in [(nk.WhiteningBatchNorm(2), rng.standard_normal((4, 2))),
                     (nk.BatchNorm(2), rng.standard_normal((4, 2))),
                     (nk.ReLU(), rng.standard_normal((2, 2))),
                     (nk.RNN(2, 2), rng.standard_normal((1, 2, 2)))]:
        layer(X)
        with pytest.raises(TypeError, match=r"^d[A-Z]+: "):
            layer.backward(ragged)


@pytest.mark.parametrize("policy, exc", [(np.array([2, 2]), TypeError), (None, TypeError),
                                         ("RAISE", ValueError)])
def test_set_nan_policy_checks_its_argument(policy, exc):
    # was: numpy's "truth value of an array ... is ambiguous" for an array
    with pytest.raises(exc, match=r"^policy: "):
        nk.set_nan_policy(policy)
    assert nk.get_nan_policy() == "propagate"


def test_linear_backward_refuses_an_upstream_of_another_shape():
    """Was a silent wrong shape: dY (4,) for an output (1, 4) was accepted and
    dX came back (N,), not X's (1, N)."""
    lin = nk.Linear(3, 4, seed=0)
    lin(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"^dY: "):
        lin.backward(np.ones(4))
    lin(np.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"^dY: "):
        lin.backward(np.ones((5, 2, 4)))
    assert lin.backward(np.ones((2, 5, 4))).shape == (2, 5, 3)  # a failed backward: retry


def test_recurrent_layers_name_their_input():
    # was: "Wx: expected Wx.shape[1] (N, the features of X) = 4, got 3"
    with pytest.raises(ValueError, match=r"^X: expected X.shape\[2\]"):
        nk.RNN(3, 2)(np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match=r"^X: expected X.shape\[2\]"):
        nk.BiRNN(3, 2, 2)(np.zeros((2, 1, 4)))


def test_flatten_of_an_empty_batch():
    # was: numpy's "cannot reshape array of size 0 into shape (0,newaxis)"
    assert nk.Flatten()(np.zeros((0, 2, 3))).shape == (0, 6)


@pytest.mark.parametrize("full", [np.array([2, 2]), 1, "yes", None])
def test_backward_full_flag_is_checked(full):
    # was: numpy's "truth value of an array ... is ambiguous" (rnn.py), or any
    # truthy object taken as True
    rng = np.random.default_rng(3)
    _, c = nk.rnn_forward(rng.standard_normal((2, 3, 4)), None, rng.standard_normal((5, 4)),
                          rng.standard_normal((5, 5)), None)
    with pytest.raises(TypeError, match=r"^full: "):
        nk.rnn_backward(np.ones((2, 3, 5)), c, full=full)
    Y = rng.standard_normal((4, 3))
    _, c = nk.batchnorm_forward(Y, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match=r"^full: "):
        nk.batchnorm_backward(np.ones((4, 3)), c, full=full)
    _, c = nk.whitening_forward(Y, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match=r"^full: "):
        nk.whitening_backward(np.ones((4, 3)), c, full=full)
    _, c = nk.layernorm_forward(Y, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match=r"^full: "):
        nk.layernorm_backward(np.ones((4, 3)), c, full=full)


# ------------------------------------------------- from the 100,000-case run
def test_flags_are_checked():
    # was: numpy's "truth value of an array ... is ambiguous" at the first `if`
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((3, 2))
    with pytest.raises(TypeError, match=r"^relu: "):
        nk.batchnorm_eval_forward(Y, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2),
                                  relu=np.array([2, 2]))
    with pytest.raises(TypeError, match=r"^relu: "):
        nk.whitening_eval_forward(Y, np.ones(2), np.zeros(2), np.zeros(2), np.eye(2),
                                  relu=np.array([2, 2]))
    with pytest.raises(TypeError, match=r"^bias: "):
        nk.Linear(2, 3, bias=np.array([2, 2]))
    with pytest.raises(TypeError, match=r"^reuse_buffers: "):
        nk.Sequential(nk.ReLU(), reuse_buffers=np.array([2, 2]))
    with pytest.raises(TypeError, match=r"^bias: "):
        nk.solve_bottleneck(bias=np.array([2, 2]))


def test_negative_layer_seed():
    # was: numpy's "expected non-negative integer" from default_rng(-1)
    with pytest.raises(ValueError, match=r"^seed: "):
        nk.Linear(2, 3, seed=-1)
    with pytest.raises(ValueError, match=r"^seed: "):
        nk.Dropout(0.5, seed=-1)


def test_huge_truncate_is_full_bptt():
    # was: OverflowError "Python int too large to convert to C ssize_t" in rnn.pyx
    rng = np.random.default_rng(5)
    _, c = nk.rnn_forward(rng.standard_normal((3, 2, 4)), None, rng.standard_normal((5, 4)),
                          rng.standard_normal((5, 5)) * 0.3, None)
    dH = rng.standard_normal((3, 2, 5))
    full, huge = nk.rnn_backward(dH, c), nk.rnn_backward(dH, c, truncate=2**63)
    np.testing.assert_array_equal(full.dWh, huge.dWh)


def test_pooling_window_message_names_kernel_size():
    # was: "window_size: ...", a name no pooling function takes
    with pytest.raises(ValueError, match=r"^kernel_size: the window \(3\)"):
        nk.maxpool2d_forward(np.zeros((1, 1, 2, 2)), 3)


def test_ragged_inputs_of_fit_and_batchnorm():
    # was: numpy's inhomogeneous-shape ValueError naming nothing
    ragged = [[1.0, 2.0], [3.0]]
    model = nk.Sequential(nk.Linear(3, 2, seed=0))
    with pytest.raises(TypeError, match=r"^y: "):
        nk.train.fit(model, nk.SoftmaxCrossEntropy(), nk.optim.SGD(model, lr=0.1),
                     np.zeros((2, 3)), ragged, 1, 2, progress=False)
    with pytest.raises(TypeError, match=r"^Y: "):
        nk.BatchNorm(2)(ragged)


# ------------------------------------------------- from the 20,000-case run (seed 11)
@pytest.mark.parametrize("M, g", [(5, 2), (7, 3), (4, 4)])
def test_whitening_eval_takes_a_read_only_running_whitening(M, g):
    """A group remainder of one feature (M % g == 1) made its 1×1 block a view of
    running_whitening: read-only in, 'buffer source array is read-only' out."""
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((3, M))
    W = rng.standard_normal((M, M))
    mean = rng.standard_normal(M)
    W.flags.writeable = mean.flags.writeable = Y.flags.writeable = False
    Z = nk.whitening_eval_forward(Y, np.ones(M), np.zeros(M), mean, W, group_size=g)
    # reference: the block-diagonal part of W, groups of g from the left
    B = np.zeros((M, M))
    for c in range(0, M, g):
        B[c:c + g, c:c + g] = W[c:c + g, c:c + g]
    np.testing.assert_allclose(Z, (Y - mean) @ B, rtol=1e-12, atol=1e-12)
