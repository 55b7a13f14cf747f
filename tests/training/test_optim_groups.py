"""AdamW, RMSprop, parameter groups, clip_grad_norm_ and the schedules: against
NumPy references written here from torch's update rules, and bad input."""
import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import optim


def P(seed=0, shape=(4, 3)):
    r = np.random.default_rng(seed)
    return r.standard_normal(shape), r.standard_normal(shape)


def test_adamw_numpy_reference():
    p, g = P()
    ref = p.copy()
    opt = optim.AdamW([(p, g)], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(1, 6):
        opt.step()
        ref = ref * (1 - 0.01 * 0.1)
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        ref = ref - 0.01 / (1 - 0.8 ** t) * m / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-6)
        np.testing.assert_allclose(p, ref, rtol=1e-13, atol=1e-15)   # float64 reference


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_numpy_reference(centered, momentum):
    p, g = P(1)
    ref = p.copy()
    opt = optim.RMSprop([(p, g)], lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05,
                        momentum=momentum, centered=centered)
    s = np.zeros_like(p)
    ga = np.zeros_like(p)
    buf = np.zeros_like(p)
    for _ in range(5):
        opt.step()
        gg = g + 0.05 * ref
        s = 0.9 * s + 0.1 * gg * gg
        ga = 0.9 * ga + 0.1 * gg
        d = np.sqrt(s - ga * ga if centered else s) + 1e-6
        if momentum:
            buf = momentum * buf + gg / d
            ref = ref - 0.01 * buf
        else:
            ref = ref - 0.01 * gg / d
        np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-14)   # float64 reference


def test_param_groups_per_group_hyperparameters():
    m1 = nk.Sequential(nk.Linear(3, 2, seed=0))
    m2 = nk.Sequential(nk.Linear(2, 2, seed=1))
    for m in (m1, m2):
        for g in m.grads.values():
            g[...] = 1.0
    w1, w2 = m1.params["0.W"].copy(), m2.params["0.W"].copy()
    opt = optim.SGD([{"params": m1}, {"params": m2, "lr": 0.5, "weight_decay": 0.1}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["weight_decay"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0
    assert opt.param_groups[0]["params"][0] is m1.params["0.W"]
    opt.step()
    np.testing.assert_allclose(m1.params["0.W"], w1 - 0.1, rtol=1e-15)
    np.testing.assert_allclose(m2.params["0.W"], w2 - 0.5 * (1 + 0.1 * w2), rtol=1e-15)
    opt.lr = 0.2
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]


def test_param_groups_bad_input():
    p, g = P()
    with pytest.raises(ValueError, match=r"params\[0\]\['momentun'\]"):
        optim.SGD([{"params": [(p, g)], "momentun": 0.9}])
    with pytest.raises(ValueError, match="already in another group"):
        optim.SGD([{"params": [(p, g)]}, {"params": [(p, g)]}])
    with pytest.raises(ValueError, match=r"params\[1\]\['lr'\]: lr"):
        optim.SGD([{"params": [(p, g)]}, {"params": [P(2)], "lr": -1.0}])
    with pytest.raises(ValueError, match="'params' key"):
        optim.Adam([{"lr": 0.1}])


def test_clip_grad_norm_numpy_reference():
    r = np.random.default_rng(3)
    gs = [r.standard_normal((4, 3)), r.standard_normal(5)]
    orig = [x.copy() for x in gs]
    total = nk.clip_grad_norm_(gs, 1.0)
    ref = math.sqrt(sum(float(np.sum(x * x)) for x in orig))
    assert total == pytest.approx(ref, rel=1e-14)
    for a, b in zip(gs, orig):
        np.testing.assert_allclose(a, b * (1.0 / (ref + 1e-6)), rtol=1e-14)
    # a model: its grads; inf norm; under the limit: untouched
    m = nk.Sequential(nk.Linear(3, 2, seed=0))
    m.grads["0.W"][...] = 0.1
    before = m.grads["0.W"].copy()
    assert nk.clip_grad_norm_(m, 10.0, norm_type=math.inf) == pytest.approx(0.1)
    np.testing.assert_array_equal(m.grads["0.W"], before)
    with pytest.raises(ValueError, match="norm_type"):
        nk.clip_grad_norm_(gs, 1.0, norm_type=0)
    with pytest.raises(TypeError, match="params"):
        nk.clip_grad_norm_("grads", 1.0)


def _lrs(sched, n=50, metric=None):
    out = [sched.get_last_lr()]
    for k in range(n):
        sched.optimizer.step()
        sched.step() if metric is None else sched.step(metric(k))
        out.append(sched.get_last_lr())
    return np.array(out)


def test_schedules_closed_forms():
    p, g = P()
    base = 0.1
    k = np.arange(51)
    lr = _lrs(optim.ExponentialLR(optim.SGD([(p, g)], lr=base), gamma=0.9))[:, 0]
    np.testing.assert_allclose(lr, base * 0.9 ** k, rtol=1e-12)   # chained vs closed form
    lr = _lrs(optim.MultiStepLR(optim.SGD([(p, g)], lr=base), [5, 20, 20], gamma=0.5))[:, 0]
    np.testing.assert_allclose(lr, base * 0.5 ** ((k >= 5) + 2 * (k >= 20)), rtol=1e-12)
    lr = _lrs(optim.CosineAnnealingLR(optim.SGD([(p, g)], lr=base), T_max=10, eta_min=0.01))[:, 0]
    np.testing.assert_allclose(lr, 0.01 + (base - 0.01) * (1 + np.cos(np.pi * k / 10)) / 2,
                               rtol=1e-9, atol=1e-12)   # the chained form carries rounding
    lr = _lrs(optim.ReduceLROnPlateau(optim.SGD([(p, g)], lr=base), patience=2, factor=0.5),
              n=10, metric=lambda i: 1.0)[:, 0]
    np.testing.assert_allclose(lr, [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025,
                                    0.0125], rtol=1e-15)


def test_schedule_bad_input():
    p, g = P()
    opt = optim.SGD([(p, g)], lr=0.1)
    with pytest.raises(ValueError, match="T_max"):
        optim.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="total_steps"):
        optim.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="cycle_momentum"):
        optim.OneCycleLR(optim.AdaGrad([(p, g)]), max_lr=1.0, total_steps=5)
    with pytest.raises(ValueError, match="factor"):
        optim.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(TypeError, match="metrics"):
        optim.ReduceLROnPlateau(opt).step(None)
    with pytest.raises(TypeError, match="milestones"):
        optim.MultiStepLR(opt, 3)
    with pytest.raises(TypeError, match="optimizer"):
        optim.ExponentialLR("sgd", 0.9)
