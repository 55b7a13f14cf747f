"""P9: bad input to the RNN and BiRNN functions is refused before any kernel runs."""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref)


# ------------------------------------------------------------ bad input
def _ok(rng):
    return make_rnn(rng, 3, 2, 4, 5)


@pytest.mark.parametrize("change,exc,match", [
    (dict(X=np.zeros((2, 4))), ValueError, r"X: expected a 3-D array \(T, B, N\).*got shape \(2, 4\)"),
    (dict(X=np.zeros((0, 2, 4))), ValueError, r"X: expected at least one time step \(T ≥ 1\)"),
    (dict(X=np.zeros((3, 0, 4))), ValueError, r"X: expected a non-empty array"),
    (dict(X=np.zeros((3, 2, 4), np.int64)), TypeError, r"X: expected dtype float32 or float64, got int64"),
    (dict(X=np.zeros((3, 2, 4), np.float32)), TypeError, r"Wx: expected dtype float32"),
    (dict(Wx=np.zeros((5, 3))), ValueError, r"Wx: expected Wx.shape\[1\] \(N, the features of X\) = 4, got 3"),
    (dict(Wh=np.zeros((5, 4))), ValueError, r"Wh: expected shape \(5, 5\).*got \(5, 4\)"),
    (dict(b=np.zeros(4)), ValueError, r"b: expected b.shape\[0\] \(M = Wx.shape\[0\]\) = 5, got 4"),
    (dict(h0=np.zeros((3, 5))), ValueError, r"h0: expected shape \(2, 5\).*got \(3, 5\)"),
    (dict(h0=np.zeros(5)), ValueError, r"h0: expected a 2-D array \(B, M\)"),
])
def test_rnn_forward_bad_input(change, exc, match, rng):
    p = _ok(rng)
    p.update(change)
    with pytest.raises(exc, match=match):
        nk.rnn_forward(**p)


def test_bad_activation_and_upstream(rng):
    p = _ok(rng)
    with pytest.raises(ValueError, match=r"activation: expected one of \['tanh', 'sigmoid', 'relu'\], got 'softplus'"):
        nk.rnn_forward(**p, activation="softplus")
    H, cache = nk.rnn_forward(**p)
    with pytest.raises(ValueError, match=r"dH: expected shape \(3, 2, 5\) \(the forward output\), got \(3, 2, 4\)"):
        nk.rnn_backward(np.zeros((3, 2, 4)), cache)
    with pytest.raises(TypeError, match=r"dH: expected dtype float64"):
        nk.rnn_backward(H.astype(np.float32), cache)
    _, bcache = nk.birnn_forward(**make_birnn(rng, 2, 2, 2, 2, 2))
    with pytest.raises(TypeError, match=r"cache: expected the cache returned by rnn_forward \(RNNCache\), got BiRNNCache"):
        nk.rnn_backward(H, bcache)
    with pytest.raises(TypeError, match=r"cache: expected the cache returned by birnn_forward"):
        nk.birnn_backward(H, cache)


@pytest.mark.parametrize("change,match", [
    (dict(Wy=np.zeros((2, 5))), r"Wy: expected Wy.shape\[1\] \(2M: it reads \[h\^f_t, h\^b_t\]\) = 6, got 5"),
    (dict(by=np.zeros(3)), r"by: expected by.shape\[0\] \(K = Wy.shape\[0\]\) = 2, got 3"),
    (dict(Wxb=np.zeros((4, 2)), Whb=np.zeros((4, 4))), r"Wxb: expected Wxb.shape\[0\] \(M, the hidden units"),
    (dict(Whf=np.zeros((3, 2))), r"Whf: expected shape \(3, 3\)"),
    (dict(hb0=np.zeros((2, 4))), r"hb0: expected shape \(2, 3\)"),
    (dict(bf=np.zeros(2)), r"bf: expected bf.shape\[0\] \(M = Wxf.shape\[0\]\) = 3, got 2"),
])
def test_birnn_forward_bad_input(change, match, rng):
    p = make_birnn(rng, 2, 2, 2, 3, 2)
    p.update(change)
    with pytest.raises(ValueError, match=match):
        nk.birnn_forward(**p)


@pytest.mark.parametrize("truncate,exc,match", [
    (0, ValueError, r"truncate: expected a positive integer or None \(full BPTT\), got 0"),
    (-2, ValueError, r"truncate: expected a positive integer or None"),
    (2.0, TypeError, r"truncate: expected a positive integer or None \(full BPTT\), got float 2.0"),
    (True, TypeError, r"truncate: expected a positive integer or None \(full BPTT\), got bool"),
    ("3", TypeError, r"truncate: expected a positive integer or None"),
])
def test_bad_truncate(truncate, exc, match, rng):
    H, cache = nk.rnn_forward(**_ok(rng))
    with pytest.raises(exc, match=match):
        nk.rnn_backward(np.zeros_like(H), cache, truncate=truncate)


def test_bad_form(rng):
    with pytest.raises(ValueError, match=r"form: expected one of \['standard', 'preactivation'\], got 'pre'"):
        nk.rnn_forward(**_ok(rng), form="pre")
    with pytest.raises(TypeError, match=r"form: expected one of"):
        nk.rnn_forward(**_ok(rng), form=1)
