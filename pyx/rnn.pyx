# Recurrent-network kernels (P9): a simple RNN over T steps, its
# backpropagation through time (BPTT), and the output layer of a BiRNN.
#
# Rows are samples; sequences are time-major and stored as 2-D row blocks:
#   X (T*B, N): rows t*B .. t*B+B-1 are x_t;  H (T*B, M): h_t the same way.
# Two forms of the recurrence (P9.1), chosen by `preact`:
#   standard       a_t = x_t Wx^T + h_prev Wh^T + b,   h_t = act(a_t)
#   preactivation  h_t = act(h_prev) Wh^T + x_t Wx^T + b   (the state is a_t)
# h_prev is h_{t-1} (h0 before t = 0) in the forward direction, and h_{t+1}
# (h0 after t = T-1) with reverse=True (the backward chain of a BiRNN), so one
# kernel serves both chains and nothing is copied to reverse a sequence.
#
# The work is split by its shape: `project` and `weight_grads` are a few
# large GEMMs over all T*B rows at once; `recur` and `bptt` are the serial
# time loops, one (B, M) x (M, M) product (nnkit's tile kernel with Wh packed
# once per sequence, or BLAS for large steps) and a few elementwise passes
# per step. Python runs them with OpenBLAS on one thread
# (nnkit/_blas_threads.py says why); the cores are used
# by splitting the work ourselves: the weight gradients as two tasks or by
# row blocks (gemm_team); a large step's time loop on a team, by blocks of
# the batch's rows (no meeting inside the loop) or, for a batch too small to
# give each thread a tile's 4 rows, by column blocks with a barrier once per
# step (_share_block, _recur_share, _bptt_share); beside a small one-thread
# loop the second core projects and reduces (project_recur, bptt_grads).
# nnkit/rnn.py (_step_plan, _overlap) decides which, from the cores free.
#
# Called only from nnkit.rnn (shapes, dtypes, T, B, N, M >= 1 checked; outputs
# allocated, C-contiguous). Nothing here raises on bad input.
#
# The activation derivative is read from the activation's value (tanh:
# 1 - g^2, sigmoid: g (1 - g), relu: [g > 0]), so the standard forward never
# stores a_t. relu is _common's relu_value/relu_grad: relu(NaN) = NaN, as
# PyTorch, and the backward mask takes the same branch as the forward.
#
# Elementwise passes run on one thread: per step they touch B*M values next to
# a B x M x M GEMM (2M flops per value); an OpenMP team woken 2T times per
# call costs more than the pass (see nnkit/_threads.py).

from cython.parallel cimport parallel, prange, threadid
from scipy.linalg.cython_blas cimport sgemv, dgemv
from libc.math cimport sqrt
from libc.stdlib cimport free
from libc.string cimport memcpy, memset
from _common cimport (column_sums, floating, gemm_rowmajor, gemm_team, lines, relu_grad,
                      relu_value, sum_squares, workspace)
from _tile cimport (NNKIT_PANEL_D, NNKIT_PANEL_F, nnkit_small_gemm_d, nnkit_small_gemm_f,
                   pack_panels)

cdef enum:
    ACT_TANH = 0
    ACT_SIGMOID = 1
    ACT_RELU = 2


# ------------------------------------------------------- vectorizable exp
# tanh and sigmoid as C loops gcc vectorizes (glibc's are scalar calls):
# pyx/include/nnkit_act.h, with their accuracy and why they are C.
cdef extern from "nnkit_act.h":
    void nnkit_tanh_f(float* h, Py_ssize_t n) noexcept nogil
    void nnkit_tanh_d(double* h, Py_ssize_t n) noexcept nogil
    void nnkit_sigmoid_f(float* h, Py_ssize_t n) noexcept nogil
    void nnkit_sigmoid_d(double* h, Py_ssize_t n) noexcept nogil


# A time loop shared by a team: each thread owns a block of the state's
# columns for the whole sequence and the team meets at a barrier once per
# step (the next step's product reads every column). One OpenMP region per
# sequence instead of one per step: a region costs a wake of the sleeping
# threads, a barrier between spinning threads far less. The team size is
# read inside the region (OpenMP may grant fewer threads than asked).
cdef extern from "nnkit_team.h":
    int nnkit_team_size() noexcept nogil
    void nnkit_barrier() noexcept nogil
    void nnkit_publish(long* p, long v) noexcept nogil
    void nnkit_wait_for(long* p, long v) noexcept nogil


cdef inline void gemv_rowmajor(bint trans, int m, int n, floating alpha,
                               const floating* A, int lda, const floating* x,
                               floating beta, floating* y) noexcept nogil:
    """y = alpha * op(A) x + beta * y for a row-major (m x n) A (row stride
    lda): op(A) = A (y has m entries) or A^T (trans; n entries). BLAS sees the
    column-major A^T, so the flag flips. Local to the RNN: the one family
    whose per-step product is a matrix-vector product (B = 1).
    (Candidate for _common.pxd beside gemm_rowmajor.)"""
    cdef char t = b'N' if trans else b'T'
    cdef int one = 1
    if floating is float:
        sgemv(&t, &n, &m, &alpha, <float*>A, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &n, &m, &alpha, <double*>A, &lda, <double*>x, &one, &beta, y, &one)


# Whether this build has the vectorized tile kernel (AVX2 + FMA); without it
# only the plain loop, which nnkit/rnn.py keeps to small steps.
VECTOR_TILES = NNKIT_PANEL_F > 0


