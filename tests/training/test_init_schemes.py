"""nnkit.init: sample moments against the variances of PyTorch's nn.init
formulas (written out here), gains and fans against torch, the library
generator, Linear(init=...), bad input.

Statistical tolerance: each check allows 5 standard errors of the estimator
(for n iid zero-mean draws of variance σ², mean(x²) has SE σ²·√(2/n) for a
normal and σ²·√(0.8/n) for a uniform; the mean has SE σ/√n). A correct
initializer fails one such check with probability ~6e-7; the draws are seeded,
so the outcome is fixed anyway. A wrong gain or fan (√2 or a factor 2 in σ²)
is hundreds of standard errors away at these sizes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import init

Z = 5.0   # standard errors allowed

# (shape, fan_in, fan_out) in PyTorch's (out, in[, kh, kw]) convention
SHAPES = [((300, 200), 200, 300), ((64, 32, 3, 3), 32 * 9, 64 * 9), ((50, 20, 5), 100, 250)]


def expected(name: str, fan_in: int, fan_out: int, **kw) -> tuple[float, str]:
    """(σ², distribution) from PyTorch's nn.init documentation."""
    gain = kw.get("gain", 1.0)
    if name == "lecun_normal":
        return 1.0 / fan_in, "normal"
    if name == "xavier_normal":
        return gain ** 2 * 2.0 / (fan_in + fan_out), "normal"
    if name == "xavier_uniform":
        a = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return a * a / 3.0, "uniform"
    fan = fan_in if kw.get("mode", "fan_in") == "fan_in" else fan_out
    g2 = {"relu": 2.0, "tanh": 25.0 / 9.0, "linear": 1.0}[kw.get("nonlinearity", "relu")]
    if name == "he_normal":
        return g2 / fan, "normal"
    if name == "he_uniform":
        bound = math.sqrt(3.0) * math.sqrt(g2) / math.sqrt(fan)
        return bound * bound / 3.0, "uniform"
    raise AssertionError(name)


CASES = [
    ("lecun_normal", {}),
    ("xavier_normal", {}), ("xavier_normal", {"gain": 5.0 / 3.0}),
    ("xavier_uniform", {}), ("xavier_uniform", {"gain": math.sqrt(2.0)}),
    ("he_normal", {}), ("he_normal", {"mode": "fan_out"}),
    ("he_normal", {"nonlinearity": "tanh"}), ("he_normal", {"nonlinearity": "linear"}),
    ("he_uniform", {}), ("he_uniform", {"mode": "fan_out", "nonlinearity": "tanh"}),
]


@pytest.mark.parametrize("shape,fan_in,fan_out", SHAPES, ids=[str(s[0]) for s in SHAPES])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{'-'.join(map(str, k.values()))}"
                                                for n, k in CASES])
def test_variance_within_five_standard_errors(name, kw, shape, fan_in, fan_out):
    W = getattr(init, name)(shape, np.random.default_rng(123), **kw)
    assert W.shape == shape and W.dtype == np.float64
    var, dist = expected(name, fan_in, fan_out, **kw)
    n = W.size
    ms = float(np.mean(W * W))
    se = var * math.sqrt((2.0 if dist == "normal" else 0.8) / n)
    assert abs(ms - var) <= Z * se, f"mean(W²) {ms:.4g} vs σ² {var:.4g} (SE {se:.2g})"
    assert abs(W.mean()) <= Z * math.sqrt(var / n)
    if dist == "uniform":
        bound = math.sqrt(3.0 * var)
        assert np.abs(W).max() <= bound
        assert np.abs(W).max() >= bound * (1 - 50.0 / n)   # the range is used up to its ends


