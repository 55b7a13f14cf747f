"""P4: softmax cross-entropy (int labels and one-hot / soft targets)."""
import numpy as np
import pytest

import nnkit as nk


@pytest.mark.parametrize("B,K", [(1, 1), (2, 2), (2, 5), (7, 3), (64, 10), (33, 100)])
def test_softmax_xent_int_labels(ref, rng, dtype, B, K):
    logits = (3.0 * rng.standard_normal((B, K))).astype(dtype)
    labels = rng.integers(0, K, size=B)
    loss, cache = nk.softmax_cross_entropy(logits, labels)
    want_loss, P, dZ = ref.softmax_xent(logits, ref.one_hot(labels, K))
    assert isinstance(loss, float)
    # loss is a mean of log-sum-exps accumulated in double
    assert abs(loss - want_loss) <= ref.RTOL[dtype] * max(1.0, abs(want_loss))
    ref.assert_rel(cache.P, P, ref.RTOL[dtype], "softmax P")
    np.testing.assert_allclose(cache.P.astype(np.float64).sum(axis=1), 1.0,
                               rtol=ref.RTOL[dtype] * K)
    g = nk.softmax_cross_entropy_backward(cache)
    assert g.dtype == dtype and g.shape == (B, K)
    ref.assert_rel(g, dZ, ref.RTOL[dtype], "dlogits = (P - Y)/B")


@pytest.mark.parametrize("B,K", [(2, 3), (9, 4), (40, 17)])
def test_softmax_xent_one_hot_matches_int_labels(ref, rng, dtype, B, K):
    logits = rng.standard_normal((B, K)).astype(dtype)
    labels = rng.integers(0, K, size=B)
    T = ref.one_hot(labels, K).astype(dtype)
    loss_i, ci = nk.softmax_cross_entropy(logits, labels)
    loss_t, ct = nk.softmax_cross_entropy(logits, T)
    want_loss, _, dZ = ref.softmax_xent(logits, T)
    for loss in (loss_i, loss_t):
        assert abs(loss - want_loss) <= ref.RTOL[dtype] * max(1.0, abs(want_loss))
    for c in (ci, ct):
        ref.assert_rel(nk.softmax_cross_entropy_backward(c), dZ, ref.RTOL[dtype], "dlogits")


def test_softmax_xent_soft_targets(ref, rng, dtype):
    B, K = 6, 5
    logits = rng.standard_normal((B, K)).astype(dtype)
    T = rng.random((B, K))
    T /= T.sum(axis=1, keepdims=True)            # probability rows
    T = T.astype(dtype)
    loss, c = nk.softmax_cross_entropy(logits, T)
    want_loss, _, dZ = ref.softmax_xent(logits, T)
    assert abs(loss - want_loss) <= ref.RTOL[dtype] * max(1.0, abs(want_loss))
    # rows of T sum to 1 up to float rounding of T itself
    ref.assert_rel(nk.softmax_cross_entropy_backward(c), dZ,
                   ref.RTOL[dtype] if dtype == np.float64 else 1e-5, "dlogits")


def test_softmax_xent_dloss_scales_gradient(ref, rng):
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    _, c = nk.softmax_cross_entropy(logits, labels)
    _, _, dZ = ref.softmax_xent(logits, ref.one_hot(labels, 3))
    ref.assert_rel(nk.softmax_cross_entropy_backward(c, 2.5), 2.5 * dZ, 1e-12, "2.5 dZ")
    # (upstream, cache), the order of every backward; the older (cache, dloss) above
    ref.assert_rel(nk.softmax_cross_entropy_backward(2.5, c), 2.5 * dZ, 1e-12, "2.5 dZ")
    with pytest.raises(TypeError, match="dloss: expected a finite number"):
        nk.softmax_cross_entropy_backward("1", c)


def test_softmax_xent_extreme_logits_stay_finite(ref, dtype):
    logits = np.array([[1e4, 0.0, -1e4],
                       [-1e4, -1e4, -1e4],
                       [1e4, 1e4, 0.0]], dtype=dtype)
    labels = np.array([1, 0, 2])
    loss, c = nk.softmax_cross_entropy(logits, labels)
    # row 0: −log softmax = 1e4; row 1: log 3; row 2: 1e4 + log 2
    want = (1e4 + np.log(3.0) + 1e4 + np.log(2.0)) / 3
    assert np.isfinite(loss)
    assert abs(loss - want) <= 1e-12 * want
    assert np.all(np.isfinite(c.P))
    g = nk.softmax_cross_entropy_backward(c)
    assert np.all(np.isfinite(g))
    _, _, dZ = ref.softmax_xent(logits, ref.one_hot(labels, 3))
    ref.assert_rel(g, dZ, ref.RTOL[np.dtype(dtype)], "dlogits")
    # one-hot targets path too
    loss_t, ct = nk.softmax_cross_entropy(logits, ref.one_hot(labels, 3).astype(dtype))
    assert abs(loss_t - want) <= 1e-12 * want
    assert np.all(np.isfinite(nk.softmax_cross_entropy_backward(ct)))


def test_softmax_xent_uniform_logits(dtype):
    # all logits equal: loss = log K, gradient (1/K − y)/B
    B, K = 3, 4
    loss, c = nk.softmax_cross_entropy(np.zeros((B, K), dtype), np.array([0, 1, 3]))
    assert abs(loss - np.log(K)) < 1e-6
    g = nk.softmax_cross_entropy_backward(c)
    want = np.full((B, K), 1 / K)
    want[[0, 1, 2], [0, 1, 3]] -= 1
    np.testing.assert_allclose(g, want / B, rtol=1e-6)
