"""Issue 27's names for the recurrent layers, each exercised: nk.LSTM / nk.GRU
(input_size, hidden_size, *, num_layers=1, bidirectional=False,
batch_first=False, dtype=..., seed=...) with forward(X) -> H and backward(dH)
-> dX like nk.RNN; the layers' per-step norms (grad_norms, cell_norms) against
the functional pairs; load_torch_state_dict on RNN, LSTM and GRU refusing a
missing, extra or misshaped key by name before writing anything; num_layers
< 1 and a wrong rank refused; LastStep after a batch_first layer."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import nnkit as nk

KINDS = ["LSTM", "GRU"]


@pytest.mark.parametrize("kind", KINDS)
def test_signature_is_the_issues(kind):
    sig = inspect.signature(getattr(nk, kind))
    params = sig.parameters
    assert list(params)[:2] == ["input_size", "hidden_size"]
    for name in ("input_size", "hidden_size"):
        assert params[name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    want = dict(num_layers=1, bidirectional=False, batch_first=False, dropout=0.0,
                seed=None, dtype=np.float64)
    for name, default in want.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == default, name
    with pytest.raises(TypeError):
        getattr(nk, kind)(3, 4, 2)             # num_layers is keyword-only


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_is_every_steps_top_output_and_backward_gives_dX(kind, dtype):
    """forward(X) -> H (T, B, D·H): the second layer's outputs, computed here
    from the functional pairs with the layer's weights; backward(dH) -> dX of
    X's shape and dtype, and the per-step norms of both layers and directions
    are those of the functional backward's dh (and dc)."""
    T, B, N, Hh = 5, 3, 4, 6
    m = getattr(nk, kind)(N, Hh, num_layers=2, bidirectional=True, dtype=dtype, seed=2)
    X = np.random.default_rng(0).standard_normal((T, B, N)).astype(dtype)
    dY = np.random.default_rng(1).standard_normal((T, B, 2 * Hh)).astype(dtype)
    Y = m(X)
    assert Y.shape == (T, B, 2 * Hh) and Y.dtype == dtype
    fwd = nk.lstm_forward if kind == "LSTM" else nk.gru_forward
    bwd = nk.lstm_backward if kind == "LSTM" else nk.gru_backward
    state = (None, None) if kind == "LSTM" else (None,)

    def W(sfx):
        return [m.params[k + sfx] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    x, caches = X, []
    for l in range(2):
        outs = []
        for d, sfx in enumerate((f"_l{l}", f"_l{l}_reverse")):
            H, c = fwd(x, *state, *W(sfx), reverse=bool(d))
            outs.append(H)
            caches.append(c)
        x = np.concatenate(outs, axis=2)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(Y, x, rtol=tol, atol=tol)
    dX = m.backward(dY)
    assert dX.shape == X.shape and dX.dtype == dtype
    # the top layer's chains see dY directly: their norms are the functional ones
    for i, d in ((2, 0), (3, 1)):
        g = bwd(np.ascontiguousarray(dY[:, :, d * Hh:(d + 1) * Hh]), caches[i])
        np.testing.assert_allclose(m.grad_norms[i], g.grad_norms, rtol=tol)
        np.testing.assert_allclose(m.grad_norms[i],
                                   np.linalg.norm(g.dh.reshape(T, -1).astype(np.float64),
                                                  axis=1), rtol=tol)
        if kind == "LSTM":
            np.testing.assert_allclose(m.cell_norms[i], g.cell_norms, rtol=tol)
    assert m.grad_norms.shape == (4, T)
    if kind == "LSTM":
        assert m.cell_norms.shape == (4, T) and m.dc0.shape == (4, B, Hh)
    assert m.dh0.shape == (4, B, Hh) and m.h_n.shape == (4, B, Hh)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        (True, TypeError), ("2", TypeError)])
def test_num_layers_below_one_is_refused(kind, bad, error):
    with pytest.raises(error, match="num_layers"):
        getattr(nk, kind)(3, 4, num_layers=bad)


@pytest.mark.parametrize("kind", KINDS + ["RNN"])
def test_wrong_rank_is_refused_naming_X(kind):
    m = getattr(nk, kind)(3, 4, seed=0)
    for X in (np.ones((5, 3)), np.ones((2, 5, 2, 3))):
        with pytest.raises(ValueError, match=r"X: expected a 3-D array"):
            m(X)


