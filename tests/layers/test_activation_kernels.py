"""The activation and loss kernels (pyx/activations.pyx through nnkit.activations):
every forward and backward against NumPy references written here from the
formulas and against central differences, float32 and float64, odd sizes and
sizes above the threading threshold (the same results on 1 and 2 threads),
non-contiguous input, special values, out=, and bad input."""
import math

import numpy as np
import pytest
from scipy import special

import nnkit as nk

PARALLEL_MIN = 65536            # pyx/_common.pxd PARALLEL_MIN_ELEMENTS
BLOCK = 4096                    # pyx/activations.pyx BLOCK
# odd sizes: one value, under and over one block, and over the threading threshold
SIZES = [1, 7, BLOCK - 1, BLOCK + 1, PARALLEL_MIN + 3 * BLOCK + 5]
DTYPES = [np.float64, np.float32]
K = math.sqrt(2 / math.pi)
C = 0.044715


# ------------------------------------------------ references (float64, from the formulas)
def ref_gelu(x):
    return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))


def ref_dgelu(x):
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + special.erf(x / math.sqrt(2))) + x * pdf


def ref_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(K * (x + C * x ** 3)))


def ref_dgelu_tanh(x):
    t = np.tanh(K * (x + C * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * C * x * x)


def ref_sigmoid(x):
    # e^{-|x|} never overflows; the two branches are the same function
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


# name: (forward(X) -> (H, cache), backward(dH, cache), f, f')
ACTS = {
    "tanh": (nk.tanh_forward, nk.tanh_backward, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "sigmoid": (nk.sigmoid_forward, nk.sigmoid_backward, ref_sigmoid,
                lambda x: ref_sigmoid(x) * (1 - ref_sigmoid(x))),
    "leaky_relu": (lambda X, **kw: nk.leaky_relu_forward(X, 0.2, **kw), nk.leaky_relu_backward,
                   lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2)),
    "leaky_relu_neg": (lambda X, **kw: nk.leaky_relu_forward(X, -1.5, **kw),
                       nk.leaky_relu_backward, lambda x: np.where(x > 0, x, -1.5 * x),
                       lambda x: np.where(x > 0, 1.0, -1.5)),
    "gelu": (nk.gelu_forward, nk.gelu_backward, ref_gelu, ref_dgelu),
    "gelu_tanh": (lambda X, **kw: nk.gelu_forward(X, "tanh", **kw), nk.gelu_backward,
                  ref_gelu_tanh, ref_dgelu_tanh),
}


def tol(dtype, backward=False, name=""):
    """float64: the kernels' tanh/exp are within a few ulp of libm's; float32:
    computed in double and rounded once (half an ulp, 6e-8 relative).
    backward: tanh's and sigmoid's derivatives are taken from the forward's
    output (1 - H^2, S (1 - S)), which cancel where |H| -> 1 or S -> 1: an ulp
    of H becomes an absolute error of a few ulp of 1 times |dH| (torch does the same).
    GELU's tanh form: the same cancellation in 1 - t^2, times x (1 + 3 * 0.044715 x^2)
    (up to ~20 where t is not yet +-1) and |dH| (up to ~4 here)."""
    if dtype == np.float64:
        if backward and name == "gelu_tanh":
            return dict(rtol=1e-13, atol=2e-13)
        return dict(rtol=1e-13, atol=1e-14 if backward else 1e-15)
    return dict(rtol=1e-6, atol=1e-6 if backward else 1e-7)


def draw(n, dtype, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(dtype)


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACTS))
def test_activation_against_numpy(name, dtype, n):
    fwd, bwd, f, df = ACTS[name]
    X = draw(n, dtype, seed=n)
    dH = draw(n, dtype, seed=n + 1, scale=1.0)
    H, cache = fwd(X)
    dX = bwd(dH, cache)
    x = X.astype(np.float64)
    assert H.dtype == dtype and dX.dtype == dtype and H.shape == X.shape
    np.testing.assert_allclose(H, f(x), **tol(dtype))
    np.testing.assert_allclose(dX, dH.astype(np.float64) * df(x), **tol(dtype, True, name))


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_central_differences(name):
    """float64 analytic against central differences (h = 1e-6); float32's
    analytic against the same float64 numbers within float32 rounding."""
    fwd, bwd, _, _ = ACTS[name]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 5, 7)) * 3
    X[np.abs(X) < 1e-2] = 0.5            # away from leaky ReLU's kink at 0
    dH = rng.standard_normal(X.shape)
    num = np.zeros_like(X)
    h = 1e-6
    for i in np.ndindex(X.shape):
        xp, xm = X.copy(), X.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = np.sum(dH * (fwd(xp)[0] - fwd(xm)[0])) / (2 * h)
    dX = bwd(dH, fwd(X)[1])
    np.testing.assert_allclose(dX, num, rtol=1e-6, atol=1e-8)     # central differences, h = 1e-6
    X32, dH32 = X.astype(np.float32), dH.astype(np.float32)
    dX32 = bwd(dH32, fwd(X32)[1])
    np.testing.assert_allclose(dX32, num, rtol=1e-5, atol=1e-5)   # float32 vs float64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACTS))
