"""P9: recurrent networks and backpropagation through time.

Rows are samples and sequences are time-major: X is (T, B, N).

Simple RNN (``rnn_forward`` / ``rnn_backward``):
    a_t = x_t Wxᵀ + h_{t−1} Whᵀ + b,   h_t = act(a_t),   t = 1..T  (h_0 given)
with Wx (M, N), Wh (M, M), b (M,), act ∈ {tanh, sigmoid, relu}. BPTT: the
total derivative of a state is what the output asks of it plus what flows
back from the next step,
    dh_t = dH_t + dA_{t+1} Wh,      dA_t = dh_t ⊙ act′(a_t),
and every weight gradient is a sum over time (dWh = Σ_t dA_tᵀ h_{t−1}).

Bidirectional RNN (``birnn_forward`` / ``birnn_backward``), P9.4:
    h^f_t = act(x_t Wxfᵀ + h^f_{t−1} Whfᵀ [+ bf])   left to right from hf0
    h^b_t = act(x_t Wxbᵀ + h^b_{t+1} Whbᵀ [+ bb])   right to left from hb0
    y_t   = [h^f_t, h^b_t] Wyᵀ + by                 Wy (K, 2M), by (K,)
In P9.4's notation U = Wx (input weights) and W = Wh (recurrent weights),
written there as column vectors: W h + U x. The recurrence biases bf, bb are
optional keywords (P9.4 has none): when omitted the chains run without a bias
(no zero vector is added) and dbf, dbb are still returned, the gradient a bias
would receive (Σ dA), which is ∂L/∂b at b = 0. The forward chain's gradients
accumulate right to left in time, the backward chain's left to right.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import rnn as _k

# activation name -> the kernels' code
ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2}


# ------------------------------------------------------------------ helpers
def _rows(a: np.ndarray) -> np.ndarray:
    """(T, B, C) as its (T·B, C) row view (no copy: a is C-contiguous)."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


# --------------------------------------------------------------------- RNN
@dataclass(frozen=True)
class RNNCache:
    X: np.ndarray        # (T, B, N) input (never modified)
    h0: np.ndarray       # (B, M)
    Wx: np.ndarray       # (M, N)
    Wh: np.ndarray       # (M, M)
    b: np.ndarray | None  # (M,) or None
    activation: str
    H: np.ndarray        # (T, B, M) the states (the forward output; do not modify)


class RNNGrads(NamedTuple):
    dX: np.ndarray       # (T, B, N)  dA_t Wx
    dh0: np.ndarray      # (B, M)     dA_1 Wh
    dWx: np.ndarray      # (M, N)     Σ_t dA_tᵀ x_t
    dWh: np.ndarray      # (M, M)     Σ_t dA_tᵀ h_{t−1}
    db: np.ndarray       # (M,)       Σ_t Σ_i dA_t   (∂L/∂b at b = 0 without a bias)
    dA: np.ndarray       # (T, B, M)  ∂L/∂a_t = dh_t ⊙ act′(a_t)
    dh: np.ndarray | None  # (T, B, M) total ∂L/∂h_t = dH_t + dA_{t+1} Wh (None if full=False)


def rnn_forward(X, h0, Wx, Wh, b, activation="tanh", *, out=None):
    """H (T, B, M), cache.  X (T, B, N), h0 (B, M) or None (zeros), Wx (M, N),
    Wh (M, M), b (M,) or None (no bias)."""
    act = v.choice("activation", activation, ACTIVATIONS)
    X = v.sequence("X", X)
    Wx, Wh, b = v.recurrent_weights(X, Wx, Wh, b, "b", "Wx", "Wh")
    T, B, _ = X.shape
    M = Wx.shape[0]
    h0 = v.initial_state("h0", h0, B, M, X.dtype)
    H = v.out_array(out, (T, B, M), X.dtype)
    if out is not None:
        v.no_overlap(H, "out", X=X, h0=h0, Wx=Wx, Wh=Wh, b=b)
    _k.forward(_rows(X), h0, Wx, Wh, b, ACTIVATIONS[act], False, _rows(H), T)
    return H, RNNCache(X, h0, Wx, Wh, b, act, H)


