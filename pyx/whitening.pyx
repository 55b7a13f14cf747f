# Whitening batch-norm kernels (P2.4): the B-sized work of ZCA / PCA /
# Cholesky / Newton-Schulz whitening, training mode, optional fused ReLU.
#
# Rows are samples. Y is (B, M); its features are split into groups
# [c0, c0 + g) of width g (the last group may be narrower; FeatureGroup in
# _common.pxd). Per group:
#   m  = mean_i Y                          (M,)
#   Yc = Y - 1 m^T                         (B, g)
#   S  = Yc^T Yc / B + eps I               (g, g)   syrk
#   Yhat = Yc Wg                           (B, g)   gemm, Wg from S (Python: eigh etc.)
#   Z  = gamma * Yhat + beta ; H = relu(Z)          elementwise
# Backward, with dZ (or relu_grad(dH, Z)) and dZc = dZ - colmean(dZ):
#   dbeta = sum_i dZ ; dgamma = sum_i dZ * Yhat     elementwise, double sums
#   P  = Yc^T dZc                          (g, g)   gemm (B-reduction)
#   dY = dZc A + Yc X                      (B, g)   two gemms (B-expansion)
# with A = diag(gamma) Wg^T (the path through Yhat) and X = 2 dSigma / B (the
# path through Sigma), both computed by the caller.
#
# The O(B g^2) products and the O(B M) passes live here, and the g x g
# steps that run on every ZCA call, one call per stack of groups: the
# eigendecomposition (eigh_stack), W (zca_matrix_stack) and the backward's
# dW, dSigma and expansion factors: as NumPy calls on (n, g, g) arrays,
# their fixed cost would dominate at small g. The other methods'
# algebra (pca, cholesky, newton) stays in nnkit._whitening_algebra with
# NumPy, batched over the groups. Matrix products go through BLAS
# (gemm_rowmajor, syrk_rowmajor); LAPACK through scipy.linalg.cython_lapack.
#
# Groups are passed as a stack of the full groups (n_full, g, g) plus an
# optional remainder (r, r) (None when g divides M): group k < n_full uses
# full[k], the last group uses rem.
#
# The O(B M) passes split rows between threads (row_start), each thread with
# its own accumulators: row-sequential streams, not column blocks (a column
# block touches one page, and so takes one TLB miss, per row per block).
#
# Called only from nnkit.whitening and nnkit._whitening_algebra: shapes,
# dtypes, eps > 0 and B >= 2 are checked and every output is allocated before
# any call. Arguments: inputs (# IN), outputs (# OUT), thread count.

from cython.parallel cimport prange
from libc.math cimport isfinite, sqrt, NAN
from libc.stdlib cimport free
from scipy.linalg.cython_blas cimport dsyrk, ssyrk
from scipy.linalg.cython_lapack cimport dsyevd, ssyevd
from _common cimport (CHUNK_ROWS, FeatureGroup, clear_sums, column_sums_rows, feature_group,
                      floating, flush_partials, gemm_rowmajor, group_count, lines, relu_grad,
                      relu_value, row_start, row_team, syrk_rowmajor, team_size, workspace)


cdef inline floating* group_matrix(floating[:, :, ::1] full, floating[:, ::1] rem,
                                   Py_ssize_t k) noexcept nogil:
    """Group k's (g, g) matrix: full[k], or rem for the narrower last group."""
    if k < full.shape[0]:
        return &full[k, 0, 0]
    return &rem[0, 0]


# C_k = A_k G_k + beta C_k for every group k (one gemm each): A and C are
# row-major (B, M), their group-k columns A_k, C_k (B, w) read with ld M;
# G_k (w, w) is full[k] or rem. Flops: 2 B M g.
cdef void _times_group_matrices(const floating* A, Py_ssize_t B, Py_ssize_t M, Py_ssize_t g,
                                floating[:, :, ::1] full, floating[:, ::1] rem,
                                floating beta, floating* C) noexcept nogil:
    cdef Py_ssize_t k
    cdef FeatureGroup grp
    for k in range(group_count(M, g)):
        grp = feature_group(k, M, g)
        gemm_rowmajor(False, False, <int>B, <int>grp.width, <int>grp.width, <floating>1,
                      A + grp.start, <int>M, group_matrix(full, rem, k), <int>grp.width,
                      beta, C + grp.start, <int>M)


