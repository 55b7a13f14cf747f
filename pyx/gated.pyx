# Gated recurrences (P9 beyond the vanilla RNN): LSTM and GRU over T steps
# and their hand-written backpropagation through time, in PyTorch's
# conventions (torch.nn.LSTM / torch.nn.GRU):
#
#   LSTM, gates in the order i, f, g, o (rows of W_ih (4H, N), W_hh (4H, H)):
#     a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh          (B, 4H)
#     i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o)
#     c_t = f ⊙ c_{t-1} + i ⊙ g;   h_t = o ⊙ tanh(c_t)
#   GRU, gates r, z, n (rows of W_ih (3H, N), W_hh (3H, H)):
#     gx = x_t W_ihᵀ + b_ih,  gh = h_{t-1} W_hhᵀ + b_hh        (B, 3H) each
#     r = σ(gx_r + gh_r)  z = σ(gx_z + gh_z)  n = tanh(gx_n + r ⊙ gh_n)
#     h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}    (computed as n + z ⊙ (h_{t-1} - n))
#
# Layout as pyx/rnn.pyx: time-major sequences as 2-D row blocks, X (T*B, N),
# rows t*B .. t*B+B-1 are x_t. reverse=True runs the chain right to left
# (h_prev is h_{t+1}; the backward direction of a bidirectional layer), so
# nothing is copied to reverse a sequence.
#
# The work is split by its shape, as the RNN's: the input projection of all
# T*B rows is one GEMM before the loop (`*_project`), the weight gradients
# are a few GEMMs over all rows after it (`gated_weight_grads`); the serial
# time loops do one step product per step, h_{t-1} (B, H) x W_hhᵀ (H, GH)
# for all GH = 4H (3H) gate columns at once in nnkit's tile kernel
# (pyx/_tile.pxd, W_hhᵀ packed once per sequence; BLAS for steps from
# nnkit/gated.py's TILE_MAX_MACS), then ONE fused elementwise pass over the
# step's (B, GH) gates (the C functions below). The time loops run on a team
# that splits the batch's rows (no barrier inside the loop) when
# nnkit/gated.py finds free cores, else on one thread; the GEMMs before and
# after on a team (gemm_team, BLAS held at one thread by the caller, as the
# RNN's; see nnkit/_threads.py).
#
# Called only from nnkit.gated (shapes, dtypes, T, B, N, H >= 1 checked;
# outputs allocated, C-contiguous). Nothing here raises on bad input.

from cython.parallel cimport parallel, threadid
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
from _common cimport (column_sums, floating, gemm_rowmajor, gemm_team, nnkit_aligned_alloc,
                      sum_squares)
from _tile cimport (NNKIT_PANEL_D, NNKIT_PANEL_F, nnkit_small_gemm_d, nnkit_small_gemm_f,
                   pack_panels)