def test_torch_draws_have_the_same_variance():
    """torch.nn.init's own draws, same shapes: their mean(W²) is within 5 SE of
    the variance our formula uses (so the formulas above are torch's)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    fns = {"xavier_normal": torch.nn.init.xavier_normal_,
           "xavier_uniform": torch.nn.init.xavier_uniform_,
           "he_normal": lambda w, **k: torch.nn.init.kaiming_normal_(w, **k),
           "he_uniform": lambda w, **k: torch.nn.init.kaiming_uniform_(w, **k)}
    for shape, fi, fo in SHAPES:
        for name, kw in CASES:
            if name not in fns:
                continue
            w = torch.empty(shape, dtype=torch.float64)
            fns[name](w, **kw)
            var, dist = expected(name, fi, fo, **kw)
            se = var * math.sqrt((2.0 if dist == "normal" else 0.8) / w.numel())
            assert abs(float((w * w).mean()) - var) <= Z * se, (name, kw, shape)


def test_gain_and_fans_match_torch():
    torch = pytest.importorskip("torch")
    for nl in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh", "relu", "selu"):
        assert init.calculate_gain(nl) == pytest.approx(torch.nn.init.calculate_gain(nl),
                                                        rel=1e-15)
    for slope in (None, 0.2):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-15)
    for shape, fi, fo in SHAPES:
        assert init.fans(shape) == (fi, fo)
        assert init.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(
            torch.empty(shape))


def test_library_generator_and_explicit_rng():
    nk.seed(4)
    a = init.he_normal((8, 5))
    b = init.he_normal((8, 5))
    nk.seed(4)
    np.testing.assert_array_equal(init.he_normal((8, 5)), a)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(init.xavier_uniform((3, 4), np.random.default_rng(1)),
                                  init.xavier_uniform((3, 4), np.random.default_rng(1)))


def test_constant_and_dtype():
    c = init.constant((2, 3), value=0.5, dtype=np.float32)
    assert c.dtype == np.float32 and np.all(c == 0.5)
    assert init.zeros(4).shape == (4,) and not init.zeros(4).any()
    assert init.he_uniform((4, 3), dtype=np.float32).dtype == np.float32


def test_linear_default_is_unchanged_lecun_normal(dtype):
    lin = nk.Linear(7, 5, seed=9, dtype=dtype)
    W = np.random.default_rng(9).standard_normal((5, 7)) / np.sqrt(7)
    np.testing.assert_array_equal(lin.params["W"], W.astype(dtype))


def test_linear_takes_a_name_or_a_callable():
    lin = nk.Linear(400, 300, init="he_normal", seed=2)
    np.testing.assert_array_equal(lin.params["W"],
                                  init.he_normal((300, 400), np.random.default_rng(2)))
    var = float(np.mean(lin.params["W"] ** 2))
    assert abs(var - 2 / 400) <= Z * (2 / 400) * math.sqrt(2 / lin.params["W"].size)
    calls = []

    def mine(shape, rng):
        calls.append(shape)
        return np.full(shape, 0.25)
    lin2 = nk.Linear(3, 2, init=mine, dtype=np.float32)
    assert calls == [(2, 3)] and lin2.params["W"].dtype == np.float32
    assert np.all(lin2.params["W"] == 0.25) and not lin2.params["b"].any()
    wn = nk.Linear(6, 4, init="xavier_uniform", seed=3, weight_norm=True)
    np.testing.assert_allclose(np.linalg.norm(wn.params["u"], axis=1), wn.params["gamma"])


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: init.he_normal((5,)), ValueError, "shape: expected at least 2 dimensions"),
    (lambda: init.he_normal((5, 0)), ValueError, "shape[1]: expected a positive integer"),
    (lambda: init.he_normal("5x3"), TypeError, "shape: expected a tuple of ints"),
    (lambda: init.he_normal((5, 3.0)), TypeError, "shape[1]:"),
    (lambda: init.he_normal((5, 3), mode="fan_avg"), ValueError, "mode: expected one of"),
    (lambda: init.he_normal((5, 3), nonlinearity="gelu"), ValueError, "nonlinearity:"),
    (lambda: init.xavier_normal((5, 3), gain=0), ValueError, "gain:"),
    (lambda: init.xavier_normal((5, 3), gain="2"), TypeError, "gain:"),
    (lambda: init.lecun_normal((5, 3), rng=7), TypeError, "rng: expected a numpy.random.Generator"),
    (lambda: init.lecun_normal((5, 3), dtype=np.int32), TypeError, "dtype:"),
    (lambda: init.constant((2, 2), value=float("inf")), ValueError, "value:"),
    (lambda: init.calculate_gain("leaky_relu", "x"), TypeError, "param:"),
    (lambda: nk.Linear(3, 2, init="glorot"), ValueError, "init: expected one of"),
    (lambda: nk.Linear(3, 2, init=3), TypeError, "init: expected one of"),
    (lambda: nk.Linear(3, 2, init=lambda s, r: np.zeros((3, 2))), ValueError,
     "init: expected the initializer to return shape (2, 3)"),
    (lambda: nk.Linear(3, 2, init=lambda s, r: np.full(s, "a")), TypeError,
     "init: expected the initializer to return real numbers"),
])
def test_bad_input(call, exc, msg):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(msg), str(info.value)
