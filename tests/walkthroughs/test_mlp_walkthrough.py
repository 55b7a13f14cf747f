"""The mlp walkthrough (P1 + P4): values and gradients against an independent
float64 NumPy computation, and every node's finite-difference check."""
import numpy as np
import pytest

from nnkit import trace


def _reference(X, W1, b1, W2, b2, y):
    """Textbook forward and backward, written without nnkit."""
    B = X.shape[0]
    Y1 = X @ W1.T + b1
    A = np.maximum(Y1, 0)
    Z = A @ W2.T + b2
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    T = np.eye(Z.shape[1])[y] if y.ndim == 1 else y
    L = -np.sum(T * np.log(P)) / B
    dZ = (P - T) / B                                   # P4
    dA = dZ @ W2
    dY1 = dA * (Y1 > 0)
    return dict(Y1=Y1, A=A, Z=Z, L=L), dict(Z=dZ, b2=dZ.sum(0), W2=dZ.T @ A, A=dA,
                                            Y1=dY1, b1=dY1.sum(0), W1=dY1.T @ X, X=dY1 @ W1)


@pytest.mark.parametrize("targets", ["indices", "soft"])
def test_values_and_gradients_against_the_reference(targets):
    t = trace.Trace("mlp", B=7, N=5, H=6, K=4, seed=1, targets=targets)
    v = {k: np.asarray(a) for k, a in t.values.items()}
    y = v["y"] if targets == "indices" else v["y"].astype(np.float64)
    vals, grads = _reference(v["X"], v["W1"], v["b1"], v["W2"], v["b2"], y)
    for k, want in vals.items():
        np.testing.assert_allclose(t.value(k), want, rtol=1e-12, atol=1e-14)
    for k, want in grads.items():
        # float64 kernel vs float64 reference: a few ulps
        np.testing.assert_allclose(t.grad(k), want, rtol=1e-11, atol=1e-14, err_msg=k)
    # the biases reach the loss: their gradients are far from 0 (unlike bn-relu's b)
    assert np.abs(grads["b1"]).max() > 1e-2 and np.abs(grads["b2"]).max() > 1e-2


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_node_passes(dtype):
    w = trace.get("mlp")
    for cfg in w.check_configs():
        rep = trace.Trace(w, dtype=dtype, **cfg).check_all(strict=True)
        assert rep.passed, rep.table()
        assert len(rep.checks) == 9


def test_integer_labels_stay_integers():
    t = trace.Trace("mlp", dtype="float32")
    assert np.issubdtype(t.value("y").dtype, np.integer)
    assert t.value("X").dtype == np.float32
