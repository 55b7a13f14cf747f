"""GRU (nk.gru_forward / gru_backward, nk.GRU): against a NumPy transcription
of the equations written here (forward and BPTT), central differences, and
torch.nn.GRU with the same weights."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_forward(X, h0, W_ih, W_hh, b_ih, b_hh):
    """Gates r, z, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn))."""
    H = W_hh.shape[1]
    h = h0
    out, steps = [], []
    for x in X:
        gx = x @ W_ih.T + b_ih
        gh = h @ W_hh.T + b_hh
        r = sig(gx[:, :H] + gh[:, :H])
        z = sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        steps.append((h, r, z, n, gh[:, 2 * H:]))
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out), steps


def ref_backward(dH, X, W_ih, W_hh, steps, truncate=0):
    """dh_t = dH_t + dGh_{t+1} W_hh + dh_{t+1} z_{t+1}, cut into chain times k, 2k, ..."""
    T = len(steps)
    dX = np.zeros_like(X)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih, db_hh = np.zeros(W_ih.shape[0]), np.zeros(W_hh.shape[0])
    carry = None
    dhs = [None] * T
    for t in reversed(range(T)):
        h_prev, r, z, n, hn = steps[t]
        keep = t < T - 1 and not (truncate and (t + 1) % truncate == 0)
        dh = dH[t] + (carry if keep else 0)
        dan = dh * (1 - z) * (1 - n ** 2)
        daz = dh * (h_prev - n) * z * (1 - z)
        dar = dan * hn * r * (1 - r)
        dgx = np.concatenate([dar, daz, dan], axis=1)
        dgh = np.concatenate([dar, daz, dan * r], axis=1)
        dX[t] = dgx @ W_ih
        dW_ih += dgx.T @ X[t]
        dW_hh += dgh.T @ h_prev
        db_ih += dgx.sum(0)
        db_hh += dgh.sum(0)
        dhs[t] = dh
        carry = dgh @ W_hh + dh * z
    return dict(dX=dX, dh0=carry, dW_ih=dW_ih, dW_hh=dW_hh, db_ih=db_ih, db_hh=db_hh,
                dh=np.stack(dhs))


def make(T=5, B=3, N=4, H=6, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    return (rng.standard_normal((T, B, N)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype),
            rng.uniform(-s, s, (3 * H, N)).astype(dtype),
            rng.uniform(-s, s, (3 * H, H)).astype(dtype),
            rng.uniform(-s, s, 3 * H).astype(dtype),
            rng.uniform(-s, s, 3 * H).astype(dtype))


SHAPES = [(5, 3, 4, 6), (1, 2, 3, 4), (7, 1, 5, 9), (4, 9, 7, 33)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("truncate", [None, 3])
def test_against_numpy_reference(shape, truncate):
    args = make(*shape)
    H, cache = nk.gru_forward(*args)
    Href, steps = ref_forward(*args)
    np.testing.assert_allclose(H, Href, rtol=1e-12, atol=1e-13)
    dH = np.random.default_rng(1).standard_normal(H.shape)
    g = nk.gru_backward(dH, cache, truncate=truncate)
    r = ref_backward(dH, args[0], args[2], args[3], steps, truncate or 0)
    for name, want in r.items():
        np.testing.assert_allclose(getattr(g, name), want, rtol=1e-11, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(g.grad_norms, np.linalg.norm(r["dh"].reshape(len(steps), -1),
                                                            axis=1), rtol=1e-12)


def test_reverse_is_the_forward_of_the_flipped_sequence():
    X, h0, *w = make(6, 3, 4, 5)
    H, cache = nk.gru_forward(X, h0, *w, reverse=True)
    Hf, cf = nk.gru_forward(X[::-1].copy(), h0, *w)
    np.testing.assert_allclose(H, Hf[::-1], rtol=1e-13, atol=1e-14)
    dH = np.random.default_rng(2).standard_normal(H.shape)
    g = nk.gru_backward(dH, cache, truncate=2)
    gf = nk.gru_backward(dH[::-1].copy(), cf, truncate=2)
    np.testing.assert_allclose(g.dX, gf.dX[::-1], rtol=1e-12, atol=1e-13)
    for name in ("dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"):
        np.testing.assert_allclose(getattr(g, name), getattr(gf, name), rtol=1e-12,
                                   atol=1e-13)


def test_central_differences():
    args = [a.copy() for a in make(4, 2, 3, 5)]
    dH = np.random.default_rng(3).standard_normal((4, 2, 5))

    def loss():
        return float((nk.gru_forward(*args)[0] * dH).sum())

    _, cache = nk.gru_forward(*args)
    g = nk.gru_backward(dH, cache)
    analytic = [g.dX, g.dh0, g.dW_ih, g.dW_hh, g.db_ih, g.db_hh]
    step = 1e-6
    for a, an in zip(args, analytic):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + step
            up = loss()
            a[idx] = old - step
            down = loss()
            a[idx] = old
            num[idx] = (up - down) / (2 * step)
        np.testing.assert_allclose(an, num, rtol=1e-6, atol=1e-8)


def test_full_false_and_gate_views():
    args = make()
    H, cache = nk.gru_forward(*args)
    g = nk.gru_backward(np.ones_like(H), cache, full=False)
    assert g.dGx is None and g.dGh is None and g.dh is None
    gf = nk.gru_backward(np.ones_like(H), cache)
    np.testing.assert_array_equal(g.dW_hh, gf.dW_hh)
    assert gf.gate_grad("n").shape == H.shape
    assert cache.gate("z").shape == H.shape


def test_float32_close_to_float64():
    a64 = make(6, 4, 5, 20)
    a32 = [a.astype(np.float32) for a in a64]
    H64, c64 = nk.gru_forward(*a64)
    H32, c32 = nk.gru_forward(*a32)
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, H64, rtol=1e-5, atol=1e-5)
    dH = np.random.default_rng(4).standard_normal(H64.shape)
    g64 = nk.gru_backward(dH, c64)
    g32 = nk.gru_backward(dH.astype(np.float32), c32)
    for name in ("dX", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"):
        np.testing.assert_allclose(getattr(g32, name), getattr(g64, name), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


@pytest.mark.parametrize("bad, message", [
    (dict(X=np.ones((3, 4))), "X"),
    (dict(X=np.ones((3, 2, 4), np.int32)), "X"),
    (dict(W_ih=np.ones((10, 4))), "W_ih"),
    (dict(W_ih=np.ones((18, 5))), "W_ih"),
    (dict(W_hh=np.ones((18, 5))), "W_hh"),
    (dict(b_ih=np.ones(17)), "b_ih"),
    (dict(b_hh=np.ones(19)), "b_hh"),
    (dict(h0=np.ones((3, 6))), "h0"),
])
def test_bad_input_names_the_argument(bad, message):
    X, h0, W_ih, W_hh, b_ih, b_hh = make(3, 2, 4, 6)
    kw = dict(X=X, h0=h0, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh)
    kw.update(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        nk.gru_forward(**kw)


def test_bad_backward_input():
    H, cache = nk.gru_forward(*make())
    with pytest.raises(ValueError, match="dH"):
        nk.gru_backward(np.ones((2, 3)), cache)
    with pytest.raises((ValueError, TypeError), match="truncate"):
        nk.gru_backward(np.ones_like(H), cache, truncate=-1)


# ------------------------------------------------------------- nk.GRU layer
def test_state_dict_errors_name_the_key():
    m = nk.GRU(3, 4, bidirectional=True, seed=0)
    sd = {k: v.copy() for k, v in m.params.items()}
    sd.pop("weight_hh_l0_reverse")
    with pytest.raises(ValueError, match="weight_hh_l0_reverse"):
        m.load_torch_state_dict(sd)
    sd = {k: v.copy() for k, v in m.params.items()}
    sd["bias_ih_l0"] = np.ones(16)
    with pytest.raises(ValueError, match="bias_ih_l0"):
        m.load_torch_state_dict(sd)


def test_layer_bad_input():
    with pytest.raises(ValueError, match="num_layers"):
        nk.GRU(3, 4, num_layers=-1)
    m = nk.GRU(3, 4, seed=0)
    with pytest.raises(ValueError, match="X"):
        m(np.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="h0"):
        m(np.ones((5, 2, 3)), np.ones((2, 2, 4)))
