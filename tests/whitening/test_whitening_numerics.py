"""Whitening batch norm (P2.4), numerics: float32 against float64, the
threaded passes with odd B, NaN propagation through the ReLU."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk
from nnkit import whitening as wh

from _whitening_ref import data, ref_forward, ref_zca_backward

@pytest.mark.parametrize("method", wh.METHODS)
@pytest.mark.parametrize("g", [None, 3])
def test_float32_matches_float64(method, g):
    Y, gm, bt, G = data(64, 8, seed=8)
    Y32, gm32, bt32, G32 = (a.astype(np.float32) for a in (Y, gm, bt, G))
    o64, c64 = nk.whitening_relu_forward(Y, gm, bt, 1e-3, method, g)
    o32, c32 = nk.whitening_relu_forward(Y32, gm32, bt32, 1e-3, method, g)
    assert o32.dtype == np.float32
    # float32 rounding (6e-8) amplified by cond(Σ) ~ 10 and the eigensolver
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-4)
    r64 = nk.whitening_relu_backward(G, c64)
    r32 = nk.whitening_relu_backward(G32, c32)
    for a, b in zip(r32, r64):
        assert a.dtype == np.float32
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-4 * scale)


# ------------------------------------------- issue 8: threaded passes, odd B
# B·M above PARALLEL_MIN_ELEMENTS (65536): center, apply and the pointwise
# backward split the rows between NNKIT_NUM_THREADS = 2 threads (conftest).
# B odd and not a multiple of 2 or 3: a split that drops the last row
# (t * (B // nt)) leaves Ŷ's columns uncentred and dY off in that row.
@pytest.mark.parametrize("g", [None, 4])
@pytest.mark.parametrize("relu", [False, True])
def test_threaded_passes_odd_batch_match_reference(g, relu):
    B, M = 8195, 9
    assert B * M > 65536 and B % 2 and B % 3
    Y, gm, bt, G = data(B, M, seed=13)
    fwd = nk.whitening_relu_forward if relu else nk.whitening_forward
    bwd = nk.whitening_relu_backward if relu else nk.whitening_backward
    out, cache = fwd(Y, gm, bt, 1e-3, "zca", g)
    want, want_yh = ref_forward(Y, gm, bt, 1e-3, "zca", g, relu=relu)
    np.testing.assert_allclose(cache.mean, Y.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(cache.yhat.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(cache.yhat, want_yh, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-10)
    r = bwd(G, cache)
    # with the ReLU: dZ = dH [Z > 0], the mask of the reference's Z (no Z
    # is within 1e-10 of 0 here, so the kernel's mask is the same)
    Zref = gm * want_yh + bt
    assert not relu or np.abs(Zref).min() > 1e-8
    dZ = np.where(Zref > 0, G, 0.0) if relu else G
    dY, dgamma, dbeta, _ = ref_zca_backward(Y, gm, bt, 1e-3, dZ, g)
    np.testing.assert_allclose(r.dbeta, dZ.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(r.dgamma, dgamma, rtol=1e-10)
    np.testing.assert_allclose(r.dY, dY, rtol=0, atol=1e-10 * np.abs(dY).max())
    if relu:
        np.testing.assert_array_equal(r.dZ, dZ)


# ------------------------------------------------------- issue 8.1: NaN
def test_relu_paths_propagate_nan():
    """Z = γŶ + β with a NaN: H is NaN there (the ReLU used to give 0)."""
    Y, gm, bt, _ = data(12, 4, seed=14)
    Y[5, 1] = np.nan
    H = nk.whitening_eval_forward(Y, gm, bt, np.zeros(4), np.eye(4), relu=True)
    assert np.all(np.isnan(H[5])) and np.all(np.isfinite(np.delete(H, 5, axis=0)))
    Z = nk.whitening_eval_forward(Y, gm, bt, np.zeros(4), np.eye(4))
    np.testing.assert_array_equal(H, np.where(Z <= 0, 0, Z))


# ---------------------------------------- float32: what the design achieves
def test_float32_sums_at_scale():
    """Chunked float32 sums totalled in double: mean, dβ and dγ of float32
    within a few float32 ulps (eps32 = 6e-8) of float64 on the same data at
    B = 16384 (measured ~4e-8); a float32 running sum over the batch is off
    by ~1e-6 there."""
    rng = np.random.default_rng(16384)
    B, M = 16384, 8
    Y = (5.0 + 2.0 * rng.standard_normal((B, M))).astype(np.float32)
    G = (0.3 + rng.standard_normal((B, M))).astype(np.float32)
    gm = (1.0 + 0.5 * rng.standard_normal(M)).astype(np.float32)
    bt = rng.standard_normal(M).astype(np.float32)
    up = lambda a: a.astype(np.float64)
    _, c32 = nk.whitening_forward(Y, gm, bt)
    _, c64 = nk.whitening_forward(up(Y), up(gm), up(bt))
    r32, r64 = nk.whitening_backward(G, c32), nk.whitening_backward(up(G), c64)
    rel = lambda a, b: np.abs(up(a) - b).max() / np.abs(b).max()
    EPS32 = np.finfo(np.float32).eps / 2           # 6e-8, the unit roundoff
    assert rel(c32.mean, c64.mean) < 3 * EPS32
    assert rel(r32.dbeta, r64.dbeta) < 3 * EPS32
    # dγ = Σ dZ Ŷ cancels (Ŷ is centred): measured against Σ |dZ Ŷ|, and
    # Ŷ itself carries float32 rounding of Y − m and of W
    scale = np.abs(up(G) * c64.yhat).sum(axis=0).max()
    assert np.abs(up(r32.dgamma) - r64.dgamma).max() < 10 * EPS32 * scale


@pytest.mark.parametrize("method", ["zca", "pca", "cholesky", "newton"])
def test_nan_input_propagates_in_every_method(method):
    """nan_policy 'propagate': a NaN in Y makes the whitened output NaN (every
    feature of its group mixes it in); zca/pca used to raise LAPACK's
    'syevd failed (info = 3)'."""
    Y = np.random.default_rng(0).standard_normal((16, 4))
    Y[3, 1] = np.nan
    Z, cache = nk.whitening_forward(Y, np.ones(4), np.zeros(4), method=method)
    assert np.isnan(Z).all()
    g = nk.whitening_backward(np.ones_like(Z), cache)
    assert np.isnan(g.dY).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", [1, 31, 32, 33, 100])
def test_zca_matrix_stack_is_d_lambda_to_the_minus_half_d_transposed(dtype, g):
    """ZCA's W = D Λ^(−½) Dᵀ from the kernel (a gemm below 32 columns, a syrk
    and a tiled mirror from 32 on), against NumPy's float64 product: every
    entry (both triangles, tile edges at 32), a stack of 3, W exactly symmetric."""
    from nnkit._kernels import whitening as k
    rng = np.random.default_rng(g)
    D = rng.standard_normal((3, g, g)).astype(dtype)
    lam = rng.uniform(0.2, 3.0, (3, g)).astype(dtype)
    W = np.full_like(D, np.nan)
    k.zca_matrix_stack(D, lam, W)
    D64 = D.astype(np.float64)
    want = (D64 / np.sqrt(lam.astype(np.float64))[:, None, :]) @ np.swapaxes(D64, 1, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(W, want, rtol=tol, atol=tol * g)
    if g >= 32:
        np.testing.assert_array_equal(W, np.swapaxes(W, 1, 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", [1, 2, 7, 64])
def test_eigh_stack_decomposes_every_block_and_marks_a_non_finite_one(dtype, g):
    """The kernel's syevd loop: for every block S = D diag(λ) Dᵀ with λ
    ascending and D orthonormal (checked against the block itself, and λ
    against NumPy's eigvalsh in float64); a block holding a NaN comes back
    all NaN and leaves its neighbours alone."""
    from nnkit._kernels import whitening as k
    rng = np.random.default_rng(g)
    A = rng.standard_normal((3, 4 * g, g))
    S = (np.swapaxes(A, 1, 2) @ A / (4 * g) + 0.1 * np.eye(g)).astype(dtype)
    S[1, 0, g - 1] = S[1, g - 1, 0] = np.nan
    lam = np.zeros((3, g), dtype)
    D = np.zeros_like(S)
    info = np.full(3, -7, np.intc)
    k.eigh_stack(S, lam, D, info)
    np.testing.assert_array_equal(info, 0)
    assert np.isnan(lam[1]).all() and np.isnan(D[1]).all()
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for b in (0, 2):
        Sb = S[b].astype(np.float64)
        Db = D[b].astype(np.float64)
        assert np.all(np.diff(lam[b]) >= 0)
        np.testing.assert_allclose(lam[b], np.linalg.eigvalsh(Sb), rtol=tol, atol=tol)
        np.testing.assert_allclose(Db.T @ Db, np.eye(g), atol=tol * g)
        np.testing.assert_allclose(Db @ np.diag(lam[b].astype(np.float64)) @ Db.T, Sb,
                                   atol=tol * g * np.abs(Sb).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_g_by_g_kernels_match_their_formulas(dtype):
    """The three g×g kernels of the backward against NumPy written from the
    formulas in pyx/whitening.pyx, on a stack of 2 blocks of 5."""
    from nnkit._kernels import whitening as k
    rng = np.random.default_rng(3)
    n, g, B = 2, 5, 9
    P, W, dS = (rng.standard_normal((n, g, g)).astype(dtype) for _ in range(3))
    gam, db = (rng.standard_normal((n, g)).astype(dtype) for _ in range(2))
    cs = rng.standard_normal((n, g))
    tol = 1e-5 if dtype == np.float32 else 1e-13
    dW = np.empty_like(P)
    k.whitening_matrix_grad(P, gam, cs, db, B, dW)
    want = (P + cs[:, :, None] * db[:, None, :] / B) * gam[:, None, :]
    np.testing.assert_allclose(dW, want, rtol=tol, atol=tol)
    A, X, dm = np.empty_like(P), np.empty_like(P), np.empty((n, g), dtype)
    k.expansion_factors(dS, W, gam, cs, db, B, A, X, dm)
    np.testing.assert_allclose(X, 2 * dS / B, rtol=tol, atol=tol)
    np.testing.assert_array_equal(A, gam[:, :, None] * np.swapaxes(W, 1, 2))
    want_dm = -np.einsum("kij,kj->ki", W.astype(float), gam.astype(float) * db) \
        - np.einsum("kij,kj->ki", 2 * dS.astype(float) / B, cs)
    np.testing.assert_allclose(dm, want_dm, rtol=tol * 10, atol=tol * 10)
    # ZCA: dΣ = D (F ∘ Dᵀ sym(dW) D) Dᵀ with F_ij = −1/(s_i s_j (s_i + s_j))
    Q, _ = np.linalg.qr(rng.standard_normal((n, g, g)))
    lam = rng.uniform(0.5, 2.0, (n, g))
    out = np.empty_like(P)
    k.zca_backward_stack(dW, Q.astype(dtype), lam.astype(dtype), out)
    s = np.sqrt(lam)
    F = -1 / (s[:, :, None] * s[:, None, :] * (s[:, :, None] + s[:, None, :]))
    sym = 0.5 * (dW + np.swapaxes(dW, 1, 2)).astype(float)
    want = Q @ (F * (np.swapaxes(Q, 1, 2) @ sym @ Q)) @ np.swapaxes(Q, 1, 2)
    np.testing.assert_allclose(out, want, rtol=tol * 10, atol=tol * 10)