cdef inline void _blas_step(bint trans_w, Py_ssize_t B, Py_ssize_t M,
                            const floating* V, const floating* W, floating beta,
                            floating* out, int nt) noexcept nogil:
    """The step's product through BLAS (steps from TILE_MAX_MACS, see
    nnkit/rnn.py): out (B, M) = V (B, M) op(W) + beta * out (beta 0 or 1)
    with op(W) = W^T (forward: rows times Wh^T) or W (trans_w; backward: rows
    times Wh). B = 1 is a GEMV (half the call overhead of a 1-row GEMM), the
    rest a GEMM; with nt > 1 threads, one GEMM per block of out's columns:
    each thread reads (and OpenBLAS packs) only its columns of op(W), where a
    split by rows would pack all of W on every thread."""
    cdef int t
    cdef Py_ssize_t j0, j1
    if nt > 1 and B > 1:
        for t in prange(nt, schedule="static", num_threads=nt):
            j0 = (M * t) // nt
            j1 = (M * (t + 1)) // nt
            # columns j0..j1 of op(W): rows of W when op(W) = W^T
            gemm_rowmajor(False, not trans_w, <int>B, <int>(j1 - j0), <int>M,
                          <floating>1.0, V, <int>M, W + (j0 if trans_w else j0 * M),
                          <int>M, beta, out + j0, <int>M)
    elif B == 1:
        gemv_rowmajor(trans_w, <int>M, <int>M, <floating>1.0, W, <int>M, V, beta, out)
    else:
        gemm_rowmajor(False, not trans_w, <int>B, <int>M, <int>M, <floating>1.0,
                      V, <int>M, W, <int>M, beta, out, <int>M)


cdef inline Py_ssize_t _panel_start(Py_ssize_t p, Py_ssize_t pw, Py_ssize_t M) noexcept nogil:
    """First column of packed panel p (M past the last one)."""
    if pw == 0:
        return 0 if p == 0 else M
    return p * pw if p * pw < M else M


cdef inline void _small_product(Py_ssize_t B, Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1,
                                const floating* V, const floating* P, floating beta,
                                floating* out) noexcept nogil:
    """out[:, j0:j1] (+)= V (B, M) op(W)[:, j0:j1], op(W) packed in P."""
    if floating is float:
        nnkit_small_gemm_f(B, M, M, j0, j1, V, P, beta != 0, out)
    else:
        nnkit_small_gemm_d(B, M, M, j0, j1, V, P, beta != 0, out)


cdef inline void _activate(floating* h, Py_ssize_t n, int act) noexcept nogil:
    """h = act(h) in place over n contiguous values (tanh and sigmoid: the
    vectorized C loops above; relu: _common.relu_value, NaN kept)."""
    cdef Py_ssize_t k
    if act == ACT_TANH:
        if floating is float:
            nnkit_tanh_f(h, n)
        else:
            nnkit_tanh_d(h, n)
    elif act == ACT_SIGMOID:
        if floating is float:
            nnkit_sigmoid_f(h, n)
        else:
            nnkit_sigmoid_d(h, n)
    else:
        for k in range(n):
            h[k] = relu_value(h[k])


cdef inline void _times_derivative(floating* d, const floating* g, Py_ssize_t n,
                                   int act) noexcept nogil:
    """d *= act'(.) read from the activation's value g: tanh 1 - g^2, sigmoid
    g (1 - g), relu: _common.relu_grad on g = relu(a) (g <= 0 exactly where
    a <= 0; NaN passes, as PyTorch's threshold_backward)."""
    cdef Py_ssize_t k
    cdef floating v, one = 1
    if act == ACT_TANH:
        for k in range(n):
            v = g[k]
            d[k] = d[k] * (one - v * v)
    elif act == ACT_SIGMOID:
        for k in range(n):
            v = g[k]
            d[k] = d[k] * (v * (one - v))
    else:
        for k in range(n):
            d[k] = relu_grad(d[k], g[k])