# ---------------------------------------------------------------- forward
# center: m = mean_i Y, Yc = Y - m, colsum = sum_i Yc (double; ~1e-16 B |Y|,
# kept so the backward's dmean is exact for the Yc actually used).
# Passes: read Y (sums); read Y, write Yc; read Yc (sums): 4 over (B, M).
# Flops: 3 B M.
def center(const floating[:, ::1] Y,       # IN (B, M)
           floating[::1] mean,             # OUT (M,)
           double[::1] colsum,             # OUT (M,) sum_i Yc, in double
           floating[:, ::1] Yc,            # OUT (B, M)
           int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1], t, i, j
    cdef int nt = row_team(B, M, nthreads)
    # workspace, per thread: M doubles of column sums and M floats of chunk partials
    cdef size_t sums_bytes = lines(nt * M * sizeof(double))
    cdef char* ws = <char*>workspace(sums_bytes + nt * M * sizeof(floating), "whitening center")
    cdef double* sums = <double*>ws
    cdef floating* partials = <floating*>(ws + sums_bytes)
    with nogil:
        _threaded_column_sums(&Y[0, 0], B, M, nt, sums, partials)
        for j in range(M):
            mean[j] = <floating>(sums[j] / B)
        for i in prange(B, schedule="static", num_threads=nt):
            for j in range(M):
                Yc[i, j] = Y[i, j] - mean[j]
        _threaded_column_sums(&Yc[0, 0], B, M, nt, sums, partials)
        for j in range(M):
            colsum[j] = sums[j]
    free(ws)
    return None


# sums[0:M] = column sums of A (B, M) over nt threads: thread t sums its rows
# into sums[t M:(t + 1) M] (partials[t M:...] is its scratch), then thread 0's
# slot collects the others.
cdef void _threaded_column_sums(const floating* A, Py_ssize_t B, Py_ssize_t M, int nt,
                                double* sums, floating* partials) noexcept nogil:
    cdef Py_ssize_t t, j
    for t in prange(nt, schedule="static", num_threads=nt):
        column_sums_rows(A, row_start(t, nt, B), row_start(t + 1, nt, B), M,
                         sums + t * M, partials + t * M)
    for t in range(1, nt):
        for j in range(M):
            sums[j] += sums[t * M + j]


# covariance: S_k = Yc_k^T Yc_k / B + eps I per group (syrk, then mirror the
# upper triangle into the lower one so NumPy sees a full symmetric matrix).
# Flops: B g^2 per group (syrk), B M g in all.
def covariance(const floating[:, ::1] Yc,  # IN (B, M)
               Py_ssize_t g,               # IN group size
               double eps,                 # IN
               floating[:, :, ::1] full,   # OUT (M // g, g, g)
               floating[:, ::1] rem):      # OUT (M mod g, M mod g) or None
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1]
    cdef Py_ssize_t k, i, j, w
    cdef FeatureGroup grp
    cdef floating* C
    cdef floating alpha = <floating>(1.0 / B)
    with nogil:
        for k in range(group_count(M, g)):
            grp = feature_group(k, M, g)
            w = grp.width
            C = group_matrix(full, rem, k)
            syrk_rowmajor(<int>w, <int>B, alpha, &Yc[0, grp.start], <int>M, C, <int>w)
            for i in range(w):
                C[i * w + i] = C[i * w + i] + <floating>eps
                for j in range(i + 1, w):
                    C[j * w + i] = C[i * w + j]
    return None


