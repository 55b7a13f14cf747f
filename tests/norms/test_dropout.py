"""P6: inverted dropout (keep probability p; PyTorch's nn.Dropout(p_torch) is keep = 1 − p_torch)."""
import numpy as np
import pytest

import nnkit as nk


def dropout_ref(X, keep, u):
    """NumPy transcription from the uniforms u the mask is drawn from: R = [u < keep]."""
    R = u < keep
    return np.where(R, X / keep, 0.0), R


@pytest.mark.parametrize("shape", [(5,), (3, 7), (257, 301), (2, 3, 4, 5)], ids=str)
def test_forward_backward_match_transcription(rng, dtype, shape):
    X = rng.standard_normal(shape).astype(dtype)
    G = rng.standard_normal(shape).astype(dtype)
    keep = 0.7
    Y, cache = nk.dropout_forward(X, keep, rng=np.random.default_rng(5))
    u = np.random.default_rng(5).random(shape, dtype=dtype)
    want, R = dropout_ref(X.astype(np.float64), keep, u)
    np.testing.assert_array_equal(cache.mask, R)
    tol = 1e-15 if dtype == np.float64 else 1e-7     # one rounding of X·(1/keep)
    np.testing.assert_allclose(Y, want, rtol=tol, atol=0)
    dX = nk.dropout_backward(G, cache)
    np.testing.assert_allclose(dX, np.where(R, G.astype(np.float64) / keep, 0), rtol=tol)
    assert Y.dtype == dtype and dX.dtype == dtype


def test_central_differences(rng):
    X = rng.standard_normal((4, 6))
    fwd = lambda X: nk.dropout_forward(X, 0.6, rng=np.random.default_rng(1))  # same mask
    report = nk.gradcheck(fwd, nk.dropout_backward, dict(X=X))
    assert report.passed, report.table()


def test_expectation_and_keep_rate(rng):
    """E[out] = X: the mean over 4000 masks is X within 5 standard errors
    (per element sd of X·R/keep is |X|·√((1−keep)/keep))."""
    X = rng.standard_normal(50)
    keep, S = 0.3, 4000
    outs = np.stack([nk.dropout_forward(X, keep, rng=rng)[0] for _ in range(S)])
    se = np.abs(X) * np.sqrt((1 - keep) / keep) / np.sqrt(S)
    assert np.all(np.abs(outs.mean(0) - X) <= 5 * se + 1e-15)
    rate = np.mean(outs != 0)
    assert abs(rate - keep) < 5 * np.sqrt(keep * (1 - keep) / outs.size)


def test_eval_is_identity_and_keep_one():
    X = np.arange(6.0).reshape(2, 3)
    Y, c = nk.dropout_forward(X, 0.5, training=False)
    np.testing.assert_array_equal(Y, X)
    assert c.mask is None and Y is not X
    np.testing.assert_array_equal(nk.dropout_backward(X, c), X)
    Y, c = nk.dropout_forward(X, 1.0)
    np.testing.assert_array_equal(Y, X)


def test_library_generator_reproducible():
    X = np.ones((10, 10))
    nk.seed(3)
    a = nk.dropout_forward(X, 0.5)[1].mask
    nk.seed(3)
    b = nk.Dropout(0.5)(X)
    np.testing.assert_array_equal(a, b != 0)
    layer = nk.Dropout(0.5, seed=7)
    m1 = layer(X).copy()
    assert not np.array_equal(m1, layer(X))           # a fresh mask every call
    np.testing.assert_array_equal(layer.backward(np.ones_like(X)), layer.mask * 2.0)
    layer.eval()
    np.testing.assert_array_equal(layer(X), X)


def test_matches_torch_statistics(rng):
    """Same convention as torch: torch's p is the drop probability (keep = 1 − p),
    kept elements scaled by 1/(1 − p)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    X = np.ones(200_000)
    t = torch.nn.functional.dropout(torch.tensor(X), p=0.25, training=True).numpy()
    ours = nk.dropout_forward(X, 0.75, rng=rng)[0]
    assert set(np.unique(t)) == set(np.unique(ours)) == {0.0, 1 / 0.75}
    assert abs(np.mean(t != 0) - np.mean(ours != 0)) < 0.01


def test_bad_input():
    X = np.ones((2, 3))
    for keep, exc in ((0.0, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                      (-0.1, ValueError), ("a", TypeError), (True, TypeError), (None, TypeError)):
        with pytest.raises(exc, match="^keep"):
            nk.dropout_forward(X, keep)
        with pytest.raises(exc, match="^keep"):
            nk.Dropout(keep)
    with pytest.raises(TypeError, match="^X"):
        nk.dropout_forward(np.ones(3, int), 0.5)
    with pytest.raises(TypeError, match="^rng"):
        nk.dropout_forward(X, 0.5, rng=3)
    with pytest.raises(TypeError, match="^training"):
        nk.dropout_forward(X, 0.5, training=1)
    _, c = nk.dropout_forward(X, 0.5)
    with pytest.raises(ValueError, match="^dY"):
        nk.dropout_backward(np.ones((3, 2)), c)
    with pytest.raises(TypeError, match="^dY"):
        nk.dropout_backward(np.ones((2, 3), np.float32), c)
    with pytest.raises(TypeError, match="^cache"):
        nk.dropout_backward(X, None)
    with pytest.raises(ValueError, match="^out"):
        nk.dropout_forward(X, 0.5, out=X)
