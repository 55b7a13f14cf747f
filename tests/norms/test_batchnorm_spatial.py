"""BatchNorm on (B, C, H, W): per channel over (B, H, W), as torch.nn.BatchNorm2d,
through the public channel batch norm (nk.batchnorm_channels_*), with running
statistics and eval mode. References written here from P2/P8's formulas."""
import numpy as np
import pytest

import nnkit as nk


def _bn2d(X, gamma, beta, eps):
    """P2 per channel: m, v over (batch, H, W) (biased), Ŷ, Z = γŶ + β."""
    m = X.mean(axis=(0, 2, 3), keepdims=True)
    v = ((X - m) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    Xh = (X - m) / np.sqrt(v + eps)
    return gamma[None, :, None, None] * Xh + beta[None, :, None, None], m.ravel(), v.ravel(), Xh


@pytest.mark.parametrize("relu", [False, True])
def test_forward_backward_and_running_stats(rng, relu):
    B, C, H, W, eps = 3, 4, 5, 2, 1e-5
    X = rng.standard_normal((B, C, H, W)) * 2 + 1
    layer = nk.BatchNorm(C, relu=relu, eps=eps, momentum=0.1)
    layer.params["gamma"][...] = 1 + 0.3 * rng.standard_normal(C)
    layer.params["beta"][...] = 0.2 * rng.standard_normal(C)
    gam, bet = layer.params["gamma"].copy(), layer.params["beta"].copy()
    Z, m, v, Xh = _bn2d(X, gam, bet, eps)
    out = np.maximum(Z, 0) if relu else Z
    np.testing.assert_allclose(layer(X), out, rtol=1e-12, atol=1e-12)
    n = B * H * W     # PyTorch's running_var takes the unbiased variance
    np.testing.assert_allclose(layer.running_mean, 0.1 * m, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * v * n / (n - 1), rtol=1e-12)
    # backward against the compact form of P2.3, per channel over (B, H, W)
    dH = rng.standard_normal(X.shape)
    dZ = dH * (Z > 0) if relu else dH
    dXh = dZ * gam[None, :, None, None]
    inv = 1 / np.sqrt(v + eps)[None, :, None, None]
    ax = (0, 2, 3)
    dX = inv / n * (n * dXh - dXh.sum(axis=ax, keepdims=True)
                    - Xh * (dXh * Xh).sum(axis=ax, keepdims=True))
    np.testing.assert_allclose(layer.backward(dH), dX, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["gamma"], (dZ * Xh).sum(axis=ax), rtol=1e-11)
    np.testing.assert_allclose(layer.grads["beta"], dZ.sum(axis=ax), rtol=1e-11)
    # eval: the running statistics
    layer.eval()
    rm, rv = layer.running_mean, layer.running_var
    ref = gam[None, :, None, None] * (X - rm[None, :, None, None]) / np.sqrt(
        rv[None, :, None, None] + eps) + bet[None, :, None, None]
    np.testing.assert_allclose(layer(X), np.maximum(ref, 0) if relu else ref, rtol=1e-12)


def test_float32_and_bad_input(rng):
    layer = nk.BatchNorm(3, dtype=np.float32)
    X = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    Z, *_ = _bn2d(X.astype(np.float64), np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(layer(X), Z, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"Y.shape\[1\] \(num_features\)"):
        layer(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(TypeError, match="Y"):
        layer(X.astype(np.float64))


def test_matches_torch_batchnorm2d(rng):
    torch = pytest.importorskip("torch")
    X = rng.standard_normal((4, 3, 5, 5))
    layer = nk.BatchNorm(3)
    tl = torch.nn.BatchNorm2d(3).double()
    tx = torch.tensor(X, requires_grad=True)
    for _ in range(2):                       # running stats over two steps
        out = tl(tx)
        Z = layer(X)
        dZ = rng.standard_normal(Z.shape)
        layer.zero_grad()
        tx.grad = None
        tl.zero_grad()
        out.backward(torch.tensor(dZ))
        dX = layer.backward(dZ)
        np.testing.assert_allclose(Z, out.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dX, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["gamma"], tl.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layer.running_var, tl.running_var.numpy(), rtol=1e-12)
    layer.eval(), tl.eval()
    np.testing.assert_allclose(layer(X), tl(tx).detach().numpy(), rtol=1e-10, atol=1e-12)
