"""LSTM (nk.lstm_forward / lstm_backward, nk.LSTM): against a NumPy
transcription of the equations written here (forward and BPTT), central
differences, and torch.nn.LSTM with the same weights."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_forward(X, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """Textbook loop: gates i, f, g, o; returns H and the per-step values."""
    T, B, _ = X.shape
    H = W_hh.shape[1]
    h, c = h0, c0
    out, steps = [], []
    for t in range(T):
        a = X[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        steps.append((h_prev, c_prev, i, f, g, o, c))
        out.append(h)
    return np.stack(out), steps


def ref_backward(dH, X, W_ih, W_hh, steps, truncate=0):
    """BPTT written out: dh_t = dH_t + dA_{t+1} W_hh, dc_t = dh_t o (1 - tanh² c)
    + f_{t+1} dc_{t+1}; the carry is dropped into chain times k, 2k, ..."""
    T = len(steps)
    dX = np.zeros_like(X)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_ih.shape[0])
    dh_next = np.zeros_like(steps[0][0])
    dc_next = np.zeros_like(dh_next)
    f_next = np.zeros_like(dh_next)
    dA_next = None
    dhs, dcs = [None] * T, [None] * T
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, g, o, c = steps[t]
        carry = t < T - 1 and not (truncate and (t + 1) % truncate == 0)
        dh = dH[t] + (dA_next @ W_hh if carry else 0)
        tc = np.tanh(c)
        dc = dh * o * (1 - tc ** 2) + (dc_next * f_next if carry else 0)
        dA = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dc * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        dX[t] = dA @ W_ih
        dW_ih += dA.T @ X[t]
        dW_hh += dA.T @ h_prev
        db += dA.sum(0)
        dhs[t], dcs[t] = dh, dc
        dA_next, dc_next, f_next = dA, dc, f
    dh0 = dA_next @ W_hh
    dc0 = dc_next * f_next
    return dict(dX=dX, dh0=dh0, dc0=dc0, dW_ih=dW_ih, dW_hh=dW_hh, db_ih=db, db_hh=db,
                dh=np.stack(dhs), dc=np.stack(dcs))


def make(T=5, B=3, N=4, H=6, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    return (rng.standard_normal((T, B, N)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype),
            rng.uniform(-s, s, (4 * H, N)).astype(dtype),
            rng.uniform(-s, s, (4 * H, H)).astype(dtype),
            rng.uniform(-s, s, 4 * H).astype(dtype),
            rng.uniform(-s, s, 4 * H).astype(dtype))


# shapes: tiny, one step, B = 1 (leftover rows), H past a tile panel
SHAPES = [(5, 3, 4, 6), (1, 2, 3, 4), (7, 1, 5, 9), (4, 9, 7, 33)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("truncate", [None, 2])
def test_against_numpy_reference(shape, truncate):
    args = make(*shape)
    H, cache = nk.lstm_forward(*args)
    Href, steps = ref_forward(*args)
    np.testing.assert_allclose(H, Href, rtol=1e-12, atol=1e-13)
    dH = np.random.default_rng(1).standard_normal(H.shape)
    g = nk.lstm_backward(dH, cache, truncate=truncate)
    r = ref_backward(dH, args[0], args[3], args[4], steps, truncate or 0)
    for name, want in r.items():
        np.testing.assert_allclose(getattr(g, name), want, rtol=1e-11, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(g.grad_norms, np.linalg.norm(r["dh"].reshape(len(steps), -1),
                                                            axis=1), rtol=1e-12)
    np.testing.assert_allclose(g.cell_norms, np.linalg.norm(r["dc"].reshape(len(steps), -1),
                                                            axis=1), rtol=1e-12)


def test_reverse_is_the_forward_of_the_flipped_sequence():
    X, h0, c0, *w = make(6, 3, 4, 5)
    H, cache = nk.lstm_forward(X, h0, c0, *w, reverse=True)
    Hf, cf = nk.lstm_forward(X[::-1].copy(), h0, c0, *w)
    np.testing.assert_allclose(H, Hf[::-1], rtol=1e-13, atol=1e-14)
    dH = np.random.default_rng(2).standard_normal(H.shape)
    g = nk.lstm_backward(dH, cache, truncate=2)
    gf = nk.lstm_backward(dH[::-1].copy(), cf, truncate=2)
    np.testing.assert_allclose(g.dX, gf.dX[::-1], rtol=1e-12, atol=1e-13)
    for name in ("dh0", "dc0", "dW_ih", "dW_hh", "db_ih"):
        np.testing.assert_allclose(getattr(g, name), getattr(gf, name), rtol=1e-12,
                                   atol=1e-13)


def test_central_differences():
    args = [a.copy() for a in make(4, 2, 3, 5)]
    rng = np.random.default_rng(3)
    dH = rng.standard_normal((4, 2, 5))

    def loss():
        return float((nk.lstm_forward(*args)[0] * dH).sum())

    _, cache = nk.lstm_forward(*args)
    g = nk.lstm_backward(dH, cache)
    analytic = [g.dX, g.dh0, g.dc0, g.dW_ih, g.dW_hh, g.db_ih, g.db_hh]
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
    H, cache = nk.lstm_forward(*args)
    g = nk.lstm_backward(np.ones_like(H), cache, full=False)
    assert g.dA is None and g.dh is None and g.dc is None
    gf = nk.lstm_backward(np.ones_like(H), cache)
    np.testing.assert_array_equal(g.dW_hh, gf.dW_hh)
    assert gf.gate_grad("f").shape == H.shape
    np.testing.assert_allclose(cache.gate("o") * cache.TC, H, rtol=1e-15)


def test_float32_close_to_float64():
    a64 = make(6, 4, 5, 20)
    a32 = [a.astype(np.float32) for a in a64]
    H64, c64 = nk.lstm_forward(*a64)
    H32, c32 = nk.lstm_forward(*a32)
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, H64, rtol=1e-5, atol=1e-5)
    dH = np.random.default_rng(4).standard_normal(H64.shape)
    g64 = nk.lstm_backward(dH, c64)
    g32 = nk.lstm_backward(dH.astype(np.float32), c32)
    for name in ("dX", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih"):
        np.testing.assert_allclose(getattr(g32, name), getattr(g64, name), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_large_step_uses_blas_path_same_values(monkeypatch):
    import nnkit.gated as G
    args = make(3, 5, 4, 40)
    H1, c1 = nk.lstm_forward(*args)
    g1 = nk.lstm_backward(np.ones_like(H1), c1)
    monkeypatch.setattr(G, "TILE_MAX_MACS", 1)
    H2, c2 = nk.lstm_forward(*args)
    g2 = nk.lstm_backward(np.ones_like(H2), c2)
    np.testing.assert_allclose(H1, H2, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g1.dX, g2.dX, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("bad, message", [
    (dict(X=np.ones((3, 4))), "X"),
    (dict(X=np.ones((3, 2, 4), np.int64)), "X"),
    (dict(W_ih=np.ones((10, 4))), "W_ih"),
    (dict(W_ih=np.ones((24, 5))), "W_ih"),
    (dict(W_hh=np.ones((24, 5))), "W_hh"),
    (dict(b_ih=np.ones(23)), "b_ih"),
    (dict(b_hh=np.ones((24, 1))), "b_hh"),
    (dict(h0=np.ones((3, 6))), "h0"),
    (dict(c0=np.ones((2, 5))), "c0"),
    (dict(reverse=1), "reverse"),
])
def test_bad_input_names_the_argument(bad, message):
    X, h0, c0, W_ih, W_hh, b_ih, b_hh = make(3, 2, 4, 6)
    kw = dict(X=X, h0=h0, c0=c0, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh)
    kw.update(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        nk.lstm_forward(**kw)


def test_bad_backward_input():
    H, cache = nk.lstm_forward(*make())
    with pytest.raises(ValueError, match="dH"):
        nk.lstm_backward(np.ones((2, 3)), cache)
    with pytest.raises((ValueError, TypeError), match="truncate"):
        nk.lstm_backward(np.ones_like(H), cache, truncate=0)
    with pytest.raises(TypeError):
        nk.lstm_backward(np.ones_like(H), object())


# ------------------------------------------------------------ nk.LSTM layer
@pytest.mark.parametrize("sd_change, message", [
    (lambda sd: sd.pop("bias_hh_l0"), "bias_hh_l0"),
    (lambda sd: sd.update(weight_ih_l0=np.ones((5, 3))), "weight_ih_l0"),
    (lambda sd: sd.update(weight_hh_l1=np.ones((16, 4))), "weight_hh_l1"),
])
def test_state_dict_errors_name_the_key(sd_change, message):
    m = nk.LSTM(3, 4, seed=0)
    sd = {k: v.copy() for k, v in m.params.items()}
    before = {k: v.copy() for k, v in m.params.items()}
    sd_change(sd)
    with pytest.raises(ValueError, match=message):
        m.load_torch_state_dict(sd)
    for k in before:
        np.testing.assert_array_equal(m.params[k], before[k])


def test_layer_bad_input():
    with pytest.raises(ValueError, match="num_layers"):
        nk.LSTM(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="hidden_size"):
        nk.LSTM(3, 0)
    with pytest.raises(TypeError, match="bidirectional"):
        nk.LSTM(3, 4, bidirectional=1)
    m = nk.LSTM(3, 4, num_layers=2, seed=0)
    with pytest.raises(ValueError, match="X"):
        m(np.ones((5, 2, 4)))
    with pytest.raises(ValueError, match="X"):
        m(np.ones((5, 3)))
    with pytest.raises(ValueError, match="h0"):
        m(np.ones((5, 2, 3)), np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match="c0"):
        m(np.ones((5, 2, 3)), None, np.ones((2, 3, 4)))
    m(np.ones((5, 2, 3)))
    with pytest.raises(ValueError, match="dH"):
        m.backward(np.ones((5, 2, 5)))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("B", [8, 13])
def test_row_team_gives_the_same_bits_as_one_thread(monkeypatch, kind, B):
    """The time loops split the batch's rows over a team (multiples of 4 rows):
    every row takes the same path as on one thread, so the bits agree (the
    norms are sums of the threads' parts: rounding level)."""
    import nnkit.gated as G
    rng = np.random.default_rng(11)
    T, N, H = 6, 5, 24
    gates = 4 if kind == "lstm" else 3
    X = rng.standard_normal((T, B, N))
    h0 = rng.standard_normal((B, H))
    W = [rng.uniform(-.2, .2, s) for s in ((gates * H, N), (gates * H, H), gates * H,
                                           gates * H)]
    dH = rng.standard_normal((T, B, H))
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(G, "_loop_threads", lambda *a, n=threads: n)
        for reverse in (False, True):
            if kind == "lstm":
                Y, c = nk.lstm_forward(X, h0, h0 * 0.5, *W, reverse=reverse)
                g = nk.lstm_backward(dH, c, truncate=4)
            else:
                Y, c = nk.gru_forward(X, h0, *W, reverse=reverse)
                g = nk.gru_backward(dH, c, truncate=4)
            results.append((Y, g))
    for (Y1, g1), (Y2, g2) in zip(results[:2], results[2:]):
        np.testing.assert_array_equal(Y1, Y2)
        for name, a, b in zip(g1._fields, g1, g2):
            if name in ("grad_norms", "cell_norms"):
                np.testing.assert_allclose(a, b, rtol=1e-14)
            elif isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=name)
