# Shared helpers for the kernels: the fused float type, BLAS products in
# row-major order, how rows are split between OpenMP threads, feature groups,
# column sums, and the ReLU select that every fused kernel uses.
#
# Row-major trick (as scikit-learn's _cython_blas): a row-major (r x c) array
# is the column-major (c x r) array of its transpose, so C = op(A) op(B) in
# row-major is C^T = op(B)^T op(A)^T in column-major: swap the operands and
# the m/n dimensions, keep the transpose flags.

from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport dgemm, dsyrk, sgemm, ssyrk

ctypedef fused floating:
    float
    double

cdef enum:
    # Below this many elements a kernel runs on one thread: waking the OpenMP
    # team costs a few microseconds, more than the whole loop at small shapes.
    PARALLEL_MIN_ELEMENTS = 65536
    # Rows per partial sum kept in the input type before it is added to a
    # double total: 64 float32 terms stay good to ~1e-7 relative, and the loop
    # runs on full float32 lanes with no float->double conversion.
    CHUNK_ROWS = 64
    # gemm_team splits a product over the threads from this many multiply-adds
    GEMM_TEAM_MIN_F32 = 1 << 24
    GEMM_TEAM_MIN_F64 = 1 << 22


# ------------------------------------------------------------------ BLAS
cdef inline void gemm_rowmajor(bint trans_a, bint trans_b, int m, int n, int k,
                               floating alpha, const floating* A, int lda,
                               const floating* B, int ldb, floating beta,
                               floating* C, int ldc) noexcept nogil:
    """C (m x n, row-major, ld ldc) = alpha * op(A) @ op(B) + beta * C.

    op(A) is (m x k) and op(B) is (k x n); lda/ldb are the row strides (in
    elements) of A and B as stored.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>B, &ldb, <float*>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>B, &ldb, <double*>A, &lda,
              &beta, C, &ldc)


cdef inline void syrk_rowmajor(int n, int k, floating alpha, const floating* A,
                               int lda, floating* C, int ldc) noexcept nogil:
    """Upper triangle of C (n x n, row-major) = alpha * A^T A, A (k x n, row-major, ld lda).

    Row-major A (k x n) is the column-major (n x k) matrix A^T, so A^T A is
    the column-major "N" product (A^T)(A^T)^T; column-major lower triangle =
    row-major upper triangle. Half the flops of a gemm (n^2 k).
    """
    cdef char uplo = b'L'
    cdef char trans = b'N'
    cdef floating zero = 0
    if n == 0:
        return
    if floating is float:
        ssyrk(&uplo, &trans, &n, &k, &alpha, <float*>A, &lda, &zero, C, &ldc)
    else:
        dsyrk(&uplo, &trans, &n, &k, &alpha, <double*>A, &lda, &zero, C, &ldc)


cdef inline void gemm_team(int nt, bint trans_a, bint trans_b, int m, int n, int k,
                           floating alpha, const floating* A, int lda,
                           const floating* B, int ldb, floating beta,
                           floating* C, int ldc) noexcept nogil:
    """gemm_rowmajor split over nt OpenMP threads by blocks of C's rows, each
    block one BLAS call on the calling thread. For callers that hold BLAS at
    one thread (nnkit/_blas_threads.py: OpenBLAS's own pool spin-waits and
    stalls the serial RNN loop): the large products still get every core,
    from a team that sleeps after its short spin (nnkit/_threads.py).
    Products under GEMM_TEAM_MIN multiply-adds stay on the calling thread:
    below it waking the team costs more than it saves (float64 reaches the
    break-even four times sooner than float32)."""
    cdef int t, m0, m1
    cdef double least = GEMM_TEAM_MIN_F64
    if floating is float:
        least = GEMM_TEAM_MIN_F32
    if nt <= 1 or m < 2 * nt or <double>m * n * k < least:
        gemm_rowmajor(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        return
    for t in prange(nt, schedule="static", num_threads=nt):
        m0 = <int>((<Py_ssize_t>m * t) // nt)
        m1 = <int>((<Py_ssize_t>m * (t + 1)) // nt)
        # rows m0..m1 of op(A): columns of the stored A when transposed
        gemm_rowmajor(trans_a, trans_b, m1 - m0, n, k, alpha,
                      A + (m0 if trans_a else <Py_ssize_t>m0 * lda), lda, B, ldb, beta,
                      C + <Py_ssize_t>m0 * ldc, ldc)


# --------------------------------------------------------------- threads
cdef inline int team_size(Py_ssize_t elements, int max_threads) noexcept nogil:
    """Threads to use for a loop over `elements` values (1 for small work)."""
    if elements < PARALLEL_MIN_ELEMENTS or max_threads < 1:
        return 1
    return max_threads


cdef inline int row_team(Py_ssize_t rows, Py_ssize_t cols, int max_threads) noexcept nogil:
    """Threads for a loop that gives each thread a block of whole rows: the
    team_size of rows * cols, and never more threads than rows."""
    cdef int nt = team_size(rows * cols, max_threads)
    if nt > rows:
        nt = <int>rows
    return nt


cdef inline Py_ssize_t row_start(Py_ssize_t t, Py_ssize_t nt, Py_ssize_t rows) noexcept nogil:
    """First row of thread t's block: thread t owns [row_start(t), row_start(t + 1)).

    (rows * t) // nt covers every row for any rows and nt (the last block
    ends at rows exactly); blocks differ in size by at most one row.
    """
    return (rows * t) // nt


# ---------------------------------------------------------- feature groups
# Features [0, M) in groups of g: [0, g), [g, 2g), ...; the last group is
# narrower (M mod g features) when g does not divide M.
cdef struct FeatureGroup:
    Py_ssize_t start     # first feature of the group
    Py_ssize_t width     # features in the group


cdef inline Py_ssize_t group_count(Py_ssize_t M, Py_ssize_t g) noexcept nogil:
    return (M + g - 1) // g


cdef inline FeatureGroup feature_group(Py_ssize_t k, Py_ssize_t M,
                                       Py_ssize_t g) noexcept nogil:
    cdef FeatureGroup grp
    grp.start = k * g
    grp.width = min(g, M - grp.start)
    return grp


# ------------------------------------------------------------ column sums
# Chunked sums: k per-feature sums over rows [r0, r1) run in the input type
# in `part` (k values) for CHUNK_ROWS rows at a time, and each chunk's
# partials are added to the double totals `sums` (k values):
#     clear_sums(sums, part, k)
#     for each chunk of CHUNK_ROWS rows: accumulate into part; flush_partials(...)
cdef inline void clear_sums(double* sums, floating* part, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(k):
        sums[j] = 0.0
        part[j] = 0


cdef inline void flush_partials(double* sums, floating* part, Py_ssize_t k) noexcept nogil:
    """sums += part, then part = 0 (the end of a chunk)."""
    cdef Py_ssize_t j
    for j in range(k):
        sums[j] += part[j]
        part[j] = 0


cdef inline void column_sums_rows(const floating* A, Py_ssize_t r0, Py_ssize_t r1,
                                  Py_ssize_t cols, double* acc,
                                  floating* part) noexcept nogil:
    """acc[j] = sum_{r0 <= i < r1} A[i, j] for a row-major (rows x cols) A.

    Chunked sums (above) with `part` (cols values) as the partials. One pass
    over the rows, two rows per sweep (half the partial's loads and stores).
    """
    cdef Py_ssize_t i, j, c, e
    cdef const floating* row
    clear_sums(acc, part, cols)
    c = r0
    while c < r1:
        e = min(c + CHUNK_ROWS, r1)
        i = c
        while i + 2 <= e:
            row = A + i * cols
            for j in range(cols):
                part[j] += row[j] + row[cols + j]
            i += 2
        if i < e:
            row = A + i * cols
            for j in range(cols):
                part[j] += row[j]
        flush_partials(acc, part, cols)
        c = e


cdef inline void column_sums(const floating* A, Py_ssize_t rows, Py_ssize_t cols,
                             double* acc, floating* out) noexcept nogil:
    """out[j] = sum_i A[i, j] for a row-major (rows x cols) A: a bias gradient.

    One pass over A; the chunked sums of column_sums_rows (`out` serves as
    their scratch), totals in double in `acc` (cols doubles).
    """
    cdef Py_ssize_t j
    column_sums_rows(A, 0, rows, cols, acc, out)
    for j in range(cols):
        out[j] = <floating>acc[j]


# ------------------------------------------------------------------ ReLU
# H = relu_value(Z) = 0 where Z <= 0, else Z. A NaN takes the "else" branch and
# propagates (PyTorch: relu(nan) = nan); -0.0 gives +0.
# Its derivative mask, taken in every backward: dZ = 0 where Z <= 0, else
# dH. At a NaN Z the gradient passes through unchanged, the same branch the
# forward took (PyTorch's threshold_backward does the same). At Z = 0 the
# derivative is taken as 0: [Z > 0] of P2.3.
# Both are selects the compiler vectorizes (compare, blend).
cdef inline floating relu_value(floating z) noexcept nogil:
    cdef floating zero = 0       # typed: a literal 0 would compare in double
    return zero if z <= zero else z


cdef inline floating relu_grad(floating dh, floating z) noexcept nogil:
    cdef floating zero = 0
    return zero if z <= zero else dh


# ------------------------------------------------------- streaming stores
# An output larger than the caches is written with streaming stores
# (pyx/include/nnkit_stream.h: no read of each line before its write); a
# small one with ordinary stores, so that the next layer reads it from cache.
#   stream_copy(dst, src, n): dst[0:n] = src[0:n], src a small L1 buffer the
#   kernel just wrote; end the thread's work with stream_fence().
# Kernels stream when the array is at least STREAM_MIN_BYTES (streams()).
cdef extern from "nnkit_stream.h":
    void nnkit_stream_bytes(char* dst, const char* src, size_t n) nogil
    void nnkit_stream_fence() nogil

cdef enum:
    STREAM_MIN_BYTES = 8 << 20   # 8 MB: well past L2 (512 KB/core), a quarter of L3
    STREAM_BUFFER = 2048         # elements of the L1 buffer a streaming kernel fills


cdef inline bint streams(Py_ssize_t elements, Py_ssize_t itemsize) noexcept nogil:
    """Write an output of `elements` values with streaming stores?"""
    return elements * itemsize >= STREAM_MIN_BYTES


cdef inline void stream_copy(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    nnkit_stream_bytes(<char*>dst, <const char*>src, <size_t>n * sizeof(floating))


cdef inline void stream_fence() noexcept nogil:
    nnkit_stream_fence()


# ------------------------------------------------------------- workspaces
# A kernel's scratch is one workspace: one allocation, carved into pieces of
# whole cache lines, freed with free() before the kernel returns.
cdef extern from "nnkit_base.h":
    void* nnkit_aligned_alloc(size_t nbytes) noexcept nogil


cdef inline size_t lines(size_t nbytes) noexcept nogil:
    """nbytes rounded up to whole 64-byte lines: each piece of a workspace
    starts on a line of its own, so no two pieces share one."""
    return (nbytes + 63) & ~(<size_t>63)


cdef inline void* workspace(size_t nbytes, str kernel) except NULL:
    """nbytes of scratch on a 64-byte boundary (free() releases it), or
    MemoryError naming the kernel and the size. Called with the GIL held."""
    cdef void* p = nnkit_aligned_alloc(nbytes)
    if p == NULL:
        raise MemoryError(f"{kernel}: no memory for a workspace of {nbytes} bytes")
    return p


cdef inline double sum_squares(const floating* v, Py_ssize_t n) noexcept nogil:
    """Σ v_k^2 in double with 8 independent lanes: without -ffast-math gcc may
    not reorder one running sum, but it vectorizes 8 separate ones."""
    cdef double lane[8]
    cdef Py_ssize_t k, j, n8 = n - n % 8
    cdef double s = 0.0, x
    for j in range(8):
        lane[j] = 0.0
    for k in range(0, n8, 8):
        for j in range(8):
            x = v[k + j]
            lane[j] += x * x
    for k in range(n8, n):
        x = v[k]
        s += x * x
    for j in range(8):
        s += lane[j]
    return s

