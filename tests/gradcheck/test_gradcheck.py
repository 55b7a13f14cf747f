"""nk.gradcheck and nk.numeric_gradient on user-written pairs, right and wrong."""
import json
from typing import NamedTuple

import numpy as np
import pytest

import nnkit as nk
from nnkit.gradcheck import compare, upstream_gradient


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


# ------------------------------------------------ issue 8.3: the upstream G
def test_upstream_gradient_is_salted_not_the_users_stream():
    shape = (8, 3)
    G = upstream_gradient(shape, 0)
    for seed in (0, 1, 42):
        user = np.random.default_rng(seed).standard_normal(shape)
        assert not np.allclose(G, user)
    np.testing.assert_array_equal(G, upstream_gradient(shape, 0))
    assert abs(G.std() - 1) < 0.5 and G.dtype == np.float64


def _bn_dY_off_by_0p1_percent(dZ, cache):
    """A batch-norm backward whose dY is 0.1 % too large (a planted bug)."""
    g = nk.batchnorm_backward(dZ, cache)
    return g._replace(dY=g.dY * 1.001)


def _seed0_bn_inputs(B=8, M=3):
    # the inputs a user writes first: seed 0, γ = 1, β = 0
    Y = np.random.default_rng(0).standard_normal((B, M))
    return dict(Y=Y, gamma=np.ones(M), beta=np.zeros(M))


def test_bn_backward_0p1_percent_wrong_is_caught_with_seed0_inputs():
    inputs = _seed0_bn_inputs()
    rep = nk.gradcheck(nk.batchnorm_forward, _bn_dY_off_by_0p1_percent, inputs)
    assert not rep.passed and not rep["Y"].passed
    assert rep["gamma"].passed and rep["beta"].passed
    assert rep["Y"].max_rel_err == pytest.approx(0.001 / 2.001, rel=1e-3)
    assert not rep["Y"].vacuous
    # the right backward passes, and nothing is vacuous
    ok = nk.gradcheck(nk.batchnorm_forward, nk.batchnorm_backward, inputs, strict=True)
    assert ok.passed and ok.vacuous == [], ok.table()


def test_upstream_equal_to_the_input_is_flagged_vacuous():
    """The old G (default_rng(0), the same numbers as Y) makes dY ~ 0: the
    planted bug slips through the verdict, but the check says it was vacuous
    and strict mode fails it."""
    inputs = _seed0_bn_inputs()
    old_G = np.random.default_rng(0).standard_normal(inputs["Y"].shape)
    np.testing.assert_array_equal(old_G, inputs["Y"])
    rep = nk.gradcheck(nk.batchnorm_forward, _bn_dY_off_by_0p1_percent, inputs,
                       upstream=old_G)
    c = rep["Y"]
    assert c.allclose and c.vacuous and rep.vacuous == ["Y"]
    assert rep.passed                                  # not strict: reported only
    assert np.max(np.abs(c.analytic)) < 1e-4 < 1e-3 * c.scale    # dY ~ 0 up to ε
    assert "VACUOUS" in rep.table() and c.verdict == "VACUOUS"
    assert json.loads(rep.to_json())["tensors"][0]["vacuous"] is True
    strict = nk.gradcheck(nk.batchnorm_forward, _bn_dY_off_by_0p1_percent, inputs,
                          upstream=old_G, strict=True)
    assert not strict.passed and strict["Y"].verdict == "FAIL"
    assert strict["gamma"].passed                      # γ's check was not vacuous
    with pytest.raises(ValueError, match=r"^upstream: expected the output's shape \(8, 3\), "
                                         r"got \(3, 8\)"):
        nk.gradcheck(nk.batchnorm_forward, nk.batchnorm_backward, inputs, upstream=old_G.T)


def test_independent_tensor_is_not_vacuous():
    """A tensor the output does not depend on has gradient exactly 0 and a
    zero scale: nothing is wrong with G, so it is not flagged."""
    def fwd(x, unused):
        return 2.0 * x, None

    def bwd(dy, cache):
        return dict(dx=2.0 * dy, dunused=np.zeros(3))

    rep = nk.gradcheck(fwd, bwd, dict(x=np.ones(4), unused=np.ones(3)), strict=True)
    assert rep.passed and rep["unused"].scale == 0 and not rep["unused"].vacuous


