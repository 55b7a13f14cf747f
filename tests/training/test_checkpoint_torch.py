"""A run interrupted by nk.save / nk.load and resumed in fresh objects follows
torch's uninterrupted trajectory (same weights, AdamW with two groups, a cosine
schedule, gradient clipping): float64 1e-10."""
import numpy as np
import pytest

import nnkit as nk
from nnkit import optim

torch = pytest.importorskip("torch")


def test_resumed_nnkit_run_follows_torch(tmp_path):
    r = np.random.default_rng(0)
    X = r.standard_normal((64, 5))
    Y = np.tanh(X @ r.standard_normal((5, 2)))

    def nk_objects(seed):
        m = nk.Sequential(nk.Linear(5, 8, seed=seed), nk.Tanh(), nk.Linear(8, 2, seed=seed + 1))
        o = optim.AdamW([{"params": m[0]}, {"params": m[2], "lr": 0.02, "weight_decay": 0.1}],
                        lr=0.01)
        return m, o, optim.CosineAnnealingLR(o, T_max=6)

    m, o, s = nk_objects(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    with torch.no_grad():
        for i in (0, 2):
            tm[i].weight.copy_(torch.tensor(m[i].params["W"]))
            tm[i].bias.copy_(torch.tensor(m[i].params["b"]))
    to = torch.optim.AdamW([{"params": tm[0].parameters()},
                            {"params": tm[2].parameters(), "lr": 0.02, "weight_decay": 0.1}],
                           lr=0.01)
    ts = torch.optim.lr_scheduler.CosineAnnealingLR(to, T_max=6)
    loss = nk.MSELoss()
    tX, tY = torch.tensor(X), torch.tensor(Y)
    for k in range(15):
        if k == 6:                    # interrupt: save, then continue in fresh objects
            nk.save({"model": m.state_dict(), "opt": o.state_dict(), "sched": s.state_dict()},
                    tmp_path / "ck.npz")
            ck = nk.load(tmp_path / "ck.npz")
            m, o, s = nk_objects(100)
            m.load_state_dict(ck["model"])
            o.load_state_dict(ck["opt"])
            s.load_state_dict(ck["sched"])
        idx = slice(16 * (k % 4), 16 * (k % 4) + 16)
        o.zero_grad()
        loss(m(X[idx]), Y[idx])
        m.backward(loss.backward())
        nk.clip_grad_norm_(m, 0.5)
        o.step()
        s.step()
        to.zero_grad()
        torch.nn.functional.mse_loss(tm(tX[idx]), tY[idx]).backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.5)
        to.step()
        ts.step()
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
    for i in (0, 2):
        np.testing.assert_allclose(m[i].params["W"], tm[i].weight.detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m[i].params["b"], tm[i].bias.detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