# apply: Yhat_k = Yc_k W_k per group (gemm into the (B, M) Yhat with ld M),
# then Z = gamma * Yhat + beta (+ ReLU) in one elementwise pass. The backward
# recomputes Z from Yhat with the same expression, so its ReLU mask is
# bit-identical (-ffp-contract=off in setup.py).
# Passes: the gemms, then read Yhat, write out. Flops: 2 B M g + 2 B M.
def apply(const floating[:, ::1] Yc,       # IN (B, M)
          Py_ssize_t g,                    # IN group size
          floating[:, :, ::1] wfull,       # IN (M // g, g, g) whitening matrices
          floating[:, ::1] wrem,           # IN (M mod g, M mod g) or None
          const floating[::1] gamma,       # IN (M,)
          const floating[::1] beta,        # IN (M,)
          bint relu,                       # IN: write H = relu(Z) instead of Z
          floating[:, ::1] yhat,           # OUT (B, M)
          floating[:, ::1] out,            # OUT (B, M) Z or H, or None (Yhat only)
          int nthreads):
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1], i, j
    cdef floating z
    with nogil:
        _times_group_matrices(&Yc[0, 0], B, M, g, wfull, wrem, 0, &yhat[0, 0])
    if out is None:
        return None
    for i in prange(B, nogil=True, schedule="static",
                    num_threads=team_size(B * M, nthreads)):
        for j in range(M):
            z = yhat[i, j] * gamma[j] + beta[j]
            out[i, j] = relu_value(z) if relu else z
    return None


# --------------------------------------------------------------- backward
# pointwise: dZ = dout (or relu_grad(dH, Z), Z = gamma Yhat + beta recomputed),
#   dbeta = sum_i dZ, dgamma = sum_i dZ Yhat (double), dZc = dZ - dbeta / B,
#   optional dZ_out (relu) and dYhat_out = gamma dZ.
# Passes: sums (read dout, Yhat), writes (read both again, write dZc; one
# more write each for dZ_out, dYhat_out): 5. Flops: ~6 B M (+ masks).
def backward_pointwise(const floating[:, ::1] dout,   # IN (B, M) dZ, or dH with the ReLU
                       const floating[:, ::1] yhat,   # IN (B, M)
                       const floating[::1] gamma,     # IN (M,)
                       const floating[::1] beta,      # IN (M,)
                       bint relu,                     # IN
                       floating[:, ::1] dZc,          # OUT (B, M) dZ - colmean(dZ)
                       floating[:, ::1] dZ_out,       # OUT (B, M) relu only, or None
                       floating[:, ::1] dYhat_out,    # OUT (B, M) or None
                       floating[::1] dgamma,          # OUT (M,)
                       floating[::1] dbeta,           # OUT (M,)
                       int nthreads):
    cdef Py_ssize_t B = dout.shape[0], M = dout.shape[1], t, j
    cdef int nt = row_team(B, M, nthreads)
    cdef floating* pdz = NULL
    cdef floating* pdyh = NULL
    # workspace, per thread: sums [sum dZ | sum dZ Yhat] (2M doubles) and
    # scratch [their chunk partials | a masked row] (3M floats); then mean dZ
    # (M floats)
    cdef size_t sums_bytes = lines(2 * nt * M * sizeof(double))
    cdef char* ws = <char*>workspace(sums_bytes + (3 * nt + 1) * M * sizeof(floating),
                                     "whitening backward")
    cdef double* sums = <double*>ws
    cdef floating* scratch = <floating*>(ws + sums_bytes)
    cdef floating* mean_dz = scratch + 3 * nt * M
    if dZ_out is not None:
        pdz = &dZ_out[0, 0]
    if dYhat_out is not None:
        pdyh = &dYhat_out[0, 0]
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            _pointwise_sums(&dout[0, 0], &yhat[0, 0], row_start(t, nt, B),
                            row_start(t + 1, nt, B), M, &gamma[0], &beta[0], relu,
                            sums + 2 * t * M, scratch + 3 * t * M)
        for t in range(1, nt):
            for j in range(2 * M):
                sums[j] += sums[2 * t * M + j]
        for j in range(M):
            dbeta[j] = <floating>sums[j]
            dgamma[j] = <floating>sums[M + j]
            mean_dz[j] = <floating>(sums[j] / B)
        for t in prange(nt, schedule="static", num_threads=nt):
            _pointwise_write(&dout[0, 0], &yhat[0, 0], row_start(t, nt, B),
                             row_start(t + 1, nt, B), M, &gamma[0], &beta[0], relu,
                             mean_dz, &dZc[0, 0], pdz, pdyh)
    free(ws)
    return None


