"""nk.optim.functional: each step against a NumPy transcription written here
from P5 and the torch.optim docs (both dtypes, over several steps), the
classes giving the very same bits as the functions they call, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk
from nnkit.optim import functional as F

STEPS = 12
# float64: the kernel evaluates the same formula in another order (fused, one
# rounding per stored value): a few ulps per step -> 1e-12 over 12 steps.
# float32: θ and the state are stored in float32 every step, the reference
# keeps float64: float32 rounding accumulated and amplified by Adam's m/√v.
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def ref_step(kind, theta, g, state, t, hp):
    """One update in float64: the new θ; `state` (a dict of arrays) updated."""
    wd = hp.get("weight_decay", 0.0)
    g = g + wd * theta
    if kind == "sgd":
        mu = hp.get("momentum", 0.0)
        if mu == 0:
            return theta - hp["lr"] * g
        state["buf"] = mu * state["buf"] + g
        d = g + mu * state["buf"] if hp.get("nesterov") else state["buf"]
        return theta - hp["lr"] * d
    if kind == "momentum":               # v = αv + εg, Δθ = −v
        state["v"] = hp.get("momentum", 0.9) * state["v"] + hp["lr"] * g
        return theta - state["v"]
    if kind == "running_average":        # v = βv + (1−β)g, Δθ = −δv [/(1 − β^t)]
        b = hp.get("beta", 0.9)
        state["v"] = b * state["v"] + (1 - b) * g
        corr = 1 - b ** t if hp.get("bias_correction") else 1.0
        return theta - hp["lr"] * state["v"] / corr
    if kind == "adam":
        b1, b2 = hp.get("betas", (0.9, 0.999))
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        mhat, vhat = state["m"] / (1 - b1 ** t), state["v"] / (1 - b2 ** t)
        return theta - hp["lr"] * mhat / (np.sqrt(vhat) + hp.get("eps", 1e-8))
    if kind == "adagrad":
        state["sum"] = state["sum"] + g * g
        clr = hp["lr"] / (1 + (t - 1) * hp.get("lr_decay", 0.0))
        return theta - clr * g / (np.sqrt(state["sum"]) + hp.get("eps", 1e-10))
    raise AssertionError(kind)


STATES = {"sgd": ("buf",), "momentum": ("v",), "running_average": ("v",),
          "adam": ("m", "v"), "adagrad": ("sum",)}
WITH_STEP = ("running_average", "adam", "adagrad")


def call(kind, theta, g, state, t, hp):
    """The functional step with the state in its positional order."""
    args = [state[k] for k in STATES[kind]]
    if kind == "sgd" and hp.get("momentum", 0.0) == 0:
        args = []
    if kind in WITH_STEP:
        args.append(t)
    getattr(F, kind)(theta, g, *args, **hp)


CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, weight_decay=0.05)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("momentum", dict(lr=0.05, momentum=0.9)),
    ("momentum", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("running_average", dict(lr=0.3, beta=0.9)),
    ("running_average", dict(lr=0.3, beta=0.95, bias_correction=True)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1)),
    ("adagrad", dict(lr=0.1)),
    ("adagrad", dict(lr=0.1, eps=1e-6, weight_decay=0.1, lr_decay=0.01)),
]
IDS = [f"{k}-{i}" for i, (k, _) in enumerate(CASES)]


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("kind,hp", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_matches_numpy_transcription(kind, hp, dtype):
    rng = np.random.default_rng(7)
    theta = rng.standard_normal((6, 5)).astype(dtype)
    state = {k: np.zeros_like(theta) for k in STATES[kind]}
    want = theta.astype(np.float64)
    want_state = {k: np.zeros(theta.shape) for k in STATES[kind]}
    for t in range(1, STEPS + 1):
        g = rng.standard_normal(theta.shape).astype(dtype)
        call(kind, theta, g, state, t, hp)
        want = ref_step(kind, want, g.astype(np.float64), want_state, t, hp)
        assert theta.dtype == dtype
        assert _rel(theta, want) <= TOL[np.dtype(dtype)], f"θ at step {t}"
        for k in STATES[kind]:
            if kind == "sgd" and hp.get("momentum", 0.0) == 0:
                continue
            assert _rel(state[k], want_state[k]) <= TOL[np.dtype(dtype)], f"{k} at step {t}"


CLASSES = {"sgd": (nk.optim.SGD, {}), "momentum": (nk.optim.Momentum, {}),
           "running_average": (nk.optim.RunningAverage, {}), "adam": (nk.optim.Adam, {}),
           "adagrad": (nk.optim.AdaGrad, {})}
CLASS_STATE = {"sgd": ("buf",), "momentum": ("v",), "running_average": ("v",),
               "adam": ("m", "v"), "adagrad": ("sum",)}


@pytest.mark.parametrize("kind,hp", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [(7, 3), (300, 250)], ids=["small", "threaded"])
def test_class_gives_the_functional_bits(kind, hp, dtype, size):
    """One implementation: the optimizer class steps exactly as the function
    (same θ and state bits), on small arrays and on arrays the kernel splits
    over threads."""
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(size).astype(dtype)
    p, g = theta.copy(), np.zeros_like(theta)
    opt = CLASSES[kind][0]([(p, g)], **hp)
    state = {k: np.zeros_like(theta) for k in STATES[kind]}
    for t in range(1, 6):
        g[...] = rng.standard_normal(size).astype(dtype)
        call(kind, theta, g, state, t, hp)
        opt.step()
        assert np.array_equal(p.view(np.uint8), theta.view(np.uint8)), f"θ at step {t}"
        for k in CLASS_STATE[kind]:
            if k in opt.state["0"]:
                assert np.array_equal(opt.state["0"][k].view(np.uint8),
                                      state[k].view(np.uint8)), f"{k} at step {t}"


def test_updates_in_place_and_returns_nothing():
    theta = np.ones(4)
    m, v = np.zeros(4), np.zeros(4)
    ids = id(theta), id(m), id(v)
    assert F.adam(theta, np.full(4, 0.5), m, v, 1, lr=0.1) is None
    assert (id(theta), id(m), id(v)) == ids
    np.testing.assert_allclose(theta, 0.9)           # the first Adam step moves by lr
    assert np.all(m > 0) and np.all(v > 0)


def test_a_non_contiguous_gradient_is_read_not_written():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((6, 8))
    g = G[:, ::2]                                    # (6, 4), strided
    before = G.copy()
    theta, buf = np.zeros((6, 4)), np.zeros((6, 4))
    F.sgd(theta, g, buf, lr=0.5, momentum=0.9)
    np.testing.assert_array_equal(theta, -0.5 * g)
    np.testing.assert_array_equal(G, before)


def test_sgd_without_momentum_leaves_buf_alone():
    theta, buf = np.ones(3), np.full(3, 7.0)
    F.sgd(theta, np.ones(3), buf, lr=0.25)
    np.testing.assert_array_equal(theta, 0.75)
    np.testing.assert_array_equal(buf, 7.0)


def test_adagrad_accumulator_starts_where_given():
    """torch's initial_accumulator_value is what `sum` holds before step 1."""
    theta, S = np.zeros(2), np.full(2, 0.5)
    F.adagrad(theta, np.array([1.0, -2.0]), S, 1, lr=0.1, eps=0.0)
    np.testing.assert_allclose(S, [1.5, 4.5], rtol=1e-15)
    np.testing.assert_allclose(theta, -0.1 * np.array([1.0, -2.0]) / np.sqrt([1.5, 4.5]),
                               rtol=1e-15)