# ------------------------------------------------ issue 8.4: kinks
def _relu_backward_wrong_at_zero(dH, cache):
    """ReLU backward with slope 1.5 at Y = 0: not a subgradient (it must lie in [0, 1])."""
    dY = nk.relu_backward(dH, cache)
    Y = cache_input[0]
    return np.where(Y == 0, 1.5 * dH, dY)


cache_input = []


def _relu_inputs():
    Y = np.random.default_rng(7).standard_normal((4, 3))
    Y[1, 2] = 0.0                        # exactly on the kink
    Y[3, 0] = 0.0
    return Y


def test_relu_at_zero_passes_as_kink():
    Y = _relu_inputs()
    rep = nk.gradcheck(nk.relu_forward, nk.relu_backward, {"Y": Y})
    c = rep["Y"]
    assert rep.passed and c.verdict == "KINK"
    assert [k.index for k in c.kinks] == [(1, 2), (3, 0)]
    G = upstream_gradient(Y.shape, 0)
    for k in c.kinks:
        # the one-sided slopes of L = Σ G ⊙ relu(Y): 0 on the left, G on the right
        assert k.left == pytest.approx(0.0, abs=1e-9)
        assert k.right == pytest.approx(G[k.index], rel=1e-6)
        assert k.analytic == 0.0 and k.ok
        # the central difference averages them: G/2, which the old check failed
        assert c.numeric[k.index] == pytest.approx(G[k.index] / 2, rel=1e-6)
    # the smooth elements were compared as usual
    assert c.max_rel_err < 1e-6 and c.worst_index not in [(1, 2), (3, 0)]
    table = rep.table()
    assert "KINK at (1, 2)" in table and "KINK at (3, 0)" in table
    assert f"{c.kinks[0].right:+.6e}" in table
    d = c.to_dict()
    assert d["verdict"] == "KINK" and d["kinks"][0]["index"] == [1, 2]


def test_wrong_subgradient_at_the_kink_fails():
    Y = _relu_inputs()
    cache_input[:] = [Y]
    rep = nk.gradcheck(nk.relu_forward, _relu_backward_wrong_at_zero, {"Y": Y})
    c = rep["Y"]
    assert not rep.passed and c.verdict == "FAIL"
    assert {k.index for k in c.kinks} == {(1, 2), (3, 0)}
    assert not any(k.ok for k in c.kinks)
    assert "OUTSIDE" in rep.table()


def test_a_smooth_wrong_gradient_is_not_excused_as_a_kink():
    """x² at a stationary point: one-sided slopes ∓h differ, but the gap
    shrinks with the step (curvature), so a wrong analytic value still fails."""
    x = np.array([0.0, 1.0, -2.0])
    rep = nk.gradcheck(square_forward, lambda dy, x: 2 * dy * x + 1e-3, {"x": x})
    assert not rep.passed and rep["x"].kinks == []


def test_round_off_noise_is_not_excused_as_a_kink():
    """A noisy forward makes the one-sided slopes disagree too, but they move
    when the step shrinks (a kink's do not): a wrong gradient still fails."""
    noise = np.random.default_rng(11)

    def noisy_forward(x):
        return 2.0 * x + 1e-7 * noise.standard_normal(x.shape), None

    rep = nk.gradcheck(noisy_forward, lambda dy, c: 2.2 * dy, {"x": np.ones(6)})
    assert not rep.passed and rep["x"].kinks == []


# ------------------------------------------ issue 24: non-tensor arguments
def leaky_forward(x, alpha):
    """y = max(x, alpha·x): alpha is a hyperparameter, not a tensor."""
    return np.where(x > 0, x, alpha * x), (x, alpha)


def leaky_backward(dy, cache):
    x, alpha = cache
    return {"dx": np.where(x > 0, dy, alpha * dy)}


