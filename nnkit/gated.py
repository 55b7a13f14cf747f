"""P9 beyond the vanilla RNN: gated recurrences (LSTM, GRU) and their BPTT.

Sequences are time-major, X (T, B, N), as ``rnn_forward``. The conventions
are PyTorch's (``torch.nn.LSTM`` / ``torch.nn.GRU``, one layer, one
direction), so a state dict's ``weight_ih_l0`` etc. are these arguments:

LSTM (``lstm_forward`` / ``lstm_backward``), W_ih (4H, N), W_hh (4H, H),
b_ih, b_hh (4H,), gate blocks of H rows in the order i, f, g, o:
    a_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh
    i_t = σ(a_i)   f_t = σ(a_f)   g_t = tanh(a_g)   o_t = σ(a_o)
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t          (the cell state's carry)
    h_t = o_t ⊙ tanh(c_t)
BPTT: the cell state receives two terms, the direct one through h_t and the
carried one through c_{t+1} = f_{t+1} ⊙ c_t + ...:
    dh_t = dH_t + dA_{t+1} W_hh
    dc_t = dh_t ⊙ o_t ⊙ (1 − tanh² c_t) + f_{t+1} ⊙ dc_{t+1}
The carried term is what keeps ∂L/∂c_t from vanishing while f ≈ 1.

GRU (``gru_forward`` / ``gru_backward``), W_ih (3H, N), W_hh (3H, H), gates
r, z, n:
    r_t = σ(x W_irᵀ + b_ir + h_{t−1} W_hrᵀ + b_hr)
    z_t = σ(x W_izᵀ + b_iz + h_{t−1} W_hzᵀ + b_hz)
    n_t = tanh(x W_inᵀ + b_in + r_t ⊙ (h_{t−1} W_hnᵀ + b_hn))
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
The two biases are not redundant in the GRU (b_hn sits inside r ⊙ (.)); in
the LSTM they are (db_ih = db_hh), kept for PyTorch's state dicts.

``truncate=k`` cuts the carry into the state (h and, for the LSTM, c) at
chain times k, 2k, ... (as ``rnn_backward``); ``reverse=True`` runs the chain
right to left (a bidirectional layer's second direction: h_prev is h_{t+1}).
Every backward returns grad_norms[t] = ||∂L/∂h_t||_F (the LSTM also
cell_norms[t] = ||∂L/∂c_t||_F).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import gated as _k
from ._threads import free_core_threads, kernel_threads, serial_blas

# the step product h_{t−1} (B, H) · W_hhᵀ (H, G·H) runs in nnkit's tile kernel
# below this many multiply-adds, in OpenBLAS from there (as nnkit/rnn.py)
TILE_MAX_MACS = 1 << 27
PLAIN_MAX_MACS = 1 << 16


def _tile(B: int, H: int, gates: int) -> bool:
    macs = B * H * H * gates
    return macs < (TILE_MAX_MACS if _k.VECTOR_TILES else PLAIN_MAX_MACS)


# The time loops split the batch's rows over the free cores (each thread runs
# its rows' whole sequence; the team never meets inside the loop) when every
# thread gets at least one tile's 4 rows and a step has ROW_SPLIT_MIN
# multiply-adds (as the RNN's row team, nnkit/rnn.py).
ROW_SPLIT_MIN = 1 << 15
TILE_ROWS = 4


def _loop_threads(B: int, H: int, gates: int) -> int:
    if B * H * H * gates < ROW_SPLIT_MIN or B < 2 * TILE_ROWS:
        return 1
    return max(1, min(free_core_threads(), B // TILE_ROWS))


def _rows(a):
    return None if a is None else a.reshape(a.shape[0] * a.shape[1], a.shape[2])


def _gated_args(kind: str, gates: int, X, h0, W_ih, W_hh, b_ih, b_hh):
    """Validated (X, h0, W_ih, W_hh, b_ih, b_hh, H) for a gated cell."""
    X = v.sequence("X", X)
    N = X.shape[2]
    doc_ih, doc_hh, doc_b = f"({gates}H, N)", f"({gates}H, H)", f"({gates}H,)"
    W_ih = v.float_array("W_ih", W_ih, 2, doc_ih, dtype=X.dtype)
    v.nonempty("W_ih", W_ih, doc_ih)
    if W_ih.shape[0] % gates:
        raise ValueError(f"W_ih: expected shape {doc_ih} ({kind}: {gates} gate blocks of H "
                         f"rows), got {W_ih.shape}: {W_ih.shape[0]} rows is not a multiple "
                         f"of {gates}")
    v.same_dim("W_ih", W_ih.shape[1], N, "W_ih.shape[1] (N, the features of X)")
    H = W_ih.shape[0] // gates
    W_hh = v.float_array("W_hh", W_hh, 2, doc_hh, dtype=X.dtype)
    if W_hh.shape != (gates * H, H):
        raise ValueError(f"W_hh: expected shape ({gates * H}, {H}) ({doc_hh} with H = "
                         f"W_ih.shape[0] / {gates}), got {W_hh.shape}")
    out = []
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is None:
            b = np.zeros(gates * H, X.dtype)
        b = v.float_array(name, b, 1, doc_b, dtype=X.dtype)
        v.same_dim(name, b.shape[0], gates * H, f"{name}.shape[0] ({gates}H = {gates * H})")
        out.append(b)
    h0 = v.initial_state("h0", h0, X.shape[1], H, X.dtype)
    return X, h0, W_ih, W_hh, out[0], out[1], H


# -------------------------------------------------------------------- LSTM
@dataclass(frozen=True)
class LSTMCache:
    """What `lstm_backward` needs: the input, the weights, the initial states
    and every step's states and activated gates (one gate's block is
    `gate(name)`, a view).

    Attributes
    ----------
    X : ndarray
        (T, B, N) the input (never modified)
    h0 : ndarray
        (B, H) the initial hidden state (zeros when None was given)
    c0 : ndarray
        (B, H) the initial cell state (zeros when None was given)
    W_ih : ndarray
        (4H, N) input weights, gate blocks i, f, g, o
    W_hh : ndarray
        (4H, H) recurrent weights, the same blocks
    b_ih : ndarray
        (4H,)
    b_hh : ndarray
        (4H,)
    H : ndarray
        (T, B, H) h_t, the forward output (do not modify)
    C : ndarray
        (T, B, H) c_t
    TC : ndarray
        (T, B, H) tanh(c_t)
    gates : ndarray
        (T, B, 4H) i_t, f_t, g_t, o_t after their activations
    reverse : bool
        True when the chain ran right to left (h0, c0 were then h_{T+1}, c_{T+1})
    """
    X: np.ndarray        # (T, B, N)
    h0: np.ndarray       # (B, H)
    c0: np.ndarray       # (B, H)
    W_ih: np.ndarray     # (4H, N)
    W_hh: np.ndarray     # (4H, H)
    b_ih: np.ndarray     # (4H,)
    b_hh: np.ndarray     # (4H,)
    H: np.ndarray        # (T, B, H) h_t (the forward output; do not modify)
    C: np.ndarray        # (T, B, H) c_t
    TC: np.ndarray       # (T, B, H) tanh(c_t)
    gates: np.ndarray    # (T, B, 4H) i, f, g, o (activated)
    reverse: bool = False

    def gate(self, name: str) -> np.ndarray:
        """One gate (T, B, H) by name: 'i', 'f', 'g' or 'o' (a view)."""
        k = "ifgo".index(name)
        Hh = self.H.shape[2]
        return self.gates[:, :, k * Hh:(k + 1) * Hh]


class LSTMGrads(NamedTuple):
    """Every gradient of the LSTM's backpropagation through time, returned by
    `lstm_backward` (a = the gates' pre-activations; "first" is the chain's
    first step: t = 1, or t = T with reverse=True).

    Attributes
    ----------
    dX : ndarray
        (T, B, N) dA_t W_ih
    dh0 : ndarray
        (B, H) dA_first W_hh
    dc0 : ndarray
        (B, H) dc_first ⊙ f_first
    dW_ih : ndarray
        (4H, N) Σ_t dA_tᵀ x_t
    dW_hh : ndarray
        (4H, H) Σ_t dA_tᵀ h_{t−1}
    db_ih : ndarray
        (4H,) Σ dA over time and batch
    db_hh : ndarray
        (4H,) the same sum (the two biases are redundant in the LSTM)
    grad_norms : ndarray
        (T,) float64, ‖∂L/∂h_t‖_F
    cell_norms : ndarray
        (T,) float64, ‖∂L/∂c_t‖_F
    dA : ndarray | None
        (T, B, 4H) ∂L/∂a, gate blocks i, f, g, o (one is `gate_grad(name)`);
        None with full=False
    dh : ndarray | None
        (T, B, H) the total ∂L/∂h_t (direct plus carried); None with full=False
    dc : ndarray | None
        (T, B, H) the total ∂L/∂c_t; None with full=False
    """
    dX: np.ndarray       # (T, B, N)   dA W_ih
    dh0: np.ndarray      # (B, H)      dA_first W_hh
    dc0: np.ndarray      # (B, H)      dc_first ⊙ f_first
    dW_ih: np.ndarray    # (4H, N)     Σ_t dA_tᵀ x_t
    dW_hh: np.ndarray    # (4H, H)     Σ_t dA_tᵀ h_{t−1}
    db_ih: np.ndarray    # (4H,)       Σ dA
    db_hh: np.ndarray    # (4H,)       Σ dA (the same sum)
    grad_norms: np.ndarray   # (T,) float64 ||∂L/∂h_t||_F
    cell_norms: np.ndarray   # (T,) float64 ||∂L/∂c_t||_F
    dA: np.ndarray | None = None   # (T, B, 4H) ∂L/∂a (pre-activations i, f, g, o) when full
    dh: np.ndarray | None = None   # (T, B, H) total ∂L/∂h_t when full
    dc: np.ndarray | None = None   # (T, B, H) total ∂L/∂c_t when full

    def gate_grad(self, name: str) -> np.ndarray:
        """∂L/∂(pre-activation of gate name) (T, B, H), name in 'ifgo' (full=True)."""
        k = "ifgo".index(name)
        Hh = self.dh0.shape[1]
        return self.dA[:, :, k * Hh:(k + 1) * Hh]


def lstm_forward(X, h0, c0, W_ih, W_hh, b_ih, b_hh, *, reverse=False):
    """H (T, B, H) every step's h_t, cache.  X (T, B, N); h0, c0 (B, H) or
    None (zeros); W_ih (4H, N), W_hh (4H, H), b_ih, b_hh (4H,) or None
    (zeros), gates i, f, g, o as PyTorch. reverse=True runs right to left."""
    X, h0, W_ih, W_hh, b_ih, b_hh, Hh = _gated_args("LSTM", 4, X, h0, W_ih, W_hh, b_ih, b_hh)
    c0 = v.initial_state("c0", c0, X.shape[1], Hh, X.dtype)
    reverse = v.flag("reverse", reverse)
    T, B, _ = X.shape
    A = np.empty((T, B, 4 * Hh), X.dtype)
    Hs = np.empty((T, B, Hh), X.dtype)
    Cs = np.empty_like(Hs)
    TCs = np.empty_like(Hs)
    with serial_blas():
        _k.project(_rows(X), W_ih, b_ih + b_hh, _rows(A), kernel_threads())
        _k.lstm_recur(h0, c0, W_hh, reverse, T, _rows(A), _rows(Hs), _rows(Cs), _rows(TCs),
                      _tile(B, Hh, 4), _loop_threads(B, Hh, 4))
    return Hs, LSTMCache(X, h0, c0, W_ih, W_hh, b_ih, b_hh, Hs, Cs, TCs, A, reverse)


def _lstm_backward(dH, cache, k, full, accumulate_into=None):
    X = cache.X
    T, B, Hh = cache.H.shape
    dA = np.empty_like(cache.gates)
    dh = np.empty_like(cache.H)
    dc = np.empty_like(cache.H)
    norms, cnorms = np.empty(T), np.empty(T)
    dh0 = np.empty((B, Hh), X.dtype)
    dc0 = np.empty_like(dh0)
    dX = accumulate_into if accumulate_into is not None else np.empty_like(X)
    dW_ih, dW_hh = np.empty_like(cache.W_ih), np.empty_like(cache.W_hh)
    db_ih, db_hh = np.empty(4 * Hh, X.dtype), np.empty(4 * Hh, X.dtype)
    with serial_blas():
        _k.lstm_bptt(_rows(dH), _rows(cache.gates), _rows(cache.C), _rows(cache.TC), cache.c0,
                     cache.W_hh, cache.reverse, T, k, _rows(dA), _rows(dh), _rows(dc), norms,
                     cnorms, dh0, dc0, _tile(B, Hh, 4), _loop_threads(B, Hh, 4))
        _k.weight_grads(_rows(dA), _rows(dA), _rows(X), _rows(cache.H), cache.h0, cache.W_ih,
                        cache.reverse, T, accumulate_into is not None, _rows(dX), dW_ih, dW_hh,
                        db_ih, db_hh, np.empty(4 * Hh), kernel_threads())
    if not full:
        dA = dh = dc = None
    return LSTMGrads(dX, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, norms, cnorms, dA, dh, dc)


def lstm_backward(dH, cache: LSTMCache, *, truncate=None, full=True) -> LSTMGrads:
    """Every gradient of the LSTM given dH = ∂L/∂H (T, B, H), the direct part
    (what the loss asks of each h_t; BPTT adds what flows back from t+1).

    truncate=k cuts the carry into h and c at chain times k, 2k, ... (as if
    the forward detached both states there); None is full BPTT. full=False
    leaves out dA, dh and dc (the gate and state gradients)."""
    v.cache_of(cache, LSTMCache, "lstm_forward")
    full = v.flag("full", full)
    k = v.truncate_steps(truncate)
    dH = v.upstream("dH", dH, cache.H.shape, cache.X.dtype)
    return _lstm_backward(dH, cache, k, full)


# --------------------------------------------------------------------- GRU
@dataclass(frozen=True)
class GRUCache:
    """What `gru_backward` needs: the input, the weights, the initial state and
    every step's state and activated gates (one gate's block is `gate(name)`,
    a view).

    Attributes
    ----------
    X : ndarray
        (T, B, N) the input (never modified)
    h0 : ndarray
        (B, H) the initial state (zeros when None was given)
    W_ih : ndarray
        (3H, N) input weights, gate blocks r, z, n
    W_hh : ndarray
        (3H, H) recurrent weights, the same blocks
    b_ih : ndarray
        (3H,)
    b_hh : ndarray
        (3H,)
    H : ndarray
        (T, B, H) h_t, the forward output (do not modify)
    HN : ndarray
        (T, B, H) h_{t−1} W_hnᵀ + b_hn, what r_t multiplies
    gates : ndarray
        (T, B, 3H) r_t, z_t, n_t after their activations
    reverse : bool
        True when the chain ran right to left (h0 was then h_{T+1})
    """
    X: np.ndarray        # (T, B, N)
    h0: np.ndarray       # (B, H)
    W_ih: np.ndarray     # (3H, N)
    W_hh: np.ndarray     # (3H, H)
    b_ih: np.ndarray     # (3H,)
    b_hh: np.ndarray     # (3H,)
    H: np.ndarray        # (T, B, H) h_t (the forward output; do not modify)
    HN: np.ndarray       # (T, B, H) h_{t−1} W_hnᵀ + b_hn (what r_t multiplies)
    gates: np.ndarray    # (T, B, 3H) r, z, n (activated)
    reverse: bool = False

    def gate(self, name: str) -> np.ndarray:
        """One gate (T, B, H) by name: 'r', 'z' or 'n' (a view)."""
        k = "rzn".index(name)
        Hh = self.H.shape[2]
        return self.gates[:, :, k * Hh:(k + 1) * Hh]


class GRUGrads(NamedTuple):
    """Every gradient of the GRU's backpropagation through time, returned by
    `gru_backward` (Gx = x W_ihᵀ + b_ih and Gh = h W_hhᵀ + b_hh, the two
    projections; "first" is the chain's first step: t = 1, or t = T with
    reverse=True).

    Attributes
    ----------
    dX : ndarray
        (T, B, N) dGx_t W_ih
    dh0 : ndarray
        (B, H) dGh_first W_hh + dh_first ⊙ z_first
    dW_ih : ndarray
        (3H, N) Σ_t dGx_tᵀ x_t
    dW_hh : ndarray
        (3H, H) Σ_t dGh_tᵀ h_{t−1}
    db_ih : ndarray
        (3H,) Σ dGx over time and batch
    db_hh : ndarray
        (3H,) Σ dGh over time and batch (differs from db_ih in the n block)
    grad_norms : ndarray
        (T,) float64, ‖∂L/∂h_t‖_F
    dGx : ndarray | None
        (T, B, 3H) ∂L/∂Gx, the r, z, n pre-activations (one is
        `gate_grad(name)`); None with full=False
    dGh : ndarray | None
        (T, B, 3H) ∂L/∂Gh: the r and z blocks as dGx's, the n block r ⊙ dGx_n;
        None with full=False
    dh : ndarray | None
        (T, B, H) the total ∂L/∂h_t (direct plus carried); None with full=False
    """
    dX: np.ndarray       # (T, B, N)   dGx W_ih
    dh0: np.ndarray      # (B, H)      dGh_first W_hh + dh_first ⊙ z_first
    dW_ih: np.ndarray    # (3H, N)     Σ_t dGx_tᵀ x_t
    dW_hh: np.ndarray    # (3H, H)     Σ_t dGh_tᵀ h_{t−1}
    db_ih: np.ndarray    # (3H,)       Σ dGx
    db_hh: np.ndarray    # (3H,)       Σ dGh
    grad_norms: np.ndarray   # (T,) float64 ||∂L/∂h_t||_F
    dGx: np.ndarray | None = None  # (T, B, 3H) ∂L/∂(x W_ihᵀ + b_ih): r, z, n pre-activations
    dGh: np.ndarray | None = None  # (T, B, 3H) ∂L/∂(h W_hhᵀ + b_hh): r, z as dGx, n: r ⊙ dGx_n
    dh: np.ndarray | None = None   # (T, B, H) total ∂L/∂h_t

    def gate_grad(self, name: str) -> np.ndarray:
        """∂L/∂(pre-activation of gate name) (T, B, H), name in 'rzn' (full=True)."""
        k = "rzn".index(name)
        Hh = self.dh0.shape[1]
        return self.dGx[:, :, k * Hh:(k + 1) * Hh]


def gru_forward(X, h0, W_ih, W_hh, b_ih, b_hh, *, reverse=False):
    """H (T, B, H) every step's h_t, cache.  X (T, B, N); h0 (B, H) or None
    (zeros); W_ih (3H, N), W_hh (3H, H), b_ih, b_hh (3H,) or None (zeros),
    gates r, z, n as PyTorch. reverse=True runs right to left."""
    X, h0, W_ih, W_hh, b_ih, b_hh, Hh = _gated_args("GRU", 3, X, h0, W_ih, W_hh, b_ih, b_hh)
    reverse = v.flag("reverse", reverse)
    T, B, _ = X.shape
    A = np.empty((T, B, 3 * Hh), X.dtype)
    Hs = np.empty((T, B, Hh), X.dtype)
    HN = np.empty_like(Hs)
    with serial_blas():
        _k.project(_rows(X), W_ih, b_ih, _rows(A), kernel_threads())
        _k.gru_recur(h0, W_hh, b_hh, reverse, T, _rows(A), _rows(Hs), _rows(HN),
                     np.empty((B, 3 * Hh), X.dtype), _tile(B, Hh, 3), _loop_threads(B, Hh, 3))
    return Hs, GRUCache(X, h0, W_ih, W_hh, b_ih, b_hh, Hs, HN, A, reverse)


def _gru_backward(dH, cache, k, full, accumulate_into=None):
    X = cache.X
    T, B, Hh = cache.H.shape
    dGx = np.empty_like(cache.gates)
    dGh = np.empty_like(cache.gates)
    dh = np.empty_like(cache.H)
    norms = np.empty(T)
    dh0 = np.empty((B, Hh), X.dtype)
    dX = accumulate_into if accumulate_into is not None else np.empty_like(X)
    dW_ih, dW_hh = np.empty_like(cache.W_ih), np.empty_like(cache.W_hh)
    db_ih, db_hh = np.empty(3 * Hh, X.dtype), np.empty(3 * Hh, X.dtype)
    with serial_blas():
        _k.gru_bptt(_rows(dH), _rows(cache.gates), _rows(cache.HN), _rows(cache.H), cache.h0,
                    cache.W_hh, cache.reverse, T, k, _rows(dGx), _rows(dGh), _rows(dh), norms,
                    dh0, _tile(B, Hh, 3), _loop_threads(B, Hh, 3))
        _k.weight_grads(_rows(dGx), _rows(dGh), _rows(X), _rows(cache.H), cache.h0, cache.W_ih,
                        cache.reverse, T, accumulate_into is not None, _rows(dX), dW_ih, dW_hh,
                        db_ih, db_hh, np.empty(3 * Hh), kernel_threads())
    if not full:
        dGx = dGh = dh = None
    return GRUGrads(dX, dh0, dW_ih, dW_hh, db_ih, db_hh, norms, dGx, dGh, dh)


def gru_backward(dH, cache: GRUCache, *, truncate=None, full=True) -> GRUGrads:
    """Every gradient of the GRU given dH = ∂L/∂H (T, B, H) (the direct part).

    truncate=k cuts the carry into h at chain times k, 2k, ...; full=False
    leaves out dGx, dGh and dh."""
    v.cache_of(cache, GRUCache, "gru_forward")
    full = v.flag("full", full)
    k = v.truncate_steps(truncate)
    dH = v.upstream("dH", dH, cache.H.shape, cache.X.dtype)
    return _gru_backward(dH, cache, k, full)
