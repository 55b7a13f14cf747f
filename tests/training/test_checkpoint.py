"""Checkpoints: state_dict/load_state_dict on layers, Sequential and optimizers
(running statistics included), nk.save/nk.load to one .npz, and a resumed run
that continues bit for bit."""
import numpy as np
import pytest

import nnkit as nk
from nnkit import optim


def make_model(seed=0):
    return nk.Sequential(nk.Linear(6, 16, seed=seed), nk.BatchNorm(16), nk.Tanh(),
                         nk.WhiteningBatchNorm(16, group_size=4), nk.GELU(),
                         nk.Linear(16, 3, seed=seed + 1))


def data(n=256):
    r = np.random.default_rng(1)
    X = r.standard_normal((n, 6)) * 2 + 1
    return X, r.integers(0, 3, n)


def train(model, opt, sched, X, y, steps, start=0):
    loss = nk.SoftmaxCrossEntropy()
    for k in range(start, start + steps):
        idx = slice((k * 32) % 256, (k * 32) % 256 + 32)
        opt.zero_grad()
        loss(model(X[idx]), y[idx])
        model.backward(loss.backward())
        nk.clip_grad_norm_(model, 5.0)
        opt.step()
        sched.step()


@pytest.mark.parametrize("opt_name", ["AdamW", "RMSprop", "SGD"])
def test_resumed_run_is_bit_identical(tmp_path, opt_name):
    X, y = data()

    def fresh(seed):
        m = make_model(seed)
        kw = {"SGD": dict(lr=0.05, momentum=0.9), "AdamW": dict(lr=0.01),
              "RMSprop": dict(lr=0.001, momentum=0.5, centered=True)}[opt_name]
        o = getattr(optim, opt_name)([{"params": m[0]}, {"params": m[1:], "lr": 0.02}], **kw)
        return m, o, optim.CosineAnnealingLR(o, T_max=7)

    m1, o1, s1 = fresh(0)
    train(m1, o1, s1, X, y, 20)

    m2, o2, s2 = fresh(0)
    train(m2, o2, s2, X, y, 8)
    nk.save({"model": m2.state_dict(), "optimizer": o2.state_dict(),
             "scheduler": s2.state_dict(), "step": 8}, tmp_path / "ck.npz")
    ck = nk.load(tmp_path / "ck.npz")
    m3, o3, s3 = fresh(123)            # other initial weights: everything comes from the file
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["optimizer"])
    s3.load_state_dict(ck["scheduler"])
    assert ck["step"] == 8
    train(m3, o3, s3, X, y, 12, start=8)
    for k in m1.params:
        assert np.array_equal(m1.params[k], m3.params[k]), k
    for k, b in m1.named_buffers():
        assert np.array_equal(b, dict(m3.named_buffers())[k]), k
    m1.eval(), m3.eval()
    assert np.array_equal(m1(X), m3(X))


def test_running_statistics_make_eval_predictions_equal():
    X, y = data()
    m = make_model()
    opt = optim.Adam(m, lr=0.01)
    train(m, opt, optim.StepLR(opt, 5), X, y, 10)
    m.eval()
    want = m(X).argmax(1)
    params_only = make_model(9).eval()
    for k, p in m.params.items():          # the old way: parameters only
        params_only.params[k][...] = p
    full = make_model(9).eval().load_state_dict(m.state_dict())
    assert np.array_equal(full(X).argmax(1), want)
    assert np.array_equal(full(X), m(X))
    assert np.any(params_only(X).argmax(1) != want)   # the running statistics matter


def test_state_dict_keys_and_copies():
    m = make_model()
    sd = m.state_dict()
    assert {"1.running_mean", "1.running_var", "3.running_mean", "3.running_whitening.0"} <= set(sd)
    sd["0.W"][...] = 0
    assert not np.all(m.params["0.W"] == 0)          # copies, not views


def test_bad_state_dicts_name_the_key():
    m = make_model()
    sd = m.state_dict()
    del sd["1.running_var"]
    with pytest.raises(KeyError, match=r"1\.running_var"):
        make_model().load_state_dict(sd)
    sd = m.state_dict()
    sd["5.W"] = np.zeros((3, 3))
    before = make_model(4)
    w = before.params["0.W"].copy()
    with pytest.raises(ValueError, match=r"5\.W.*shape \(3, 16\)"):
        before.load_state_dict(sd)
    assert np.array_equal(before.params["0.W"], w)    # refused: nothing written
    sd = m.state_dict()
    sd["9.extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"9\.extra"):
        make_model().load_state_dict(sd)
    make_model().load_state_dict(sd, strict=False)
    opt = optim.Adam(m)
    opt.step()
    osd = opt.state_dict()
    osd["state"]["0.W"]["m"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"state\.0\.W\.m"):
        optim.Adam(make_model()).load_state_dict(osd)
    del osd["t"]
    with pytest.raises(KeyError, match="'t'"):
        optim.Adam(make_model()).load_state_dict(osd)


def test_save_load_round_trip(tmp_path):
    obj = {"a": np.arange(6.0).reshape(2, 3), "n": 3, "x": 0.5, "s": "hi", "none": None,
           "nested": {"b": np.float32(1.5), "l": [1, 2, 3], "names": ["0.W", "0.b"]},
           "empty": {}}
    nk.save(obj, tmp_path / "o.npz")
    back = nk.load(tmp_path / "o.npz")
    assert np.array_equal(back["a"], obj["a"]) and back["n"] == 3 and back["x"] == 0.5
    assert back["s"] == "hi" and back["none"] is None and back["empty"] == {}
    assert back["nested"]["l"] == [1, 2, 3] and back["nested"]["names"] == ["0.W", "0.b"]
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:     # no pickle inside
        assert "a" in z.files and "nested.l.0" in z.files
    with pytest.raises(TypeError, match="obj"):
        nk.save([1, 2], tmp_path / "x.npz")
    with pytest.raises(TypeError, match="bad"):
        nk.save({"bad": object()}, tmp_path / "x.npz")


@pytest.mark.parametrize("make", [
    lambda o: optim.OneCycleLR(o, max_lr=0.5, total_steps=30),
    lambda o: optim.MultiStepLR(o, [3, 7, 7], gamma=0.5),
    lambda o: optim.ReduceLROnPlateau(o, patience=1, factor=0.5),
    lambda o: optim.StepLR(o, 4, gamma=0.3),
])
def test_schedule_state_through_a_file(tmp_path, make):
    def objects():
        p = np.zeros(3)
        o = optim.SGD([(p, np.ones(3))], lr=0.1, momentum=0.9)
        return o, make(o)

    def advance(o, s, k):
        o.step()
        if isinstance(s, optim.ReduceLROnPlateau):
            return s.step(1.0 + (k % 3 == 0))
        return s.step()

    o1, s1 = objects()
    want = [advance(o1, s1, k) for k in range(20)]
    o2, s2 = objects()
    got = [advance(o2, s2, k) for k in range(8)]
    nk.save({"o": o2.state_dict(), "s": s2.state_dict()}, tmp_path / "s.npz")
    ck = nk.load(tmp_path / "s.npz")
    o3, s3 = objects()
    o3.load_state_dict(ck["o"])
    s3.load_state_dict(ck["s"])
    got += [advance(o3, s3, k) for k in range(8, 20)]
    assert got == want
    assert o3.param_groups[0]["momentum"] == o1.param_groups[0]["momentum"]
