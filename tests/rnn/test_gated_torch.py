"""nk.LSTM, nk.GRU and nk.RNN layers against torch.nn.LSTM / GRU / RNN with
the same weights (loaded with load_torch_state_dict): outputs, final states
and every gradient, float64 to 1e-10 and float32 to 1e-5. (The NumPy-reference
and central-difference tests are in test_lstm.py and test_gru.py, which run
without torch.)"""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk

torch = pytest.importorskip("torch")

CONFIGS = [dict(num_layers=1), dict(num_layers=2), dict(bidirectional=True),
           dict(num_layers=2, bidirectional=True, batch_first=True), dict(batch_first=True),
           dict(bias=False)]


def torch_pair(kind, N, H, dtype, **cfg):
    tm = getattr(torch.nn, kind)(N, H, **cfg).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    m = getattr(nk, kind)(N, H, dtype=dtype, **cfg)
    m.load_torch_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, m


def check_against_torch(kind, cfg, dtype, tol, with_state):
    T, B, N, H = 6, 3, 5, 7
    rng = np.random.default_rng(5)
    tm, m = torch_pair(kind, N, H, dtype, **cfg)
    bf = cfg.get("batch_first", False)
    X = rng.standard_normal((B, T, N) if bf else (T, B, N)).astype(dtype)
    LD = cfg.get("num_layers", 1) * (2 if cfg.get("bidirectional") else 1)
    states = [rng.standard_normal((LD, B, H)).astype(dtype)
              for _ in range(2 if kind == "LSTM" else 1)] if with_state else []
    Xt = torch.tensor(X, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    if states:
        out, fin = tm(Xt, tuple(st) if kind == "LSTM" else st[0])
    else:
        out, fin = tm(Xt)
    Y = m(X, *states)
    np.testing.assert_allclose(Y, out.detach().numpy(), rtol=tol, atol=tol)
    h_n = fin[0] if kind == "LSTM" else fin
    np.testing.assert_allclose(m.h_n, h_n.detach().numpy(), rtol=tol, atol=tol)
    if kind == "LSTM":
        np.testing.assert_allclose(m.c_n, fin[1].detach().numpy(), rtol=tol, atol=tol)
    dY = rng.standard_normal(Y.shape).astype(dtype)
    (out * torch.tensor(dY)).sum().backward()
    dX = m.backward(dY)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=tol, atol=tol)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(m.grads[name], p.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=name)
    if states:
        np.testing.assert_allclose(m.dh0, st[0].grad.numpy(), rtol=tol, atol=tol)
        if kind == "LSTM":
            np.testing.assert_allclose(m.dc0, st[1].grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_layer_matches_torch(cfg, dtype, tol, with_state):
    check_against_torch("LSTM", cfg, dtype, tol, with_state)


def test_lstm_truncate_matches_detached_torch():
    """truncate=k on the layer is torch with both states detached every k steps."""
    T, B, N, H, k = 7, 2, 3, 4, 3
    tm, m = torch_pair("LSTM", N, H, np.float64)
    m.truncate = k
    X = np.random.default_rng(6).standard_normal((T, B, N))
    Xt = torch.tensor(X, requires_grad=True)
    h = c = torch.zeros(1, B, H, dtype=torch.float64)
    outs = []
    for t in range(T):
        if t > 0 and t % k == 0:
            h, c = h.detach(), c.detach()
        o, (h, c) = tm(Xt[t:t + 1], (h, c))
        outs.append(o)
    out = torch.cat(outs)
    dY = np.random.default_rng(7).standard_normal((T, B, H))
    (out * torch.tensor(dY)).sum().backward()
    Y = m(X)
    np.testing.assert_allclose(Y, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(m.backward(dY), Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(m.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_init_is_uniform_in_pytorch_bound_and_names():
    m = nk.LSTM(3, 16, num_layers=2, bidirectional=True, seed=0)
    assert list(m.params) == list(torch.nn.LSTM(3, 16, num_layers=2,
                                                bidirectional=True).state_dict())
    for name, p in m.params.items():
        assert np.abs(p).max() <= 0.25 and np.abs(p).max() > 0.2, name
    assert m.params["weight_ih_l1"].shape == (64, 32)
    a, b = nk.LSTM(3, 4, seed=1), nk.LSTM(3, 4, seed=1)
    np.testing.assert_array_equal(a.params["weight_hh_l0"], b.params["weight_hh_l0"])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("with_state", [False, True])
def test_gru_layer_matches_torch(cfg, dtype, tol, with_state):
    check_against_torch("GRU", cfg, dtype, tol, with_state)


def test_gru_parameter_names_are_torchs():
    m = nk.GRU(3, 4, bidirectional=True, seed=0)
    assert list(m.params) == list(torch.nn.GRU(3, 4, bidirectional=True).state_dict())


def test_rnn_batch_first_and_state_dict_match_torch():
    T, B, N, H = 5, 3, 4, 6
    tm = torch.nn.RNN(N, H, batch_first=True).double()
    m = nk.RNN(N, H, batch_first=True)
    m.load_torch_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    X = np.random.default_rng(8).standard_normal((B, T, N))
    Xt = torch.tensor(X, requires_grad=True)
    out = tm(Xt)[0]
    Y = m(X)
    np.testing.assert_allclose(Y, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    dY = np.random.default_rng(9).standard_normal(Y.shape)
    (out * torch.tensor(dY)).sum().backward()
    np.testing.assert_allclose(m.backward(dY), Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.grads["Wh"], tm.weight_hh_l0.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.grads["b"], tm.bias_ih_l0.grad.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="bias_ih_l0"):
        m.load_torch_state_dict({"weight_ih_l0": np.ones((H, N)),
                                 "weight_hh_l0": np.ones((H, H))})


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_dropout_in_eval_mode_matches_torch(kind, dtype, tol):
    """dropout=p is torch's argument: in eval mode neither drops, so the
    outputs and every gradient agree with p > 0."""
    T, B, N, H = 6, 3, 5, 7
    cfg = dict(num_layers=3, bidirectional=True, dropout=0.4)
    tm, m = torch_pair(kind, N, H, dtype, **cfg)
    tm.eval()
    m.eval()
    rng = np.random.default_rng(12)
    X = rng.standard_normal((T, B, N)).astype(dtype)
    Xt = torch.tensor(X, requires_grad=True)
    out = tm(Xt)[0]
    Y = m(X)
    np.testing.assert_allclose(Y, out.detach().numpy(), rtol=tol, atol=tol)
    dY = rng.standard_normal(Y.shape).astype(dtype)
    (out * torch.tensor(dY)).sum().backward()
    np.testing.assert_allclose(m.backward(dY), Xt.grad.numpy(), rtol=tol, atol=tol)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(m.grads[name], p.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=name)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dropout_in_training_matches_torch_given_its_mask(kind):
    """In training, torch's masks are its own draws; with torch's dropout
    emulated by the same masks (nnkit's, applied between torch's one-layer
    modules with nnkit's weights) the outputs and gradients agree."""
    T, B, N, H, p = 5, 2, 3, 4, 0.5
    m = getattr(nk, kind)(N, H, num_layers=2, dropout=p, seed=1)
    X = np.random.default_rng(13).standard_normal((T, B, N))
    Y = m(X)
    mask = m._cache[1][0].mask
    layers = []
    for l in range(2):
        t = getattr(torch.nn, kind)(N if l == 0 else H, H).double()
        t.load_state_dict({k: torch.tensor(m.params[k[:-1] + str(l)])
                           for k in t.state_dict()})
        layers.append(t)
    Xt = torch.tensor(X, requires_grad=True)
    h = layers[0](Xt)[0] * torch.tensor(mask) / (1 - p)
    out = layers[1](h)[0]
    np.testing.assert_allclose(Y, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    dY = np.random.default_rng(14).standard_normal(Y.shape)
    (out * torch.tensor(dY)).sum().backward()
    np.testing.assert_allclose(m.backward(dY), Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for l, t in enumerate(layers):
        for name, q in t.named_parameters():
            np.testing.assert_allclose(m.grads[name[:-1] + str(l)], q.grad.numpy(),
                                       rtol=1e-10, atol=1e-12, err_msg=name)