def test_activation_same_on_one_and_two_threads(name, dtype, monkeypatch):
    fwd, bwd, _, _ = ACTS[name]
    X = draw((PARALLEL_MIN // 64 + 3, 64 + 1), dtype, seed=11)
    dH = draw(X.shape, dtype, seed=12, scale=1.0)
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("NNKIT_NUM_THREADS", threads)
        H, cache = fwd(X)
        results.append((H, bwd(dH, cache)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACTS))
def test_activation_non_contiguous_input(name, dtype):
    fwd, bwd, f, df = ACTS[name]
    base = draw((9, 14), dtype, seed=3)
    X = base[:, ::2].T                   # strided and transposed: (7, 9)
    dH = draw((14, 9), dtype, seed=4)[::2]
    assert not X.flags.c_contiguous and not dH.flags.c_contiguous
    H, cache = fwd(X)
    dX = bwd(dH, cache)
    x = X.astype(np.float64)
    np.testing.assert_allclose(H, f(x), **tol(dtype))
    np.testing.assert_allclose(dX, dH.astype(np.float64) * df(x), **tol(dtype, True, name))
    np.testing.assert_array_equal(base[:, ::2].T, X)     # the input is never written


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(dtype):
    X = np.array([-1e4, -50.0, -0.0, 0.0, 50.0, 1e4, np.nan], dtype)
    H, _ = nk.tanh_forward(X)
    np.testing.assert_array_equal(H[[0, 1, 4, 5]], [-1, -1, 1, 1])
    S, _ = nk.sigmoid_forward(X)
    assert S[0] == 0 and S[5] == 1 and S[2] == 0.5 and S[4] == 1
    assert 0 < S[1] < 1e-21            # e^-50, not flushed to 0
    G, _ = nk.gelu_forward(X)
    np.testing.assert_array_equal(G[[0, 2, 3, 5]], [0, 0, 0, 1e4])
    Gt, _ = nk.gelu_forward(X, "tanh")
    np.testing.assert_array_equal(Gt[[1, 3, 4]], [0, 0, 50])
    L, _ = nk.leaky_relu_forward(X, 0.1)
    np.testing.assert_allclose(L[:6], [-1e3, -5.0, 0, 0, 50, 1e4], rtol=1e-7)
    for fwd in (nk.tanh_forward, nk.sigmoid_forward, nk.gelu_forward, nk.leaky_relu_forward,
                lambda x: nk.gelu_forward(x, "tanh")):
        assert np.isnan(fwd(X)[0][6])   # NaN propagates (torch does the same)


def test_gelu_lower_tail_and_bce_terms_over_the_whole_range():
    """The kernels' erfc (GELU's Phi) and log1p (BCE) over their whole range:
    Phi(x) = erfc(-x/sqrt 2)/2 keeps full relative accuracy in the lower tail
    (down to where x Phi(x) underflows), each BCE term from logits of any size."""
    x = -np.linspace(0.5, 37.5, 2001)
    H, _ = nk.gelu_forward(x)
    ref = x * 0.5 * special.erfc(-x / math.sqrt(2))
    ok = np.abs(ref) > 1e-290           # the subnormal tail: an absolute check below
    np.testing.assert_allclose(H[ok], ref[ok], rtol=1e-12)   # erfc within ~12 ulp; x/sqrt 2 rounds
    np.testing.assert_allclose(H[~ok], ref[~ok], rtol=0, atol=1e-300)
    X = np.linspace(-700, 700, 14001)
    T = np.full_like(X, 0.25)
    for i in range(0, X.size, 1000):     # one logit per loss: each term on its own
        terms_ref = max(X[i], 0) - X[i] * 0.25 + math.log1p(math.exp(-abs(X[i])))
        loss, _ = nk.bcewithlogits_loss(X[i:i + 1], T[i:i + 1])
        assert loss == pytest.approx(terms_ref, rel=1e-14, abs=1e-300)
    x = np.linspace(-20, 20, 4001)
    loss, _ = nk.bcewithlogits_loss(x, np.zeros_like(x))      # sum of log1p(e^x) terms
    assert loss == pytest.approx(np.mean(np.logaddexp(0, x)), rel=1e-14)


def test_out_receives_the_result():
    X = draw((4, 6), np.float64)
    out = np.empty_like(X)
    H, cache = nk.gelu_forward(X, out=out)
    assert H is out
    np.testing.assert_allclose(out, ref_gelu(X), rtol=1e-13, atol=1e-15)
    dout = np.empty_like(X)
    assert nk.gelu_backward(np.ones_like(X), cache, out=dout) is dout
    np.testing.assert_allclose(dout, ref_dgelu(X), rtol=1e-13, atol=1e-15)


def test_empty_and_zero_dim_input():
    H, c = nk.tanh_forward(np.zeros((0, 3)))
    assert H.shape == (0, 3) and nk.tanh_backward(np.zeros((0, 3)), c).shape == (0, 3)
    H, _ = nk.sigmoid_forward(np.array(0.0))
    assert H.shape == () and H == 0.5


# ------------------------------------------------------------------ losses
def ref_mse(P, T):
    d = P.astype(np.float64) - T.astype(np.float64)
    return np.mean(d * d), 2 * d / d.size


def ref_bce(X, T):
    x, t = X.astype(np.float64), T.astype(np.float64)
    terms = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return np.mean(terms), (ref_sigmoid(x) - t) / x.size


LOSSES = {"mse": (nk.mse_loss, nk.mse_loss_backward, ref_mse),
          "bce": (nk.bcewithlogits_loss, nk.bcewithlogits_loss_backward, ref_bce)}


def loss_inputs(kind, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    P = (rng.standard_normal(n) * 4).astype(dtype)
    T = (rng.random(n) if kind == "bce" else rng.standard_normal(n)).astype(dtype)
    return P, T


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LOSSES))
def test_loss_against_numpy(kind, dtype, n):
    fn, bwd, ref = LOSSES[kind]
    P, T = loss_inputs(kind, n, dtype, seed=n)
    loss, cache = fn(P, T)
    dP = bwd(0.75, cache)
    L, dL = ref(P, T)
    assert isinstance(loss, float) and dP.dtype == dtype
    if dtype == np.float64:
        assert loss == pytest.approx(L, rel=1e-13)
        # BCE's sigma(x) - t cancels where sigma(x) ~ t: an ulp of 1, times 0.75/n
        np.testing.assert_allclose(dP, 0.75 * dL, rtol=1e-13, atol=1e-15 * 0.75 / n)
    else:
        # MSE: P - T is rounded to float32 (the cached difference); BCE: every
        # term in double (exp to 3e-11 relative), the sum in double
        assert loss == pytest.approx(L, rel=3e-7 if kind == "mse" else 1e-9)
        np.testing.assert_allclose(dP, 0.75 * dL, rtol=1e-6, atol=1e-30)


def test_float32_loss_is_summed_in_double():
    """Over 2^20 terms a float32 running sum drifts by ~1e-4 relative; the
    kernel's sum matches the float64 reference of the same float32 inputs."""
    X, T = loss_inputs("bce", 1 << 20, np.float32, seed=5)
    X += np.float32(3.0)                     # every term of one sign and size
    loss, _ = nk.bcewithlogits_loss(X, T)
    assert loss == pytest.approx(ref_bce(X, T)[0], rel=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LOSSES))
