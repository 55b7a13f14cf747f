"""A checkpoint of a recurrent model resumes bit for bit: nk.LSTM and nk.GRU
(two layers, bidirectional) under AdamW with two parameter groups, OneCycleLR
and gradient clipping, saved with nk.save after 5 steps, loaded into fresh
objects built from other weights, and trained on: every parameter and the
optimizer's state equal an uninterrupted run's, to the bit."""
import numpy as np

import nnkit as nk
from nnkit import optim


def objects(seed):
    m = nk.Sequential(nk.LSTM(3, 6, num_layers=2, bidirectional=True, seed=seed),
                      nk.GRU(12, 5, seed=seed + 1), nk.LastStep(), nk.Linear(5, 2, seed=seed + 2))
    o = optim.AdamW([{"params": m[0]}, {"params": m[1:], "lr": 0.02, "weight_decay": 0.1}],
                    lr=0.01)
    return m, o, optim.OneCycleLR(o, max_lr=[0.05, 0.03], total_steps=20)


def train(m, o, s, X, y, steps, start=0):
    loss = nk.SoftmaxCrossEntropy()
    for k in range(start, start + steps):
        idx = slice(8 * (k % 4), 8 * (k % 4) + 8)
        o.zero_grad()
        loss(m(X[:, idx]), y[idx])
        m.backward(loss.backward())
        nk.clip_grad_norm_(m, 1.0)
        o.step()
        s.step()


def test_recurrent_checkpoint_resumes_bit_for_bit(tmp_path):
    r = np.random.default_rng(0)
    X, y = r.standard_normal((7, 32, 3)), r.integers(0, 2, 32)
    m1, o1, s1 = objects(0)
    train(m1, o1, s1, X, y, 15)

    m2, o2, s2 = objects(0)
    train(m2, o2, s2, X, y, 5)
    nk.save({"model": m2.state_dict(), "opt": o2.state_dict(), "sched": s2.state_dict()},
            tmp_path / "ck.npz")
    ck = nk.load(tmp_path / "ck.npz")
    m3, o3, s3 = objects(50)
    assert not np.array_equal(m3.params["0.weight_ih_l0"], m1.params["0.weight_ih_l0"])
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["opt"])
    s3.load_state_dict(ck["sched"])
    train(m3, o3, s3, X, y, 10, start=5)
    assert "0.weight_hh_l1_reverse" in m1.params
    for k in m1.params:
        assert np.array_equal(m1.params[k], m3.params[k]), k
    assert s1.get_last_lr() == s3.get_last_lr()
    sd1, sd3 = o1.state_dict(), o3.state_dict()
    flat1, flat3 = nk.checkpoint.flatten(sd1), nk.checkpoint.flatten(sd3)
    assert flat1.keys() == flat3.keys()
    for k in flat1:
        assert np.array_equal(flat1[k], flat3[k]), k