def _p():
    return np.zeros((3, 2))


BAD = [
    (lambda: F.sgd([1.0, 2.0], np.ones(2), lr=0.1), TypeError, "param: expected a float32"),
    (lambda: F.sgd(np.zeros(3, np.int64), np.ones(3), lr=0.1), TypeError, "param"),
    (lambda: F.sgd(_p(), np.ones((3, 2), np.float32), lr=0.1), TypeError,
     "grad: expected a numpy array of dtype float64"),
    (lambda: F.sgd(_p(), np.ones((2, 3)), lr=0.1), ValueError, r"grad: expected shape \(3, 2\)"),
    (lambda: F.sgd(np.zeros((4, 4))[:, ::2], np.ones((4, 2)), lr=0.1), ValueError,
     "param: expected a writeable C-contiguous"),
    (lambda: F.sgd(_p(), np.ones((3, 2)), lr=0.1, momentum=0.9), TypeError,
     "buf: expected the momentum buffer"),
    (lambda: F.sgd(_p(), np.ones((3, 2)), lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda: F.sgd(_p(), np.ones((3, 2)), lr=-1.0), ValueError, "lr: expected"),
    (lambda: F.sgd(_p(), np.ones((3, 2)), lr="0.1"), TypeError, "lr: expected"),
    (lambda: F.momentum(_p(), np.ones((3, 2)), np.zeros(6), lr=0.1), ValueError,
     r"v: expected shape \(3, 2\)"),
    (lambda: F.momentum(_p(), np.ones((3, 2)), None, lr=0.1), TypeError, "v: expected a state"),
    (lambda: F.running_average(_p(), np.ones((3, 2)), np.zeros((3, 2)), lr=0.1,
                               bias_correction=True), TypeError, "step: expected t"),
    (lambda: F.running_average(_p(), np.ones((3, 2)), np.zeros((3, 2)), 1, lr=0.1, beta=1.0),
     ValueError, "beta"),
    (lambda: F.adam(_p(), np.ones((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), 0, lr=0.1),
     ValueError, "step: expected an integer >= 1"),
    (lambda: F.adam(_p(), np.ones((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), 1.0, lr=0.1),
     TypeError, "step"),
    (lambda: F.adam(_p(), np.ones((3, 2)), np.zeros((3, 2), np.float32), np.zeros((3, 2)), 1,
                    lr=0.1), TypeError, "m: expected a numpy array of dtype float64"),
    (lambda: F.adam(_p(), np.ones((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), 1, lr=0.1,
                    betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (lambda: F.adagrad(_p(), np.ones((3, 2)), np.zeros((3, 2)), 1, lr=0.1, lr_decay=-1),
     ValueError, "lr_decay"),
]


@pytest.mark.parametrize("make,exc,msg", BAD, ids=range(len(BAD)))
def test_bad_input_is_refused_with_a_clear_message(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make()


def test_shared_memory_is_refused():
    """The kernel reads and writes through restrict pointers: no two of θ, g
    and the state may overlap."""
    theta = np.zeros(4)
    with pytest.raises(ValueError, match="grad: shares memory with param"):
        F.sgd(theta, theta, lr=0.1)
    m = np.zeros(4)
    with pytest.raises(ValueError, match="v: shares memory with m"):
        F.adam(theta, np.ones(4), m, m, 1, lr=0.1)
    buf = np.zeros(8)
    with pytest.raises(ValueError, match="buf: shares memory with param"):
        F.sgd(buf[:4], np.ones(4), buf[2:6], lr=0.1, momentum=0.9)
    S = np.zeros(4)
    S.flags.writeable = False
    with pytest.raises(ValueError, match="sum: expected a writeable"):
        F.adagrad(theta, np.ones(4), S, 1, lr=0.1)


def test_functional_is_reachable_from_nk_optim():
    assert nk.optim.functional is F
    assert set(F.__all__) == {"sgd", "momentum", "running_average", "adam", "adagrad",
                              "adamw", "rmsprop"}
