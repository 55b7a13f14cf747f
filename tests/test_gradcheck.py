"""nk.gradcheck and nk.numeric_gradient on user-written pairs, right and wrong."""
import json
from typing import NamedTuple

import numpy as np
import pytest

import nnkit as nk
from nnkit.gradcheck import compare


# ---------------------------------------------------------- a user's layer
class TanhGrads(NamedTuple):
    dx: np.ndarray
    dw: np.ndarray


def tanh_forward(x, w):
    """y = tanh(x * w), w broadcast over rows."""
    y = np.tanh(x * w)
    return y, (x, w, y)


def tanh_backward(dy, cache):
    x, w, y = cache
    dpre = dy * (1.0 - y * y)
    return TanhGrads(dx=dpre * w, dw=(dpre * x).sum(axis=0))


def square_forward(x):
    return x * x, x


def square_backward_missing_factor_2(dy, x):
    return dy * x                     # wrong: d(x²)/dx = 2x


def tanh_backward_one_wrong_entry(dy, cache):
    g = tanh_backward(dy, cache)
    dx = g.dx.copy()
    dx[2, 1] += 0.5                    # a bug in exactly one element
    return TanhGrads(dx, g.dw)


@pytest.fixture
def tanh_inputs():
    rng = np.random.default_rng(3)
    return dict(x=rng.standard_normal((5, 3)), w=rng.standard_normal(3))


def test_gradcheck_passes_on_correct_user_pair(tanh_inputs):
    rep = nk.gradcheck(tanh_forward, tanh_backward, tanh_inputs)
    assert rep.passed
    assert [c.name for c in rep.checks] == ["x", "w"]
    for c in rep.checks:
        assert c.checked == c.total == int(np.prod(tanh_inputs[c.name].shape))
        # float64 analytic vs central differences with h = 1e-6: ~1e-8 or better
        assert c.max_rel_err < 1e-6
    assert rep["w"].shape == (3,)
    # the report serializes
    d = json.loads(rep.to_json())
    assert d["passed"] is True and {t["name"] for t in d["tensors"]} == {"x", "w"}
    assert "PASS" in rep.table() and "FAIL" not in rep.table()


def test_gradcheck_catches_missing_factor_2():
    x = np.random.default_rng(4).standard_normal((4, 3))
    rep = nk.gradcheck(square_forward, square_backward_missing_factor_2, {"x": x})
    assert not rep.passed
    c = rep["x"]
    assert not c.passed
    # |a − n|/(|a| + |n|) with a = n/2 is 1/3 for every element
    assert c.max_rel_err == pytest.approx(1 / 3, rel=1e-5)
    assert len(c.worst_index) == 2
    assert c.analytic_at_worst == pytest.approx(0.5 * c.numeric_at_worst, rel=1e-6)
    assert "FAIL" in rep.table()
    assert json.loads(rep.to_json())["passed"] is False


def test_gradcheck_reports_the_worst_index(tanh_inputs):
    rep = nk.gradcheck(tanh_forward, tanh_backward_one_wrong_entry, tanh_inputs)
    assert not rep.passed
    assert not rep["x"].passed and rep["w"].passed
    c = rep["x"]
    assert c.worst_index == (2, 1)
    assert c.analytic_at_worst - c.numeric_at_worst == pytest.approx(0.5, abs=1e-6)
    assert c.to_dict()["worst_index"] == [2, 1]


def test_gradcheck_on_nnkit_pairs_float64_and_float32():
    rng = np.random.default_rng(5)
    B, N, M = 4, 3, 5
    for dtype in (np.float64, np.float32):
        aff = nk.gradcheck(nk.affine_forward, nk.affine_backward,
                           dict(X=rng.standard_normal((B, N)).astype(dtype),
                                W=rng.standard_normal((M, N)).astype(dtype),
                                b=rng.standard_normal(M).astype(dtype)))
        assert aff.passed, aff.table()
        bnr = nk.gradcheck(nk.batchnorm_forward, nk.batchnorm_backward,
                           dict(Y=rng.standard_normal((B, M)).astype(dtype),
                                gamma=rng.standard_normal(M).astype(dtype),
                                beta=rng.standard_normal(M).astype(dtype)),
                           kwargs=dict(eps=1e-3))
        assert bnr.passed, bnr.table()


def test_gradcheck_wrt_sampling_and_errors(tanh_inputs):
    rep = nk.gradcheck(tanh_forward, tanh_backward, tanh_inputs, wrt=["x"], max_elements=4)
    assert [c.name for c in rep.checks] == ["x"]
    assert rep["x"].checked == 4 and rep["x"].total == 15 and rep.passed
    assert np.sum(~np.isnan(rep["x"].numeric)) == 4
    with pytest.raises(ValueError, match=r"^wrt: 'z' is not one of the inputs"):
        nk.gradcheck(tanh_forward, tanh_backward, tanh_inputs, wrt=["z"])
    with pytest.raises(ValueError, match=r"^backward: found no gradient for input 'w'"):
        nk.gradcheck(tanh_forward, lambda dy, c: {"dx": tanh_backward(dy, c).dx}, tanh_inputs)


def test_gradcheck_accepts_mapping_and_tuple_gradients(tanh_inputs):
    as_map = lambda dy, c: dict(zip(("dx", "dw"), tanh_backward(dy, c)))
    as_tuple = lambda dy, c: tuple(tanh_backward(dy, c))
    assert nk.gradcheck(tanh_forward, as_map, tanh_inputs).passed
    assert nk.gradcheck(tanh_forward, as_tuple, tanh_inputs).passed


def test_numeric_gradient_against_closed_form():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4))
    a = rng.standard_normal((3, 4))
    x0 = x.copy()

    def f():
        return float(np.sum(a * np.sin(x)) + 0.5 * np.sum(x ** 3))

    g = nk.numeric_gradient(f, x)
    # central differences, h = 1e-6: truncation ~h²|f'''| and round-off
    # ~1e-16|f|/h leave ~1e-9 absolute
    np.testing.assert_allclose(g, a * np.cos(x) + 1.5 * x ** 2, rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(x, x0)           # restored after every element
    # a subset of indices: the rest is NaN
    g2 = nk.numeric_gradient(f, x, indices=[0, 5])
    assert np.isfinite(g2.reshape(-1)[[0, 5]]).all() and np.isnan(g2).sum() == 10
    with pytest.raises(TypeError, match=r"^x: expected float64"):
        nk.numeric_gradient(f, x.astype(np.float32))


def test_compare_flags_nonfinite_and_verdict():
    a = np.array([1.0, 2.0, np.nan])
    n = np.array([1.0, 2.0, 3.0])
    c = compare("t", a, n, atol=1e-7, rtol=1e-5)
    assert not c.passed and c.worst_index == (2,)
    ok = compare("t", np.array([1.0, 2.0]), np.array([1.0 + 1e-9, 2.0]), atol=1e-7, rtol=1e-5)
    assert ok.passed
    bad = compare("t", np.array([1.0, 2.0]), np.array([1.0, 2.001]), atol=1e-7, rtol=1e-5)
    assert not bad.passed and bad.worst_index == (1,)
    with pytest.raises(ValueError, match=r"^t: analytic gradient has shape"):
        compare("t", np.zeros(2), np.zeros(3), atol=1e-7, rtol=1e-5)