# Rows [r0, r1): sums = [sum dZ | sum dZ Yhat] (2M doubles), via chunk
# partials in the input type in scratch = [psb | psg | row] (3M floats); with
# the ReLU the masked row goes to `row` first (a select on its own
# vectorizes, a select inside the accumulation does not).
cdef void _pointwise_sums(const floating* dout, const floating* yhat, Py_ssize_t r0,
                          Py_ssize_t r1, Py_ssize_t M, const floating* gamma,
                          const floating* beta, bint relu, double* sums,
                          floating* scratch) noexcept nogil:
    cdef Py_ssize_t i, j, c, e
    cdef const floating* drow
    cdef const floating* yrow
    cdef floating* psb = scratch      # partial sum dZ; sums[0:M] its total
    cdef floating* psg = scratch + M  # partial sum dZ Yhat; sums[M:2M]
    cdef floating* row = scratch + 2 * M
    clear_sums(sums, scratch, 2 * M)
    c = r0
    while c < r1:
        e = min(c + CHUNK_ROWS, r1)
        for i in range(c, e):
            drow = dout + i * M
            yrow = yhat + i * M
            if relu:
                for j in range(M):
                    row[j] = relu_grad(drow[j], yrow[j] * gamma[j] + beta[j])
                drow = row
            for j in range(M):
                psb[j] += drow[j]
                psg[j] += drow[j] * yrow[j]
        flush_partials(sums, scratch, 2 * M)
        c = e


# Rows [r0, r1): dZc = dZ - mean_i dZ; optional dZ (relu) and dYhat = gamma dZ.
cdef void _pointwise_write(const floating* dout, const floating* yhat, Py_ssize_t r0,
                           Py_ssize_t r1, Py_ssize_t M, const floating* gamma,
                           const floating* beta, bint relu, const floating* mean_dz,
                           floating* dZc, floating* dZ_out, floating* dYhat_out) noexcept nogil:
    cdef Py_ssize_t i, j, o
    cdef floating dz
    for i in range(r0, r1):
        o = i * M
        if relu:
            for j in range(M):
                dZc[o + j] = relu_grad(dout[o + j], yhat[o + j] * gamma[j] + beta[j]) - mean_dz[j]
        else:
            for j in range(M):
                dZc[o + j] = dout[o + j] - mean_dz[j]
        if dZ_out != NULL or dYhat_out != NULL:
            for j in range(M):
                dz = dout[o + j]
                if relu:
                    dz = relu_grad(dz, yhat[o + j] * gamma[j] + beta[j])
                if dZ_out != NULL:
                    dZ_out[o + j] = dz
                if dYhat_out != NULL:
                    dYhat_out[o + j] = dz * gamma[j]


# reduce: P_k = Yc_k^T dZc_k per group (g x g), the one B-reduction gemm.
# Flops: 2 B M g.
def backward_reduce(const floating[:, ::1] Yc,    # IN (B, M)
                    const floating[:, ::1] dZc,   # IN (B, M)
                    Py_ssize_t g,                 # IN group size
                    floating[:, :, ::1] pfull,    # OUT (M // g, g, g)
                    floating[:, ::1] prem):       # OUT (M mod g, M mod g) or None
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1], k
    cdef FeatureGroup grp
    with nogil:
        for k in range(group_count(M, g)):
            grp = feature_group(k, M, g)
            gemm_rowmajor(True, False, <int>grp.width, <int>grp.width, <int>B, <floating>1,
                          &Yc[0, grp.start], <int>M, &dZc[0, grp.start], <int>M, <floating>0,
                          group_matrix(pfull, prem, k), <int>grp.width)
    return None


