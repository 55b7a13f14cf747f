"""Memory contract: non-contiguous and read-only inputs, inputs never
modified, out= buffers used (and bad ones refused)."""
import numpy as np
import pytest

import nnkit as nk

# BLAS results are bitwise reproducible for the same data in practice, but
# nothing guarantees it across different buffer addresses: allow 4 ulps of
# the result's scale for the GEMM-based affine kernels, exact elsewhere.
GEMM_ULPS = 4


def _strided(rng, shape, dtype, kind):
    """An array of `shape` that is not C-contiguous: a transpose or a step slice."""
    if kind == "transposed":
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    if kind == "fortran":
        return np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    big = rng.standard_normal(tuple(3 * s + 1 for s in shape)).astype(dtype)
    sl = tuple(slice(1, 1 + 3 * s, 3) for s in shape)
    return big[sl]                                   # steps of 3 along every axis


def _gemm_equal(a, b, dtype):
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=0, atol=GEMM_ULPS * np.finfo(dtype).eps * scale)


KINDS = ["transposed", "fortran", "stepped"]


@pytest.mark.parametrize("kind", KINDS)
def test_affine_noncontiguous(ref, rng, dtype, kind):
    B, N, M = 5, 4, 7
    X = _strided(rng, (B, N), dtype, kind)
    W = _strided(rng, (M, N), dtype, kind)
    b = _strided(rng, (M,), dtype, "stepped")
    dY = _strided(rng, (B, M), dtype, kind)
    assert not X.flags.c_contiguous and not W.flags.c_contiguous and not dY.flags.c_contiguous
    assert not b.flags.c_contiguous
    c = np.ascontiguousarray
    Y, cache = nk.affine_forward(X, W, b)
    Yc, cache_c = nk.affine_forward(c(X), c(W), c(b))
    _gemm_equal(Y, Yc, dtype)
    ref.assert_rel(Y, ref.affine(X, W, b), ref.RTOL[dtype], "Y")
    g = nk.affine_backward(dY, cache)
    gc = nk.affine_backward(c(dY), cache_c)
    for name in g._fields:
        _gemm_equal(getattr(g, name), getattr(gc, name), dtype)
    dX, dW, db = ref.affine_backward(dY, X, W)
    ref.assert_rel(g.dX, dX, ref.RTOL[dtype], "dX")
    ref.assert_rel(g.dW, dW, ref.RTOL[dtype], "dW")
    ref.assert_rel(g.db, db, ref.RTOL[dtype], "db")


@pytest.mark.parametrize("kind", KINDS)
def test_relu_noncontiguous(ref, rng, dtype, kind):
    Y = _strided(rng, (6, 5), dtype, kind)
    dH = _strided(rng, (6, 5), dtype, kind)
    H, cache = nk.relu_forward(Y)
    np.testing.assert_array_equal(H, ref.relu(Y))
    np.testing.assert_array_equal(nk.relu_backward(dH, cache), ref.relu_backward(dH, Y))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_batchnorm_noncontiguous(ref, rng, dtype, kind, relu):
    B, M = 9, 19
    Y = _strided(rng, (B, M), dtype, kind)
    gamma = _strided(rng, (M,), dtype, "stepped")
    beta = _strided(rng, (M,), dtype, "stepped")
    G = _strided(rng, (B, M), dtype, kind)
    c = np.ascontiguousarray
    fwd = nk.bn_relu_forward if relu else nk.batchnorm_forward
    bwd = nk.bn_relu_backward if relu else nk.batchnorm_backward
    Z, cache = fwd(Y, gamma, beta)
    Zc, cache_c = fwd(c(Y), c(gamma), c(beta))
    np.testing.assert_array_equal(Z, Zc)
    g, gc = bwd(G, cache), bwd(c(G), cache_c)
    for name in g._fields:
        np.testing.assert_array_equal(getattr(g, name), getattr(gc, name), err_msg=name)
    f = ref.bn_forward(Y, gamma, beta, 1e-5)
    ref.assert_rel(Z, ref.relu(f.Z) if relu else f.Z, ref.RTOL[dtype], "Z")
    rm = _strided(rng, (M,), dtype, "stepped")
    rv = np.abs(_strided(rng, (M,), dtype, "stepped")) + 0.5
    Ze = nk.batchnorm_eval_forward(Y, gamma, beta, rm, rv, relu=relu)
    np.testing.assert_array_equal(
        Ze, nk.batchnorm_eval_forward(c(Y), c(gamma), c(beta), c(rm), c(rv), relu=relu))


