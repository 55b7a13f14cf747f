"""AdamW, RMSprop, parameter groups, clip_grad_norm_ and the schedules against torch
(float64 1e-10, float32 1e-5; schedules' lr sequences float64 1e-12)."""
import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import optim

torch = pytest.importorskip("torch")
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def _run(make_nk, make_torch, dtype, steps=25, groups=False):
    r = np.random.default_rng(7)
    shapes = [(5, 4), (4,), (3, 5)]
    params = [r.standard_normal(s).astype(dtype) for s in shapes]
    grads_seq = [[r.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    ps = [p.copy() for p in params]
    gs = [np.zeros_like(p) for p in ps]
    tp = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    if groups:
        opt = make_nk([{"params": list(zip(ps[:2], gs[:2]))},
                       {"params": [(ps[2], gs[2])], "lr": 0.03, "weight_decay": 0.2}])
        topt = make_torch([{"params": tp[:2]}, {"params": tp[2:], "lr": 0.03,
                                                 "weight_decay": 0.2}])
    else:
        opt = make_nk(list(zip(ps, gs)))
        topt = make_torch(tp)
    for gseq in grads_seq:
        for g, x in zip(gs, gseq):
            g[...] = x
        for t, x in zip(tp, gseq):
            t.grad = torch.tensor(x)
        opt.step()
        topt.step()
    for p, t in zip(ps, tp):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])


OPTS = {
    "adamw": (lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    "adamw_wd": (lambda p: optim.AdamW(p, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3),
                 lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3)),
    "rmsprop": (lambda p: optim.RMSprop(p), lambda p: torch.optim.RMSprop(p)),
    "rmsprop_all": (lambda p: optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1,
                                            momentum=0.8, centered=True),
                    lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-6,
                                                  weight_decay=0.1, momentum=0.8, centered=True)),
    "sgd": (lambda p: optim.SGD(p, lr=0.01, momentum=0.9),
            lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    "adam": (lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
}


@pytest.mark.parametrize("name", list(OPTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("groups", [False, True])
def test_optimizer_matches_torch(name, dtype, groups):
    _run(*OPTS[name], dtype, groups=groups)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(norm_type):
    r = np.random.default_rng(1)
    gs = [r.standard_normal((6, 4)), r.standard_normal(4), r.standard_normal((2, 3))]
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for t, g in zip(ts, gs):
        t.grad = torch.tensor(g.copy())
    total = nk.clip_grad_norm_(gs, 0.5, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ts, 0.5, norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for g, t in zip(gs, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


TS = torch.optim.lr_scheduler
SCHEDS = {
    "StepLR": (lambda o: optim.StepLR(o, 7, gamma=0.3), lambda o: TS.StepLR(o, 7, gamma=0.3)),
    "MultiStepLR": (lambda o: optim.MultiStepLR(o, [3, 10, 10, 30], gamma=0.5),
                    lambda o: TS.MultiStepLR(o, [3, 10, 10, 30], gamma=0.5)),
    "ExponentialLR": (lambda o: optim.ExponentialLR(o, 0.93),
                      lambda o: TS.ExponentialLR(o, 0.93)),
    "CosineAnnealingLR": (lambda o: optim.CosineAnnealingLR(o, T_max=12, eta_min=0.001),
                          lambda o: TS.CosineAnnealingLR(o, T_max=12, eta_min=0.001)),
    "OneCycleLR": (lambda o: optim.OneCycleLR(o, max_lr=0.5, total_steps=60),
                   lambda o: TS.OneCycleLR(o, max_lr=0.5, total_steps=60)),
    "OneCycleLR_linear3": (lambda o: optim.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=5,
                                                      steps_per_epoch=11, pct_start=0.25,
                                                      anneal_strategy="linear",
                                                      three_phase=True),
                           lambda o: TS.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=5,
                                                   steps_per_epoch=11, pct_start=0.25,
                                                   anneal_strategy="linear", three_phase=True)),
    "ReduceLROnPlateau": (lambda o: optim.ReduceLROnPlateau(o, patience=2, factor=0.5,
                                                            cooldown=1, min_lr=1e-3),
                          lambda o: TS.ReduceLROnPlateau(o, patience=2, factor=0.5, cooldown=1,
                                                         min_lr=1e-3)),
}
METRIC = [1.0 / (1 + (k % 7)) + 0.01 * (k // 7) for k in range(50)]


@pytest.mark.parametrize("name", list(SCHEDS))
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_schedule_matches_torch_step_for_step(name, kind):
    p = np.zeros(3)
    q = np.zeros(2)
    groups = [{"params": [(p, np.ones(3))]}, {"params": [(q, np.ones(2))], "lr": 0.05}]
    tgroups = [{"params": [torch.zeros(3, dtype=torch.float64, requires_grad=True)]},
               {"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)],
                "lr": 0.05}]
    if kind == "sgd":
        opt = optim.SGD(groups, lr=0.1, momentum=0.9)
        topt = torch.optim.SGD(tgroups, lr=0.1, momentum=0.9)
    else:
        opt = optim.Adam(groups, lr=0.1)
        topt = torch.optim.Adam(tgroups, lr=0.1)
    mk, tmk = SCHEDS[name]
    s, ts = mk(opt), tmk(topt)
    plateau = name == "ReduceLROnPlateau"
    for k in range(50):
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
        for g, tg in zip(opt.param_groups, topt.param_groups):
            assert g["lr"] == pytest.approx(tg["lr"], rel=1e-12, abs=1e-15)
            if "momentum" in tg:
                assert g["momentum"] == pytest.approx(tg["momentum"], rel=1e-12)
            if "betas" in tg:
                assert g["betas"][0] == pytest.approx(tg["betas"][0], rel=1e-12)
        if name.startswith("OneCycle") and k >= (55 if "linear" in name else 60) - 1:
            break
        for t in topt.param_groups:
            for x in t["params"]:
                x.grad = torch.ones_like(x)
        topt.step()
        opt.step()
        s.step(METRIC[k]) if plateau else s.step()
        ts.step(METRIC[k]) if plateau else ts.step()


def test_schedule_state_dict_resumes():
    p = np.zeros(3)
    opt = optim.SGD([(p, np.ones(3))], lr=0.1)
    s = optim.CosineAnnealingLR(opt, T_max=9)
    for _ in range(4):
        s.step()
    sd = s.state_dict()
    opt2 = optim.SGD([(np.zeros(3), np.ones(3))], lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    s2 = optim.CosineAnnealingLR(opt2, T_max=9)
    s2.load_state_dict(sd)
    for _ in range(10):
        assert s.step() == s2.step()
