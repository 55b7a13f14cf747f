"""nk.LSTM / nk.GRU dropout=p between stacked layers, as torch.nn.LSTM's
`dropout`: inverted dropout on each layer's output except the last, in
training mode only. Checked against the layers written out here with the
functional pairs and the same mask, central differences through that
function, and the rules (p = 0 and eval mode are the layer without dropout;
p outside [0, 1) refused). torch in eval mode: tests/rnn/test_gated_torch.py."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk

KINDS = ["LSTM", "GRU"]


def _layer(kind, dropout, **cfg):
    return getattr(nk, kind)(3, 4, num_layers=3, dropout=dropout, seed=7, **cfg)


def _masks(m):
    """The keep masks the last training forward drew, one per layer but the last."""
    return [d.mask for d in m._cache[1][:-1]]


def _written_out(m, X, masks, p):
    """The stacked layer from the functional pairs: layer l reads layer l−1's
    output ⊙ mask / (1 − p); the masks are given (drawn by the layer)."""
    D = 2 if m.bidirectional else 1
    x = X
    for l in range(m.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            W = [m.params[k + sfx] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if isinstance(m, nk.LSTM):
                H, _ = nk.lstm_forward(x, None, None, *W, reverse=bool(d))
            else:
                H, _ = nk.gru_forward(x, None, *W, reverse=bool(d))
            outs.append(H)
        x = np.concatenate(outs, axis=2)
        if l < m.num_layers - 1 and masks is not None:
            x = x * masks[l] / (1.0 - p)
    return x


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_zero_is_no_dropout(kind):
    X = np.random.default_rng(0).standard_normal((5, 2, 3))
    dY = np.random.default_rng(1).standard_normal((5, 2, 4))
    a, b = _layer(kind, 0.0), getattr(nk, kind)(3, 4, num_layers=3, seed=7)
    state = nk._random._generator.bit_generator.state
    np.testing.assert_array_equal(a(X), b(X))
    np.testing.assert_array_equal(a.backward(dY), b.backward(dY))
    for name in a.params:
        np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)
    assert nk._random._generator.bit_generator.state == state     # no mask drawn
    assert "dropout" not in repr(a) and "dropout=0.5" in repr(_layer(kind, 0.5))


@pytest.mark.parametrize("kind", KINDS)
def test_eval_mode_ignores_dropout(kind):
    X = np.random.default_rng(0).standard_normal((5, 2, 3))
    dY = np.random.default_rng(1).standard_normal((5, 2, 4))
    a, b = _layer(kind, 0.6).eval(), getattr(nk, kind)(3, 4, num_layers=3, seed=7).eval()
    np.testing.assert_array_equal(a(X), b(X))
    np.testing.assert_array_equal(a.backward(dY), b.backward(dY))
    for name in a.params:
        np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)
    # and in training mode it does drop: the output differs
    assert not np.array_equal(a.train()(X), b(X))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cfg", [{}, {"bidirectional": True, "batch_first": True}],
                         ids=["uni", "bi,batch_first"])
def test_training_forward_is_the_written_out_layers_with_the_mask(kind, cfg):
    p = 0.4
    m = _layer(kind, p, **cfg)
    X = np.random.default_rng(2).standard_normal((2, 5, 3) if cfg else (5, 2, 3))
    Y = m(X)
    masks = _masks(m)
    D = 2 if cfg else 1
    assert len(masks) == 2 and all(k.shape == (5, 2, D * 4) for k in masks)
    assert all(k.dtype == bool for k in masks)
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2)) if cfg else X
    ref = _written_out(m, Xt, masks, p)
    if cfg:
        ref = ref.transpose(1, 0, 2)
    np.testing.assert_allclose(Y, ref, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_with_a_fixed_mask_against_central_differences(kind):
    """L = Σ G ⊙ Y(X, θ) with the mask of one training forward held fixed:
    the layer's dX and every parameter's gradient against central differences
    of the written-out function (step 1e-6, float64)."""
    p = 0.5
    m = getattr(nk, kind)(2, 3, num_layers=3, bidirectional=True, dropout=p, seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, 2, 2))
    G = rng.standard_normal((4, 2, 6))
    m(X)
    masks = _masks(m)
    assert any(not k.all() for k in masks)            # something was dropped
    dX = m.backward(G)

    def loss():
        return float(np.sum(G * _written_out(m, X, masks, p)))

    def central(a):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + 1e-6
            up = loss()
            a[i] = old - 1e-6
            down = loss()
            a[i] = old
            g[i] = (up - down) / 2e-6
        return g

    np.testing.assert_allclose(dX, central(X), rtol=1e-6, atol=1e-8)
    for name, param in m.params.items():
        np.testing.assert_allclose(m.grads[name], central(param), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_masks_keep_one_minus_p_and_reproduce_with_a_seed():
    p = 0.3
    X = np.random.default_rng(5).standard_normal((50, 20, 3))
    a, b = nk.LSTM(3, 40, num_layers=2, dropout=p, seed=11), \
        nk.LSTM(3, 40, num_layers=2, dropout=p, seed=11)
    np.testing.assert_array_equal(a(X), b(X))           # same seed, same masks
    (mask,) = _masks(a)
    # 40,000 Bernoulli(0.7) draws: the kept fraction within 5 standard deviations
    assert abs(mask.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / mask.size)
    first = a(X)
    assert not np.array_equal(first, a(X))               # a new mask per forward


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (1.0, ValueError),
                                        (1.5, ValueError), (float("nan"), ValueError),
                                        ("0.5", TypeError), (None, TypeError),
                                        (True, TypeError)])
def test_dropout_outside_0_1_is_refused(kind, bad, error):
    with pytest.raises(error, match="dropout") as e:
        getattr(nk, kind)(3, 4, num_layers=2, dropout=bad)
    assert repr(bad) in str(e.value)


def test_sequential_eval_switches_the_dropout_off():
    X = np.random.default_rng(6).standard_normal((4, 2, 3))
    m = nk.Sequential(_layer("LSTM", 0.5), nk.LastStep(), nk.Linear(4, 2, seed=0))
    plain = nk.Sequential(getattr(nk, "LSTM")(3, 4, num_layers=3, seed=7), nk.LastStep(),
                          nk.Linear(4, 2, seed=0))
    assert not np.array_equal(m(X), plain(X))          # training: masks drawn
    m.eval()
    assert not m[0].training
    np.testing.assert_array_equal(m(X), plain(X))
    m.train()
    assert m[0].training
