"""Property-based: affine and batch norm over random shapes and both dtypes
against the float64 references (Hypothesis profile "ci" from conftest)."""
import numpy as np
from hypothesis import given, strategies as st

import nnkit as nk

dims = st.integers(1, 40)
batches = st.integers(2, 40)
dtypes = st.sampled_from([np.float64, np.float32])
seeds = st.integers(0, 2**32 - 1)


@given(B=batches, N=dims, M=dims, dtype=dtypes, seed=seeds,
       transposed=st.booleans())
def test_affine_property(ref, B, N, M, dtype, seed, transposed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, N)).astype(dtype)
    if transposed:                                  # an F-ordered view
        X = np.asfortranarray(X)
    W = rng.standard_normal((M, N)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    dY = rng.standard_normal((B, M)).astype(dtype)
    tol = ref.RTOL[np.dtype(dtype)]
    Y, cache = nk.affine_forward(X, W, b)
    ref.assert_rel(Y, ref.affine(X, W, b), tol, "Y")
    g = nk.affine_backward(dY, cache)
    dX, dW, db = ref.affine_backward(dY, X, W)
    ref.assert_rel(g.dX, dX, tol, "dX")
    ref.assert_rel(g.dW, dW, tol, "dW")
    ref.assert_rel(g.db, db, tol, "db")


@given(B=batches, M=dims, dtype=dtypes, seed=seeds, relu=st.booleans(),
       loc=st.sampled_from([0.0, 3.0, -10.0]),
       eps=st.sampled_from([1e-5, 1e-3, 0.5]))
def test_batchnorm_property(ref, B, M, dtype, seed, relu, loc, eps):
    rng = np.random.default_rng(seed)
    Y = (loc + rng.uniform(0.2, 3.0, M) * rng.standard_normal((B, M))).astype(dtype)
    gamma = (1.0 + 0.5 * rng.standard_normal(M)).astype(dtype)
    beta = (0.5 * rng.standard_normal(M)).astype(dtype)
    G = rng.standard_normal((B, M)).astype(dtype)
    tol = ref.RTOL[np.dtype(dtype)]
    if dtype == np.float32 and loc != 0.0:
        # float32 Y − m loses log2(|mean|/std) bits (|loc| up to 50x the
        # smallest spread here): the inputs' own rounding, not the kernel's
        tol = 1e-4

    fwd = nk.bn_relu_forward if relu else nk.batchnorm_forward
    bwd = nk.bn_relu_backward if relu else nk.batchnorm_backward
    out, cache = fwd(Y, gamma, beta, eps)
    f = ref.bn_forward(Y, gamma, beta, eps)
    ref.assert_rel(out, ref.relu(f.Z) if relu else f.Z, tol, "Z/H")
    ref.assert_rel(cache.mean, f.mean, tol, "mean")
    ref.assert_rel(cache.var, f.var, tol, "var")

    g = bwd(G, cache)
    if relu:
        # the mask [Z > 0]: where the kernel's float32 Z and the float64
        # reference disagree, Z must be within rounding of 0
        flip = (out > 0) != (f.Z > 0)
        assert np.all(np.abs(f.Z[flip]) <= 1e-5 * (1 + np.abs(f.Z).max())), "ReLU mask"
        dZ = np.where(out > 0, G.astype(np.float64), 0.0)
        ref.assert_rel(g.dZ, dZ, tol, "dZ")
        r = ref.bn_backward(dZ, Y, gamma, eps)
    else:
        r = ref.bn_backward(G, Y, gamma, eps)
    for name in ("dgamma", "dbeta", "dYhat", "dvar"):
        ref.assert_rel(getattr(g, name), getattr(r, name), tol, name)
    # dY and dmean cancel (a projection; Σ(Y − m) = 0): error relative to the
    # size of their terms, inv·|dŶ| (see test_batchnorm._check_grads)
    term = np.abs(r.dYhat) * f.inv_std
    assert np.max(np.abs(g.dY - r.dY)) <= tol * np.max(term), "dY"
    assert np.max(np.abs(g.dmean - r.dmean)) <= tol * np.max(term.sum(axis=0)), "dmean"