# ------------------------------------------ a thread's block of columns
cdef inline void _share_columns(int tid, int nteam, Py_ssize_t M, Py_ssize_t pw,
                                Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    """Columns j0..j1 of thread tid of nteam: whole packed panels of pw
    columns (the leftover block counts as one), panels npan*tid/nteam ..
    npan*(tid+1)/nteam; empty when the team has more threads than panels."""
    cdef Py_ssize_t npan = (M + pw - 1) // pw if pw > 0 else 1
    j0[0] = _panel_start(npan * tid // nteam, pw, M)
    j1[0] = _panel_start(npan * (tid + 1) // nteam, pw, M)


# A thread's block of a step: rows i0..i1 with every column when the batch
# has at least 4 rows (one tile) per thread, else every row and the columns
# j0..j1 (_share_columns). Rows are independent sequences: a block of rows
# runs its whole time loop without reading another thread's values, so the
# team never meets inside the loop. Columns need every row of h_{t-1}: the
# team meets at a barrier each step, and each thread's half of h_t crosses to
# the other core, so row blocks come first. Row blocks start at multiples of
# 4, so every row takes the same path through the tile kernel (4-row tile or
# leftover row) as on one thread: the same bits whatever the team.
cdef enum:
    ROWS_PER_TILE = 4      # rows of the tile kernel's register tile (nnkit_tile.h)
TILE_ROWS = ROWS_PER_TILE  # for nnkit/rnn.py's policy


cdef inline bint _share_block(int tid, int nteam, Py_ssize_t B, Py_ssize_t M,
                              Py_ssize_t pw, Py_ssize_t* i0, Py_ssize_t* i1,
                              Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    """Fill the thread's rows i0..i1 and columns j0..j1; True when the team
    splits columns (and so must meet at a barrier each step)."""
    cdef Py_ssize_t rows = ROWS_PER_TILE, groups = B // rows
    if nteam > 1 and groups >= nteam:
        i0[0] = rows * (groups * tid // nteam)
        i1[0] = B if tid == nteam - 1 else rows * (groups * (tid + 1) // nteam)
        j0[0] = 0
        j1[0] = M
        return False
    i0[0] = 0
    i1[0] = B
    _share_columns(tid, nteam, M, pw, j0, j1)
    return nteam > 1


cdef inline void _share_product(bint trans_w, Py_ssize_t B, Py_ssize_t M, Py_ssize_t j0,
                                Py_ssize_t j1, const floating* V, const floating* W,
                                const floating* W_kj, floating beta, floating* out,
                                int nt) noexcept nogil:
    """Columns j0..j1 of the step's product: the tile kernel on packed W_kj,
    or (W_kj NULL: one thread owns every column) BLAS."""
    if W_kj != NULL:
        if j0 < j1:
            _small_product(B, M, j0, j1, V, W_kj, beta, out)
    else:
        _blas_step(trans_w, B, M, V, W, beta, out, nt)


# Elementwise passes over the columns j0..j1 of a (B, M) block: one pass
# over the contiguous block when they are all of them.
cdef inline void _cols_copy(floating* dst, const floating* src, Py_ssize_t B, Py_ssize_t M,
                            Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i
    if j0 == 0 and j1 == M:
        memcpy(dst, src, B * M * sizeof(floating))
    elif j0 < j1:
        for i in range(B):
            memcpy(dst + i * M + j0, src + i * M + j0, (j1 - j0) * sizeof(floating))


cdef inline void _cols_activate(floating* h, Py_ssize_t B, Py_ssize_t M, Py_ssize_t j0,
                                Py_ssize_t j1, int act) noexcept nogil:
    cdef Py_ssize_t i
    if j0 == 0 and j1 == M:
        _activate(h, B * M, act)
    elif j0 < j1:
        for i in range(B):
            _activate(h + i * M + j0, j1 - j0, act)


cdef inline void _cols_times_derivative(floating* d, const floating* g, Py_ssize_t B,
                                        Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1,
                                        int act) noexcept nogil:
    cdef Py_ssize_t i
    if j0 == 0 and j1 == M:
        _times_derivative(d, g, B * M, act)
    elif j0 < j1:
        for i in range(B):
            _times_derivative(d + i * M + j0, g + i * M + j0, j1 - j0, act)


cdef inline void _cols_add(floating* d, const floating* src, Py_ssize_t B, Py_ssize_t M,
                           Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(B):
        for j in range(j0, j1):
            d[i * M + j] = d[i * M + j] + src[i * M + j]


cdef inline double _colssum_squares(const floating* d, Py_ssize_t B, Py_ssize_t M,
                                     Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i
    cdef double acc = 0.0
    if j0 == 0 and j1 == M:
        return sum_squares(d, B * M)
    if j0 < j1:
        for i in range(B):
            acc = acc + sum_squares(d + i * M + j0, j1 - j0)
    return acc


# H = X Wx^T + b over all T*B rows at once.
# Passes: one write of H with b (skipped without a bias); one GEMM, 2*T*B*M*N flops.
def project(const floating[:, ::1] X,        # IN  (T*B, N)
            const floating[:, ::1] Wx,       # IN  (M, N)
            const floating[::1] b,           # IN  (M,) or None
            floating[:, ::1] H,              # OUT (T*B, M)
            int nthreads):                   # IN  threads for the GEMM (gemm_team)
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], M = Wx.shape[0], i
    cdef bint has_bias = b is not None
    with nogil:
        if has_bias:
            for i in range(R):
                memcpy(&H[i, 0], &b[0], M * sizeof(floating))
        gemm_team(nthreads, False, True, <int>R, <int>M, <int>N, <floating>1.0,
                      &X[0, 0], <int>N, &Wx[0, 0], <int>N,
                      <floating>(1.0 if has_bias else 0.0), &H[0, 0], <int>M)
    return None


# The time loop of the forward; H holds the projections x_t Wx^T + b on entry.
#   standard:      H_t += h_prev Wh^T;  H_t = act(H_t)
#   preactivation: G_t = act(h_prev);   H_t += G_t Wh^T
# Per step: one (B, M) x (M, M) GEMM, 2*B*M^2 flops (a GEMV when B = 1), and
# one elementwise pass over B*M values (in place; a copy into G and the pass
# there for the preactivation form, whose G_t is what step t read through act: BPTT reads
# act' from it and dWh = Σ_t dh_t^T G_t is then one GEMM).
def recur(const floating[:, ::1] h0,         # IN  (B, M) state before the first step
          const floating[:, ::1] Wh,         # IN  (M, M)
          int act, bint reverse, bint preact, Py_ssize_t T,   # IN
          floating[:, ::1] H,                # IN/OUT (T*B, M) projections -> states
          floating[:, ::1] G,                # OUT (T*B, M) preactivation form, else None
          bint tile,                         # IN  per-step product: packed tile kernel, else BLAS
          int nthreads):                     # IN  threads (> 1: tile: a team over columns;
                                             #     BLAS: each step's product split)
    cdef Py_ssize_t B = H.shape[0] // T, M = H.shape[1]
    cdef floating* Gp = &G[0, 0] if G is not None else NULL
    cdef floating* WhT = NULL         # Wh^T packed for the tile kernel, else NULL
    if tile:
        WhT = pack_panels(&Wh[0, 0], M, M, True,
                    <floating*>workspace(M * M * sizeof(floating), "rnn recur"))
    with nogil:
        if tile and nthreads > 1:
            with parallel(num_threads=nthreads):
                _recur_share(threadid(), nnkit_team_size(), &h0[0, 0], &Wh[0, 0], WhT, act,
                             reverse, preact, T, B, M, &H[0, 0], Gp, 1, NULL)
        else:
            _recur_share(0, 1, &h0[0, 0], &Wh[0, 0], WhT, act, reverse, preact, T, B, M,
                         &H[0, 0], Gp, nthreads, NULL)
    free(WhT)
    return None


cdef void _recur_share(int tid, int nteam, const floating* h0, const floating* Wh,
                       const floating* WhT, int act, bint reverse, bint preact,
                       Py_ssize_t T, Py_ssize_t B, Py_ssize_t M, floating* H, floating* G,
                       int nt, long* ready) noexcept nogil:
    """recur's time loop for thread tid of nteam on its block of the states
    (_share_block: a block of rows, or of columns; all of them when nteam =
    1, where nt > 1 splits a BLAS product per step instead). With column
    blocks, one barrier per step: after it h_t (or g_t) is complete for every
    thread's next product; a thread's elementwise work touches only its own
    block. With ready (one thread only): step s waits until the count
    published there (steps projected) passes s."""
    cdef Py_ssize_t s, t, i0, i1, j0, j1, Bb, n = B * M
    cdef const floating* prev
    cdef floating* h_t
    cdef floating* g_t
    cdef bint meet = _share_block(tid, nteam, B, M,
                                  NNKIT_PANEL_F if floating is float else NNKIT_PANEL_D,
                                  &i0, &i1, &j0, &j1)
    Bb = i1 - i0
    H = H + i0 * M                       # every pointer at the block's first row
    h0 = h0 + i0 * M
    if preact:
        G = G + i0 * M
    for s in range(T):
        t = T - 1 - s if reverse else s
        prev = h0 if s == 0 else H + (t + 1 if reverse else t - 1) * n
        h_t = H + t * n
        if ready != NULL:
            nnkit_wait_for(ready, s + 1)
        if preact:
            g_t = G + t * n
            _cols_copy(g_t, prev, Bb, M, j0, j1)
            _cols_activate(g_t, Bb, M, j0, j1, act)
            if meet:
                nnkit_barrier()
            _share_product(False, Bb, M, j0, j1, g_t, Wh, WhT, <floating>1.0, h_t, nt)
        else:
            _share_product(False, Bb, M, j0, j1, prev, Wh, WhT, <floating>1.0, h_t, nt)
            _cols_activate(h_t, Bb, M, j0, j1, act)
            if meet:
                nnkit_barrier()


# The projection and the time loop in one call, for a loop that runs on one
# thread (nnkit/rnn.py _chain_forward decides): thread 1 projects chunks of
# about 512 rows in the loop's order, publishing how many steps are ready;
# thread 0 runs the loop (as recur), each step waiting for its projection.
# So the projection runs on the core the serial loop leaves idle. The chunks
# do not depend on the team (alone, thread 0 projects them all first): the
# same bits on one thread or two.
def project_recur(const floating[:, ::1] X,   # IN  (T*B, N)
                  const floating[:, ::1] Wx,  # IN  (M, N)
                  const floating[::1] b,      # IN  (M,) or None
                  const floating[:, ::1] h0,  # IN  (B, M)
                  const floating[:, ::1] Wh,  # IN  (M, M)
                  int act, bint reverse, bint preact, Py_ssize_t T,   # IN
                  floating[:, ::1] H,         # OUT (T*B, M)
                  floating[:, ::1] G,         # OUT (T*B, M) preactivation form, else None
                  int nthreads):              # IN  2 (1: thread 0 does it all)
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], M = Wx.shape[0], B = R // T
    cdef floating* Gp = &G[0, 0] if G is not None else NULL
    cdef const floating* bp = &b[0] if b is not None else NULL
    cdef int tid, nteam
    # workspace: Wh^T packed, then the count of projected steps on a line of its own
    cdef size_t packed_bytes = lines(M * M * sizeof(floating))
    cdef char* ws = <char*>workspace(packed_bytes + lines(sizeof(long)), "rnn project_recur")
    cdef floating* WhT = pack_panels(&Wh[0, 0], M, M, True, <floating*>ws)
    cdef long* ready = <long*>(ws + packed_bytes)
    ready[0] = 0
    with nogil:
        with parallel(num_threads=nthreads):
            tid = threadid()
            nteam = nnkit_team_size()
            if tid == nteam - 1:
                _project_chunks(T, B, N, M, reverse, &X[0, 0], &Wx[0, 0], bp, &H[0, 0], ready)
            if tid == 0:
                _recur_share(0, 1, &h0[0, 0], &Wh[0, 0], WhT, act, reverse, preact, T, B, M,
                             &H[0, 0], Gp, 1, ready)
    free(ws)
    return None


# The overlapped loops' chunks: about CHUNK_ROWS rows of whole steps, taken
# in the time loop's order; step s of a loop that runs backwards in time is
# t = T-1-s, else t = s.
DEF CHUNK_ROWS = 512


cdef inline void _chunk(Py_ssize_t s0, Py_ssize_t T, Py_ssize_t B, bint backwards,
                        Py_ssize_t* s1, Py_ssize_t* t0, Py_ssize_t* t1) noexcept nogil:
    """The chunk of loop steps s0..s1 and the times t0..t1 they cover."""
    cdef Py_ssize_t cs = CHUNK_ROWS // B if B < CHUNK_ROWS else 1
    s1[0] = s0 + cs if s0 + cs < T else T
    if backwards:
        t0[0] = T - s1[0]
        t1[0] = T - s0
    else:
        t0[0] = s0
        t1[0] = s1[0]


cdef void _project_chunks(Py_ssize_t T, Py_ssize_t B, Py_ssize_t N, Py_ssize_t M,
                          bint reverse, const floating* X, const floating* Wx,
                          const floating* b, floating* H, long* ready) noexcept nogil:
    """H_t = x_t Wx^T + b for every step, in chunks (_chunk) in the
    loop's order (step s is t = s, or T-1-s when reverse), publishing the
    count of steps done after each chunk."""
    cdef Py_ssize_t s0 = 0, s1, t0, t1, i
    while s0 < T:
        _chunk(s0, T, B, reverse, &s1, &t0, &t1)
        if b != NULL:
            for i in range(t0 * B, t1 * B):
                memcpy(H + i * M, b, M * sizeof(floating))
        gemm_rowmajor(False, True, <int>((t1 - t0) * B), <int>M, <int>N, <floating>1.0,
                      X + t0 * B * N, <int>N, Wx, <int>N,
                      <floating>(1.0 if b != NULL else 0.0), H + t0 * B * M, <int>M)
        nnkit_publish(ready, s1)
        s0 = s1


# The time loop of BPTT, steps opposite to the forward. D_t is what flows
# into step t's affine map (∂L/∂a_t); dh_t the total derivative of the state.
#   standard:      dh_t = dH_t + D_next Wh;           D_t = dh_t ⊙ act'(h_t)
#   preactivation: dh_t = dH_t + (D_next Wh) ⊙ act'(h_t);   D_t = dh_t
# (act'(h_t) from H_t in the standard form, from G_next = act(h_t) in the
# other). No carry into the last step, nor into a state detached by
# truncated BPTT (chain time c = k, 2k, ... with truncate = k > 0).
# Per step: one (B, M) x (M, M) GEMM into D_t, 2*B*M^2 flops (skipped where
# the carry is cut); passes over the L1-resident (B, M) block: add dH_t,
# Σ dh_t^2 for norms[t] = ||dh_t||_F, copy to dh (if wanted), times act'.
# After the loop: dh0 = D_first Wh (⊙ act'(h0) from G_first), one GEMM.
def bptt(const floating[:, ::1] dH,          # IN  (T*B, M) direct ∂L/∂h_t
         const floating[:, ::1] H,           # IN  (T*B, M) states
         const floating[:, ::1] G,           # IN  (T*B, M) preactivation form, else None
         const floating[:, ::1] Wh,          # IN  (M, M)
         int act, bint reverse, bint preact, Py_ssize_t T,
         Py_ssize_t truncate,                # IN  k > 0 cuts every k steps; 0: full
         floating[:, ::1] D,                 # OUT (T*B, M) ∂L/∂a_t
         floating[:, ::1] dh,                # OUT (T*B, M) total ∂L/∂h_t, or None
         double[::1] norms,                  # OUT (T,) ||dh_t||_F
         floating[:, ::1] dh0,               # OUT (B, M)
         bint tile,                          # IN  per-step product: packed tile kernel, else BLAS
         int nthreads):                      # IN  threads (> 1: as recur)
    cdef Py_ssize_t B = H.shape[0] // T, M = H.shape[1], t, u
    cdef const floating* Gp = &G[0, 0] if G is not None else NULL
    cdef floating* dhp = &dh[0, 0] if dh is not None else NULL
    cdef double acc
    # workspace: part[t * nthreads + tid], each thread's Σ dh_t^2 over its
    # columns; then, for the tile kernel, Wh packed (the backward product is
    # D_next Wh)
    cdef size_t part_bytes = lines(T * nthreads * sizeof(double))
    cdef char* ws = <char*>workspace(part_bytes + (M * M * sizeof(floating) if tile else 0),
                                     "rnn bptt")
    cdef double* part = <double*>ws
    cdef floating* W_kj = pack_panels(&Wh[0, 0], M, M, False, <floating*>(ws + part_bytes)) \
        if tile else NULL
    memset(part, 0, T * nthreads * sizeof(double))
    with nogil:
        if tile and nthreads > 1:
            with parallel(num_threads=nthreads):
                _bptt_share(threadid(), nnkit_team_size(), nthreads, &dH[0, 0], &H[0, 0], Gp,
                            &Wh[0, 0], W_kj, act, reverse, preact, T, B, M, truncate,
                            &D[0, 0], dhp, part, &dh0[0, 0], 1, NULL)
        else:
            _bptt_share(0, 1, nthreads, &dH[0, 0], &H[0, 0], Gp, &Wh[0, 0], W_kj, act,
                        reverse, preact, T, B, M, truncate, &D[0, 0], dhp, part,
                        &dh0[0, 0], nthreads, NULL)
        for t in range(T):
            acc = 0.0
            for u in range(nthreads):
                acc = acc + part[t * nthreads + u]
            norms[t] = sqrt(acc)
    free(ws)
    return None


cdef void _bptt_share(int tid, int nteam, int stride, const floating* dH, const floating* H,
                      const floating* G, const floating* Wh, const floating* W_kj, int act,
                      bint reverse, bint preact, Py_ssize_t T, Py_ssize_t B, Py_ssize_t M,
                      Py_ssize_t truncate, floating* D, floating* dh, double* part,
                      floating* dh0, int nt, long* progress) noexcept nogil:
    """bptt's time loop for thread tid of nteam on its block (as
    _recur_share); its Σ dh_t^2 goes to part[t * stride + tid]. With column
    blocks, one barrier per step: D_t complete before the next step's product
    reads it. With progress (one thread only): the count of finished steps
    is published there after each step, for bptt_grads' reducing thread."""
    cdef Py_ssize_t s, t, nxt, chain_t, first, n = B * M, i0, i1, j0, j1, Bb
    cdef bint cut
    cdef floating* d_t
    cdef const floating* dH_t
    cdef bint meet = _share_block(tid, nteam, B, M,
                                  NNKIT_PANEL_F if floating is float else NNKIT_PANEL_D,
                                  &i0, &i1, &j0, &j1)
    Bb = i1 - i0
    dH = dH + i0 * M                     # every pointer at the block's first row
    H = H + i0 * M
    D = D + i0 * M
    dh0 = dh0 + i0 * M
    if G != NULL:
        G = G + i0 * M
    if dh != NULL:
        dh = dh + i0 * M
    for s in range(T):
        t = s if reverse else T - 1 - s
        nxt = t - 1 if reverse else t + 1
        chain_t = T - t if reverse else t + 1        # 1-based time along the chain
        cut = s == 0 or (truncate > 0 and chain_t % truncate == 0)
        d_t = D + t * n
        dH_t = dH + t * n
        if cut:
            _cols_copy(d_t, dH_t, Bb, M, j0, j1)
        else:
            _share_product(True, Bb, M, j0, j1, D + nxt * n, Wh, W_kj, <floating>0.0, d_t, nt)
            if preact:
                _cols_times_derivative(d_t, G + nxt * n, Bb, M, j0, j1, act)
            _cols_add(d_t, dH_t, Bb, M, j0, j1)
        part[t * stride + tid] = _colssum_squares(d_t, Bb, M, j0, j1)
        if dh != NULL:
            _cols_copy(dh + t * n, d_t, Bb, M, j0, j1)
        if not preact:
            _cols_times_derivative(d_t, H + t * n, Bb, M, j0, j1, act)
        if meet:
            nnkit_barrier()
        if progress != NULL:
            nnkit_publish(progress, s + 1)
    first = T - 1 if reverse else 0
    _share_product(True, Bb, M, j0, j1, D + first * n, Wh, W_kj, <floating>0.0, dh0, nt)
    if preact:
        _cols_times_derivative(dh0, G + first * n, Bb, M, j0, j1, act)


DEF TASKS_MIN = 1048576.0      # multiply-adds (2^20): below, one thread's wake costs more


cdef void _dX_dWx(const floating[:, ::1] D, const floating[:, ::1] X,
                  const floating[:, ::1] Wx, bint accumulate_dX, Py_ssize_t R, Py_ssize_t N,
                  Py_ssize_t M, int nthreads, floating[:, ::1] dX,
                  floating[:, ::1] dWx) noexcept nogil:
    """dX (+)= D Wx and dWx = D^T X (weight_grads)."""
    gemm_team(nthreads, False, False, <int>R, <int>N, <int>M, <floating>1.0,
              &D[0, 0], <int>M, &Wx[0, 0], <int>N,
              <floating>(1.0 if accumulate_dX else 0.0), &dX[0, 0], <int>N)
    gemm_team(nthreads, True, False, <int>M, <int>N, <int>R, <floating>1.0,
              &D[0, 0], <int>M, &X[0, 0], <int>N, <floating>0.0, &dWx[0, 0], <int>N)


cdef void _dWh(const floating[:, ::1] D, const floating[:, ::1] H,
               const floating[:, ::1] G, const floating[:, ::1] h0, bint reverse,
               bint preact, Py_ssize_t T, Py_ssize_t B, Py_ssize_t M, Py_ssize_t R,
               int nthreads, floating[:, ::1] dWh) noexcept nogil:
    """dWh = Σ_t D_t^T (what step t read) (weight_grads)."""
    cdef Py_ssize_t first
    if preact:
        gemm_team(nthreads, True, False, <int>M, <int>M, <int>R, <floating>1.0,
                  &D[0, 0], <int>M, &G[0, 0], <int>M, <floating>0.0, &dWh[0, 0], <int>M)
        return
    first = T - 1 if reverse else 0
    gemm_rowmajor(True, False, <int>M, <int>M, <int>B, <floating>1.0,
                  &D[first * B, 0], <int>M, &h0[0, 0], <int>M, <floating>0.0,
                  &dWh[0, 0], <int>M)
    if T > 1:
        # forward: steps 1..T-1 read h_0..h_{T-2}; reverse: steps
        # 0..T-2 read h_1..h_{T-1}
        gemm_team(nthreads, True, False, <int>M, <int>M, <int>((T - 1) * B),
                  <floating>1.0, &D[0 if reverse else B, 0], <int>M,
                  &H[B if reverse else 0, 0], <int>M, <floating>1.0,
                  &dWh[0, 0], <int>M)


# The weight gradients, each one GEMM over the stacked T*B rows (they sit
# off the serial loop). On 2 threads, when the two tasks are balanced, dWh
# on one and dX, dWx on the other; else gemm_team splits each product over
# nthreads, one single-threaded BLAS call per block of output rows
# (bptt_grads below does the same products beside a one-thread loop):
#   dX  = D Wx (+= for the BiRNN's second chain)      2*T*B*M*N flops
#   dWx = D^T X                                       2*T*B*M*N
#   dWh = Σ_t D_t^T (what step t read):               2*T*B*M^2
#     standard: D_first^T h0 + (D of the other T-1 steps)^T (their h_prev,
#     contiguous in H shifted by one block: no copy); preactivation: D^T G
#   db  = column sums of D (in double, `acc`)         one pass over D
def weight_grads(const floating[:, ::1] D,   # IN  (T*B, M)
                 const floating[:, ::1] X,   # IN  (T*B, N)
                 const floating[:, ::1] H,   # IN  (T*B, M)
                 const floating[:, ::1] G,   # IN  (T*B, M) preactivation form, else None
                 const floating[:, ::1] h0,  # IN  (B, M)
                 const floating[:, ::1] Wx,  # IN  (M, N)
                 bint reverse, bint preact, Py_ssize_t T, bint accumulate_dX,  # IN
                 floating[:, ::1] dX,        # OUT (T*B, N)
                 floating[:, ::1] dWx,       # OUT (M, N)
                 floating[:, ::1] dWh,       # OUT (M, M)
                 floating[::1] db,           # OUT (M,)
                 double[::1] acc,            # workspace (M,) bias accumulators
                 int nthreads):              # IN  threads for the GEMMs (gemm_team)
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], M = Wx.shape[0]
    cdef Py_ssize_t B = R // T
    cdef int task
    # two threads, two tasks of about equal work (dWh: M^2 R multiply-adds;
    # dX and dWx: 2 M N R), each single-threaded BLAS calls on whole
    # products: faster than splitting every product over both threads (one
    # wake of the team for all of them, and no product cut into halves)
    cdef bint tasks = (nthreads == 2 and N <= M <= 4 * N
                       and <double>R * M * (M + 2 * N) >= TASKS_MIN)
    with nogil:
        if tasks:
            for task in prange(2, schedule="static", num_threads=2):
                if task == 0:
                    _dWh(D, H, G, h0, reverse, preact, T, B, M, R, 1, dWh)
                else:
                    _dX_dWx(D, X, Wx, accumulate_dX, R, N, M, 1, dX, dWx)
        else:
            _dX_dWx(D, X, Wx, accumulate_dX, R, N, M, nthreads, dX, dWx)
            _dWh(D, H, G, h0, reverse, preact, T, B, M, R, nthreads, dWh)
        column_sums(&D[0, 0], R, M, &acc[0], &db[0])
    return None


# BPTT and the weight gradients in one call, for a time loop that runs on
# one thread (nnkit/rnn.py _chain_backward decides): thread 0 runs the loop
# (as bptt) and then dX = D Wx; meanwhile thread 1 reduces dWx = D^T X and
# dWh (as weight_grads) chunk by chunk, each chunk as soon as the loop has
# finished its steps (it waits on the published step count). So the
# reductions run on the core the serial loop leaves idle. The chunks are
# always reduced in the same order by one thread, so the sums do not depend
# on the timing, nor on whether OpenMP grants the second thread (alone,
# thread 0 reduces them after dX). The same outputs as bptt then
# weight_grads, to rounding (the reductions are summed by chunks).
def bptt_grads(const floating[:, ::1] dH,    # IN  (T*B, M)
               const floating[:, ::1] X,     # IN  (T*B, N)
               const floating[:, ::1] H,     # IN  (T*B, M)
               const floating[:, ::1] G,     # IN  (T*B, M) preactivation form, else None
               const floating[:, ::1] h0,    # IN  (B, M)
               const floating[:, ::1] Wx,    # IN  (M, N)
               const floating[:, ::1] Wh,    # IN  (M, M)
               int act, bint reverse, bint preact, Py_ssize_t T, Py_ssize_t truncate,
               bint accumulate_dX,           # IN  as bptt and weight_grads
               floating[:, ::1] D,           # OUT (T*B, M)
               floating[:, ::1] dh,          # OUT (T*B, M) or None
               double[::1] norms,            # OUT (T,)
               floating[:, ::1] dh0,         # OUT (B, M)
               floating[:, ::1] dX,          # OUT (T*B, N)
               floating[:, ::1] dWx,         # OUT (M, N)
               floating[:, ::1] dWh,         # OUT (M, M)
               floating[::1] db,             # OUT (M,)
               double[::1] acc,              # workspace (M,)
               int nthreads):                # IN  2 (1: thread 0 does it all, in the same order)
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], M = Wx.shape[0], B = R // T, t
    cdef const floating* Gp = &G[0, 0] if G is not None else NULL
    cdef floating* dhp = &dh[0, 0] if dh is not None else NULL
    cdef int tid, nteam
    # workspace: Wh packed, the norm sums part[t], and the count of finished
    # steps, each on lines of its own
    cdef size_t packed_bytes = lines(M * M * sizeof(floating))
    cdef size_t part_bytes = lines(T * sizeof(double))
    cdef char* ws = <char*>workspace(packed_bytes + part_bytes + lines(sizeof(long)),
                                     "rnn bptt_grads")
    cdef floating* W_kj = pack_panels(&Wh[0, 0], M, M, False, <floating*>ws)
    cdef double* part = <double*>(ws + packed_bytes)
    cdef long* progress = <long*>(ws + packed_bytes + part_bytes)
    memset(part, 0, T * sizeof(double))
    progress[0] = 0
    with nogil:
        with parallel(num_threads=nthreads):
            tid = threadid()
            nteam = nnkit_team_size()
            if tid == 0:
                _bptt_share(0, 1, 1, &dH[0, 0], &H[0, 0], Gp, &Wh[0, 0], W_kj, act, reverse,
                            preact, T, B, M, truncate, &D[0, 0], dhp, part, &dh0[0, 0], 1,
                            progress)
                gemm_rowmajor(False, False, <int>R, <int>N, <int>M, <floating>1.0,
                              &D[0, 0], <int>M, &Wx[0, 0], <int>N,
                              <floating>(1.0 if accumulate_dX else 0.0), &dX[0, 0], <int>N)
            if tid == nteam - 1:
                _reduce_chunks(T, B, M, N, reverse, preact, &D[0, 0], &X[0, 0], &H[0, 0],
                               Gp, &h0[0, 0], &dWx[0, 0], &dWh[0, 0], progress)
        for t in range(T):
            norms[t] = sqrt(part[t])
        column_sums(&D[0, 0], R, M, &acc[0], &db[0])
    free(ws)
    return None


cdef void _reduce_chunks(Py_ssize_t T, Py_ssize_t B, Py_ssize_t M, Py_ssize_t N,
                         bint reverse, bint preact, const floating* D, const floating* X,
                         const floating* H, const floating* G, const floating* h0,
                         floating* dWx, floating* dWh, long* progress) noexcept nogil:
    """dWx = D^T X and dWh = Σ_t D_t^T (what step t read), in chunks (_chunk)
    in the loop's order, each after the loop has published its
    steps. Step s of the loop is t = T-1-s (t = s when reverse); the first
    step of the chain (t = 0, or T-1 when reverse) read h0."""
    cdef Py_ssize_t s0, s1, t0, t1, a0, a1, first = T - 1 if reverse else 0
    cdef bint started_h = False
    s0 = 0
    while s0 < T:
        _chunk(s0, T, B, not reverse, &s1, &t0, &t1)
        nnkit_wait_for(progress, s1)
        gemm_rowmajor(True, False, <int>M, <int>N, <int>((t1 - t0) * B), <floating>1.0,
                      D + t0 * B * M, <int>M, X + t0 * B * N, <int>N,
                      <floating>(0.0 if s0 == 0 else 1.0), dWx, <int>N)
        if preact:
            gemm_rowmajor(True, False, <int>M, <int>M, <int>((t1 - t0) * B), <floating>1.0,
                          D + t0 * B * M, <int>M, G + t0 * B * M, <int>M,
                          <floating>(0.0 if s0 == 0 else 1.0), dWh, <int>M)
            s0 = s1
            continue
        a0 = t0
        a1 = t1
        if t0 <= first < t1:
            gemm_rowmajor(True, False, <int>M, <int>M, <int>B, <floating>1.0,
                          D + first * B * M, <int>M, h0, <int>M,
                          <floating>(1.0 if started_h else 0.0), dWh, <int>M)
            started_h = True
            if reverse:
                a1 = t1 - 1
            else:
                a0 = t0 + 1
        if a1 > a0:
            # forward: step t read H_{t-1}; reverse: H_{t+1}
            gemm_rowmajor(True, False, <int>M, <int>M, <int>((a1 - a0) * B), <floating>1.0,
                          D + a0 * B * M, <int>M,
                          H + ((a0 + 1) if reverse else (a0 - 1)) * B * M, <int>M,
                          <floating>(1.0 if started_h else 0.0), dWh, <int>M)
            started_h = True
        s0 = s1


# BiRNN output layer: Y = [Hf, Hb] Wy^T + by with Wy (K, 2M), never building
# the concatenation: two GEMMs read the column halves of Wy in place (row
# stride 2M). Passes: one write of Y with by; two GEMMs, 4*R*M*K flops.
def output_forward(const floating[:, ::1] Hf,   # IN  (R, M)
                   const floating[:, ::1] Hb,   # IN  (R, M)
                   const floating[:, ::1] Wy,   # IN  (K, 2M)
                   const floating[::1] by,      # IN  (K,)
                   floating[:, ::1] Y):         # OUT (R, K)
    cdef Py_ssize_t R = Hf.shape[0], M = Hf.shape[1], K = Wy.shape[0], i
    with nogil:
        for i in range(R):
            memcpy(&Y[i, 0], &by[0], K * sizeof(floating))
        gemm_rowmajor(False, True, <int>R, <int>K, <int>M, <floating>1.0,
                      &Hf[0, 0], <int>M, &Wy[0, 0], <int>(2 * M), <floating>1.0,
                      &Y[0, 0], <int>K)
        gemm_rowmajor(False, True, <int>R, <int>K, <int>M, <floating>1.0,
                      &Hb[0, 0], <int>M, &Wy[0, M], <int>(2 * M), <floating>1.0,
                      &Y[0, 0], <int>K)
    return None


# Output layer backward: dHf = dY Wy[:, :M], dHb = dY Wy[:, M:],
# dWy[:, :M] = dY^T Hf, dWy[:, M:] = dY^T Hb (written in place with row
# stride 2M), dby = column sums of dY (double). Four GEMMs (8*R*M*K flops),
# one pass over dY.
def output_backward(const floating[:, ::1] dY,  # IN  (R, K)
                    const floating[:, ::1] Hf,  # IN  (R, M)
                    const floating[:, ::1] Hb,  # IN  (R, M)
                    const floating[:, ::1] Wy,  # IN  (K, 2M)
                    floating[:, ::1] dHf,       # OUT (R, M)
                    floating[:, ::1] dHb,       # OUT (R, M)
                    floating[:, ::1] dWy,       # OUT (K, 2M)
                    floating[::1] dby,          # OUT (K,)
                    double[::1] acc):           # workspace (K,) bias accumulators
    cdef Py_ssize_t R = Hf.shape[0], M = Hf.shape[1], K = Wy.shape[0]
    with nogil:
        gemm_rowmajor(False, False, <int>R, <int>M, <int>K, <floating>1.0,
                      &dY[0, 0], <int>K, &Wy[0, 0], <int>(2 * M), <floating>0.0,
                      &dHf[0, 0], <int>M)
        gemm_rowmajor(False, False, <int>R, <int>M, <int>K, <floating>1.0,
                      &dY[0, 0], <int>K, &Wy[0, M], <int>(2 * M), <floating>0.0,
                      &dHb[0, 0], <int>M)
        gemm_rowmajor(True, False, <int>K, <int>M, <int>R, <floating>1.0,
                      &dY[0, 0], <int>K, &Hf[0, 0], <int>M, <floating>0.0,
                      &dWy[0, 0], <int>(2 * M))
        gemm_rowmajor(True, False, <int>K, <int>M, <int>R, <floating>1.0,
                      &dY[0, 0], <int>K, &Hb[0, 0], <int>M, <floating>0.0,
                      &dWy[0, M], <int>(2 * M))
        column_sums(&dY[0, 0], R, K, &acc[0], &dby[0])
    return None



