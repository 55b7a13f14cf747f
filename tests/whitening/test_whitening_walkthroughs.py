"""The whitening walkthroughs: every node checked by finite differences."""
from __future__ import annotations

import numpy as np
import pytest

from nnkit.trace import Trace, registry

@pytest.mark.parametrize("name", ["whitening-zca", "whitening-newton"])
def test_walkthrough_every_node_float64(name):
    w = registry()[name]
    for cfg in w.check_configs():
        report = Trace(w, **cfg).check_all()
        assert report.passed, report.table()


@pytest.mark.parametrize("method", ["cholesky", "pca"])
def test_walkthrough_other_methods(method):
    # PCA only on full-rank Σ with distinct eigenvalues: its gradient has
    # 1/(λ_j − λ_i) and is undefined at ties (the rank-deficient configs tie at ε)
    for cfg in (dict(B=3, N=2, M=2), dict(B=6, N=4, M=4, seed=1),
                dict(B=9, N=4, M=7, group_size=3, seed=2)):
        report = Trace("whitening-zca", method=method, **cfg).check_all()
        assert report.passed, report.table()


def test_walkthrough_views_and_insights():
    t = Trace("whitening-zca", B=8, N=5, M=5, spectrum="repeated")
    views = t.views("Sigma")
    lam = views["eigenvalues of Σ"]
    np.testing.assert_allclose(lam, np.array([1, 1, 1, 4, 4]) + 1e-5, rtol=1e-10)
    assert views["Cov(Y)"].shape == (5, 5)
    C = t.views("Yhat")["Cov(Ŷ)"]
    np.testing.assert_allclose(C, np.eye(5), atol=1e-4)
    assert any("condition number" in line for line in t.insights("Sigma"))
    assert any("off-diagonal" in line for line in t.insights("Yhat"))