def rnn_backward(dH, cache: RNNCache, *, full=True, out=None) -> RNNGrads:
    """Every gradient of the RNN given dH = ∂L/∂H (T, B, M) (the direct part:
    what the loss asks of each h_t; BPTT adds what flows back from t+1).

    full=False skips writing the total state gradients dh; `out` receives dX.
    """
    v.cache_of(cache, RNNCache, "rnn_forward")
    X, H = cache.X, cache.H
    dH = v.upstream("dH", dH, H.shape, X.dtype)
    T, B, M = H.shape
    dX = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(dX, "out", dH=dH, X=X)
    dA = np.empty_like(H)
    dh = np.empty_like(H) if full else None
    dh0 = np.empty((B, M), X.dtype)
    dWx = np.empty_like(cache.Wx)
    dWh = np.empty_like(cache.Wh)
    db = np.empty(M, X.dtype)
    _k.backward(_rows(dH), _rows(H), cache.h0, _rows(X), cache.Wx, cache.Wh,
                ACTIVATIONS[cache.activation], False, T, _rows(dA),
                None if dh is None else _rows(dh), _rows(dX), False, dh0, dWx, dWh, db)
    return RNNGrads(dX, dh0, dWx, dWh, db, dA, dh)


# ------------------------------------------------------------------- BiRNN
@dataclass(frozen=True)
class BiRNNCache:
    X: np.ndarray        # (T, B, N)
    hf0: np.ndarray      # (B, M) state before t = 1 of the forward chain
    hb0: np.ndarray      # (B, M) state after t = T of the backward chain (h^b_{T+1})
    Wxf: np.ndarray
    Whf: np.ndarray
    bf: np.ndarray | None
    Wxb: np.ndarray
    Whb: np.ndarray
    bb: np.ndarray | None
    Wy: np.ndarray       # (K, 2M)
    by: np.ndarray       # (K,)
    activation: str
    Hf: np.ndarray       # (T, B, M) forward states h^f_1..T
    Hb: np.ndarray       # (T, B, M) backward states h^b_1..T
    Y: np.ndarray        # (T, B, K) outputs


class BiRNNGrads(NamedTuple):
    dX: np.ndarray       # (T, B, N)  both chains' dA U summed
    dhf0: np.ndarray     # (B, M)
    dhb0: np.ndarray     # (B, M)
    dWxf: np.ndarray     # (M, N)  U^f
    dWhf: np.ndarray     # (M, M)  W^f
    dbf: np.ndarray      # (M,)
    dWxb: np.ndarray     # (M, N)  U^b
    dWhb: np.ndarray     # (M, M)  W^b
    dbb: np.ndarray      # (M,)
    dWy: np.ndarray      # (K, 2M)
    dby: np.ndarray      # (K,)
    dhf: np.ndarray | None  # (T, B, M) total ∂L/∂h^f_t (accumulated right to left)
    dhb: np.ndarray | None  # (T, B, M) total ∂L/∂h^b_t (accumulated left to right)
    dAf: np.ndarray      # (T, B, M) forward-chain pre-activation gradients
    dAb: np.ndarray      # (T, B, M) backward-chain pre-activation gradients


