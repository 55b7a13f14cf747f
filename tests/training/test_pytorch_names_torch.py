"""Issue 27's names "under PyTorch's class names and arguments": every
schedule, AdamW, RMSprop and clip_grad_norm_ take torch's arguments with
torch's defaults (what nnkit leaves out is listed here with its reason), and
the optimizers take a model as well as (param, grad) pairs, with the same
result."""
import inspect

import numpy as np
import pytest

import nnkit as nk
from nnkit import optim

torch = pytest.importorskip("torch")

# torch arguments nnkit does not take, and why
LEFT_OUT = {
    "last_epoch",      # a schedule resumes from its state_dict instead
    "verbose",         # deprecated in torch
    "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused",  # not in #27
    "error_if_nonfinite",  # nnkit returns the non-finite norm and leaves the gradients
}
NAMES = {name: getattr(torch.optim.lr_scheduler, name) for name in
         ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR",
          "ReduceLROnPlateau")}
NAMES.update(AdamW=torch.optim.AdamW, RMSprop=torch.optim.RMSprop)


@pytest.mark.parametrize("name", list(NAMES))
def test_arguments_and_defaults_are_torchs(name):
    theirs = inspect.signature(NAMES[name]).parameters
    ours = inspect.signature(getattr(optim, name)).parameters
    assert list(ours)[0] in ("optimizer", "params")
    for arg, p in theirs.items():
        if arg in LEFT_OUT:
            continue
        assert arg in ours, f"{name}: torch's argument {arg!r} is missing"
        if p.default is not inspect.Parameter.empty:
            assert ours[arg].default == p.default, (name, arg, ours[arg].default, p.default)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("AdamW", "RMSprop")])
def test_every_schedule_has_get_last_lr(name):
    p, q = np.zeros(2), np.zeros(2)
    opt = optim.SGD([{"params": [(p, np.zeros(2))]}, {"params": [(q, np.zeros(2))], "lr": 0.3}],
                    lr=0.1)
    topt = torch.optim.SGD([{"params": [torch.zeros(2)]}, {"params": [torch.zeros(2)],
                                                           "lr": 0.3}], lr=0.1)
    ours = getattr(optim, name)(opt, **_required(name))
    theirs = NAMES[name](topt, **_required(name))
    assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    assert len(ours.get_last_lr()) == 2


def _required(name):
    return {"StepLR": dict(step_size=3), "MultiStepLR": dict(milestones=[2]),
            "ExponentialLR": dict(gamma=0.9), "CosineAnnealingLR": dict(T_max=5),
            "OneCycleLR": dict(max_lr=0.5, total_steps=10), "ReduceLROnPlateau": {}}[name]


def test_clip_grad_norm_arguments():
    theirs = inspect.signature(torch.nn.utils.clip_grad_norm_).parameters
    ours = inspect.signature(nk.clip_grad_norm_).parameters
    assert list(ours)[1:3] == ["max_norm", "norm_type"]
    assert ours["norm_type"].default == theirs["norm_type"].default


@pytest.mark.parametrize("name", ["AdamW", "RMSprop"])
def test_a_model_or_pairs_give_the_same_steps(name):
    """optim.X(model) and optim.X([(param, grad), ...]) over the same arrays:
    the same updates, step for step (and the model's both equal torch's)."""
    X = np.random.default_rng(0).standard_normal((8, 3))
    a = nk.Sequential(nk.Linear(3, 4, seed=0), nk.Tanh(), nk.Linear(4, 2, seed=1))
    b = nk.Sequential(nk.Linear(3, 4, seed=0), nk.Tanh(), nk.Linear(4, 2, seed=1))
    oa = getattr(optim, name)(a, lr=0.01, weight_decay=0.1)
    ob = getattr(optim, name)([(b.params[k], b.grads[k]) for k in b.params], lr=0.01,
                              weight_decay=0.1)
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    t = t.double()
    with torch.no_grad():
        for i in (0, 2):
            t[i].weight.copy_(torch.tensor(a[i].params["W"]))
            t[i].bias.copy_(torch.tensor(a[i].params["b"]))
    ot = getattr(torch.optim, name)(t.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(5):
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            m.backward(m(X))                   # L = ½ Σ Y²: dY = Y
            o.step()
        ot.zero_grad()
        (0.5 * (t(torch.tensor(X)) ** 2).sum()).backward()
        ot.step()
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    for i in (0, 2):
        np.testing.assert_allclose(a[i].params["W"], t[i].weight.detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
