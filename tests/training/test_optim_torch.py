"""nnkit.optim against torch.optim: with the matching hyper-parameters of the
module docstring's table, the trajectories agree over 25 steps on the same
model and data (float64 network), and on a float32 problem whose gradients
both sides compute with the same NumPy function."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import optim

torch = pytest.importorskip("torch")

STEPS = 25

# (nnkit optimizer, its kwargs, torch optimizer, its kwargs): the table in nnkit/optim.py
PAIRS = [
    ("sgd", optim.SGD, dict(lr=0.1), torch.optim.SGD, dict(lr=0.1)),
    ("sgd-mom-wd", optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
     torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    ("sgd-nesterov", optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True),
     torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    # P5: Momentum(lr=ε, momentum=α) = SGD(lr=ε, momentum=α)
    ("momentum", optim.Momentum, dict(lr=0.05, momentum=0.9),
     torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    ("momentum-wd", optim.Momentum, dict(lr=0.05, momentum=0.7, weight_decay=0.1),
     torch.optim.SGD, dict(lr=0.05, momentum=0.7, weight_decay=0.1)),
    # P5: RunningAverage(lr=δ, beta=β) = SGD(lr=δ(1−β), momentum=β)
    ("running-average", optim.RunningAverage, dict(lr=0.5, beta=0.9),
     torch.optim.SGD, dict(lr=0.5 * (1 - 0.9), momentum=0.9)),
    ("adam", optim.Adam, dict(lr=1e-2), torch.optim.Adam, dict(lr=1e-2)),
    ("adam-wd", optim.Adam, dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
     torch.optim.Adam, dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("adagrad", optim.AdaGrad, dict(lr=0.1), torch.optim.Adagrad, dict(lr=0.1)),
    ("adagrad-wd", optim.AdaGrad, dict(lr=0.1, eps=1e-6, weight_decay=0.1, lr_decay=0.01,
                                       initial_accumulator_value=0.1),
     torch.optim.Adagrad, dict(lr=0.1, eps=1e-6, weight_decay=0.1, lr_decay=0.01,
                               initial_accumulator_value=0.1)),
]


def _net_pair(seed=0):
    net = nk.Sequential(nk.Linear(6, 10, seed=seed), nk.ReLU(), nk.Linear(10, 4, seed=seed + 1))
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU(),
                               torch.nn.Linear(10, 4)).double()
    with torch.no_grad():
        for i in (0, 2):
            tnet[i].weight.copy_(torch.from_numpy(net.layers[i].params["W"]))
            tnet[i].bias.copy_(torch.from_numpy(net.layers[i].params["b"]))
    return net, tnet


def _max_gap(net, tnet) -> float:
    gap = 0.0
    for i in (0, 2):
        for ours, theirs in ((net.layers[i].params["W"], tnet[i].weight),
                             (net.layers[i].params["b"], tnet[i].bias)):
            t = theirs.detach().numpy()
            gap = max(gap, float(np.max(np.abs(ours - t)) / np.max(np.abs(t))))
    return gap


@pytest.mark.parametrize("name,cls,kw,tcls,tkw", PAIRS, ids=[p[0] for p in PAIRS])
def test_trajectory_matches_torch_on_the_same_network_and_data(name, cls, kw, tcls, tkw):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((32, 6))
    y = rng.integers(0, 4, 32)
    net, tnet = _net_pair()
    crit = nk.SoftmaxCrossEntropy()
    opt, topt = cls(net, **kw), tcls(tnet.parameters(), **tkw)
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    losses = []
    for t in range(STEPS):
        opt.zero_grad()                     # gradients accumulate, as in torch
        loss = crit(net(X), y)
        net.backward(crit.backward())
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tnet(tX), ty)
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) <= 1e-12 * abs(tloss.item()), t
        # float64, two implementations of the same arithmetic (BLAS vs torch's
        # matmul, fused vs per-op updates): rounding differences of ~1e-16 that
        # the training carries forward; measured worst 4e-15 over 25 steps.
        assert _max_gap(net, tnet) <= 1e-12, (name, t, _max_gap(net, tnet))
        losses.append(loss)
    assert losses[-1] < losses[0]          # the run trained (not a trivial agreement)


def test_dampening_is_not_the_running_average():
    """torch's SGD(dampening=β) skips the damping on its first step (buf_1 = g_1),
    so it is not RunningAverage(lr, beta=β): the first steps differ by 1/(1−β)."""
    p, g = np.ones(3), np.full(3, 2.0)
    tp = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = optim.RunningAverage([(p, g)], lr=0.1, beta=0.9)
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9, dampening=0.9)
    tp.grad = torch.full((3,), 2.0, dtype=torch.float64)
    opt.step(); topt.step()
    step_ours, step_torch = 1 - p[0], 1 - tp.detach().numpy()[0]
    assert step_torch == pytest.approx(step_ours / (1 - 0.9), rel=1e-12)


def _quadratic(dtype, seed=5, n=40, d=30):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((n, d)) / math.sqrt(n)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    theta0 = rng.standard_normal(d).astype(dtype)
    return A, b, theta0


@pytest.mark.parametrize("name,cls,kw,tcls,tkw", PAIRS, ids=[p[0] for p in PAIRS])
def test_float32_trajectory_matches_torch(name, cls, kw, tcls, tkw):
    """f(θ) = ½‖Aθ − b‖²; ∇f computed by the same float32 NumPy expression for
    both sides, so only the updates differ (ours in double, rounded once per
    stored value; torch's in float32 op by op)."""
    A, b, theta0 = _quadratic(np.float32)
    grad = lambda th: A.T @ (A @ th - b)      # noqa: E731
    p, g = theta0.copy(), np.zeros_like(theta0)
    tp = torch.tensor(theta0.copy(), requires_grad=True)
    opt, topt = cls([(p, g)], **kw), tcls([tp], **tkw)
    for t in range(STEPS):
        g[...] = grad(p)
        tp.grad = torch.from_numpy(grad(tp.detach().numpy().copy()))
        opt.step(); topt.step()
        theirs = tp.detach().numpy()
        # float32 rounding (6e-8) per operation, a handful of operations per step,
        # fed back through 25 steps (measured worst 2.1e-7): 2e-6 of the scale.
        assert np.max(np.abs(p - theirs)) <= 2e-6 * np.max(np.abs(theirs)), (name, t)
    assert p.dtype == np.float32


def test_adam_with_inverse_sqrt_schedule_matches_torch_lambda_lr():
    A, b, theta0 = _quadratic(np.float64)
    p, g = theta0.copy(), np.zeros_like(theta0)
    tp = torch.tensor(theta0.copy(), requires_grad=True)
    opt = optim.Adam([(p, g)], lr=0.1, betas=(0.0, 0.99))
    sched = optim.InverseSqrt(opt)
    topt = torch.optim.Adam([tp], lr=0.1, betas=(0.0, 0.99))
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda k: 1 / math.sqrt(k + 1))
    for _ in range(STEPS):
        g[...] = A.T @ (A @ p - b)
        tp.grad = torch.from_numpy(A.T @ (A @ tp.detach().numpy() - b))
        opt.step(); sched.step(); topt.step(); tsched.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-13)
