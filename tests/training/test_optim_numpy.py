"""nnkit.optim against NumPy transcriptions of each update, written here from
the formulas (P5 and the torch.optim docs), over 20 steps, both dtypes; state,
zero_grad, schedules and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import optim

STEPS = 20
# float64: the kernel computes the same formula in a different order (fused, one
# rounding per stored value): a few ulps per step over 20 steps -> 1e-12.
# float32: the kernel stores θ and its state in float32 each step, the
# reference keeps float64: float32 rounding (6e-8) accumulated over 20 steps
# and amplified by Adam's m/√v -> 2e-5.
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def reference(kind: str, hp: dict):
    """A transcription of one optimizer: returns update(theta, g, state, t) in float64."""
    wd = hp.get("weight_decay", 0.0)

    def update(theta, g, s, t):
        g = g + wd * theta
        if kind == "sgd":
            mu = hp.get("momentum", 0.0)
            if mu == 0:
                return theta - hp["lr"] * g
            s["buf"] = mu * s.get("buf", 0.0) + g
            d = g + mu * s["buf"] if hp.get("nesterov") else s["buf"]
            return theta - hp["lr"] * d
        if kind == "momentum":          # v = αv + εg, Δθ = −v
            s["v"] = hp["momentum"] * s.get("v", 0.0) + hp["lr"] * g
            return theta - s["v"]
        if kind == "running":           # v = βv + (1−β)g, Δθ = −δv [/(1−β^t)]
            b = hp["beta"]
            s["v"] = b * s.get("v", 0.0) + (1 - b) * g
            corr = 1 - b ** t if hp.get("bias_correction") else 1.0
            return theta - hp["lr"] * s["v"] / corr
        if kind == "adam":
            b1, b2 = hp["betas"]
            s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
            s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
            mhat = s["m"] / (1 - b1 ** t)
            vhat = s["v"] / (1 - b2 ** t)
            return theta - hp["lr"] * mhat / (np.sqrt(vhat) + hp["eps"])
        if kind == "adagrad":
            s["S"] = s.get("S", hp.get("initial_accumulator_value", 0.0)) + g * g
            clr = hp["lr"] / (1 + (t - 1) * hp.get("lr_decay", 0.0))
            return theta - clr * g / (np.sqrt(s["S"]) + hp["eps"])
        raise AssertionError(kind)
    return update


CASES = [
    ("sgd", optim.SGD, dict(lr=0.1)),
    ("sgd", optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    ("sgd", optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("momentum", optim.Momentum, dict(lr=0.05, momentum=0.9)),
    ("momentum", optim.Momentum, dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("running", optim.RunningAverage, dict(lr=0.3, beta=0.9)),
    ("running", optim.RunningAverage, dict(lr=0.3, beta=0.95, bias_correction=True)),
    ("adam", optim.Adam, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    ("adam", optim.Adam, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1)),
    ("adagrad", optim.AdaGrad, dict(lr=0.1, eps=1e-10)),
    ("adagrad", optim.AdaGrad, dict(lr=0.1, eps=1e-6, weight_decay=0.1,
                                    initial_accumulator_value=0.5, lr_decay=0.01)),
]
IDS = [f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)]


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("kind,cls,hp", CASES, ids=IDS)
def test_update_matches_transcription_over_20_steps(kind, cls, hp, dtype):
    """A list of (param, grad) pairs of several shapes; gradients a fixed seeded
    sequence (no feedback, so the comparison isolates the update)."""
    rng = np.random.default_rng(7)
    shapes = [(4, 3), (5,), (2, 3, 2, 2), ()]
    thetas = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [np.zeros_like(t) for t in thetas]
    opt = cls(list(zip(thetas, grads)), **hp)
    ref_theta = [t.astype(np.float64) for t in thetas]
    ref_state = [{} for _ in thetas]
    upd = reference(kind, hp)
    for t in range(1, STEPS + 1):
        for i, g in enumerate(grads):
            g[...] = rng.standard_normal(g.shape) * (1 + i)
            ref_theta[i] = upd(ref_theta[i], g.astype(np.float64), ref_state[i], t)
        opt.step()
        for i in range(len(thetas)):
            assert thetas[i].dtype == dtype
            err = _rel(thetas[i], ref_theta[i])
            assert err <= TOL[dtype], f"step {t}, param {i}: rel err {err:.2e}"
    assert opt.t == STEPS


@pytest.mark.parametrize("kind,cls,hp", CASES[2::3], ids=IDS[2::3])
def test_model_parameters_updated_in_place_through_sequential(kind, cls, hp, dtype):
    """A Sequential's params (the layers' own arrays) trained by backward + step;
    each step compared with the transcription fed the same gradients."""
    rng = np.random.default_rng(3)
    net = nk.Sequential(nk.Linear(5, 7, dtype=dtype, seed=1), nk.ReLU(),
                        nk.Linear(7, 3, dtype=dtype, seed=2))
    crit = nk.SoftmaxCrossEntropy()
    X = rng.standard_normal((16, 5)).astype(dtype)
    y = rng.integers(0, 3, 16)
    W0 = net.layers[0].params["W"]
    W0_start = W0.copy()
    opt = cls(net, **hp)
    ref_theta = {k: p.astype(np.float64) for k, p in net.params.items()}
    ref_state = {k: {} for k in net.params}
    upd = reference(kind, hp)
    for t in range(1, STEPS + 1):
        crit(net(X), y)
        net.backward(crit.backward())
        for k, g in net.grads.items():
            ref_theta[k] = upd(ref_theta[k], g.astype(np.float64), ref_state[k], t)
        opt.step()
        for k, p in net.params.items():
            # float32: the gradients come from float32 parameters that drift from
            # the float64 reference, which the update does not see; 1e-4.
            tol = TOL[dtype] if dtype == np.float64 else 1e-4
            assert _rel(p, ref_theta[k]) <= tol, (t, k)
    assert net.layers[0].params["W"] is W0          # the same array, updated in place
    assert not np.allclose(W0, W0_start)               # and it moved


def test_state_shapes_and_names():
    net = nk.Sequential(nk.Linear(3, 4, seed=0), nk.ReLU(), nk.Linear(4, 2, seed=1))
    opt = optim.Adam(net)
    net.grads["0.W"][...] = 1.0
    opt.step()
    assert set(opt.state) == {"0.W", "0.b", "2.W", "2.b"}
    assert opt.state["0.W"]["m"].shape == (4, 3)
    # m after one step = (1 − β1)·g
    np.testing.assert_allclose(opt.state["0.W"]["m"], 0.1, rtol=1e-15)
    np.testing.assert_array_equal(opt.state["2.W"]["v"], 0.0)


def test_zero_grad_zeroes_every_gradient():
    lin = nk.Linear(3, 2, seed=0)
    lin.grads["W"][...] = 5.0
    lin.grads["b"][...] = 1.0
    optim.SGD(lin, lr=0.1).zero_grad()
    assert not lin.grads["W"].any() and not lin.grads["b"].any()


def test_a_layer_used_twice_is_updated_once():
    lin = nk.Linear(3, 3, seed=0)
    net = nk.Sequential(lin, nk.ReLU(), lin)
    W = lin.params["W"].copy()
    lin.grads["W"][...] = 1.0
    opt = optim.SGD(net, lr=0.5)
    assert len(opt.params) == 2
    opt.step()
    np.testing.assert_allclose(lin.params["W"], W - 0.5)


def test_zero_gradient_leaves_parameters_unchanged_with_adam():
    p, g = np.ones(5), np.zeros(5)
    opt = optim.Adam([(p, g)], lr=1.0, eps=1e-8)
    for _ in range(3):
        opt.step()
    np.testing.assert_array_equal(p, 1.0)


def test_large_arrays_use_the_threaded_path_correctly(dtype):
    """Above the kernels' parallel threshold (65536) the loop is split across the team."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal(200_003).astype(dtype)
    g = rng.standard_normal(p.shape).astype(dtype)
    p0 = p.astype(np.float64)
    optim.Adam([(p, g)], lr=0.1).step()
    # first Adam step: m̂ = g, v̂ = g², θ −= lr·g/(|g| + eps) = lr·sign(g) (up to eps)
    expected = p0 - 0.1 * g / (np.abs(g.astype(np.float64)) + 1e-8)
    assert _rel(p, expected) <= TOL[np.dtype(dtype)]


