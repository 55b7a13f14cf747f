# Whitening batch-norm kernels (P2.4): the B-sized work of ZCA / PCA /
# Cholesky / Newton-Schulz whitening, training mode, optional fused ReLU.
#
# Rows are samples. Y is (B, M); its features are split into groups
# [c0, c0 + g) of width g (the last group may be narrower). Per group:
#   m  = mean_i Y                          (M,)
#   Yc = Y - 1 m^T                         (B, g)
#   S  = Yc^T Yc / B + eps I               (g, g)   syrk
#   Yhat = Yc Wg                           (B, g)   gemm, Wg from S (Python: eigh etc.)
#   Z  = gamma * Yhat + beta ; H = max(Z, 0)        elementwise
# Backward, with dZ (or dH masked by [Z > 0]) and dZc = dZ - colmean(dZ):
#   dbeta = sum_i dZ ; dgamma = sum_i dZ * Yhat     elementwise, double sums
#   P  = Yc^T dZc                          (g, g)   gemm (B-reduction)
#   dY = dZc A + Yc X                      (B, g)   two gemms (B-expansion)
# with A = diag(gamma) Wg^T and X = 2 dSigma / B computed by the caller.
#
# Only the O(B g^2) products and the O(B M) passes live here; the O(g^3)
# algebra on g x g matrices (eigh through LAPACK, the divided-difference
# backward) is done by nnkit.whitening with NumPy, batched over the groups.
# Matrix products go through BLAS (gemm_rowmajor, syrk below); nothing here
# is a hand-written matrix product.
#
# Groups are passed as a stack of the full groups (n_full, g, g) plus an
# optional remainder (r, r) (None when g divides M): group k < n_full uses
# full[k], the last group uses rem.
#
# Called only from nnkit.whitening: shapes, dtypes, eps > 0 and B >= 2 are
# checked and every output is allocated before any call.

from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_blas cimport dsyrk, ssyrk
from _common cimport floating, gemm_rowmajor, team_size

# rows per chunk of the sums kept in the input type (then added in double)
cdef enum:
    CHUNK_ROWS = 64