# expand: dY_k = dZc_k A_k + Yc_k X_k per group, two gemms accumulating into
# the (B, M) dY with ld M (the second with beta = 1). Flops: 4 B M g.
def backward_expand(const floating[:, ::1] dZc,   # IN (B, M)
                    const floating[:, ::1] Yc,    # IN (B, M)
                    Py_ssize_t g,                 # IN group size
                    floating[:, :, ::1] afull,    # IN A = diag(gamma) W^T, full groups
                    floating[:, ::1] arem,        # IN A of the last group, or None
                    floating[:, :, ::1] xfull,    # IN X = 2 dSigma / B, full groups
                    floating[:, ::1] xrem,        # IN X of the last group, or None
                    floating[:, ::1] dY):         # OUT (B, M)
    cdef Py_ssize_t B = Yc.shape[0], M = Yc.shape[1]
    with nogil:
        _times_group_matrices(&dZc[0, 0], B, M, g, afull, arem, 0, &dY[0, 0])
        _times_group_matrices(&Yc[0, 0], B, M, g, xfull, xrem, 1, &dY[0, 0])
    return None


# ------------------------------------------------------------ g x g products
# gemm_stack: C[k] = alpha op(A[k]) op(B[k]) for a stack of square (g, g)
# matrices. The g x g algebra of nnkit.whitening goes through this (SciPy's
# OpenBLAS, the same library as every other kernel call) rather than NumPy's
# matmul: NumPy links a second OpenBLAS whose idle threads spin on the 2
# cores while SciPy's work, and vice versa (a 64 x 64 eigh right after a
# syrk then waits on them).
# Flops: 2 n g^3.
def gemm_stack(const floating[:, :, ::1] A,       # IN (n, g, g)
               const floating[:, :, ::1] B,       # IN (n, g, g)
               bint trans_a,                      # IN
               bint trans_b,                      # IN
               double alpha,                      # IN
               floating[:, :, ::1] C):            # OUT (n, g, g)
    cdef Py_ssize_t n = C.shape[0], g = C.shape[1], k
    with nogil:
        for k in range(n):
            gemm_rowmajor(trans_a, trans_b, <int>g, <int>g, <int>g, <floating>alpha,
                          &A[k, 0, 0], <int>g, &B[k, 0, 0], <int>g, <floating>0,
                          &C[k, 0, 0], <int>g)
    return None


cdef enum:
    SYRK_MIN_GROUP = 32     # zca_matrix_stack: syrk from this width, gemm below
    MIRROR_TILE = 32        # tile side of the transposing loops


# ZCA's W_k = D_k Lambda_k^(-1/2) D_k^T for every block of a stack, full
# symmetric. From SYRK_MIN_GROUP on: Q = D Lambda^(-1/4), then one syrk
# (g^3 flops, half a gemm's) for the upper triangle and the lower triangle
# copied from it in 32 x 32 tiles. The row-major Q_k is the column-major
# Q_k^T, so Q Q^T is syrk's "T" product of it; column-major lower triangle =
# row-major upper. Narrower blocks: one gemm (D Lambda^(-1/2)) D^T.
# lam^(-1/4) as sqrt(sqrt(lam)) in the input type, each root rounded (as
# np.sqrt twice rounds). The mirror is a tiled loop here: in NumPy (np.triu
# twice and a transposed add) it would cost more than the syrk itself.
# Flops: n g^3 (syrk) or 2 n g^3 (gemm), plus n g^2.
def zca_matrix_stack(const floating[:, :, ::1] D,     # IN (n, g, g) eigenvectors (columns)
                     const floating[:, ::1] lam,      # IN (n, g) eigenvalues
                     floating[:, :, ::1] W):          # OUT (n, g, g)
    cdef Py_ssize_t n = W.shape[0], k, i, j
    cdef int g = <int>W.shape[1]
    cdef char uplo = b'L'
    cdef char trans = b'T'
    cdef floating one = 1
    cdef floating zero = 0
    cdef Py_ssize_t gg = <Py_ssize_t>g * g
    cdef floating* q = <floating*>workspace((gg + g) * sizeof(floating), "zca_matrix_stack")
    cdef floating* root = q + gg
    with nogil:
        for k in range(n):
            for j in range(g):
                root[j] = <floating>sqrt(lam[k, j])      # lam^(1/2): the gemm path
            if g >= SYRK_MIN_GROUP:
                for j in range(g):
                    root[j] = <floating>sqrt(root[j])        # lam^(1/4): syrk's Q
            for i in range(g):
                for j in range(g):
                    q[i * g + j] = D[k, i, j] / root[j]
            if g < SYRK_MIN_GROUP:
                gemm_rowmajor(False, True, g, g, g, one, q, g, &D[k, 0, 0], g, zero,
                              &W[k, 0, 0], g)
                continue
            if floating is float:
                ssyrk(&uplo, &trans, &g, &g, &one, q, &g, &zero, &W[k, 0, 0], &g)
            else:
                dsyrk(&uplo, &trans, &g, &g, &one, q, &g, &zero, &W[k, 0, 0], &g)
            _mirror_upper(&W[k, 0, 0], g)
    free(q)
    return None