def test_loss_same_on_any_thread_count(kind, dtype, monkeypatch):
    """The loss is summed in fixed blocks, each block's sum on one thread,
    the blocks added in order: the same bits on 1, 2 and 3 threads."""
    fn, bwd, _ = LOSSES[kind]
    P, T = loss_inputs(kind, (PARALLEL_MIN + 5 * BLOCK + 17), dtype, seed=9)
    got = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NNKIT_NUM_THREADS", threads)
        loss, cache = fn(P, T)
        got.append((loss, bwd(1.0, cache)))
    assert got[0][0] == got[1][0] == got[2][0]
    np.testing.assert_array_equal(got[0][1], got[1][1])
    np.testing.assert_array_equal(got[0][1], got[2][1])


@pytest.mark.parametrize("kind", list(LOSSES))
def test_loss_central_differences(kind):
    fn, bwd, _ = LOSSES[kind]
    P, T = loss_inputs(kind, 15, np.float64, seed=2)
    P, T = P.reshape(3, 5), T.reshape(3, 5)
    dP = bwd(1.3, fn(P, T)[1])
    num = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        a, b = P.copy(), P.copy()
        a[i] += 1e-6
        b[i] -= 1e-6
        num[i] = 1.3 * (fn(a, T)[0] - fn(b, T)[0]) / 2e-6
    np.testing.assert_allclose(dP, num, rtol=1e-6, atol=1e-9)     # central differences
    P32 = P.astype(np.float32)
    dP32 = bwd(1.3, fn(P32, T.astype(np.float32))[1])
    np.testing.assert_allclose(dP32, num, rtol=1e-5, atol=1e-6)   # float32 vs float64