cdef inline void syrk_rowmajor(int n, int k, floating alpha, const floating* A,
                               int lda, floating* C, int ldc) noexcept nogil:
    """Upper triangle of C (n x n, row-major) = alpha * A^T A, A (k x n, row-major, ld lda).

    Row-major A (k x n) is the column-major (n x k) matrix A^T, so A^T A is
    the column-major "N" product (A^T)(A^T)^T; column-major lower triangle =
    row-major upper triangle. Half the flops of a gemm.
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


cdef inline floating* group_ptr(floating[:, :, ::1] full, floating[:, ::1] rem,
                                Py_ssize_t k, Py_ssize_t n_full) noexcept nogil:
    if k < n_full:
        return &full[k, 0, 0]
    return &rem[0, 0]


# ---------------------------------------------------------------- forward
# center: m = mean_i Y, Yc = Y - m, colsum = sum_i Yc (double; ~1e-16 B |Y|,
# kept so the backward's dmean is exact for the Yc actually used).
# Two row-sequential passes (sum: read Y; write Yc and sum it). Rows are
# split between threads, each with its own accumulators (the column-blocked
# layout of the first version touched one page per row per block and ran
# 5-10x slower). Sums run in the input type over chunks of CHUNK_ROWS rows,
# then in double.
cdef void _colsum_rows(const floating* A, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t M,
                       double* acc, floating* part) noexcept nogil:
    cdef Py_ssize_t i, j, c, e
    cdef const floating* row
    for j in range(M):
        acc[j] = 0.0
    c = r0
    while c < r1:
        e = min(c + CHUNK_ROWS, r1)
        for j in range(M):
            part[j] = 0
        i = c
        while i + 2 <= e:          # two rows per sweep: half the accumulator stores
            row = A + i * M
            for j in range(M):
                part[j] += row[j] + row[M + j]
            i += 2
        if i < e:
            row = A + i * M
            for j in range(M):
                part[j] += row[j]
        for j in range(M):
            acc[j] += part[j]
        c = e


cdef void _center_rows(const floating* Y, floating* Yc, Py_ssize_t r0, Py_ssize_t r1,
                       Py_ssize_t M, const floating* mf) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(r0, r1):
        for j in range(M):
            Yc[i * M + j] = Y[i * M + j] - mf[j]


def center(const floating[:, ::1] Y, floating[::1] mean, double[::1] colsum,
           floating[:, ::1] Yc, int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1], t, j
    cdef int nt = team_size(B * M, nthreads)
    cdef double* ws
    cdef floating* part
    if nt > B:
        nt = <int>B
    # per thread: M doubles of sums, then M floats of chunk partials
    ws = <double*>malloc(nt * M * sizeof(double) + nt * M * sizeof(floating))
    if ws == NULL:
        raise MemoryError("whitening center: no memory for the workspace")
    part = <floating*>(ws + nt * M)
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            _colsum_rows(&Y[0, 0], (B * t) // nt, (B * (t + 1)) // nt, M,
                         ws + t * M, part + t * M)
        for t in range(1, nt):
            for j in range(M):
                ws[j] += ws[t * M + j]
        for j in range(M):
            mean[j] = <floating>(ws[j] / B)
        for t in prange(nt, schedule="static", num_threads=nt):
            _center_rows(&Y[0, 0], &Yc[0, 0], (B * t) // nt, (B * (t + 1)) // nt, M,
                         &mean[0])
        for t in prange(nt, schedule="static", num_threads=nt):
            _colsum_rows(&Yc[0, 0], (B * t) // nt, (B * (t + 1)) // nt, M,
                         ws + t * M, part + t * M)
        for t in range(1, nt):
            for j in range(M):
                ws[j] += ws[t * M + j]
        for j in range(M):
            colsum[j] = ws[j]
    free(ws)
    return None


# covariance: S_k = Yc_k^T Yc_k / B + eps I per group (syrk, then mirror the
# upper triangle into the lower one so NumPy sees a full symmetric matrix).
def covariance(const floating[:, ::1] Yc, Py_ssize_t g, double eps,
               floating[:, :, ::1] full, floating[:, ::1] rem):
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1]
    cdef Py_ssize_t n_full = M // g, ngroups = (M + g - 1) // g
    cdef Py_ssize_t k, c0, gk, i, j
    cdef floating* C
    cdef floating alpha = <floating>(1.0 / B)
    with nogil:
        for k in range(ngroups):
            c0 = k * g
            gk = min(g, M - c0)
            C = group_ptr(full, rem, k, n_full)
            syrk_rowmajor(<int>gk, <int>B, alpha, &Yc[0, c0], <int>M, C, <int>gk)
            for i in range(gk):
                C[i * gk + i] = C[i * gk + i] + <floating>eps
                for j in range(i + 1, gk):
                    C[j * gk + i] = C[i * gk + j]
    return None


# apply: Yhat_k = Yc_k W_k per group (gemm into the (B, M) Yhat with ld M),
# then Z = gamma * Yhat + beta (+ ReLU) in one elementwise pass (read Yhat,
# write out). The backward recomputes Z from Yhat with the same expression,
# so its ReLU mask is bit-identical (-ffp-contract=off in setup.py).
def apply(const floating[:, ::1] Yc, Py_ssize_t g,
          floating[:, :, ::1] wfull, floating[:, ::1] wrem,
          const floating[::1] gamma, const floating[::1] beta, bint relu,
          floating[:, ::1] yhat, floating[:, ::1] out, int nthreads):
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1]
    cdef Py_ssize_t n_full = M // g, ngroups = (M + g - 1) // g
    cdef Py_ssize_t k, c0, gk, i, j
    cdef floating z
    with nogil:
        for k in range(ngroups):
            c0 = k * g
            gk = min(g, M - c0)
            gemm_rowmajor(False, False, <int>B, <int>gk, <int>gk, <floating>1,
                          &Yc[0, c0], <int>M, group_ptr(wfull, wrem, k, n_full),
                          <int>gk, <floating>0, &yhat[0, c0], <int>M)
    if out is None:
        return None
    for i in prange(B, nogil=True, schedule="static",
                    num_threads=team_size(B * M, nthreads)):
        for j in range(M):
            z = yhat[i, j] * gamma[j] + beta[j]
            if relu and z < 0:
                z = 0
            out[i, j] = z
    return None


# --------------------------------------------------------------- backward
# pointwise: dZ = dout (or dH [Z > 0], Z = gamma Yhat + beta recomputed),
#   dbeta = sum_i dZ, dgamma = sum_i dZ Yhat (double), dZc = dZ - dbeta / B,
#   optional dZ_out (relu) and dYhat_out = gamma dZ.
# Two row-sequential passes: sums (read dout, Yhat), writes (read again, write dZc).
def backward_pointwise(const floating[:, ::1] dout, const floating[:, ::1] yhat,
                       const floating[::1] gamma, const floating[::1] beta,
                       bint relu, floating[:, ::1] dZc, floating[:, ::1] dZ_out,
                       floating[:, ::1] dYhat_out, floating[::1] dgamma,
                       floating[::1] dbeta, int nthreads):
    cdef Py_ssize_t B = dout.shape[0], M = dout.shape[1], t, j
    cdef int nt = team_size(B * M, nthreads)
    cdef double* ws
    cdef floating* fl
    cdef floating* pdz = NULL
    cdef floating* pdyh = NULL
    if dZ_out is not None:
        pdz = &dZ_out[0, 0]
    if dYhat_out is not None:
        pdyh = &dYhat_out[0, 0]
    if nt > B:
        nt = <int>B
    # per thread: sb, sg (M doubles each); then mb (M floats) and per thread
    # the partials psb, psg and a masked row (M floats each)
    ws = <double*>malloc(2 * nt * M * sizeof(double) + (1 + 3 * nt) * M * sizeof(floating))
    if ws == NULL:
        raise MemoryError("whitening backward: no memory for the workspace")
    fl = <floating*>(ws + 2 * nt * M)
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            _pointwise_sums(&dout[0, 0], &yhat[0, 0], (B * t) // nt, (B * (t + 1)) // nt,
                            M, &gamma[0], &beta[0], relu, ws + 2 * t * M,
                            ws + (2 * t + 1) * M, fl + (1 + 3 * t) * M,
                            fl + (2 + 3 * t) * M, fl + (3 + 3 * t) * M)
        for t in range(1, nt):
            for j in range(M):
                ws[j] += ws[2 * t * M + j]
                ws[M + j] += ws[(2 * t + 1) * M + j]
        for j in range(M):
            dbeta[j] = <floating>ws[j]
            dgamma[j] = <floating>ws[M + j]
            fl[j] = <floating>(ws[j] / B)
        for t in prange(nt, schedule="static", num_threads=nt):
            _pointwise_write(&dout[0, 0], &yhat[0, 0], (B * t) // nt, (B * (t + 1)) // nt,
                             M, &gamma[0], &beta[0], relu, fl, &dZc[0, 0], pdz, pdyh)
    free(ws)
    return None


# Rows [r0, r1): sb += dZ, sg += dZ Yhat (double), via chunk partials in the
# input type; with the ReLU the masked row goes to `row` first (a select on
# its own vectorizes, a select inside the accumulation does not).
cdef void _pointwise_sums(const floating* dout, const floating* yhat, Py_ssize_t r0,
                          Py_ssize_t r1, Py_ssize_t M, const floating* gamma,
                          const floating* beta, bint relu, double* sb, double* sg,
                          floating* psb, floating* psg, floating* row) noexcept nogil:
    cdef Py_ssize_t i, j, c, e
    cdef const floating* drow
    cdef const floating* yrow
    cdef floating dz
    cdef floating zero = 0          # typed: `> 0` would compare in double
    for j in range(M):
        sb[j] = 0.0
        sg[j] = 0.0
    c = r0
    while c < r1:
        e = min(c + CHUNK_ROWS, r1)
        for j in range(M):
            psb[j] = 0
            psg[j] = 0
        for i in range(c, e):
            drow = dout + i * M
            yrow = yhat + i * M
            if relu:
                for j in range(M):
                    dz = drow[j]
                    row[j] = dz if yrow[j] * gamma[j] + beta[j] > zero else zero
                for j in range(M):
                    psb[j] += row[j]
                    psg[j] += row[j] * yrow[j]
            else:
                for j in range(M):
                    psb[j] += drow[j]
                    psg[j] += drow[j] * yrow[j]
        for j in range(M):
            sb[j] += psb[j]
            sg[j] += psg[j]
        c = e


# Rows [r0, r1): dZc = dZ - mean_i dZ; optional dZ (relu) and dYhat = gamma dZ.
cdef void _pointwise_write(const floating* dout, const floating* yhat, Py_ssize_t r0,
                           Py_ssize_t r1, Py_ssize_t M, const floating* gamma,
                           const floating* beta, bint relu, const floating* mb,
                           floating* dZc, floating* dZ_out, floating* dYhat_out) noexcept nogil:
    cdef Py_ssize_t i, j, o
    cdef floating dz
    cdef floating zero = 0
    for i in range(r0, r1):
        o = i * M
        if relu:
            for j in range(M):
                dz = dout[o + j]
                dz = dz if yhat[o + j] * gamma[j] + beta[j] > zero else zero
                dZc[o + j] = dz - mb[j]
        else:
            for j in range(M):
                dZc[o + j] = dout[o + j] - mb[j]
        if dZ_out != NULL:
            for j in range(M):
                dz = dout[o + j]
                dZ_out[o + j] = dz if not relu or yhat[o + j] * gamma[j] + beta[j] > zero else zero
        if dYhat_out != NULL:
            for j in range(M):
                dz = dout[o + j]
                dz = dz if not relu or yhat[o + j] * gamma[j] + beta[j] > zero else zero
                dYhat_out[o + j] = dz * gamma[j]


# reduce: P_k = Yc_k^T dZc_k per group (g x g), the one B-reduction gemm.
def backward_reduce(const floating[:, ::1] Yc, const floating[:, ::1] dZc,
                    Py_ssize_t g, floating[:, :, ::1] pfull, floating[:, ::1] prem):
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1]
    cdef Py_ssize_t n_full = M // g, ngroups = (M + g - 1) // g
    cdef Py_ssize_t k, c0, gk
    with nogil:
        for k in range(ngroups):
            c0 = k * g
            gk = min(g, M - c0)
            gemm_rowmajor(True, False, <int>gk, <int>gk, <int>B, <floating>1,
                          &Yc[0, c0], <int>M, &dZc[0, c0], <int>M, <floating>0,
                          group_ptr(pfull, prem, k, n_full), <int>gk)
    return None


# expand: dY_k = dZc_k A_k + Yc_k X_k per group, two gemms accumulating into
# the (B, M) dY with ld M (the second with beta = 1).
def backward_expand(const floating[:, ::1] dZc, const floating[:, ::1] Yc,
                    Py_ssize_t g, floating[:, :, ::1] afull, floating[:, ::1] arem,
                    floating[:, :, ::1] xfull, floating[:, ::1] xrem,
                    floating[:, ::1] dY):
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1]
    cdef Py_ssize_t n_full = M // g, ngroups = (M + g - 1) // g
    cdef Py_ssize_t k, c0, gk
    with nogil:
        for k in range(ngroups):
            c0 = k * g
            gk = min(g, M - c0)
            gemm_rowmajor(False, False, <int>B, <int>gk, <int>gk, <floating>1,
                          &dZc[0, c0], <int>M, group_ptr(afull, arem, k, n_full),
                          <int>gk, <floating>0, &dY[0, c0], <int>M)
            gemm_rowmajor(False, False, <int>B, <int>gk, <int>gk, <floating>1,
                          &Yc[0, c0], <int>M, group_ptr(xfull, xrem, k, n_full),
                          <int>gk, <floating>1, &dY[0, c0], <int>M)
    return None


# ------------------------------------------------------------ g x g products
# gemm_stack: C[k] = alpha op(A[k]) op(B[k]) for a stack of square (g, g)
# matrices. The g x g algebra of nnkit.whitening goes through this (SciPy's
# OpenBLAS, the same library as every other kernel call) rather than NumPy's
# matmul: NumPy links a second OpenBLAS whose idle threads spin on the 2
# cores while SciPy's work, and vice versa (measured: 25 ms instead of
# 0.5 ms for a 64 x 64 eigh right after a syrk).
def gemm_stack(const floating[:, :, ::1] A, const floating[:, :, ::1] B,
               floating[:, :, ::1] C, bint trans_a, bint trans_b, double alpha):
    cdef Py_ssize_t n = C.shape[0], g = C.shape[1], k
    with nogil:
        for k in range(n):
            gemm_rowmajor(trans_a, trans_b, <int>g, <int>g, <int>g, <floating>alpha,
                          &A[k, 0, 0], <int>g, &B[k, 0, 0], <int>g, <floating>0,
                          &C[k, 0, 0], <int>g)
    return None