@pytest.fixture
def leaky_x():
    # away from the kink at 0, so the check is plain central differences
    x = np.random.default_rng(5).standard_normal((4, 3))
    return x + np.sign(x) * 0.1


def test_a_float_hyperparameter_in_inputs_points_to_kwargs(leaky_x):
    """Was "inputs['alpha']: expected a float numpy array to differentiate, got
    float 0.1": right, but not what to do instead."""
    with pytest.raises(TypeError, match=r"^inputs\['alpha'\]: expected a float numpy array to "
                                        r"differentiate, got float 0\.1; .*kwargs=\{'alpha': "
                                        r"\.\.\.\}.*wrt="):
        nk.gradcheck(leaky_forward, leaky_backward, dict(x=leaky_x, alpha=0.1))
    # the way it says: passes, and alpha reaches forward unchanged
    rep = nk.gradcheck(leaky_forward, leaky_backward, dict(x=leaky_x), kwargs=dict(alpha=0.1))
    assert rep.passed and [c.name for c in rep.checks] == ["x"]
    # the other way it says: alpha stays in inputs, out of wrt
    assert nk.gradcheck(leaky_forward, leaky_backward, dict(x=leaky_x, alpha=0.1),
                        wrt=["x"]).passed
    # and the check is real: the wrong alpha in backward fails
    wrong = lambda dy, c: leaky_backward(dy, (c[0], 0.2))
    assert not nk.gradcheck(leaky_forward, wrong, dict(x=leaky_x), kwargs=dict(alpha=0.1)).passed


def test_integer_labels_in_inputs_point_to_kwargs_or_wrt():
    z = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(TypeError, match=r"^inputs\['labels'\]: expected a float numpy array to "
                                        r"differentiate, got ndarray int64; .*kwargs="):
        nk.gradcheck(nk.softmax_cross_entropy, lambda d, c: None,
                     dict(logits=z, labels=np.array([0, 1, 3])))


def test_kwargs_and_inputs_must_be_mappings_and_disjoint(leaky_x):
    with pytest.raises(TypeError, match=r"^kwargs: expected a mapping .*got float 0\.1"):
        nk.gradcheck(leaky_forward, leaky_backward, dict(x=leaky_x), kwargs=0.1)
    with pytest.raises(TypeError, match=r"^inputs: expected a mapping name -> array .*got tuple"):
        nk.gradcheck(leaky_forward, leaky_backward, (leaky_x, 0.1))
    with pytest.raises(ValueError, match=r"^kwargs: \['x'\] also in inputs"):
        nk.gradcheck(leaky_forward, leaky_backward, dict(x=leaky_x), kwargs=dict(x=1, alpha=0.1))


def test_jacobian_check_names_kwargs_too(leaky_x):
    from nnkit.gradcheck import jacobian_check
    with pytest.raises(TypeError, match=r"^inputs\['alpha'\]: .*kwargs="):
        jacobian_check(leaky_forward, leaky_backward, dict(x=leaky_x, alpha=0.1), "alpha")
    chk = jacobian_check(leaky_forward, leaky_backward, dict(x=leaky_x[:2]), "x",
                         kwargs=dict(alpha=0.1))
    assert chk.allclose


def test_step_h_says_finite():
    with pytest.raises(ValueError, match=r"^h: expected a finite number > 0, got inf$"):
        nk.gradcheck(square_forward, lambda dy, x: 2 * dy * x, {"x": np.ones(3)}, h=np.inf)


def test_tolerances_refuse_dtypes_the_kernels_lack():
    from nnkit.gradcheck import tolerances
    assert tolerances("float32") == {"atol": 1e-4, "rtol": 2e-3}
    assert tolerances(np.float64) == {"atol": 1e-7, "rtol": 1e-5}
    with pytest.raises(ValueError, match=r"dtype: expected float32 or float64, got float16"):
        tolerances(np.float16)
    with pytest.raises(TypeError, match=r"dtype: .*'half-precision'"):
        tolerances("half-precision")