# ------------------------------------------------------------- schedules
def test_inverse_sqrt_and_step_lr_sequences():
    p, g = np.zeros(2), np.zeros(2)
    opt = optim.SGD([(p, g)], lr=0.8)
    sch = optim.InverseSqrt(opt)
    lrs = [opt.lr]
    for _ in range(5):
        opt.step()
        lrs.append(sch.step())
    np.testing.assert_allclose(lrs, [0.8 / math.sqrt(t) for t in range(1, 7)], rtol=1e-15)
    opt2 = optim.Adam([(p, g)], lr=1.0)
    st = optim.StepLR(opt2, step_size=3, gamma=0.5)
    seq = [opt2.lr] + [st.step() for _ in range(7)]
    assert seq == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_schedules_match_torch_lr_schedulers():
    torch = pytest.importorskip("torch")
    tp = torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=0.3)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=4, gamma=0.3)
    opt = optim.SGD([(np.zeros(2), np.zeros(2))], lr=0.3)
    sched = optim.StepLR(opt, step_size=4, gamma=0.3)
    topt2 = torch.optim.SGD([tp], lr=0.3)
    tinv = torch.optim.lr_scheduler.LambdaLR(topt2, lambda k: 1 / math.sqrt(k + 1))
    opt2 = optim.SGD([(np.zeros(2), np.zeros(2))], lr=0.3)
    inv = optim.InverseSqrt(opt2)
    for _ in range(12):
        topt.step(); tsched.step(); opt.step(); sched.step()
        topt2.step(); tinv.step(); opt2.step(); inv.step()
        assert opt.lr == pytest.approx(tsched.get_last_lr()[0], rel=1e-15)
        assert opt2.lr == pytest.approx(tinv.get_last_lr()[0], rel=1e-15)