def test_softmax_noncontiguous(ref, rng, dtype):
    logits = _strided(rng, (6, 4), dtype, "transposed")
    labels_big = rng.integers(0, 4, size=12)
    labels = labels_big[::2]
    assert not labels.flags.c_contiguous
    loss, c1 = nk.softmax_cross_entropy(logits, labels)
    loss_c, c2 = nk.softmax_cross_entropy(np.ascontiguousarray(logits), labels.copy())
    assert loss == loss_c
    np.testing.assert_array_equal(nk.softmax_cross_entropy_backward(c1),
                                  nk.softmax_cross_entropy_backward(c2))
    T = ref.one_hot(labels, 4).astype(dtype).T.copy().T        # F-ordered targets
    loss_t, _ = nk.softmax_cross_entropy(logits, T)
    assert abs(loss_t - ref.softmax_xent(logits, T)[0]) < 1e-5


def _readonly(*arrays):
    out = []
    for a in arrays:
        a = np.array(a)
        a.flags.writeable = False
        out.append(a)
    return out


def test_readonly_inputs_everywhere(ref, rng, dtype):
    B, N, M = 6, 3, 5
    X, W, b, dY, gamma, beta, G, rm, rv = _readonly(
        *(rng.standard_normal(s).astype(dtype)
          for s in [(B, N), (M, N), (M,), (B, M), (M,), (M,), (B, M), (M,), (M,)]))
    rv = _readonly(np.abs(rv) + 0.1)[0]
    Y, cache = nk.affine_forward(X, W, b)
    ref.assert_rel(Y, ref.affine(X, W, b), ref.RTOL[dtype], "Y")
    g = nk.affine_backward(dY, cache)
    ref.assert_rel(g.dX, ref.affine_backward(dY, X, W)[0], ref.RTOL[dtype], "dX")
    Yro, = _readonly(Y)
    H, rc = nk.relu_forward(Yro)
    np.testing.assert_array_equal(nk.relu_backward(G, rc), ref.relu_backward(G, Yro))
    for fwd, bwd in ((nk.batchnorm_forward, nk.batchnorm_backward),
                     (nk.bn_relu_forward, nk.bn_relu_backward)):
        Z, c = fwd(Yro, gamma, beta)
        gb = bwd(G, c)
        assert np.all(np.isfinite(gb.dY))
    Z, c = nk.batchnorm_forward(Yro, gamma, beta)
    ref.assert_rel(nk.batchnorm_backward(G, c).dY,
                   ref.bn_backward(G, Yro, gamma, 1e-5).dY, 1e-4 if dtype == np.float32 else 1e-11,
                   "dY")  # value check (the precision ones live in test_batchnorm)
    nk.batchnorm_eval_forward(Yro, gamma, beta, rm, rv)
    labels, = _readonly(np.arange(B) % M)
    loss, sc = nk.softmax_cross_entropy(Yro, labels)
    nk.softmax_cross_entropy_backward(sc)


def test_inputs_never_modified(rng, dtype):
    B, N, M = 7, 4, 6
    arrays = {k: rng.standard_normal(s).astype(dtype) for k, s in
              dict(X=(B, N), W=(M, N), b=(M,), dY=(B, M), gamma=(M,), beta=(M,),
                   G=(B, M), rm=(M,)).items()}
    arrays["rv"] = (np.abs(rng.standard_normal(M)) + 0.1).astype(dtype)
    arrays["Ybn"] = rng.standard_normal((B, M)).astype(dtype)
    arrays["T"] = np.eye(M, dtype=dtype)[np.arange(B) % M]
    arrays["labels"] = np.arange(B) % M
    saved = {k: a.copy() for k, a in arrays.items()}
    a = arrays

    Y, cache = nk.affine_forward(a["X"], a["W"], a["b"])
    nk.affine_backward(a["dY"], cache)
    Ysaved = Y.copy()
    H, rc = nk.relu_forward(Y)
    nk.relu_backward(a["dY"], rc)
    for fwd, bwd in ((nk.batchnorm_forward, nk.batchnorm_backward),
                     (nk.bn_relu_forward, nk.bn_relu_backward)):
        _, c = fwd(a["Ybn"], a["gamma"], a["beta"], 1e-3)
        bwd(a["G"], c)
        bwd(a["G"], c, full=False)
    nk.batchnorm_eval_forward(a["Ybn"], a["gamma"], a["beta"], a["rm"], a["rv"], relu=True)
    for lab in (a["labels"], a["T"]):
        _, sc = nk.softmax_cross_entropy(a["Ybn"], lab)
        nk.softmax_cross_entropy_backward(sc)

    np.testing.assert_array_equal(Y, Ysaved)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], saved[k], err_msg=f"{k} was modified")


def _nan_buffer(shape, dtype):
    return np.full(shape, np.nan, dtype)