@pytest.mark.parametrize("kind", list(LOSSES))
def test_loss_non_contiguous_input(kind):
    fn, bwd, ref = LOSSES[kind]
    P, T = loss_inputs(kind, 8 * 12, np.float64, seed=4)
    P, T = P.reshape(8, 12)[:, ::3], T.reshape(12, 8).T[:, ::3]
    assert not P.flags.c_contiguous and not T.flags.c_contiguous
    loss, cache = fn(P, T)
    L, dL = ref(P, T)
    assert loss == pytest.approx(L, rel=1e-13)
    np.testing.assert_allclose(bwd(1.0, cache), dL, rtol=1e-13)


def test_bce_extreme_logits():
    X = np.array([-800.0, 800.0, -40.0, 40.0, 0.0])
    T = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    loss, cache = nk.bcewithlogits_loss(X, T)
    # terms: 800, 800, log1p(e^-40), log1p(e^-40), log 2
    expect = (1600 + 2 * math.log1p(math.exp(-40)) + math.log(2)) / 5
    assert loss == pytest.approx(expect, rel=1e-15)
    # (sigma(x) - t)/5: sigma(40) rounds to 1 in double, so its term is 0 (as torch's);
    # sigma(-40) = e^-40/(1 + e^-40) keeps its full relative accuracy
    np.testing.assert_allclose(nk.bcewithlogits_loss_backward(1.0, cache),
                               [-0.2, 0.2, math.exp(-40) / (1 + math.exp(-40)) / 5, 0, 0],
                               rtol=1e-14, atol=0)


# ------------------------------------------------------------------ bad input
def test_bad_input_is_refused_before_any_kernel():
    X = np.zeros((2, 3))
    for fwd in (nk.tanh_forward, nk.sigmoid_forward, nk.leaky_relu_forward, nk.gelu_forward):
        with pytest.raises(TypeError, match=r"^X: expected dtype float32 or float64, got int64"):
            fwd(np.zeros((2, 3), np.int64))
        with pytest.raises(TypeError, match=r"^X: expected dtype float32 or float64, got float16"):
            fwd(np.zeros(3, np.float16))
        with pytest.raises(TypeError, match=r"^out: expected dtype float64, got float32"):
            fwd(X, out=np.zeros((2, 3), np.float32))
        with pytest.raises(ValueError, match=r"^out: expected shape \(2, 3\), got \(3, 2\)"):
            fwd(X, out=np.zeros((3, 2)))
    _, c = nk.tanh_forward(X)
    with pytest.raises(ValueError, match=r"^dH: expected shape \(2, 3\)"):
        nk.tanh_backward(np.zeros((3, 2)), c)
    with pytest.raises(TypeError, match=r"^dH: expected dtype float64"):
        nk.tanh_backward(np.zeros((2, 3), np.float32), c)
    _, c = nk.gelu_forward(X)
    with pytest.raises(ValueError, match=r"^dH: expected a 2-D array"):
        nk.gelu_backward(np.zeros(6), c)
    with pytest.raises(ValueError, match=r"^approximate: "):
        nk.gelu_forward(X, "erf")
    with pytest.raises(TypeError, match=r"^negative_slope: "):
        nk.leaky_relu_forward(X, None)
    with pytest.raises(ValueError, match=r"^target: expected shape \(2, 3\)"):
        nk.mse_loss(X, np.zeros((3, 2)))
    with pytest.raises(TypeError, match=r"^target: expected dtype float64"):
        nk.bcewithlogits_loss(X, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"^pred: expected a non-empty array"):
        nk.mse_loss(np.zeros(0), np.zeros(0))
    with pytest.raises(TypeError, match=r"^logits: expected dtype float32 or float64, got int"):
        nk.bcewithlogits_loss(np.zeros(3, np.int32), np.zeros(3))
    _, c = nk.mse_loss(X, X)
    with pytest.raises(TypeError, match=r"^dloss: "):
        nk.mse_loss_backward("1", c)
    with pytest.raises(TypeError, match=r"^out: expected dtype float64"):
        nk.mse_loss_backward(1.0, c, out=np.zeros((2, 3), np.float32))