# The per-group g x g steps of the backward around the method's dW -> dSigma
# (nnkit.whitening._backward_kernels), for a stack of n blocks: one kernel
# call each, where NumPy would spend a handful of calls' Python overhead.
# gamma, colsum, dbeta are the groups' (n, g) slices of the (M,) vectors.
#
# dW_k = (P_k + cs_k db_k^T / B) diag(gamma_k)        dW = Yc^T dYhat, with
#   dYhat = dZ diag(gamma) and dZ = dZc + 1 (db / B)^T, so Yc^T dZ = P + cs db^T / B
# Flops: 3 n g^2.
def whitening_matrix_grad(const floating[:, :, ::1] P,     # IN (n, g, g) Yc^T dZc
                          const floating[:, ::1] gamma,    # IN (n, g)
                          const double[:, ::1] colsum,     # IN (n, g) sum_i Yc
                          const floating[:, ::1] dbeta,    # IN (n, g)
                          Py_ssize_t B,                    # IN batch size
                          floating[:, :, ::1] dW):         # OUT (n, g, g)
    cdef Py_ssize_t n = P.shape[0], g = P.shape[1], k, i, j
    cdef floating c
    with nogil:
        for k in range(n):
            for i in range(g):
                c = <floating>colsum[k, i]
                for j in range(g):
                    dW[k, i, j] = (P[k, i, j] + c * (dbeta[k, j] / <floating>B)) * gamma[k, j]
    return None


# ZCA's dW -> dSigma for every block (P2.4; W = D Lambda^(-1/2) D^T, s = sqrt(lam)):
#   dSigma = D (F o D^T sym(dW) D) D^T,   F_ij = -1 / (s_i s_j (s_i + s_j))
# (divided differences of lam^(-1/2) with no 1/(lam_i - lam_j): repeated
# eigenvalues are harmless). Four gemms per block on scratch (2 g^2).
# Flops: 8 n g^3 + ~6 n g^2.
def zca_backward_stack(const floating[:, :, ::1] dW,    # IN (n, g, g)
                       const floating[:, :, ::1] D,     # IN (n, g, g) eigenvectors (columns)
                       const floating[:, ::1] lam,      # IN (n, g) eigenvalues
                       floating[:, :, ::1] dS):         # OUT (n, g, g) symmetric
    cdef Py_ssize_t n = dW.shape[0], k, i, j
    cdef int g = <int>dW.shape[1]
    cdef Py_ssize_t gg = <Py_ssize_t>g * g
    cdef floating* sym = <floating*>workspace(2 * gg * sizeof(floating), "zca_backward_stack")
    cdef floating* tmp
    cdef floating* s
    cdef const floating* d
    cdef floating* out
    tmp = sym + gg
    with nogil:
        for k in range(n):
            d = &D[k, 0, 0]
            out = &dS[k, 0, 0]
            for i in range(g):
                for j in range(g):
                    sym[i * g + j] = <floating>0.5 * (dW[k, i, j] + dW[k, j, i])
            gemm_rowmajor(False, False, g, g, g, <floating>1, sym, g, d, g, <floating>0, tmp, g)
            gemm_rowmajor(True, False, g, g, g, <floating>1, d, g, tmp, g, <floating>0, sym, g)
            s = tmp                       # tmp is free again: sqrt(lam) in its first row
            for i in range(g):
                s[i] = sqrt(lam[k, i])
            for i in range(g):
                for j in range(g):
                    sym[i * g + j] = (sym[i * g + j]
                                      * (<floating>-1 / (s[i] * s[j] * (s[i] + s[j]))))
            gemm_rowmajor(False, False, g, g, g, <floating>1, d, g, sym, g, <floating>0, tmp, g)
            gemm_rowmajor(False, True, g, g, g, <floating>1, tmp, g, d, g, <floating>0, out, g)
    free(sym)
    return None


