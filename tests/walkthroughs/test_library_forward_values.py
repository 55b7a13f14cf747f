"""A walkthrough shows the library's own forward values (the kernels'
outputs), so what the screen shows is what a user's code computes; its node
functions stay the textbook formulas (finite differences re-evaluate them)."""
import numpy as np
import pytest

import nnkit as nk
from nnkit import trace


@pytest.mark.parametrize("B", range(2, 301))
def test_eps_zero_demo_is_nan_at_every_batch_size(B):
    """P2.1: ε = 0 and a constant feature: v = 0 and Ŷ = 0/0 = NaN, as
    nk.batchnorm_forward gives on the same Y (NumPy's mean of the constant
    column is off by an ulp at some B, e.g. 7, which would show Ŷ = ±1)."""
    t = trace.Trace("bn-relu", B=B, N=2, M=3, eps=0.0, constant_feature=True)
    Z, cache = nk.batchnorm_forward(t.value("Y"), t.value("gamma"), t.value("beta"), 0.0)
    assert t.value("v")[0] == 0.0 == cache.var[0]
    assert np.isnan(t.value("Yhat")[:, 0]).all()
    assert np.isnan(Z[:, 0]).all()
    assert np.isfinite(t.value("Yhat")[:, 1:]).all()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_library_values_agree_with_the_formulas(fused, dtype):
    """Away from the edge the kernels' values are the node functions' to rounding."""
    t = trace.Trace("bn-relu", B=9, N=4, M=6, fused=fused, dtype=dtype, seed=3)
    vals = {k: np.asarray(t.values[k]) for k in t.values}
    for n in t.nodes:
        if n.is_leaf:
            continue
        formula = np.asarray(n.fn(*(vals[p] for p in n.parents)), np.float64)
        tol = 1e-12 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(np.asarray(vals[n.key], np.float64), formula,
                                   rtol=tol, atol=tol, err_msg=n.key)
        assert np.asarray(vals[n.key]).dtype == np.dtype(dtype) or n.key == "L"
