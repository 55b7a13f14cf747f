"""The activation and loss layers against torch.nn (float64 1e-10, float32 1e-5)."""
import numpy as np
import pytest

import nnkit as nk

torch = pytest.importorskip("torch")

CASES = [
    (lambda: nk.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: nk.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: nk.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    (lambda: nk.LeakyReLU(0.3), lambda: torch.nn.LeakyReLU(0.3)),
    (lambda: nk.GELU(), lambda: torch.nn.GELU()),
    (lambda: nk.GELU("tanh"), lambda: torch.nn.GELU(approximate="tanh")),
]
TOL = {np.float64: 1e-10, np.float32: 1e-5}


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation_matches_torch(case, dtype):
    mk, tmk = CASES[case]
    rng = np.random.default_rng(case)
    X = (rng.standard_normal((8, 5, 3)) * 3).astype(dtype)
    dH = rng.standard_normal(X.shape).astype(dtype)
    lay = mk()
    H = lay(X)
    dX = lay.backward(dH)
    tx = torch.tensor(X, requires_grad=True)
    th = tmk()(tx)
    th.backward(torch.tensor(dH))
    np.testing.assert_allclose(H, th.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(dX, tx.grad.numpy(), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("kind", ["mse", "bce"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_matches_torch(kind, dtype):
    rng = np.random.default_rng(3)
    P = (rng.standard_normal((16, 4)) * 4).astype(dtype)
    T = (rng.random((16, 4)) if kind == "bce" else rng.standard_normal((16, 4))).astype(dtype)
    lay = nk.MSELoss() if kind == "mse" else nk.BCEWithLogitsLoss()
    tl = torch.nn.MSELoss() if kind == "mse" else torch.nn.BCEWithLogitsLoss()
    loss = lay(P, T)
    dP = lay.backward(0.5)
    tp = torch.tensor(P, requires_grad=True)
    tloss = tl(tp, torch.tensor(T))
    (0.5 * tloss).backward()
    assert loss == pytest.approx(float(tloss), rel=TOL[dtype], abs=TOL[dtype])
    np.testing.assert_allclose(dP, tp.grad.numpy(), rtol=TOL[dtype], atol=TOL[dtype])