def birnn_forward(X, hf0, hb0, Wxf, Whf, Wxb, Whb, Wy, by, activation="sigmoid", *,
                  bf=None, bb=None, out=None):
    """Y (T, B, K), cache. hf0/hb0 (B, M) or None (zeros); Wy (K, 2M) acts on
    [h^f_t, h^b_t]; bf, bb optional recurrence biases (M,)."""
    act = v.choice("activation", activation, ACTIVATIONS)
    X = v.sequence("X", X)
    Wxf, Whf, bf = v.recurrent_weights(X, Wxf, Whf, bf, "bf", "Wxf", "Whf")
    M = Wxf.shape[0]
    Wxb, Whb, bb = v.recurrent_weights(X, Wxb, Whb, bb, "bb", "Wxb", "Whb")
    v.same_dim("Wxb", Wxb.shape[0], M, "Wxb.shape[0] (M, the hidden units of the forward "
               "chain, Wxf.shape[0])")
    T, B, _ = X.shape
    Wy = v.float_array("Wy", Wy, 2, "(K, 2M)", dtype=X.dtype)
    v.nonempty("Wy", Wy, "(K, 2M)")
    v.same_dim("Wy", Wy.shape[1], 2 * M, "Wy.shape[1] (2M: it reads [h^f_t, h^b_t])")
    K = Wy.shape[0]
    by = v.float_array("by", by, 1, "(K,)", dtype=X.dtype)
    v.same_dim("by", by.shape[0], K, "by.shape[0] (K = Wy.shape[0])")
    hf0 = v.initial_state("hf0", hf0, B, M, X.dtype)
    hb0 = v.initial_state("hb0", hb0, B, M, X.dtype)
    Y = v.out_array(out, (T, B, K), X.dtype)
    if out is not None:
        v.no_overlap(Y, "out", X=X, hf0=hf0, hb0=hb0, Wy=Wy, by=by)
    Hf = np.empty((T, B, M), X.dtype)
    Hb = np.empty((T, B, M), X.dtype)
    code = ACTIVATIONS[act]
    _k.forward(_rows(X), hf0, Wxf, Whf, bf, code, False, _rows(Hf), T)
    _k.forward(_rows(X), hb0, Wxb, Whb, bb, code, True, _rows(Hb), T)
    _k.output_forward(_rows(Hf), _rows(Hb), Wy, by, _rows(Y))
    return Y, BiRNNCache(X, hf0, hb0, Wxf, Whf, bf, Wxb, Whb, bb, Wy, by, act, Hf, Hb, Y)


def birnn_backward(dY, cache: BiRNNCache, *, full=True, out=None) -> BiRNNGrads:
    """Every gradient of the BiRNN given dY = ∂L/∂Y (T, B, K).

    full=False skips the total state gradients dhf, dhb; `out` receives dX.
    """
    v.cache_of(cache, BiRNNCache, "birnn_forward")
    X, Hf, Hb = cache.X, cache.Hf, cache.Hb
    dY = v.upstream("dY", dY, cache.Y.shape, X.dtype)
    T, B, M = Hf.shape
    dX = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(dX, "out", dY=dY, X=X)
    dHf_direct = np.empty_like(Hf)     # dY Wy[:, :M]: what y_t asks of h^f_t
    dHb_direct = np.empty_like(Hb)
    dWy = np.empty_like(cache.Wy)
    dby = np.empty(cache.Wy.shape[0], X.dtype)
    _k.output_backward(_rows(dY), _rows(Hf), _rows(Hb), cache.Wy, _rows(dHf_direct),
                       _rows(dHb_direct), dWy, dby)
    dAf, dAb = np.empty_like(Hf), np.empty_like(Hb)
    dhf = np.empty_like(Hf) if full else None
    dhb = np.empty_like(Hb) if full else None
    dhf0, dhb0 = np.empty((2, B, M), X.dtype)
    dWxf, dWxb = np.empty_like(cache.Wxf), np.empty_like(cache.Wxb)
    dWhf, dWhb = np.empty_like(cache.Whf), np.empty_like(cache.Whb)
    dbf, dbb = np.empty((2, M), X.dtype)
    code = ACTIVATIONS[cache.activation]
    _k.backward(_rows(dHf_direct), _rows(Hf), cache.hf0, _rows(X), cache.Wxf, cache.Whf,
                code, False, T, _rows(dAf), None if dhf is None else _rows(dhf),
                _rows(dX), False, dhf0, dWxf, dWhf, dbf)
    _k.backward(_rows(dHb_direct), _rows(Hb), cache.hb0, _rows(X), cache.Wxb, cache.Whb,
                code, True, T, _rows(dAb), None if dhb is None else _rows(dhb),
                _rows(dX), True, dhb0, dWxb, dWhb, dbb)
    return BiRNNGrads(dX, dhf0, dhb0, dWxf, dWhf, dbf, dWxb, dWhb, dbb, dWy, dby,
                      dhf, dhb, dAf, dAb)