def test_out_buffers_are_used(ref, rng, dtype):
    B, N, M = 5, 3, 4
    X = rng.standard_normal((B, N)).astype(dtype)
    W = rng.standard_normal((M, N)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    G = rng.standard_normal((B, M)).astype(dtype)
    tol = ref.RTOL[dtype]

    out = _nan_buffer((B, M), dtype)
    Y, cache = nk.affine_forward(X, W, b, out=out)
    assert Y is out
    ref.assert_rel(Y, ref.affine(X, W, b), tol, "Y")
    out = _nan_buffer((B, N), dtype)
    g = nk.affine_backward(G, cache, out=out)
    assert g.dX is out
    ref.assert_rel(g.dX, ref.affine_backward(G, X, W)[0], tol, "dX")

    out = _nan_buffer((B, M), dtype)
    H, rc = nk.relu_forward(Y, out=out)
    assert H is out
    np.testing.assert_array_equal(H, ref.relu(Y))
    out = _nan_buffer((B, M), dtype)
    assert nk.relu_backward(G, rc, out=out) is out
    np.testing.assert_array_equal(out, ref.relu_backward(G, Y))

    gamma = np.ones(M, dtype)
    beta = np.zeros(M, dtype)
    for fwd, bwd in ((nk.batchnorm_forward, nk.batchnorm_backward),
                     (nk.bn_relu_forward, nk.bn_relu_backward)):
        out = _nan_buffer((B, M), dtype)
        Z, c = fwd(Y, gamma, beta, out=out)
        assert Z is out and np.all(np.isfinite(Z))
        out = _nan_buffer((B, M), dtype)
        gb = bwd(G, c, out=out)
        assert gb.dY is out and np.all(np.isfinite(out))
    out = _nan_buffer((B, M), dtype)
    Ze = nk.batchnorm_eval_forward(Y, gamma, beta, np.zeros(M, dtype), np.ones(M, dtype),
                                   eps=0.0, out=out)
    assert Ze is out
    np.testing.assert_allclose(Ze, Y, rtol=tol)

    _, sc = nk.softmax_cross_entropy(Y, np.arange(B) % M)
    out = _nan_buffer((B, M), dtype)
    d = nk.softmax_cross_entropy_backward(sc, out=out)
    assert d is out
    ref.assert_rel(d, ref.softmax_xent(Y, ref.one_hot(np.arange(B) % M, M))[2], tol, "dZ")


def test_bad_out_buffers_raise(rng, dtype):
    other = np.float32 if dtype == np.float64 else np.float64
    B, N = 4, 4                                   # N == M so out could alias X
    X = rng.standard_normal((B, N)).astype(dtype)
    W = rng.standard_normal((N, N)).astype(dtype)
    b = np.zeros(N, dtype)
    gamma, beta = np.ones(N, dtype), np.zeros(N, dtype)

    with pytest.raises(ValueError, match=r"out: expected shape \(4, 4\), got \(4, 5\)"):
        nk.affine_forward(X, W, b, out=np.empty((4, 5), dtype))
    with pytest.raises(TypeError, match="out: expected dtype"):
        nk.affine_forward(X, W, b, out=np.empty((4, 4), other))
    with pytest.raises(ValueError, match="out: shares memory with input X"):
        nk.affine_forward(X, W, b, out=X)
    with pytest.raises(ValueError, match="out: expected a writeable C-contiguous"):
        nk.affine_forward(X, W, b, out=np.empty((4, 4), dtype).T)
    ro = np.empty((4, 4), dtype)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: expected a writeable"):
        nk.affine_forward(X, W, b, out=ro)
    with pytest.raises(TypeError, match="out: expected a numpy array"):
        nk.affine_forward(X, W, b, out=[[0.0] * 4] * 4)

    Y, cache = nk.affine_forward(X, W, b)
    G = rng.standard_normal((B, N)).astype(dtype)
    with pytest.raises(ValueError, match="out: shares memory with input dY"):
        nk.affine_backward(G, cache, out=G)
    with pytest.raises(ValueError, match="out: expected shape"):
        nk.affine_backward(G, cache, out=np.empty((B, N + 1), dtype))
    with pytest.raises(ValueError, match="out: shares memory with input Y"):
        nk.relu_forward(Y, out=Y)
    with pytest.raises(ValueError, match="out: shares memory with input Y"):
        nk.batchnorm_forward(Y, gamma, beta, out=Y[:, :])
    with pytest.raises(TypeError, match="out: expected dtype"):
        nk.batchnorm_forward(Y, gamma, beta, out=np.empty((B, N), other))
    _, c = nk.batchnorm_forward(Y, gamma, beta)
    with pytest.raises(ValueError, match="out: shares memory with input dZ"):
        nk.batchnorm_backward(G, c, out=G)
    with pytest.raises(ValueError, match="out: shares memory with input Y"):
        nk.batchnorm_backward(G, c, out=c.Y)
    with pytest.raises(ValueError, match="out: shares memory with input Y"):
        nk.batchnorm_eval_forward(Y, gamma, beta, np.zeros(N, dtype), np.ones(N, dtype), out=Y)
    _, sc = nk.softmax_cross_entropy(Y, np.arange(B) % N)
    with pytest.raises(ValueError, match="out: shares memory with input P"):
        nk.softmax_cross_entropy_backward(sc, out=sc.P)
