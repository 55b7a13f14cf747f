"""nk.BatchNorm(C) on (B, C, H, W) in float32 against torch.nn.BatchNorm2d
(issue 27: every layer against PyTorch, float32 to 1e-5): output, dX, dgamma,
dbeta and the running statistics over three training steps, then eval mode.
(float64 to 1e-10: test_batchnorm_spatial.py.)"""
import numpy as np
import pytest

import nnkit as nk

torch = pytest.importorskip("torch")


def test_float32_matches_torch_batchnorm2d():
    rng = np.random.default_rng(3)
    layer = nk.BatchNorm(4, momentum=0.2, dtype=np.float32)
    tl = torch.nn.BatchNorm2d(4, momentum=0.2)          # float32
    for _ in range(3):
        X = (rng.standard_normal((5, 4, 6, 3)) * 2 + 1).astype(np.float32)
        dZ = rng.standard_normal(X.shape).astype(np.float32)
        tx = torch.tensor(X, requires_grad=True)
        layer.zero_grad()
        tl.zero_grad()
        out = tl(tx)
        out.backward(torch.tensor(dZ))
        Z = layer(X)
        dX = layer.backward(dZ)
        assert Z.dtype == dX.dtype == np.float32
        np.testing.assert_allclose(Z, out.detach().numpy(), rtol=1e-5, atol=1e-5)
        scale = float(np.abs(tx.grad.numpy()).max())
        np.testing.assert_allclose(dX, tx.grad.numpy(), rtol=1e-5, atol=1e-5 * scale)
        for name, p in (("gamma", tl.weight), ("beta", tl.bias)):
            g = p.grad.numpy()
            np.testing.assert_allclose(layer.grads[name], g, rtol=1e-5,
                                       atol=1e-5 * float(np.abs(g).max()), err_msg=name)
    np.testing.assert_allclose(layer.running_mean, tl.running_mean.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(layer.running_var, tl.running_var.numpy(), rtol=1e-5)
    layer.eval(), tl.eval()
    X = rng.standard_normal((2, 4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(X), tl(torch.tensor(X)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