# From dSigma to what the B-sized expansion and dmean need, per block:
#   X_k = 2 dSigma_k / B                 (the path through Sigma)
#   A_k = diag(gamma_k) W_k^T            (the path through Yhat)
#   dm_k = -W_k (gamma_k o db_k) - X_k cs_k   (the mean's total derivative;
#          sums in double)
# Flops: ~7 n g^2.
def expansion_factors(const floating[:, :, ::1] dS,    # IN (n, g, g)
                      const floating[:, :, ::1] W,     # IN (n, g, g)
                      const floating[:, ::1] gamma,    # IN (n, g)
                      const double[:, ::1] colsum,     # IN (n, g)
                      const floating[:, ::1] dbeta,    # IN (n, g)
                      Py_ssize_t B,                    # IN batch size
                      floating[:, :, ::1] A,           # OUT (n, g, g)
                      floating[:, :, ::1] X,           # OUT (n, g, g)
                      floating[:, ::1] dmean):         # OUT (n, g)
    cdef Py_ssize_t n = dS.shape[0], g = dS.shape[1], k, i, j, bi, bj
    cdef floating two_over_b = <floating>(2.0 / B)
    cdef double a0, a1, a2, a3
    # per block: u = gamma o db and cs in the input type, (2, g) scratch
    cdef floating* u = <floating*>workspace(2 * g * sizeof(floating), "expansion_factors")
    cdef floating* c = u + g
    with nogil:
        for k in range(n):
            for j in range(g):
                u[j] = gamma[k, j] * dbeta[k, j]
                c[j] = <floating>colsum[k, j]
            for i in range(g):
                for j in range(g):
                    X[k, i, j] = two_over_b * dS[k, i, j]
                # four running sums: one sum's add latency bounded the loop
                a0 = a1 = a2 = a3 = 0.0
                j = 0
                while j + 4 <= g:
                    a0 = a0 + <double>W[k, i, j] * u[j] + <double>X[k, i, j] * c[j]
                    a1 = a1 + <double>W[k, i, j + 1] * u[j + 1] + <double>X[k, i, j + 1] * c[j + 1]
                    a2 = a2 + <double>W[k, i, j + 2] * u[j + 2] + <double>X[k, i, j + 2] * c[j + 2]
                    a3 = a3 + <double>W[k, i, j + 3] * u[j + 3] + <double>X[k, i, j + 3] * c[j + 3]
                    j += 4
                while j < g:
                    a0 = a0 + <double>W[k, i, j] * u[j] + <double>X[k, i, j] * c[j]
                    j += 1
                dmean[k, i] = <floating>(-((a0 + a1) + (a2 + a3)))
            # A = diag(gamma) W^T by MIRROR_TILE x MIRROR_TILE tiles: the
            # strided reads of W's columns stay within a tile's cache lines
            bi = 0
            while bi < g:
                bj = 0
                while bj < g:
                    for i in range(bi, min(bi + MIRROR_TILE, g)):
                        for j in range(bj, min(bj + MIRROR_TILE, g)):
                            A[k, i, j] = gamma[k, i] * W[k, j, i]
                    bj += MIRROR_TILE
                bi += MIRROR_TILE
    free(u)
    return None


