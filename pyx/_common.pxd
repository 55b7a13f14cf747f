# Shared helpers for the kernels: the fused float type, row-major GEMM on top
# of SciPy's Fortran BLAS, and the thread-count rule for OpenMP loops.
#
# Row-major trick (as scikit-learn's _cython_blas): a row-major (r x c) array
# is the column-major (c x r) array of its transpose, so C = op(A) op(B) in
# row-major is C^T = op(B)^T op(A)^T in column-major: swap the operands and
# the m/n dimensions, keep the transpose flags.

from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef fused floating:
    float
    double

# Below this many elements a kernel runs on one thread: waking the OpenMP team
# costs a few microseconds, more than the whole loop at small shapes.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 65536


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


cdef inline int team_size(Py_ssize_t elements, int max_threads) noexcept nogil:
    """Threads to use for a loop over `elements` values (1 for small work)."""
    if elements < PARALLEL_MIN_ELEMENTS or max_threads < 1:
        return 1
    return max_threads


cdef inline void column_sums(const floating* A, Py_ssize_t rows, Py_ssize_t cols,
                             double* acc, floating* out) noexcept nogil:
    """out[j] = sum_i A[i, j] for a row-major (rows x cols) A: a bias gradient.

    Summed in double in `acc` (cols doubles of scratch): a float32 running sum
    over thousands of rows loses ~1e-3 relative. One pass over A.
    """
    cdef Py_ssize_t i, j
    cdef const floating* row
    for j in range(cols):
        acc[j] = 0.0
    for i in range(rows):
        row = A + i * cols
        for j in range(cols):
            acc[j] += row[j]
    for j in range(cols):
        out[j] = <floating>acc[j]
