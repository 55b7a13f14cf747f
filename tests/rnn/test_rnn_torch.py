"""P9: the RNN against PyTorch's nn.RNN autograd (float64; skipped without torch).

nn.RNN has tanh and relu (no sigmoid); its two biases b_ih + b_hh are our b.
Truncated BPTT is compared with PyTorch's own way of writing it: the state
detached (`h.detach()`) at t = k, 2k, ... in a hand-unrolled loop of RNNCell.
"""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import make_rnn

torch = pytest.importorskip("torch")


def _torch_rnn(p, act):
    T, B, N = p["X"].shape
    M = p["Wx"].shape[0]
    rnn = torch.nn.RNN(N, M, nonlinearity=act).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["Wx"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["Wh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        rnn.bias_hh_l0.zero_()
    return rnn


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_rnn_matches_torch_autograd(act, rng):
    p = make_rnn(rng, 9, 3, 4, 5)
    H, cache = nk.rnn_forward(**p, activation=act)
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache)
    rnn = _torch_rnn(p, act)
    X = torch.from_numpy(p["X"]).requires_grad_(True)
    h0 = torch.from_numpy(p["h0"][None]).requires_grad_(True)
    out, _ = rnn(X, h0)
    out.backward(torch.from_numpy(dH))
    np.testing.assert_allclose(H, out.detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g.dX, X.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.dh0, h0.grad.numpy()[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.dWx, rnn.weight_ih_l0.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.dWh, rnn.weight_hh_l0.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.db, rnn.bias_ih_l0.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_truncated_bptt_matches_torch_detach(k, rng):
    p = make_rnn(rng, 10, 2, 3, 4)
    H, cache = nk.rnn_forward(**p)
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache, truncate=k)
    cell = torch.nn.RNNCell(3, 4).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(p["Wx"]))
        cell.weight_hh.copy_(torch.from_numpy(p["Wh"]))
        cell.bias_ih.copy_(torch.from_numpy(p["b"]))
        cell.bias_hh.zero_()
    X = torch.from_numpy(p["X"]).requires_grad_(True)
    h = torch.from_numpy(p["h0"]).requires_grad_(True)
    h0, outs = h, []
    for t in range(10):
        h = cell(X[t], h)
        outs.append(h)
        if (t + 1) % k == 0:
            h = h.detach()              # the state at t = k, 2k, ... is a constant
    torch.stack(outs).backward(torch.from_numpy(dH))
    np.testing.assert_allclose(g.dWh, cell.weight_hh.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.dWx, cell.weight_ih.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.dX, X.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.dh0, h0.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_relu_nan_matches_torch():
    """relu(NaN) = NaN in both, and NaN reaches the same outputs."""
    p = make_rnn(np.random.default_rng(1), 3, 2, 3, 4)
    p["X"][0, 1, 0] = np.nan
    H, _ = nk.rnn_forward(**p, activation="relu")
    out, _ = _torch_rnn(p, "relu")(torch.from_numpy(p["X"]), torch.from_numpy(p["h0"][None]))
    np.testing.assert_array_equal(np.isnan(H), np.isnan(out.detach().numpy()))
    assert np.isnan(H).any()