# eigh_stack: S_k = D_k diag(lam_k) D_k^T for every block, eigenvalues
# ascending, eigenvectors in D_k's columns: LAPACK syevd (divide and conquer)
# in the input's precision, all blocks in one call. The caller holds OpenBLAS
# on one thread (nnkit._whitening_algebra._eigh says why).
# A block with a non-finite entry gets NaN lam_k and D_k (the NaN policy
# "propagate": LAPACK would fail with an opaque code); syevd's info for block
# k goes to info[k] (0 = converged).
# Why a kernel: SciPy's wrapper adds a finiteness check in NumPy, its own
# checks and workspace, the copy of its Fortran-ordered result and a Python
# loop over the groups to every call.
# syevd overwrites its input with the eigenvectors, column-major: the block is
# copied into D_k (symmetric, so the row-major copy is the same matrix), and
# the result, D^T in row-major terms, is transposed in place.
# Workspace: lwork = 1 + 6g + 2g^2, liwork = 3 + 5g (syevd, jobz = V).
# Flops: ~(4/3 + 2 to 3) g^3 per block (tridiagonal reduction, divide and
# conquer, back-transformation).
def eigh_stack(const floating[:, :, ::1] S,        # IN (n, g, g) symmetric
               floating[:, ::1] lam,               # OUT (n, g) ascending
               floating[:, :, ::1] D,              # OUT (n, g, g) eigenvectors (columns)
               int[::1] info):                     # OUT (n,) syevd's info per block
    cdef Py_ssize_t n = S.shape[0], k, i, j
    cdef int g = <int>S.shape[1]
    cdef Py_ssize_t need = 1 + 6 * <Py_ssize_t>g + 2 * <Py_ssize_t>g * g, gg = <Py_ssize_t>g * g
    cdef int lwork, liwork = 3 + 5 * g, ok
    cdef char jobz = b'V'
    cdef char uplo = b'L'
    cdef floating* work
    cdef int* iwork
    cdef floating* a
    cdef floating tmp
    cdef bint finite
    if need > 2147483647:
        raise ValueError(f"eigh_stack: a group of {g} features needs a syevd workspace of "
                         f"{need} elements, over LAPACK's 32-bit limit")
    lwork = <int>need
    # one block: work (lwork values), then iwork (a multiple of 4 bytes in)
    work = <floating*>workspace(lwork * sizeof(floating) + liwork * sizeof(int), "eigh_stack")
    iwork = <int*>(work + lwork)
    with nogil:
        for k in range(n):
            a = &D[k, 0, 0]
            finite = True
            for i in range(gg):
                a[i] = (&S[k, 0, 0])[i]
                finite = finite and isfinite(a[i])
            if not finite:
                for i in range(g):
                    lam[k, i] = NAN
                for i in range(gg):
                    a[i] = NAN
                info[k] = 0
                continue
            if floating is float:
                ssyevd(&jobz, &uplo, &g, a, &g, &lam[k, 0], work, &lwork, iwork, &liwork,
                       &ok)
            else:
                dsyevd(&jobz, &uplo, &g, a, &g, &lam[k, 0], work, &lwork, iwork, &liwork,
                       &ok)
            info[k] = ok
            for i in range(g):
                for j in range(i + 1, g):
                    tmp = a[i * g + j]
                    a[i * g + j] = a[j * g + i]
                    a[j * g + i] = tmp
    free(work)
    return None



# C[j, i] = C[i, j] for j > i (row-major g x g): tile by tile, so the strided
# reads of a tile's columns stay within 32 cache lines.
cdef void _mirror_upper(floating* C, Py_ssize_t g) noexcept nogil:
    cdef Py_ssize_t bi, bj, i, j
    bi = 0
    while bi < g:
        bj = bi
        while bj < g:
            for i in range(bi, min(bi + MIRROR_TILE, g)):
                for j in range(max(bj, i + 1), min(bj + MIRROR_TILE, g)):
                    C[j * g + i] = C[i * g + j]
            bj += MIRROR_TILE
        bi += MIRROR_TILE