def _sd(layer_kind, **cfg):
    if layer_kind == "RNN":
        return {"weight_ih_l0": np.ones((4, 3)), "weight_hh_l0": np.ones((4, 4)),
                "bias_ih_l0": np.ones(4), "bias_hh_l0": np.ones(4)}
    m = getattr(nk, layer_kind)(3, 4, seed=5, **cfg)
    return {k: v.copy() + 1.0 for k, v in m.params.items()}


CHANGES = {
    "missing": (lambda sd, k: sd.pop(k), ValueError, "missing key '{k}'"),
    "misshaped": (lambda sd, k: sd.update({k: np.ones(sd[k].shape + (1,))}), ValueError,
                  "key '{k}': expected shape"),
    "extra": (lambda sd, k: sd.update({k + "_x": sd[k]}), ValueError,
              "unexpected key '{k}_x'"),
    "not finite": (lambda sd, k: sd[k].__setitem__(..., np.nan), ValueError,
                   "key '{k}': expected finite"),
}


@pytest.mark.parametrize("kind, key", [("RNN", "bias_hh_l0"), ("RNN", "weight_ih_l0"),
                                       ("LSTM", "weight_hh_l1_reverse"),
                                       ("GRU", "bias_ih_l0_reverse")])
@pytest.mark.parametrize("change", list(CHANGES))
def test_load_torch_state_dict_names_the_bad_key_and_writes_nothing(kind, key, change):
    cfg = {} if kind == "RNN" else dict(num_layers=2, bidirectional=True)
    m = getattr(nk, kind)(3, 4, seed=0, **cfg)
    before = {k: v.copy() for k, v in m.params.items()}
    sd = _sd(kind, **cfg)
    fn, error, message = CHANGES[change]
    fn(sd, key)
    with pytest.raises(error, match=message.format(k=key).replace("(", r"\(")):
        m.load_torch_state_dict(sd)
    for k in before:
        np.testing.assert_array_equal(m.params[k], before[k], err_msg=k)
    with pytest.raises(TypeError, match="mapping"):
        m.load_torch_state_dict([("weight_ih_l0", np.ones((4, 3)))])


@pytest.mark.parametrize("kind", KINDS + ["RNN"])
def test_load_torch_state_dict_copies_every_array(kind):
    cfg = {} if kind == "RNN" else dict(num_layers=2, bidirectional=True)
    m = getattr(nk, kind)(3, 4, seed=0, **cfg)
    sd = _sd(kind, **cfg)
    m.load_torch_state_dict(sd)
    if kind == "RNN":     # one bias: the sum of torch's two (both are added to a_t)
        np.testing.assert_array_equal(m.params["Wx"], sd["weight_ih_l0"])
        np.testing.assert_array_equal(m.params["Wh"], sd["weight_hh_l0"])
        np.testing.assert_array_equal(m.params["b"], sd["bias_ih_l0"] + sd["bias_hh_l0"])
    else:
        assert list(m.params) == list(sd)
        for k in sd:
            np.testing.assert_array_equal(m.params[k], sd[k], err_msg=k)
            assert not np.shares_memory(m.params[k], sd[k])


@pytest.mark.parametrize("kind", KINDS + ["RNN"])
def test_last_step_after_a_batch_first_layer(kind):
    """LastStep(batch_first=True) picks output[:, -1] of (B, T, H), the same
    numbers as the time-major model's LastStep(); backward the same dX."""
    B, T, N = 3, 5, 2
    X = np.random.default_rng(3).standard_normal((B, T, N))
    dY = np.random.default_rng(4).standard_normal((B, 4))
    bf = nk.Sequential(getattr(nk, kind)(N, 4, batch_first=True, seed=1),
                       nk.LastStep(batch_first=True))
    tm = nk.Sequential(getattr(nk, kind)(N, 4, seed=1), nk.LastStep())
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))
    np.testing.assert_allclose(bf(X), tm(Xt), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(bf.backward(dY), tm.backward(dY).transpose(1, 0, 2),
                               rtol=1e-14, atol=1e-15)
    last = nk.LastStep(batch_first=True)
    last.forward(np.ones((B, T, 4)))
    with pytest.raises(ValueError, match="dY"):
        last.backward(np.ones((T, 4)))        # the time-major shape: refused
    with pytest.raises(TypeError, match="batch_first"):
        nk.LastStep(batch_first=1)
