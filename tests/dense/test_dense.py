"""P1: affine forward/backward and ReLU against float64 NumPy references."""
import numpy as np
import pytest

import nnkit as nk

# (B, N, M): B = 2, N = 1, M = 1, non-multiples of the BLAS/vector widths,
# and B*M > 65536 (the OpenMP threshold for the elementwise kernels), even and odd B
AFFINE_SHAPES = [(2, 1, 1), (2, 3, 4), (1, 5, 3), (7, 1, 9), (5, 6, 1),
                 (33, 17, 40), (64, 100, 33), (300, 20, 257), (301, 20, 257)]


def _draw(rng, shape, dtype, loc=0.0, scale=1.0):
    return (loc + scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("B,N,M", AFFINE_SHAPES)
def test_affine_forward_backward(ref, rng, dtype, B, N, M):
    X = _draw(rng, (B, N), dtype, 0.5, 2.0)
    W = _draw(rng, (M, N), dtype)
    b = _draw(rng, (M,), dtype, -1.0, 3.0)
    dY = _draw(rng, (B, M), dtype)
    tol = ref.RTOL[dtype]

    Y, cache = nk.affine_forward(X, W, b)
    assert Y.dtype == dtype and Y.shape == (B, M)
    ref.assert_rel(Y, ref.affine(X, W, b), tol, "Y")

    g = nk.affine_backward(dY, cache)
    dX, dW, db = ref.affine_backward(dY, X, W)
    for name, got, want, shape in (("dX", g.dX, dX, (B, N)), ("dW", g.dW, dW, (M, N)),
                                   ("db", g.db, db, (M,))):
        assert got.dtype == dtype and got.shape == shape, name
        ref.assert_rel(got, want, tol, name)


def test_affine_bias_broadcast_not_materialized_shape(ref, rng):
    # b is broadcast over rows: every row of Y - X Wᵀ equals b
    X = rng.standard_normal((6, 3))
    W = rng.standard_normal((4, 3))
    b = np.array([1.0, -2.0, 3.5, 0.25])
    Y, _ = nk.affine_forward(X, W, b)
    np.testing.assert_allclose(Y - X @ W.T, np.broadcast_to(b, (6, 4)), rtol=0, atol=1e-12)


def test_affine_accepts_lists(ref):
    Y, _ = nk.affine_forward([[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]], [0.5, -0.5])
    np.testing.assert_array_equal(Y, [[11.5, 16.5]])


def test_affine_backward_db_large_batch_float32(ref, rng):
    # db = Σ_rows dY over B = 16384 rows with a non-zero mean: the kernel
    # accumulates in double, so float32 stays within 1e-5 of float64
    B, N, M = 16384, 3, 8
    X = rng.standard_normal((B, N)).astype(np.float32)
    W = rng.standard_normal((M, N)).astype(np.float32)
    b = np.zeros(M, np.float32)
    dY = (1.0 + rng.standard_normal((B, M))).astype(np.float32)
    _, cache = nk.affine_forward(X, W, b)
    g = nk.affine_backward(dY, cache)
    ref.assert_rel(g.db, dY.astype(np.float64).sum(axis=0), 1e-5, "db")


# the last two: > 65536 elements (the threaded path), even and odd sizes
RELU_SHAPES = [(2,), (1, 1), (2, 7), (3, 4, 5), (300, 257), (301, 257)]


@pytest.mark.parametrize("shape", RELU_SHAPES)
def test_relu_forward_backward(ref, rng, dtype, shape):
    Y = rng.standard_normal(shape).astype(dtype)
    Y.reshape(-1)[::5] = 0.0            # ties: ReLU'(0) is taken as 0 ([Y > 0])
    dH = rng.standard_normal(shape).astype(dtype)
    H, cache = nk.relu_forward(Y)
    assert H.shape == shape and H.dtype == dtype
    # max(Y, 0) and a mask selection are exact in any precision
    np.testing.assert_array_equal(H, ref.relu(Y))
    dY = nk.relu_backward(dH, cache)
    assert dY.shape == shape and dY.dtype == dtype
    np.testing.assert_array_equal(dY, ref.relu_backward(dH, Y))
    assert np.all(dY.reshape(-1)[::5] == 0)


def test_relu_negative_zero_and_inf(ref):
    Y = np.array([-0.0, 0.0, -np.inf, np.inf, -1e-300, 1e-300])
    H, cache = nk.relu_forward(Y)
    np.testing.assert_array_equal(H, [0, 0, 0, np.inf, 0, 1e-300])
    dY = nk.relu_backward(np.ones(6), cache)
    np.testing.assert_array_equal(dY, [0, 0, 0, 1, 0, 1])


def test_relu_zero_d_keeps_shape():
    # "any shape" includes 0-d: the result must not come back as shape (1,)
    H, cache = nk.relu_forward(np.float64(-2.0))
    assert H.shape == () and H == 0.0
    H, cache = nk.relu_forward(np.float32(2.5))
    assert H.shape == () and H.dtype == np.float32 and H == 2.5
    dY = nk.relu_backward(np.float32(3.0), cache)
    assert dY.shape == () and dY == 3.0


# ------------------------------------------------------- issue 8.1: NaN
def _relu_nan_ref(Y):
    """PyTorch's relu: 0 where Y <= 0, else Y (a NaN stays NaN)."""
    Y = np.asarray(Y, np.float64)
    return np.where(Y <= 0, 0.0, Y)


def _relu_grad_nan_ref(dH, Y):
    """PyTorch's threshold_backward: 0 where Y <= 0, else dH (passes at a NaN)."""
    return np.where(np.asarray(Y) <= 0, 0.0, np.asarray(dH, np.float64))


def test_relu_nan_propagates_like_pytorch():
    """relu(nan) = nan (PyTorch, and the README's propagate policy); it was 0."""
    H, cache = nk.relu_forward(np.array([np.nan]))
    assert np.isnan(H[0])
    Y = np.array([np.nan, -np.nan, -1.0, 0.0, 2.0], np.float32)
    H, cache = nk.relu_forward(Y)
    np.testing.assert_array_equal(H, [np.nan, np.nan, 0, 0, 2])
    # backward at a NaN: the gradient passes, the branch the forward took
    dY = nk.relu_backward(np.full(5, 3.0, np.float32), cache)
    np.testing.assert_array_equal(dY, [3, 3, 0, 0, 3])


@pytest.mark.parametrize("shape", [(7,), (301, 257)])     # one and two threads
def test_relu_nan_everywhere_matches_pytorch_rule(rng, dtype, shape):
    Y = rng.standard_normal(shape).astype(dtype)
    flat = Y.reshape(-1)
    flat[::3] = np.nan
    flat[1::7] = 0.0
    dH = rng.standard_normal(shape).astype(dtype)
    H, cache = nk.relu_forward(Y)
    np.testing.assert_array_equal(H, _relu_nan_ref(Y))
    np.testing.assert_array_equal(nk.relu_backward(dH, cache), _relu_grad_nan_ref(dH, Y))


def test_relu_matches_torch_with_nan(dtype):
    torch = pytest.importorskip("torch")
    Y = np.array([np.nan, -2.0, -0.0, 0.0, 1.5, np.inf, -np.inf], dtype)
    dH = np.arange(1.0, 8.0).astype(dtype)
    H, cache = nk.relu_forward(Y)
    t = torch.tensor(Y, requires_grad=True)
    h = torch.relu(t)
    h.backward(torch.tensor(dH))
    np.testing.assert_array_equal(H, h.detach().numpy())
    np.testing.assert_array_equal(nk.relu_backward(dH, cache), t.grad.numpy())
