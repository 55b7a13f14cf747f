"""Whitening batch norm (P2.4), backward: against the Sylvester reference,
finite differences (every method, groups, fused ReLU, repeated eigenvalues,
Newton at T = 30) and a Hypothesis property."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import nnkit as nk
from nnkit import whitening as wh
from nnkit.gradcheck import gradcheck

from _whitening_ref import latent_batch, data, ref_forward, ref_groups, ref_zca_backward

@pytest.mark.parametrize("g", [None, 2, 5])
def test_zca_backward_matches_sylvester_reference(g):
    Y, gm, bt, G = data(25, 6, seed=6)
    _, cache = nk.whitening_forward(Y, gm, bt, 1e-3, "zca", g)
    r = nk.whitening_backward(G, cache)
    dY, dgamma, dbeta, dcov = ref_zca_backward(Y, gm, bt, 1e-3, G, g)
    np.testing.assert_allclose(r.dY, dY, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(r.dgamma, dgamma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.dbeta, dbeta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.dcov, dcov, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(r.dYhat, G * gm, rtol=1e-15)
    np.testing.assert_allclose(r.dcov, r.dcov.T, atol=1e-14)


@pytest.mark.parametrize("method", wh.METHODS)
@pytest.mark.parametrize("g", [None, 4])
@pytest.mark.parametrize("relu", [False, True])
def test_gradcheck_functional(method, g, relu):
    Y, gm, bt, _ = data(9, 5, seed=7)
    fwd = nk.whitening_relu_forward if relu else nk.whitening_forward
    bwd = nk.whitening_relu_backward if relu else nk.whitening_backward

    def f(Y, gamma, beta):
        return fwd(Y, gamma, beta, 1e-3, method, g, iterations=6)

    report = gradcheck(f, bwd, dict(Y=Y, gamma=gm, beta=bt))
    assert report.passed, report.table()


def _equal_eigen_data(B, M, seed=0):
    """Yc with orthogonal columns of equal norm: Σ_Y = I exactly repeated."""
    rng = np.random.default_rng(seed)
    A = np.column_stack([np.ones(B), rng.standard_normal((B, M))])
    Q = np.linalg.qr(A)[0][:, 1:]
    return np.sqrt(B) * Q + rng.standard_normal(M)


@pytest.mark.parametrize("method", ["zca", "newton", "cholesky"])
def test_gradcheck_repeated_eigenvalues(method):
    Y = _equal_eigen_data(10, 4)
    _, cache = nk.whitening_forward(Y, np.ones(4), np.zeros(4), 1e-5, method)
    lam = np.linalg.eigvalsh(cache.cov)
    assert np.ptp(lam) < 1e-14                   # all four eigenvalues equal
    rng = np.random.default_rng(1)
    gm, bt = 1 + 0.3 * rng.standard_normal(4), 0.2 * rng.standard_normal(4)

    def f(Y, gamma, beta):
        return nk.whitening_forward(Y, gamma, beta, 1e-5, method)

    report = gradcheck(f, nk.whitening_backward, dict(Y=Y, gamma=gm, beta=bt))
    assert report.passed, report.table()
    if method == "zca":
        G = rng.standard_normal(Y.shape)
        r = nk.whitening_backward(G, cache)
        ref = ref_zca_backward(Y, gm * 0 + 1, bt * 0, 1e-5, G)
        np.testing.assert_allclose(r.dY, ref[0], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(r.dcov, ref[3], rtol=1e-9, atol=1e-10)


def test_newton_gradcheck_at_30_iterations():
    Y = latent_batch(B=40, M=5, seed=3)
    rng = np.random.default_rng(4)
    gm, bt = 1 + 0.3 * rng.standard_normal(5), 0.2 * rng.standard_normal(5)

    def f(Y, gamma, beta):
        return nk.whitening_forward(Y, gamma, beta, 1e-3, "newton", iterations=30)

    report = gradcheck(f, nk.whitening_backward, dict(Y=Y, gamma=gm, beta=bt))
    assert report.passed, report.table()


# ---------------------------------------------------------------- hypothesis
@given(B=st.integers(2, 12), M=st.integers(1, 6), g=st.integers(0, 6),
       seed=st.integers(0, 2**16))
def test_property_forward_and_backward_match_reference(B, M, g, seed):
    g = min(g, M) or None
    eps = 1e-2                  # keeps Σ + εI well conditioned for any B ≤ M
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((B, M)) @ rng.standard_normal((M, M)) + rng.standard_normal(M)
    gm, bt = rng.standard_normal(M), rng.standard_normal(M)
    dZ = rng.standard_normal((B, M))
    out, cache = nk.whitening_forward(Y, gm, bt, eps, "zca", g)
    ref, _ = ref_forward(Y, gm, bt, eps, "zca", g)
    np.testing.assert_allclose(out, ref, rtol=1e-8, atol=1e-9)
    # per group: Cov(Ŷ) = Σ_Y (Σ_Y + εI)⁻¹, mean 0
    Yc = Y - Y.mean(axis=0)
    for c, k in ref_groups(M, g):
        SY = Yc[:, c:c + k].T @ Yc[:, c:c + k] / B
        Yh = cache.yhat[:, c:c + k]
        np.testing.assert_allclose(Yh.T @ Yh / B, SY @ np.linalg.inv(SY + eps * np.eye(k)),
                                   atol=1e-9)
    r = nk.whitening_backward(dZ, cache)
    dY, dgamma, dbeta, dcov = ref_zca_backward(Y, gm, bt, eps, dZ, g)
    scale = max(1.0, np.abs(dY).max())
    np.testing.assert_allclose(r.dY, dY, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(r.dcov, dcov, rtol=0, atol=1e-8 * max(1.0, np.abs(dcov).max()))
    np.testing.assert_allclose(r.dgamma, dgamma, atol=1e-9 * max(1.0, np.abs(dgamma).max()))


# ------------------------------------------- issue 8: Z exactly 0 at the ReLU
@pytest.mark.parametrize("method,g,const", [("cholesky", None, 0), ("zca", 2, 4),
                                            ("newton", 2, 4)])
def test_fused_relu_equals_composition_with_a_dead_unit(method, g, const):
    """A constant feature with β = 0 gives Z = 0 exactly (Cholesky's first
    feature, or a group of one feature): the fused mask [Z > 0] must be 0
    there, as relu_backward's is; a mask [Z >= 0] passes dH and makes dβ of
    that feature Σ dH instead of 0."""
    Y, gm, bt, G = data(24, 5, seed=15)
    Y[:, const] = 1.75
    bt[const] = 0.0
    H, fc = nk.whitening_relu_forward(Y, gm, bt, 1e-3, method, g)
    Z, bc = nk.whitening_forward(Y, gm, bt, 1e-3, method, g)
    np.testing.assert_array_equal(Z[:, const], 0)          # the case under test
    H2, rc = nk.relu_forward(Z)
    np.testing.assert_array_equal(H, H2)
    dZ = nk.relu_backward(G, rc)
    gf = nk.whitening_relu_backward(G, fc)
    gu = nk.whitening_backward(dZ, bc)
    np.testing.assert_array_equal(gf.dZ, dZ)
    assert gf.dbeta[const] == 0 and gf.dgamma[const] == 0
    for name in ("dY", "dgamma", "dbeta", "dmean", "dcov", "dYhat"):
        a, u = getattr(gf, name), getattr(gu, name)
        np.testing.assert_allclose(a, u, rtol=0, atol=1e-12 * max(1.0, np.abs(u).max()),
                                   err_msg=name)
