"""Whitening batch norm (P2.4), forward: Cov(Ŷ), the methods, Newton–Schulz
convergence and stability (issue 8.2), groups, the rank-deficient case."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk
from nnkit import whitening as wh

from _whitening_ref import latent_batch, data, offdiag, ref_forward

@pytest.mark.parametrize("eps", [1e-1, 1e-3, 1e-6])
def test_zca_cov_of_yhat_is_sigma_y_times_inverse(eps):
    Y, gm, bt, _ = data(40, 6)
    _, cache = nk.whitening_forward(Y, gm, bt, eps)
    Yc = Y - Y.mean(axis=0)
    SY = Yc.T @ Yc / len(Y)
    pred = SY @ np.linalg.inv(SY + eps * np.eye(6))
    C = cache.yhat.T @ cache.yhat / len(Y)
    np.testing.assert_allclose(C, pred, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cache.yhat.mean(axis=0), 0, atol=1e-13)
    if eps == 1e-6:                             # → I as ε → 0 (B > M, full rank)
        np.testing.assert_allclose(C, np.eye(6), atol=1e-5)


@pytest.mark.parametrize("method", ["zca", "pca", "cholesky"])
def test_methods_whiten(method):
    Y, gm, bt, _ = data(50, 7, seed=1)
    Yc = Y - Y.mean(axis=0)
    assert offdiag(np.corrcoef(Yc.T)) > 0.3      # the input is strongly correlated
    _, cache = nk.whitening_forward(Y, gm, bt, 1e-9, method)
    C = cache.yhat.T @ cache.yhat / len(Y)
    np.testing.assert_allclose(C, np.eye(7), atol=1e-7)


def test_newton_converges_to_zca():
    Y, gm, bt, _ = data(60, 5, seed=2, mix=0.3)
    zca = nk.whitening_forward(Y, gm, bt, 1e-5)[1].yhat
    errs = [np.abs(nk.whitening_forward(Y, gm, bt, 1e-5, "newton", iterations=T)[1].yhat
                   - zca).max() for T in (1, 2, 4, 6, 8)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-12, errs
    # the coupled iteration is stable past convergence: more steps never hurt
    for T in (30, 100):
        late = nk.whitening_forward(Y, gm, bt, 1e-5, "newton", iterations=T)[1].yhat
        assert np.abs(late - zca).max() < 1e-12


@pytest.mark.parametrize("method", wh.METHODS)
@pytest.mark.parametrize("g", [None, 3, 4])
@pytest.mark.parametrize("relu", [False, True])
def test_forward_matches_reference(method, g, relu):
    Y, gm, bt, _ = data(20, 7, seed=3)
    fwd = nk.whitening_relu_forward if relu else nk.whitening_forward
    out, cache = fwd(Y, gm, bt, 1e-3, method, g, iterations=7)
    ref, ref_yh = ref_forward(Y, gm, bt, 1e-3, method, g, T=7, relu=relu)
    np.testing.assert_allclose(cache.yhat, ref_yh, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-11)


def test_group_whitening_last_group_smaller():
    Y, gm, bt, _ = data(30, 7, seed=4)
    _, cache = nk.whitening_forward(Y, gm, bt, 1e-3, group_size=3)
    assert [b.shape for b in cache.cov_blocks] == [(3, 3), (3, 3), (1, 1)]
    C = cache.cov
    mask = np.zeros((7, 7), bool)
    for c, k in ((0, 3), (3, 3), (6, 1)):
        mask[c:c + k, c:c + k] = True
    assert np.all(C[~mask] == 0)
    Yc = Y - Y.mean(axis=0)
    np.testing.assert_allclose(C[mask], (Yc.T @ Yc / 30 + 1e-3 * np.eye(7))[mask], rtol=1e-12)
    Cy = cache.yhat.T @ cache.yhat / 30
    # each group whitened, correlations between groups remain
    for c, k in ((0, 3), (3, 3), (6, 1)):
        assert offdiag(Cy[c:c + k, c:c + k]) < 1e-2 if k > 1 else True
    assert offdiag(Cy) > 0.05


def test_small_batch_rank_deficient_reports_condition():
    Y, gm, bt, _ = data(4, 8, seed=5)              # B ≤ M: rank(Σ_Y) ≤ 3
    out, cache = nk.whitening_forward(Y, gm, bt, 1e-5)
    assert np.all(np.isfinite(out))
    lam = np.linalg.eigvalsh(cache.cov)
    assert cache.cond == pytest.approx(lam[-1] / lam[0], rel=1e-6)
    assert cache.cond > 1e4                       # ~ λ_max / ε
    assert len(cache.conds) == 1
    g = nk.whitening_backward(np.ones_like(Y), cache)
    assert all(np.all(np.isfinite(a)) for a in g if a is not None)


# ------------------------------------------------- issue 8.2: Newton stability
def test_newton_more_iterations_never_hurt():
    """The uncoupled iteration went 6e-4 (T=10), 1e139 (T=20), NaN (T=40) here."""
    Y = latent_batch()
    M = Y.shape[1]
    errs = {}
    for T in (5, 10, 30, 100):
        _, cache = nk.whitening_forward(Y, np.ones(M), np.zeros(M), 1e-5, "newton",
                                        iterations=T)
        assert np.all(np.isfinite(cache.yhat)), T
        C = cache.yhat.T @ cache.yhat / len(Y)
        errs[T] = np.abs(C - np.eye(M)).max()
    # converging, then flat: past convergence the error stays at rounding level
    assert errs[10] < errs[5]
    assert errs[30] < 1e-3 and errs[100] <= max(2 * errs[30], 1e-10), errs