# ------------------------------------------------------------- bad input
P = lambda: [(np.zeros(3), np.zeros(3))]   # noqa: E731


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: optim.SGD(P(), lr=-1.0), ValueError, "lr: expected a finite number >= 0, got -1.0"),
    (lambda: optim.SGD(P(), lr="0.1"), TypeError, "lr: expected a finite number"),
    (lambda: optim.SGD(P(), lr=float("nan")), ValueError, "lr:"),
    (lambda: optim.SGD(P(), lr=True), TypeError, "lr:"),
    (lambda: optim.SGD(P(), momentum=-0.5), ValueError, "momentum:"),
    (lambda: optim.SGD(P(), nesterov=True), ValueError, "nesterov: expected momentum > 0"),
    (lambda: optim.SGD(P(), momentum=0.9, nesterov=1), TypeError, "nesterov: expected True"),
    (lambda: optim.SGD(P(), weight_decay=-1e-4), ValueError, "weight_decay:"),
    (lambda: optim.Momentum(P(), momentum=None), TypeError, "momentum:"),
    (lambda: optim.RunningAverage(P(), beta=1.0), ValueError, "beta: expected a real number in [0.0, 1.0)"),
    (lambda: optim.RunningAverage(P(), bias_correction="yes"), TypeError, "bias_correction:"),
    (lambda: optim.Adam(P(), betas=0.9), TypeError, "betas: expected a pair"),
    (lambda: optim.Adam(P(), betas=(0.9, 1.0)), ValueError, "betas[1]:"),
    (lambda: optim.Adam(P(), betas=(-0.1, 0.9)), ValueError, "betas[0]:"),
    (lambda: optim.Adam(P(), eps=-1e-8), ValueError, "eps:"),
    (lambda: optim.AdaGrad(P(), initial_accumulator_value=-1), ValueError,
     "initial_accumulator_value:"),
    (lambda: optim.AdaGrad(P(), lr_decay="x"), TypeError, "lr_decay:"),
    (lambda: optim.SGD(42), TypeError, "params: expected a layer/model"),
    (lambda: optim.SGD([]), ValueError, "params: expected at least one"),
    (lambda: optim.SGD([np.zeros(3)]), TypeError, "params[0]: expected a (param, grad) pair"),
    (lambda: optim.SGD([(np.zeros(3, np.int64), np.zeros(3, np.int64))]), TypeError,
     "params['0']: expected a float32/float64"),
    (lambda: optim.SGD([([0.0, 1.0], np.zeros(2))]), TypeError, "params['0']:"),
    (lambda: optim.SGD([(np.zeros(3), np.zeros(4))]), ValueError,
     "grads['0']: expected shape (3,)"),
    (lambda: optim.SGD([(np.zeros(3), np.zeros(3, np.float32))]), TypeError,
     "grads['0']: expected a numpy array of dtype float64"),
    (lambda: optim.SGD([(np.zeros((3, 4))[:, ::2], np.zeros((3, 2)))]), ValueError,
     "params['0']: expected a writeable C-contiguous"),
    (lambda: optim.SGD([(a := np.zeros(4), a)]), ValueError, "grads['0']: shares memory"),
    (lambda: optim.StepLR(optim.SGD(P()), step_size=0), ValueError, "step_size:"),
    (lambda: optim.StepLR(optim.SGD(P()), step_size=2, gamma=-1), ValueError, "gamma:"),
    (lambda: optim.InverseSqrt("opt"), TypeError, "optimizer: expected an nnkit.optim"),
])
def test_bad_input_is_refused_with_a_clear_message(make, exc, msg):
    with pytest.raises(exc) as info:
        make()
    assert str(info.value).startswith(msg), str(info.value)


def test_mismatched_params_and_grads_dicts():
    class M:
        params = {"W": np.zeros(2)}
        grads = {"V": np.zeros(2)}
    with pytest.raises(ValueError, match=r"^params: expected .grads with the keys"):
        optim.Adam(M())


def test_lr_assignment_is_validated():
    opt = optim.SGD(P(), lr=0.1)
    with pytest.raises(ValueError, match="^lr:"):
        opt.lr = -0.1
    assert opt.lr == 0.1
