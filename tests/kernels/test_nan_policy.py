"""NaN policy: non-finite inputs propagate by default, or raise before any kernel."""
import numpy as np
import pytest

import nnkit as nk


@pytest.fixture
def raising():
    previous = nk.set_nan_policy("raise")
    yield
    nk.set_nan_policy(previous)


def test_default_propagates_to_the_affected_entries():
    assert nk.get_nan_policy() == "propagate"
    X = np.arange(6.0).reshape(2, 3)
    X[1, 2] = np.nan
    W = np.eye(3)
    Y, _ = nk.affine_forward(X, W, np.zeros(3))
    # row 1 reads the NaN through every output column; row 0 does not
    assert np.all(np.isnan(Y[1]))
    np.testing.assert_array_equal(Y[0], X[0])
    Z, _ = nk.batchnorm_forward(Y, np.ones(3), np.zeros(3))
    assert np.all(np.isnan(Z))           # the batch mean of every feature is NaN


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_raise_names_argument_value_and_index(raising, bad):
    X = np.ones((3, 2))
    X[2, 1] = bad
    with pytest.raises(ValueError, match=r"^X: expected finite values \(nan_policy='raise'\), "
                                         r"got -?(nan|inf) at index \(2, 1\)"):
        nk.affine_forward(X, np.ones((4, 2)), np.zeros(4))
    g = np.ones(2)
    g[0] = bad
    with pytest.raises(ValueError, match=r"^gamma: expected finite values"):
        nk.batchnorm_forward(np.ones((3, 2)) + np.arange(3)[:, None], g, np.zeros(2))


def test_raise_mode_accepts_finite_input(raising):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    Y, cache = nk.affine_forward(X, rng.standard_normal((2, 3)), np.zeros(2))
    np.testing.assert_allclose(Y, X @ cache.W.T, rtol=1e-12, atol=1e-12)


def test_unknown_policy_refused():
    with pytest.raises(ValueError, match=r"^policy: expected one of \['propagate', 'raise'\], got 'ignore'"):
        nk.set_nan_policy("ignore")
    assert nk.get_nan_policy() == "propagate"


def test_network_with_one_nan_input_has_nan_loss():
    """Linear -> BatchNorm(relu=True) -> Linear -> softmax-CE: one NaN input
    element gave the finite loss ln 10 (the fused ReLU turned NaN into 0)."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((16, 5))
    X[3, 2] = np.nan
    y = rng.integers(0, 10, 16)
    model = nk.Sequential(nk.Linear(5, 8, seed=1), nk.BatchNorm(8, relu=True),
                          nk.Linear(8, 10, seed=2))
    loss, _ = nk.softmax_cross_entropy(model(X), y)
    assert np.isnan(loss)
