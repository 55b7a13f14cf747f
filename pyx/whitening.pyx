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
from scipy.linalg.cython_blas cimport dsyrk, ssyrk
from _common cimport floating, gemm_rowmajor, team_size

# Column block of the elementwise passes: 128 B per row (as batchnorm.pyx),
# so a block of a few thousand rows stays in L2 between its passes.
cdef enum:
    BLOCK_BYTES = 128
    MAX_W = 32


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
# center: m = mean_i Y (double sums), Yc = Y - m, colsum = sum_i Yc (double;
# ~1e-16 B |Y|, kept so the backward's dmean is exact for the Yc actually used).
# Passes over a column block: sum (memory), write Yc + its sum (cache).
def center(const floating[:, ::1] Y, floating[::1] mean, double[::1] colsum,
           floating[:, ::1] Yc, int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef Py_ssize_t W = BLOCK_BYTES // sizeof(floating)
    cdef Py_ssize_t nblocks = (M + W - 1) // W, blk
    for blk in prange(nblocks, nogil=True, schedule="static",
                      num_threads=team_size(B * M, nthreads)):
        _center_block(&Y[0, 0], B, M, blk * W, min(W, M - blk * W),
                      &mean[0], &colsum[0], &Yc[0, 0])
    return None


cdef void _center_block(const floating* Y, Py_ssize_t B, Py_ssize_t M,
                        Py_ssize_t c0, Py_ssize_t w, floating* mean,
                        double* colsum, floating* Yc) noexcept nogil:
    cdef double s[MAX_W]
    cdef double q[MAX_W]
    cdef floating mf[MAX_W]
    cdef Py_ssize_t i, j
    cdef const floating* row
    cdef floating* crow
    cdef floating d
    for j in range(w):
        s[j] = 0.0
        q[j] = 0.0
    for i in range(B):
        row = Y + i * M + c0
        for j in range(w):
            s[j] += row[j]
    for j in range(w):
        mf[j] = <floating>(s[j] / B)
        mean[c0 + j] = mf[j]
    for i in range(B):
        row = Y + i * M + c0
        crow = Yc + i * M + c0
        for j in range(w):
            d = row[j] - mf[j]
            crow[j] = d
            q[j] += d
    for j in range(w):
        colsum[c0 + j] = q[j]


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
# Passes over a column block: sums (memory: dout, Yhat), writes (cache).
def backward_pointwise(const floating[:, ::1] dout, const floating[:, ::1] yhat,
                       const floating[::1] gamma, const floating[::1] beta,
                       bint relu, floating[:, ::1] dZc, floating[:, ::1] dZ_out,
                       floating[:, ::1] dYhat_out, floating[::1] dgamma,
                       floating[::1] dbeta, int nthreads):
    cdef Py_ssize_t B = dout.shape[0], M = dout.shape[1]
    cdef Py_ssize_t W = BLOCK_BYTES // sizeof(floating)
    cdef Py_ssize_t nblocks = (M + W - 1) // W, blk
    cdef floating* pdz = NULL
    cdef floating* pdyh = NULL
    if dZ_out is not None:
        pdz = &dZ_out[0, 0]
    if dYhat_out is not None:
        pdyh = &dYhat_out[0, 0]
    for blk in prange(nblocks, nogil=True, schedule="static",
                      num_threads=team_size(B * M, nthreads)):
        _pointwise_block(&dout[0, 0], &yhat[0, 0], B, M, blk * W,
                         min(W, M - blk * W), &gamma[0], &beta[0], relu,
                         &dZc[0, 0], pdz, pdyh, &dgamma[0], &dbeta[0])
    return None


cdef void _pointwise_block(const floating* dout, const floating* yhat,
                           Py_ssize_t B, Py_ssize_t M, Py_ssize_t c0, Py_ssize_t w,
                           const floating* gamma, const floating* beta, bint relu,
                           floating* dZc, floating* dZ_out, floating* dYhat_out,
                           floating* dgamma, floating* dbeta) noexcept nogil:
    cdef double sb[MAX_W]
    cdef double sg[MAX_W]
    cdef floating g[MAX_W]
    cdef floating bt[MAX_W]
    cdef floating mb[MAX_W]
    cdef Py_ssize_t i, j, o
    cdef floating dz
    for j in range(w):
        sb[j] = 0.0
        sg[j] = 0.0
        g[j] = gamma[c0 + j]
        bt[j] = beta[c0 + j]
    for i in range(B):
        o = i * M + c0
        for j in range(w):
            dz = dout[o + j]
            if relu and yhat[o + j] * g[j] + bt[j] <= 0:
                dz = 0
            sb[j] += dz
            sg[j] += <double>dz * yhat[o + j]
    for j in range(w):
        dbeta[c0 + j] = <floating>sb[j]
        dgamma[c0 + j] = <floating>sg[j]
        mb[j] = <floating>(sb[j] / B)
    for i in range(B):
        o = i * M + c0
        for j in range(w):
            dz = dout[o + j]
            if relu and yhat[o + j] * g[j] + bt[j] <= 0:
                dz = 0
            dZc[o + j] = dz - mb[j]
            if dZ_out != NULL:
                dZ_out[o + j] = dz
            if dYhat_out != NULL:
                dYhat_out[o + j] = dz * g[j]


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