# ------------------------------------------------ the fused gate passes
# The cells' C (pyx/include/nnkit_gated.h) uses nnkit_act.h's tanh and sigmoid,
# as pyx/rnn.pyx does. Each cell function is ONE pass over the step's gates: the forward reads the
# (B, GH) pre-activations once and writes the activated gates, c_t, tanh(c_t)
# and h_t; the backward reads the stored gates once and writes every
# pre-activation gradient of the step.
cdef extern from "nnkit_gated.h":
    void nnkit_lstm_cell_f(Py_ssize_t B, Py_ssize_t H, float* A, const float* c_prev,
                           float* c, float* tc, float* h) noexcept nogil
    void nnkit_lstm_cell_d(Py_ssize_t B, Py_ssize_t H, double* A, const double* c_prev,
                           double* c, double* tc, double* h) noexcept nogil
    void nnkit_lstm_back_f(Py_ssize_t B, Py_ssize_t H, const float* G, const float* c_prev,
                           const float* tc, const float* dh, const float* dc_next,
                           const float* f_next, float* dc, float* dA) noexcept nogil
    void nnkit_lstm_back_d(Py_ssize_t B, Py_ssize_t H, const double* G, const double* c_prev,
                           const double* tc, const double* dh, const double* dc_next,
                           const double* f_next, double* dc, double* dA) noexcept nogil
    void nnkit_gru_cell_f(Py_ssize_t B, Py_ssize_t H, float* A, const float* S,
                          const float* bhh, const float* h_prev, float* hn,
                          float* h) noexcept nogil
    void nnkit_gru_cell_d(Py_ssize_t B, Py_ssize_t H, double* A, const double* S,
                          const double* bhh, const double* h_prev, double* hn,
                          double* h) noexcept nogil
    void nnkit_gru_back_f(Py_ssize_t B, Py_ssize_t H, const float* G, const float* hn,
                          const float* h_prev, const float* dh, float* dX3,
                          float* dH3) noexcept nogil
    void nnkit_gru_back_d(Py_ssize_t B, Py_ssize_t H, const double* G, const double* hn,
                          const double* h_prev, const double* dh, double* dX3,
                          double* dH3) noexcept nogil


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static inline int nnkit_g_team_size(void) { return omp_get_num_threads(); }
    #else
    static inline int nnkit_g_team_size(void) { return 1; }
    #endif
    """
    int nnkit_g_team_size() noexcept nogil


# Whether this build has the vectorized tile kernel (AVX2 + FMA)
VECTOR_TILES = NNKIT_PANEL_F > 0


cdef floating* _pack(const floating* W, Py_ssize_t K, Py_ssize_t M, bint transpose) noexcept nogil:
    """op(W) (K, M) packed for the tile kernel (_tile.pack_panels) in fresh
    64-byte-aligned memory; NULL when out of memory; free() releases it."""
    cdef floating* P = <floating*>nnkit_aligned_alloc(K * M * sizeof(floating))
    return NULL if P == NULL else pack_panels(W, K, M, transpose, P)


cdef inline void _step_product(bint backward, Py_ssize_t B, Py_ssize_t K, Py_ssize_t M,
                               const floating* V, const floating* W, const floating* P,
                               bint accumulate, floating* out) noexcept nogil:
    """out (B, M) (+)= V (B, K) op(W): forward op(W) = W_hhᵀ (W (M, K)),
    backward op(W) = W_hh (W (K, M)). The tile kernel on packed P, or BLAS
    (P NULL)."""
    if P != NULL:
        if floating is float:
            nnkit_small_gemm_f(B, K, M, 0, M, V, P, accumulate, out)
        else:
            nnkit_small_gemm_d(B, K, M, 0, M, V, P, accumulate, out)
    else:
        gemm_rowmajor(False, not backward, <int>B, <int>M, <int>K, <floating>1.0,
                      V, <int>K, W, <int>(M if backward else K),
                      <floating>(1.0 if accumulate else 0.0), out, <int>M)


# A (T*B, GH) = X W_ihᵀ + bias over all T*B rows at once (bias: b_ih + b_hh
# for the LSTM, b_ih for the GRU; summed by the caller). One write of A with
# the bias, one GEMM (2*T*B*GH*N flops).
def project(const floating[:, ::1] X,        # IN  (T*B, N)
            const floating[:, ::1] W_ih,     # IN  (GH, N)
            const floating[::1] bias,        # IN  (GH,)
            floating[:, ::1] A,              # OUT (T*B, GH)
            int nthreads):                   # IN  threads for the GEMM (gemm_team)
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], GH = W_ih.shape[0], i
    with nogil:
        for i in range(R):
            memcpy(&A[i, 0], &bias[0], GH * sizeof(floating))
        gemm_team(nthreads, False, True, <int>R, <int>GH, <int>N, <floating>1.0,
                  &X[0, 0], <int>N, &W_ih[0, 0], <int>N, <floating>1.0, &A[0, 0], <int>GH)
    return None


# The time loops below split the batch's rows over a team (nthreads > 1):
# rows are independent sequences, so each thread runs its block of rows
# (multiples of 4, a tile's rows: every row takes the same path through the
# tile kernel as on one thread, so the bits do not depend on the team)
# through the whole sequence and the team never meets inside the loop
# (nnkit/gated.py decides the team from the free cores, as the RNN's).
cdef enum:
    ROWS_PER_TILE = 4


cdef inline void _rows_of(int tid, int nteam, Py_ssize_t B, Py_ssize_t* i0,
                          Py_ssize_t* i1) noexcept nogil:
    """Rows i0..i1 of thread tid of nteam (all of them for a team of one)."""
    cdef Py_ssize_t groups = B // ROWS_PER_TILE
    if nteam <= 1 or groups < nteam:
        i0[0] = 0 if tid == 0 else B
        i1[0] = B
        return
    i0[0] = ROWS_PER_TILE * (groups * tid // nteam)
    i1[0] = B if tid == nteam - 1 else ROWS_PER_TILE * (groups * (tid + 1) // nteam)


# LSTM time loop. A holds the projections on entry, the activated gates on
# exit. Per step: one (B, H) x (H, 4H) product accumulated into A_t
# (2*B*4H*H flops), then one fused pass over the (B, 4H) gates writing c_t,
# tanh(c_t), h_t.
def lstm_recur(const floating[:, ::1] h0,    # IN  (B, H)
               const floating[:, ::1] c0,    # IN  (B, H)
               const floating[:, ::1] W_hh,  # IN  (4H, H)
               bint reverse, Py_ssize_t T,   # IN
               floating[:, ::1] A,           # IN/OUT (T*B, 4H) projections -> gates
               floating[:, ::1] Hs,          # OUT (T*B, H) h_t
               floating[:, ::1] Cs,          # OUT (T*B, H) c_t
               floating[:, ::1] TCs,         # OUT (T*B, H) tanh(c_t)
               bint tile,                    # IN  step product: tile kernel, else BLAS
               int nthreads):                # IN  team over row blocks
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], GH = 4 * H
    cdef floating* P = NULL
    cdef int tid
    if tile:
        P = _pack(&W_hh[0, 0], H, GH, True)
        if P == NULL:
            raise MemoryError("lstm recur: no memory for packed W_hh")
    with nogil:
        if nthreads > 1:
            with parallel(num_threads=nthreads):
                tid = threadid()
                _lstm_recur_rows(tid, nnkit_g_team_size(), B, H, T, reverse, &h0[0, 0],
                                 &c0[0, 0], &W_hh[0, 0], P, &A[0, 0], &Hs[0, 0], &Cs[0, 0],
                                 &TCs[0, 0])
        else:
            _lstm_recur_rows(0, 1, B, H, T, reverse, &h0[0, 0], &c0[0, 0], &W_hh[0, 0], P,
                             &A[0, 0], &Hs[0, 0], &Cs[0, 0], &TCs[0, 0])
    free(P)
    return None


cdef void _lstm_recur_rows(int tid, int nteam, Py_ssize_t B, Py_ssize_t H, Py_ssize_t T,
                           bint reverse, const floating* h0, const floating* c0,
                           const floating* W_hh, const floating* P, floating* A,
                           floating* Hs, floating* Cs, floating* TCs) noexcept nogil:
    cdef Py_ssize_t GH = 4 * H, s, t, p, i0, i1, Bb
    cdef const floating* hp
    cdef const floating* cp
    _rows_of(tid, nteam, B, &i0, &i1)
    Bb = i1 - i0
    if Bb <= 0:
        return
    for s in range(T):
        t = T - 1 - s if reverse else s
        p = t + 1 if reverse else t - 1
        hp = h0 + i0 * H if s == 0 else Hs + (p * B + i0) * H
        cp = c0 + i0 * H if s == 0 else Cs + (p * B + i0) * H
        _step_product(False, Bb, H, GH, hp, W_hh, P, True, A + (t * B + i0) * GH)
        if floating is float:
            nnkit_lstm_cell_f(Bb, H, A + (t * B + i0) * GH, cp, Cs + (t * B + i0) * H,
                              TCs + (t * B + i0) * H, Hs + (t * B + i0) * H)
        else:
            nnkit_lstm_cell_d(Bb, H, A + (t * B + i0) * GH, cp, Cs + (t * B + i0) * H,
                              TCs + (t * B + i0) * H, Hs + (t * B + i0) * H)


# LSTM BPTT, steps opposite to the forward. dh_t = dH_t + dA_{t+1} W_hh
# (the carry through h), dc_t = dh_t ⊙ o_t ⊙ (1 - tanh²c_t) + dc_{t+1} ⊙ f_{t+1}
# (the carry through c); no carry into a state detached by truncated BPTT
# (chain time k, 2k, ...; both h and c are cut there). Per step: one
# (B, 4H) x (4H, H) product (skipped where cut), one pass adding dH_t and
# summing ||dh_t||², one fused pass over the gates. After the loop:
# dh0 = dA_first W_hh, dc0 = dc_first ⊙ f_first.
def lstm_bptt(const floating[:, ::1] dH,     # IN  (T*B, H) direct dL/dh_t
              const floating[:, ::1] G,      # IN  (T*B, 4H) gates
              const floating[:, ::1] Cs,     # IN  (T*B, H)
              const floating[:, ::1] TCs,    # IN  (T*B, H)
              const floating[:, ::1] c0,     # IN  (B, H)
              const floating[:, ::1] W_hh,   # IN  (4H, H)
              bint reverse, Py_ssize_t T, Py_ssize_t truncate,   # IN
              floating[:, ::1] dA,           # OUT (T*B, 4H) dL/da (i, f, g, o)
              floating[:, ::1] dh,           # OUT (T*B, H) total dL/dh_t
              floating[:, ::1] dc,           # OUT (T*B, H) total dL/dc_t
              double[::1] norms,             # OUT (T,) ||dh_t||_F
              double[::1] cnorms,            # OUT (T,) ||dc_t||_F
              floating[:, ::1] dh0,          # OUT (B, H)
              floating[:, ::1] dc0,          # OUT (B, H)
              bint tile,
              int nthreads):                 # IN  team over row blocks
    cdef Py_ssize_t B = c0.shape[0], H = c0.shape[1], GH = 4 * H, t, u
    cdef floating* P = NULL
    cdef int tid
    cdef double a, b
    # part[(2t + 0/1) * nthreads + tid]: a thread's Σ dh_t², Σ dc_t² over its rows
    cdef double* part = <double*>calloc(2 * T * nthreads, sizeof(double))
    if part == NULL:
        raise MemoryError("lstm bptt: no memory for the norm sums")
    if tile:
        P = _pack(&W_hh[0, 0], GH, H, False)
        if P == NULL:
            free(part)
            raise MemoryError("lstm bptt: no memory for packed W_hh")
    with nogil:
        if nthreads > 1:
            with parallel(num_threads=nthreads):
                tid = threadid()
                _lstm_bptt_rows(tid, nnkit_g_team_size(), nthreads, B, H, T, reverse,
                                truncate, &dH[0, 0], &G[0, 0], &Cs[0, 0], &TCs[0, 0],
                                &c0[0, 0], &W_hh[0, 0], P, &dA[0, 0], &dh[0, 0], &dc[0, 0],
                                part, &dh0[0, 0], &dc0[0, 0])
        else:
            _lstm_bptt_rows(0, 1, 1, B, H, T, reverse, truncate, &dH[0, 0], &G[0, 0],
                            &Cs[0, 0], &TCs[0, 0], &c0[0, 0], &W_hh[0, 0], P, &dA[0, 0],
                            &dh[0, 0], &dc[0, 0], part, &dh0[0, 0], &dc0[0, 0])
        for t in range(T):
            a = 0.0
            b = 0.0
            for u in range(nthreads):
                a = a + part[2 * t * nthreads + u]
                b = b + part[(2 * t + 1) * nthreads + u]
            norms[t] = sqrt(a)
            cnorms[t] = sqrt(b)
    free(P)
    free(part)
    return None


cdef void _lstm_bptt_rows(int tid, int nteam, int stride, Py_ssize_t B, Py_ssize_t H,
                          Py_ssize_t T, bint reverse, Py_ssize_t truncate,
                          const floating* dH, const floating* G, const floating* Cs,
                          const floating* TCs, const floating* c0, const floating* W_hh,
                          const floating* P, floating* dA, floating* dh, floating* dc,
                          double* part, floating* dh0, floating* dc0) noexcept nogil:
    cdef Py_ssize_t GH = 4 * H, s, t, nxt, p, k, j, n, i0, i1, Bb, chain_t, first
    cdef bint cut
    cdef floating* d_t
    cdef const floating* dH_t
    cdef const floating* cp
    _rows_of(tid, nteam, B, &i0, &i1)
    Bb = i1 - i0
    if Bb <= 0:
        return
    n = Bb * H
    for s in range(T):
        t = s if reverse else T - 1 - s
        nxt = t - 1 if reverse else t + 1
        p = t + 1 if reverse else t - 1
        chain_t = T - t if reverse else t + 1
        cut = s == 0 or (truncate > 0 and chain_t % truncate == 0)
        d_t = dh + (t * B + i0) * H
        dH_t = dH + (t * B + i0) * H
        if cut:
            memcpy(d_t, dH_t, n * sizeof(floating))
        else:
            _step_product(True, Bb, GH, H, dA + (nxt * B + i0) * GH, W_hh, P, False, d_t)
            for k in range(n):
                d_t[k] = d_t[k] + dH_t[k]
        part[2 * t * stride + tid] = sum_squares(d_t, n)
        cp = c0 + i0 * H if s == T - 1 else Cs + (p * B + i0) * H
        if floating is float:
            nnkit_lstm_back_f(Bb, H, G + (t * B + i0) * GH, cp, TCs + (t * B + i0) * H, d_t,
                              NULL if cut else dc + (nxt * B + i0) * H,
                              NULL if cut else G + (nxt * B + i0) * GH + H,
                              dc + (t * B + i0) * H, dA + (t * B + i0) * GH)
        else:
            nnkit_lstm_back_d(Bb, H, G + (t * B + i0) * GH, cp, TCs + (t * B + i0) * H, d_t,
                              NULL if cut else dc + (nxt * B + i0) * H,
                              NULL if cut else G + (nxt * B + i0) * GH + H,
                              dc + (t * B + i0) * H, dA + (t * B + i0) * GH)
        part[(2 * t + 1) * stride + tid] = sum_squares(dc + (t * B + i0) * H, n)
    first = T - 1 if reverse else 0
    _step_product(True, Bb, GH, H, dA + (first * B + i0) * GH, W_hh, P, False, dh0 + i0 * H)
    for k in range(Bb):
        for j in range(H):
            dc0[(i0 + k) * H + j] = (dc[(first * B + i0 + k) * H + j]
                                     * G[(first * B + i0 + k) * GH + H + j])


# GRU time loop. A holds gx = x W_ihᵀ + b_ih on entry, the gates r, z, n on
# exit; S is a (B, 3H) scratch for the step's h_{t-1} W_hhᵀ (each thread its
# rows). Per step: one (B, H) x (H, 3H) product (2*B*3H*H flops), one fused
# pass writing the gates, hn_t = W_hn h_{t-1} + b_hn (the backward needs it)
# and h_t.
def gru_recur(const floating[:, ::1] h0,     # IN  (B, H)
              const floating[:, ::1] W_hh,   # IN  (3H, H)
              const floating[::1] b_hh,      # IN  (3H,)
              bint reverse, Py_ssize_t T,    # IN
              floating[:, ::1] A,            # IN/OUT (T*B, 3H) gx -> gates
              floating[:, ::1] Hs,           # OUT (T*B, H)
              floating[:, ::1] HN,           # OUT (T*B, H)
              floating[:, ::1] S,            # workspace (B, 3H)
              bint tile,
              int nthreads):                 # IN  team over row blocks
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], GH = 3 * H
    cdef floating* P = NULL
    cdef int tid
    if tile:
        P = _pack(&W_hh[0, 0], H, GH, True)
        if P == NULL:
            raise MemoryError("gru recur: no memory for packed W_hh")
    with nogil:
        if nthreads > 1:
            with parallel(num_threads=nthreads):
                tid = threadid()
                _gru_recur_rows(tid, nnkit_g_team_size(), B, H, T, reverse, &h0[0, 0],
                                &W_hh[0, 0], &b_hh[0], P, &A[0, 0], &Hs[0, 0], &HN[0, 0],
                                &S[0, 0])
        else:
            _gru_recur_rows(0, 1, B, H, T, reverse, &h0[0, 0], &W_hh[0, 0], &b_hh[0], P,
                            &A[0, 0], &Hs[0, 0], &HN[0, 0], &S[0, 0])
    free(P)
    return None


cdef void _gru_recur_rows(int tid, int nteam, Py_ssize_t B, Py_ssize_t H, Py_ssize_t T,
                          bint reverse, const floating* h0, const floating* W_hh,
                          const floating* b_hh, const floating* P, floating* A,
                          floating* Hs, floating* HN, floating* S) noexcept nogil:
    cdef Py_ssize_t GH = 3 * H, s, t, p, i0, i1, Bb
    cdef const floating* hp
    _rows_of(tid, nteam, B, &i0, &i1)
    Bb = i1 - i0
    if Bb <= 0:
        return
    S = S + i0 * GH
    for s in range(T):
        t = T - 1 - s if reverse else s
        p = t + 1 if reverse else t - 1
        hp = h0 + i0 * H if s == 0 else Hs + (p * B + i0) * H
        _step_product(False, Bb, H, GH, hp, W_hh, P, False, S)
        if floating is float:
            nnkit_gru_cell_f(Bb, H, A + (t * B + i0) * GH, S, b_hh, hp, HN + (t * B + i0) * H,
                             Hs + (t * B + i0) * H)
        else:
            nnkit_gru_cell_d(Bb, H, A + (t * B + i0) * GH, S, b_hh, hp, HN + (t * B + i0) * H,
                             Hs + (t * B + i0) * H)


# GRU BPTT. dh_t = dH_t + dGh_{t+1} W_hh + dh_{t+1} ⊙ z_{t+1} (h_t feeds the
# next step through W_hh and directly through z); cut as the LSTM's. Per
# step: one (B, 3H) x (3H, H) product, one pass adding dH_t and the direct
# term (and ||dh_t||²), one fused pass writing dGx_t and dGh_t. After the
# loop: dh0 = dGh_first W_hh + dh_first ⊙ z_first.
def gru_bptt(const floating[:, ::1] dH,      # IN  (T*B, H)
             const floating[:, ::1] G,       # IN  (T*B, 3H) gates r, z, n
             const floating[:, ::1] HN,      # IN  (T*B, H)
             const floating[:, ::1] Hs,      # IN  (T*B, H)
             const floating[:, ::1] h0,      # IN  (B, H)
             const floating[:, ::1] W_hh,    # IN  (3H, H)
             bint reverse, Py_ssize_t T, Py_ssize_t truncate,   # IN
             floating[:, ::1] dGx,           # OUT (T*B, 3H) dL/d(x W_ihᵀ + b_ih)
             floating[:, ::1] dGh,           # OUT (T*B, 3H) dL/d(h W_hhᵀ + b_hh)
             floating[:, ::1] dh,            # OUT (T*B, H) total dL/dh_t
             double[::1] norms,              # OUT (T,)
             floating[:, ::1] dh0,           # OUT (B, H)
             bint tile,
             int nthreads):                  # IN  team over row blocks
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], GH = 3 * H, t, u
    cdef floating* P = NULL
    cdef int tid
    cdef double a
    cdef double* part = <double*>calloc(T * nthreads, sizeof(double))
    if part == NULL:
        raise MemoryError("gru bptt: no memory for the norm sums")
    if tile:
        P = _pack(&W_hh[0, 0], GH, H, False)
        if P == NULL:
            free(part)
            raise MemoryError("gru bptt: no memory for packed W_hh")
    with nogil:
        if nthreads > 1:
            with parallel(num_threads=nthreads):
                tid = threadid()
                _gru_bptt_rows(tid, nnkit_g_team_size(), nthreads, B, H, T, reverse, truncate,
                               &dH[0, 0], &G[0, 0], &HN[0, 0], &Hs[0, 0], &h0[0, 0],
                               &W_hh[0, 0], P, &dGx[0, 0], &dGh[0, 0], &dh[0, 0], part,
                               &dh0[0, 0])
        else:
            _gru_bptt_rows(0, 1, 1, B, H, T, reverse, truncate, &dH[0, 0], &G[0, 0],
                           &HN[0, 0], &Hs[0, 0], &h0[0, 0], &W_hh[0, 0], P, &dGx[0, 0],
                           &dGh[0, 0], &dh[0, 0], part, &dh0[0, 0])
        for t in range(T):
            a = 0.0
            for u in range(nthreads):
                a = a + part[t * nthreads + u]
            norms[t] = sqrt(a)
    free(P)
    free(part)
    return None


cdef void _gru_bptt_rows(int tid, int nteam, int stride, Py_ssize_t B, Py_ssize_t H,
                         Py_ssize_t T, bint reverse, Py_ssize_t truncate,
                         const floating* dH, const floating* G, const floating* HN,
                         const floating* Hs, const floating* h0, const floating* W_hh,
                         const floating* P, floating* dGx, floating* dGh, floating* dh,
                         double* part, floating* dh0) noexcept nogil:
    cdef Py_ssize_t GH = 3 * H, s, t, nxt, p, k, j, n, i0, i1, Bb, chain_t, first
    cdef bint cut
    cdef floating* d_t
    cdef const floating* dH_t
    cdef const floating* hp
    cdef const floating* dn
    cdef const floating* zn
    _rows_of(tid, nteam, B, &i0, &i1)
    Bb = i1 - i0
    if Bb <= 0:
        return
    n = Bb * H
    for s in range(T):
        t = s if reverse else T - 1 - s
        nxt = t - 1 if reverse else t + 1
        p = t + 1 if reverse else t - 1
        chain_t = T - t if reverse else t + 1
        cut = s == 0 or (truncate > 0 and chain_t % truncate == 0)
        d_t = dh + (t * B + i0) * H
        dH_t = dH + (t * B + i0) * H
        if cut:
            memcpy(d_t, dH_t, n * sizeof(floating))
        else:
            _step_product(True, Bb, GH, H, dGh + (nxt * B + i0) * GH, W_hh, P, False, d_t)
            dn = dh + (nxt * B + i0) * H
            zn = G + (nxt * B + i0) * GH
            for k in range(Bb):
                for j in range(H):
                    d_t[k * H + j] = (d_t[k * H + j] + dn[k * H + j] * zn[k * GH + H + j]
                                      + dH_t[k * H + j])
        part[t * stride + tid] = sum_squares(d_t, n)
        hp = h0 + i0 * H if s == T - 1 else Hs + (p * B + i0) * H
        if floating is float:
            nnkit_gru_back_f(Bb, H, G + (t * B + i0) * GH, HN + (t * B + i0) * H, hp, d_t,
                             dGx + (t * B + i0) * GH, dGh + (t * B + i0) * GH)
        else:
            nnkit_gru_back_d(Bb, H, G + (t * B + i0) * GH, HN + (t * B + i0) * H, hp, d_t,
                             dGx + (t * B + i0) * GH, dGh + (t * B + i0) * GH)
    first = T - 1 if reverse else 0
    _step_product(True, Bb, GH, H, dGh + (first * B + i0) * GH, W_hh, P, False, dh0 + i0 * H)
    for k in range(Bb):
        for j in range(H):
            dh0[(i0 + k) * H + j] = (dh0[(i0 + k) * H + j] + dh[(first * B + i0 + k) * H + j]
                                     * G[(first * B + i0 + k) * GH + H + j])


# The weight gradients of one chain, each one GEMM over the stacked T*B rows:
#   dX    (+)= DX W_ih           2*T*B*GH*N flops (+= for a second direction)
#   dW_ih  = DXᵀ X               2*T*B*GH*N
#   dW_hh  = Σ_t DH_tᵀ h_prev_t  2*T*B*GH*H: DH_firstᵀ h0 + the other T-1
#            steps against H shifted by one block (no copy), as the RNN's
#   db_ih  = column sums of DX, db_hh = column sums of DH (double totals)
# DX = DH = dA for the LSTM; the GRU's dGx and dGh.
def weight_grads(const floating[:, ::1] DX,   # IN  (T*B, GH)
                 const floating[:, ::1] DH,   # IN  (T*B, GH)
                 const floating[:, ::1] X,    # IN  (T*B, N)
                 const floating[:, ::1] Hs,   # IN  (T*B, H)
                 const floating[:, ::1] h0,   # IN  (B, H)
                 const floating[:, ::1] W_ih, # IN  (GH, N)
                 bint reverse, Py_ssize_t T, bint accumulate_dX,   # IN
                 floating[:, ::1] dX,         # OUT (T*B, N)
                 floating[:, ::1] dW_ih,      # OUT (GH, N)
                 floating[:, ::1] dW_hh,      # OUT (GH, H)
                 floating[::1] db_ih,         # OUT (GH,)
                 floating[::1] db_hh,         # OUT (GH,)
                 double[::1] acc,             # workspace (GH,)
                 int nthreads):
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], GH = W_ih.shape[0], H = h0.shape[1]
    cdef Py_ssize_t B = R // T, first = T - 1 if reverse else 0
    with nogil:
        gemm_team(nthreads, False, False, <int>R, <int>N, <int>GH, <floating>1.0,
                  &DX[0, 0], <int>GH, &W_ih[0, 0], <int>N,
                  <floating>(1.0 if accumulate_dX else 0.0), &dX[0, 0], <int>N)
        gemm_team(nthreads, True, False, <int>GH, <int>N, <int>R, <floating>1.0,
                  &DX[0, 0], <int>GH, &X[0, 0], <int>N, <floating>0.0, &dW_ih[0, 0], <int>N)
        gemm_rowmajor(True, False, <int>GH, <int>H, <int>B, <floating>1.0,
                      &DH[first * B, 0], <int>GH, &h0[0, 0], <int>H, <floating>0.0,
                      &dW_hh[0, 0], <int>H)
        if T > 1:
            gemm_team(nthreads, True, False, <int>GH, <int>H, <int>((T - 1) * B),
                      <floating>1.0, &DH[0 if reverse else B, 0], <int>GH,
                      &Hs[B if reverse else 0, 0], <int>H, <floating>1.0,
                      &dW_hh[0, 0], <int>H)
        column_sums(&DX[0, 0], R, GH, &acc[0], &db_ih[0])
        if &DH[0, 0] == &DX[0, 0]:
            memcpy(&db_hh[0], &db_ih[0], GH * sizeof(floating))
        else:
            column_sums(&DH[0, 0], R, GH, &acc[0], &db_hh[0])
    return None
