"""The activation and loss layers against torch.nn (float64 1e-10, float32 1e-5)
at the sizes the kernels split over threads (odd lengths, several blocks, the
OpenMP team) and at the tails (large |x|, logits far from 0)."""
import numpy as np
import pytest

import nnkit as nk

torch = pytest.importorskip("torch")

LAYERS = {
    "tanh": (lambda: nk.Tanh(), lambda: torch.nn.Tanh()),
    "sigmoid": (lambda: nk.Sigmoid(), lambda: torch.nn.Sigmoid()),
    "leaky_relu": (lambda: nk.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    "leaky_relu_0.3": (lambda: nk.LeakyReLU(0.3), lambda: torch.nn.LeakyReLU(0.3)),
    "gelu": (lambda: nk.GELU(), lambda: torch.nn.GELU()),
    "gelu_tanh": (lambda: nk.GELU("tanh"), lambda: torch.nn.GELU(approximate="tanh")),
}
TOL = {np.float64: 1e-10, np.float32: 1e-5}
# (rows, cols): odd, over the threading threshold (65536 values) and not a
# whole number of the kernels' 4096-value blocks
SHAPE = (259, 263)


def torch_pair(tlayer, X, dH):
    tx = torch.tensor(X, requires_grad=True)
    th = tlayer(tx)
    th.backward(torch.tensor(dH))
    return th.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("scale", [3.0, 30.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(LAYERS))
def test_activation_layer_matches_torch(name, dtype, scale):
    mk, tmk = LAYERS[name]
    rng = np.random.default_rng(1)
    X = (rng.standard_normal(SHAPE) * scale).astype(dtype)
    dH = rng.standard_normal(SHAPE).astype(dtype)
    lay = mk()
    H = lay(X)
    dX = lay.backward(dH)
    tH, tdX = torch_pair(tmk(), X, dH)
    np.testing.assert_allclose(H, tH, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(dX, tdX, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("scale", [4.0, 40.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_loss_layer_matches_torch(kind, dtype, scale):
    rng = np.random.default_rng(2)
    P = (rng.standard_normal(SHAPE) * scale).astype(dtype)
    T = (rng.random(SHAPE) if kind == "bce" else rng.standard_normal(SHAPE)).astype(dtype)
    lay = nk.MSELoss() if kind == "mse" else nk.BCEWithLogitsLoss()
    tl = torch.nn.MSELoss() if kind == "mse" else torch.nn.BCEWithLogitsLoss()
    loss = lay(P, T)
    dP = lay.backward(0.5)
    tp = torch.tensor(P, requires_grad=True)
    tloss = tl(tp, torch.tensor(T))
    (0.5 * tloss).backward()
    # torch sums float32 in float32 (pairwise): its loss is within ~1e-6 of the
    # exact one, ours (a double sum) closer; 1e-5 covers both
    assert loss == pytest.approx(float(tloss.detach()), rel=TOL[dtype], abs=TOL[dtype])
    # the gradients are ~1e-5 each (0.5/n scale): compared relative to their size
    g = tp.grad.numpy()
    np.testing.assert_allclose(dP, g, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(g).max())
