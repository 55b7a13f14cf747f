"""P9: recurrent networks and backpropagation through time.

Rows are samples and sequences are time-major: X is (T, B, N).

Simple RNN (``rnn_forward`` / ``rnn_backward``):
    a_t = x_t Wxᵀ + h_{t−1} Whᵀ + b,   h_t = act(a_t),   t = 1..T  (h_0 given)
with Wx (M, N), Wh (M, M), b (M,), act ∈ {tanh, sigmoid, relu}. BPTT: the
total derivative of a state is what the output asks of it plus what flows
back from the next step,
    dh_t = dH_t + dA_{t+1} Wh,      dA_t = dh_t ⊙ act′(a_t),
and every weight gradient is a sum over time (dWh = Σ_t dA_tᵀ h_{t−1}).
The backward result carries grad_norms[t] = ||dh_t||_F over the (B, M) slice,
the curve P9.2–P9.3 read the vanishing or exploding gradient from.
`truncate=k` cuts the carry into h_k, h_2k, ... (truncated BPTT: exactly the
gradient of a forward whose state is detached at t = k, 2k, ...).

P9.1's form (``form="preactivation"``): the state is the pre-activation,
    h_t = act(h_{t−1}) Whᵀ + x_t Wxᵀ + b,
with BPTT dh_t = dH_t + (dh_{t+1} Wh) ⊙ act′(h_t) and dWh = Σ_t dh_tᵀ act(h_{t−1}).
Under g_t = act(h_t) it is the standard form run from g_0 = act(h_0).

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
from ._threads import serial_blas
from ._kernels import rnn as _k
from ._threads import free_core_threads, kernel_threads

# activation name -> the kernels' code
ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2}
# the recurrence's two forms (P9.1)
FORMS = ("standard", "preactivation")


# ------------------------------------------------------------------ helpers
# Each step's (B, M) x (M, M) product (pyx/rnn.pyx) runs in nnkit's tile
# kernel, with Wh packed once per sequence, below TILE_MAX_MACS multiply-adds
# per step, and in OpenBLAS from there. The time loop runs on a team of the
# free cores when the step is large enough: with at least 4 rows (one tile)
# per thread the team splits the batch (each thread runs its rows' whole
# sequence; they never meet inside the loop) from ROW_SPLIT_MIN, else it
# splits the state's columns and meets at a barrier once per step, from
# STEP_SPLIT_MIN (with BLAS: each step's product split by column blocks).
# The limits below come from timing the step products over B = 1..256,
# M = 32..1024 (`nnkit bench rnn`): the tile kernel beats OpenBLAS while the
# packed Wh stays in cache, the column team pays once a step's product is
# large enough to amortize a barrier, the row team (no barrier) sooner.
# A level without AVX2 + FMA (baseline, x86-64-v2, or generic off x86-64) has
# only the plain loop, kept to steps under PLAIN_MAX_MACS.
TILE_MAX_MACS = 1 << 26          # both dtypes: the grid found the same limits
PLAIN_MAX_MACS = 1 << 16
STEP_SPLIT_MIN = 1 << 17
ROW_SPLIT_MIN = 1 << 15


def _step_plan(B: int, M: int) -> tuple[bool, int]:
    """(tile, threads) for the time loops: the tile kernel or BLAS for each
    step's product (see TILE_MAX_MACS), and the cores free right now
    (free_core_threads: a team whose thread is descheduled waits for it) from
    ROW_SPLIT_MIN multiply-adds per step when the batch gives every thread a
    tile's rows (the kernel then splits rows), from STEP_SPLIT_MIN when it
    does not (columns), else one thread."""
    macs = B * M * M
    limit = TILE_MAX_MACS if _k.VECTOR_TILES else PLAIN_MAX_MACS
    tile = macs < limit
    threads = 1
    if macs >= min(ROW_SPLIT_MIN, STEP_SPLIT_MIN):
        threads = free_core_threads()
        by_rows = tile and B >= _k.TILE_ROWS * threads      # _share_block's test
        if macs < (ROW_SPLIT_MIN if by_rows else STEP_SPLIT_MIN):
            threads = 1
    return tile, threads


def _gemm_threads() -> int:
    """Threads for the large GEMMs over all T·B rows (projection, weight
    gradients): every core, each thread one single-threaded BLAS call on its
    block of rows (gemm_team in pyx/_common.pxd); BLAS itself stays at one
    thread (serial_blas), so the split is ours and no pool spins."""
    return kernel_threads()


def _rows(a: np.ndarray | None) -> np.ndarray | None:
    """(T, B, C) as its (T·B, C) row view (no copy: a is C-contiguous)."""
    return None if a is None else a.reshape(a.shape[0] * a.shape[1], a.shape[2])


def _chain_forward(X, h0, Wx, Wh, b, code, reverse, preact, H, G):
    """One chain's forward: the input projection of all T steps (one GEMM),
    then the serial time loop; or both at once on two threads when the loop
    itself runs on one (project_recur). The caller holds serial_blas()."""
    T, B, N = X.shape
    M = Wh.shape[0]
    tile, threads = _step_plan(B, M)
    if _overlap(tile, threads, T * B * M * N):
        _k.project_recur(_rows(X), Wx, b, h0, Wh, code, reverse, preact, T, _rows(H),
                         _rows(G), 2)
        return
    _k.project(_rows(X), Wx, b, _rows(H), _gemm_threads())
    _k.recur(h0, Wh, code, reverse, preact, T, _rows(H), _rows(G), tile, threads)


# From OVERLAP_MIN multiply-adds in the products beside the loop, a time
# loop that runs on one thread gets them done on a second free core while it
# runs: the projection (project_recur) and dWx, dWh (bptt_grads in
# pyx/rnn.pyx). A/B at (1000, 8, 32, 64): see README, "Recurrent networks".
OVERLAP_MIN = 1 << 20


def _overlap(tile: bool, threads: int, macs: int) -> bool:
    """Whether the products beside a one-thread time loop go to a second core."""
    return tile and threads == 1 and macs >= OVERLAP_MIN and free_core_threads() >= 2


def _chain_backward(dH, X, H, G, h0, Wx, Wh, code, reverse, preact, truncate,
                    accumulate_dX, dA, dh, dX, dh0, dWx, dWh, db, norms):
    """One chain's BPTT loop, then its weight gradients (one GEMM each); or
    both at once on two threads when the loop itself runs on one."""
    T, B, M = H.shape
    N = X.shape[2]
    tile, threads = _step_plan(B, M)
    if _overlap(tile, threads, T * B * M * (N + M)):
        _k.bptt_grads(_rows(dH), _rows(X), _rows(H), _rows(G), h0, Wx, Wh, code, reverse,
                      preact, T, truncate, accumulate_dX, _rows(dA), _rows(dh), norms, dh0,
                      _rows(dX), dWx, dWh, db, np.empty(M), 2)
        return
    _k.bptt(_rows(dH), _rows(H), _rows(G), Wh, code, reverse, preact, T, truncate,
            _rows(dA), _rows(dh), norms, dh0, tile, threads)
    _k.weight_grads(_rows(dA), _rows(X), _rows(H), _rows(G), h0, Wx, reverse, preact, T,
                    accumulate_dX, _rows(dX), dWx, dWh, db, np.empty(M), _gemm_threads())


# --------------------------------------------------------------------- RNN
@dataclass(frozen=True)
class RNNCache:
    """What `rnn_backward` needs: the input, the weights and every state.

    Attributes
    ----------
    X : ndarray
        (T, B, N) input (never modified)
    h0 : ndarray
        (B, M)
    Wx : ndarray
        (M, N)
    Wh : ndarray
        (M, M)
    b : ndarray | None
        (M,) or None
    activation : str
        "tanh", "sigmoid" or "relu"
    H : ndarray
        (T, B, M) the states (the forward output; do not modify)
    form : str
        "standard" or "preactivation" (P9.1)
    G : ndarray | None
        preactivation form: G_t = act(h_{t−1}), what step t read
    """
    X: np.ndarray        # (T, B, N) input (never modified)
    h0: np.ndarray       # (B, M)
    Wx: np.ndarray       # (M, N)
    Wh: np.ndarray       # (M, M)
    b: np.ndarray | None  # (M,) or None
    activation: str
    H: np.ndarray        # (T, B, M) the states (the forward output; do not modify)
    form: str = "standard"
    G: np.ndarray | None = None  # preactivation form: G_t = act(h_{t−1}), what step t read


class RNNGrads(NamedTuple):
    """Every gradient of backpropagation through time (P9), returned by `rnn_backward`.

    Attributes
    ----------
    dX : ndarray
        (T, B, N) dA_t Wx
    dh0 : ndarray
        (B, M) dA_1 Wh
    dWx : ndarray
        (M, N) Σ_t dA_tᵀ x_t
    dWh : ndarray
        (M, M) Σ_t dA_tᵀ h_{t−1}
    db : ndarray
        (M,) Σ_t Σ_i dA_t (∂L/∂b at b = 0 without a bias)
    dA : ndarray
        (T, B, M) ∂L/∂a_t = dh_t ⊙ act′(a_t) (preactivation form: = dh)
    dh : ndarray | None
        (T, B, M) total ∂L/∂h_t = dH_t + dA_{t+1} Wh (None if full=False)
    grad_norms : ndarray
        (T,) float64 ||∂L/∂h_t||_F over the (B, M) slice
    """
    dX: np.ndarray       # (T, B, N)  dA_t Wx
    dh0: np.ndarray      # (B, M)     dA_1 Wh
    dWx: np.ndarray      # (M, N)     Σ_t dA_tᵀ x_t
    dWh: np.ndarray      # (M, M)     Σ_t dA_tᵀ h_{t−1}
    db: np.ndarray       # (M,)       Σ_t Σ_i dA_t   (∂L/∂b at b = 0 without a bias)
    dA: np.ndarray       # (T, B, M)  ∂L/∂a_t = dh_t ⊙ act′(a_t)  (preactivation form: = dh)
    dh: np.ndarray | None  # (T, B, M) total ∂L/∂h_t = dH_t + dA_{t+1} Wh (None if full=False)
    grad_norms: np.ndarray  # (T,) float64  ||∂L/∂h_t||_F over the (B, M) slice


def rnn_forward(X, h0, Wx, Wh, b, activation="tanh", *, form="standard", out=None):
    """H (T, B, M), cache.  X (T, B, N), h0 (B, M) or None (zeros), Wx (M, N),
    Wh (M, M), b (M,) or None (no bias).

    form="standard": h_t = act(x_t Wxᵀ + h_{t−1} Whᵀ + b);
    form="preactivation" (P9.1): h_t = act(h_{t−1}) Whᵀ + x_t Wxᵀ + b.
    """
    act = v.choice("activation", activation, ACTIVATIONS)
    form = v.choice("form", form, FORMS)
    X = v.sequence("X", X)
    Wx, Wh, b = v.recurrent_weights(X, Wx, Wh, b, "b", "Wx", "Wh")
    T, B, _ = X.shape
    M = Wx.shape[0]
    h0 = v.initial_state("h0", h0, B, M, X.dtype)
    H = v.out_array(out, (T, B, M), X.dtype)
    if out is not None:
        v.no_overlap(H, "out", X=X, h0=h0, Wx=Wx, Wh=Wh, b=b)
    preact = form == "preactivation"
    G = np.empty((T, B, M), X.dtype) if preact else None
    with serial_blas():
        _chain_forward(X, h0, Wx, Wh, b, ACTIVATIONS[act], False, preact, H, G)
    return H, RNNCache(X, h0, Wx, Wh, b, act, H, form, G)


def rnn_backward(dH, cache: RNNCache, *, truncate=None, full=True, out=None) -> RNNGrads:
    """Every gradient of the RNN given dH = ∂L/∂H (T, B, M) (the direct part:
    what the loss asks of each h_t; BPTT adds what flows back from t+1).

    truncate=k (a positive int) cuts the gradient through the recurrence every
    k steps: nothing flows back into h_k, h_2k, ..., exactly as if the forward
    had detached the state there (weights still collect every step's term);
    None is full BPTT. full=False skips writing the total state gradients dh;
    `out` receives dX.
    """
    v.cache_of(cache, RNNCache, "rnn_forward")
    full = v.flag("full", full)
    X, H = cache.X, cache.H
    k = v.truncate_steps(truncate)
    dH = v.upstream("dH", dH, H.shape, X.dtype)
    T, B, M = H.shape
    dX = v.out_array(out, X.shape, X.dtype)
    if out is not None:
        v.no_overlap(dX, "out", dH=dH, X=X)
    preact = cache.form == "preactivation"
    dA = np.empty_like(H)
    dh = np.empty_like(H) if full and not preact else None
    dh0 = np.empty((B, M), X.dtype)
    dWx = np.empty_like(cache.Wx)
    dWh = np.empty_like(cache.Wh)
    db = np.empty(M, X.dtype)
    norms = np.empty(T)
    with serial_blas():
        _chain_backward(dH, X, H, cache.G, cache.h0, cache.Wx, cache.Wh,
                        ACTIVATIONS[cache.activation], False, preact, k, False,
                        dA, dh, dX, dh0, dWx, dWh, db, norms)
    if preact and full:
        dh = dA          # the state is the pre-activation: ∂L/∂h_t is what the affine map gets
    return RNNGrads(dX, dh0, dWx, dWh, db, dA, dh, norms)


# ------------------------------------------------------------------- BiRNN
@dataclass(frozen=True)
class BiRNNCache:
    """What `birnn_backward` needs: the input, both chains' weights and states, and the
    outputs.

    Attributes
    ----------
    X : ndarray
        (T, B, N)
    hf0 : ndarray
        (B, M) state before t = 1 of the forward chain
    hb0 : ndarray
        (B, M) state after t = T of the backward chain (h^b_{T+1})
    Wxf : ndarray
        (M, N) U^f
    Whf : ndarray
        (M, M) W^f
    bf : ndarray | None
        (M,) or None
    Wxb : ndarray
        (M, N) U^b
    Whb : ndarray
        (M, M) W^b
    bb : ndarray | None
        (M,) or None
    Wy : ndarray
        (K, 2M)
    by : ndarray
        (K,)
    activation : str
        "sigmoid", "tanh" or "relu"
    Hf : ndarray
        (T, B, M) forward states h^f_1..T
    Hb : ndarray
        (T, B, M) backward states h^b_1..T
    Y : ndarray
        (T, B, K) outputs
    """
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
    """Every gradient of the bidirectional RNN (P9.4), returned by `birnn_backward`.

    Attributes
    ----------
    dX : ndarray
        (T, B, N) both chains' dA U summed
    dhf0 : ndarray
        (B, M)
    dhb0 : ndarray
        (B, M)
    dWxf : ndarray
        (M, N) U^f
    dWhf : ndarray
        (M, M) W^f
    dbf : ndarray
        (M,)
    dWxb : ndarray
        (M, N) U^b
    dWhb : ndarray
        (M, M) W^b
    dbb : ndarray
        (M,)
    dWy : ndarray
        (K, 2M)
    dby : ndarray
        (K,)
    dhf : ndarray | None
        (T, B, M) total ∂L/∂h^f_t (accumulated right to left)
    dhb : ndarray | None
        (T, B, M) total ∂L/∂h^b_t (accumulated left to right)
    dAf : ndarray
        (T, B, M) forward-chain pre-activation gradients
    dAb : ndarray
        (T, B, M) backward-chain pre-activation gradients
    grad_norms : ndarray
        (2, T) float64: ||∂L/∂h^f_t||_F (row 0), ||∂L/∂h^b_t||_F (row 1)
    """
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
    grad_norms: np.ndarray  # (2, T) float64: ||∂L/∂h^f_t||_F (row 0), ||∂L/∂h^b_t||_F (row 1)


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
    with serial_blas():
        _chain_forward(X, hf0, Wxf, Whf, bf, code, False, False, Hf, None)
        _chain_forward(X, hb0, Wxb, Whb, bb, code, True, False, Hb, None)
        _k.output_forward(_rows(Hf), _rows(Hb), Wy, by, _rows(Y))
    return Y, BiRNNCache(X, hf0, hb0, Wxf, Whf, bf, Wxb, Whb, bb, Wy, by, act, Hf, Hb, Y)


def birnn_backward(dY, cache: BiRNNCache, *, full=True, out=None) -> BiRNNGrads:
    """Every gradient of the BiRNN given dY = ∂L/∂Y (T, B, K).

    full=False skips the total state gradients dhf, dhb; `out` receives dX.
    """
    v.cache_of(cache, BiRNNCache, "birnn_forward")
    full = v.flag("full", full)
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
    with serial_blas():
        _k.output_backward(_rows(dY), _rows(Hf), _rows(Hb), cache.Wy, _rows(dHf_direct),
                           _rows(dHb_direct), dWy, dby, np.empty(cache.Wy.shape[0]))
    dAf, dAb = np.empty_like(Hf), np.empty_like(Hb)
    dhf = np.empty_like(Hf) if full else None
    dhb = np.empty_like(Hb) if full else None
    dh0s = np.empty((2, B, M), X.dtype)
    dhf0, dhb0 = dh0s[0], dh0s[1]
    dWxf, dWxb = np.empty_like(cache.Wxf), np.empty_like(cache.Wxb)
    dWhf, dWhb = np.empty_like(cache.Whf), np.empty_like(cache.Whb)
    dbs = np.empty((2, M), X.dtype)
    dbf, dbb = dbs[0], dbs[1]
    code = ACTIVATIONS[cache.activation]
    norms = np.empty((2, T))
    with serial_blas():
        _chain_backward(dHf_direct, X, Hf, None, cache.hf0, cache.Wxf, cache.Whf, code,
                        False, False, 0, False, dAf, dhf, dX, dhf0, dWxf, dWhf, dbf, norms[0])
        _chain_backward(dHb_direct, X, Hb, None, cache.hb0, cache.Wxb, cache.Whb, code,
                        True, False, 0, True, dAb, dhb, dX, dhb0, dWxb, dWhb, dbb, norms[1])
    return BiRNNGrads(dX, dhf0, dhb0, dWxf, dWhf, dbf, dWxb, dWhb, dbb, dWy, dby,
                      dhf, dhb, dAf, dAb, norms)
