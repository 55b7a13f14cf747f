# Batch-norm kernels (P2), training and inference, with an optional fused ReLU.
#
# Per feature j over the batch (rows are samples, Y is (B, M)):
#   m = mean_i Y;  v = mean_i (Y - m)^2 (biased);  inv = (v + eps)^(-1/2)
#   Yhat = (Y - m) * inv;  Z = gamma * Yhat + beta;  H = max(Z, 0) (fused variant)
#
# Memory plan. The work is split into column blocks of `w` features (a few
# cache lines of every row). A block is read from memory once; the later
# passes over the same block hit the cache. So a training forward costs one
# read of Y and one write of the output, and a backward two reads (dH, Y) and
# one write (dY) -- 5 passes over B x M in all, where the textbook does 7+.
# Blocks are independent, so the two cores split them (OpenMP, static).
#
# Reductions accumulate in double for both dtypes: a float32 running sum over
# B = 16384 rows is off by ~1e-2 relative.
#
# Called only from nnkit.functional (shapes, dtypes, eps, B >= 2 already
# checked; outputs allocated). Optional outputs are passed as None.

from cython.parallel cimport prange
from libc.math cimport sqrt
from _common cimport floating, team_size

# Block width in bytes per row. 128 B = 2 cache lines: B * 128 B * 2 arrays
# stays inside the 2 MB L2 up to B = 8192; the 105 MB L3 takes the rest.
cdef enum:
    BLOCK_BYTES = 128
    MAX_W = 32          # BLOCK_BYTES / sizeof(float)


cdef inline Py_ssize_t block_width(Py_ssize_t itemsize) noexcept nogil:
    return BLOCK_BYTES // itemsize


# ---------------------------------------------------------------- forward
# One column block [c0, c0 + w). Passes over the block: sum (memory), centred
# sum of squares (cache), normalize + affine (+ ReLU) and write (cache).
cdef void _forward_block(const floating* Y, Py_ssize_t B, Py_ssize_t M,
                         Py_ssize_t c0, Py_ssize_t w,
                         const floating* gamma, const floating* beta,
                         double eps, bint relu, floating* out,
                         floating* mean, floating* var, floating* inv_std) noexcept nogil:
    cdef double s[MAX_W]
    cdef double q[MAX_W]
    cdef floating mf[MAX_W]
    cdef floating sc[MAX_W]
    cdef floating sh[MAX_W]
    cdef Py_ssize_t i, j
    cdef const floating* row
    cdef floating* orow
    cdef floating z, d
    cdef double m, v, inv

    for j in range(w):
        s[j] = 0.0
        q[j] = 0.0
    for i in range(B):
        row = Y + i * M + c0
        for j in range(w):
            s[j] += row[j]
    for j in range(w):
        mf[j] = <floating>(s[j] / B)
    # two-pass variance: exact for data whose mean is large against its spread
    for i in range(B):
        row = Y + i * M + c0
        for j in range(w):
            d = row[j] - mf[j]
            q[j] += <double>d * d
    for j in range(w):
        m = s[j] / B
        v = q[j] / B
        inv = 1.0 / sqrt(v + eps)
        mean[c0 + j] = <floating>m
        var[c0 + j] = <floating>v
        inv_std[c0 + j] = <floating>inv
        # Z = (Y - m) * <floating>(gamma*inv) + beta; the backward rebuilds this
        # scale from the stored inv_std, so round inv the same way first
        sc[j] = <floating>(<double>gamma[c0 + j] * <floating>inv)
        sh[j] = beta[c0 + j]
    for i in range(B):
        row = Y + i * M + c0
        orow = out + i * M + c0
        if relu:
            for j in range(w):
                z = (row[j] - mf[j]) * sc[j] + sh[j]
                orow[j] = z if z > 0 else 0
        else:
            for j in range(w):
                orow[j] = (row[j] - mf[j]) * sc[j] + sh[j]


def forward_train(const floating[:, ::1] Y, const floating[::1] gamma,
                  const floating[::1] beta, double eps, bint relu,
                  floating[:, ::1] out, floating[::1] mean, floating[::1] var,
                  floating[::1] inv_std, int nthreads):
    """Training-mode forward: writes out (Z, or H if relu), mean, var, inv_std."""
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef Py_ssize_t W = block_width(sizeof(floating))
    cdef Py_ssize_t nblocks = (M + W - 1) // W, blk, c0
    for blk in prange(nblocks, nogil=True, schedule="static",
                      num_threads=team_size(B * M, nthreads)):
        c0 = blk * W
        _forward_block(&Y[0, 0], B, M, c0, min(W, M - c0), &gamma[0], &beta[0],
                       eps, relu, &out[0, 0], &mean[0], &var[0], &inv_std[0])
    return None


def normalize(const floating[:, ::1] Y, const floating[::1] mean,
              const floating[::1] inv_std, floating[:, ::1] yhat, int nthreads):
    """Yhat = (Y - m) * inv, one read and one write (for traces and caches)."""
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1], i, j
    for i in prange(B, nogil=True, schedule="static",
                    num_threads=team_size(B * M, nthreads)):
        for j in range(M):
            yhat[i, j] = (Y[i, j] - mean[j]) * inv_std[j]
    return None


def forward_eval(const floating[:, ::1] Y, const floating[::1] mean,
                 const floating[::1] inv_std, const floating[::1] gamma,
                 const floating[::1] beta, bint relu, floating[:, ::1] out,
                 int nthreads):
    """Inference: Z = gamma * (Y - running_mean) * inv + beta (+ ReLU); one pass."""
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1], i, j
    cdef floating z
    for i in prange(B, nogil=True, schedule="static",
                    num_threads=team_size(B * M, nthreads)):
        for j in range(M):
            z = (Y[i, j] - mean[j]) * inv_std[j] * gamma[j] + beta[j]
            if relu and z < 0:
                z = 0
            out[i, j] = z
    return None


# --------------------------------------------------------------- backward
# Given dZ (or dH with the fused ReLU: dZ = dH [Z > 0], Z recomputed from Y):
#   dbeta = sum_i dZ;  dgamma = sum_i dZ Yhat;  dYhat = gamma dZ
#   dvar  = sum_i dYhat (Y - m) (-1/2) inv^3 = -1/2 gamma dgamma inv^2
#   dmean = -sum_i dYhat inv + dvar (-2/B) sum_i (Y - m)
#   dY    = gamma inv / B (B dZ - dbeta - Yhat dgamma)        (compact form)
# Passes over a block: reductions (memory: dH, Y), then dY (+ optional dZ,
# dYhat) from the cache.
cdef void _backward_block(const floating* dH, const floating* Y,
                          Py_ssize_t B, Py_ssize_t M, Py_ssize_t c0, Py_ssize_t w,
                          const floating* mean, const floating* inv_std,
                          const floating* gamma, const floating* beta, bint relu,
                          floating* dY, floating* dZ_out, floating* dYhat_out,
                          floating* dgamma, floating* dbeta, floating* dmean,
                          floating* dvar) noexcept nogil:
    cdef double sb[MAX_W]
    cdef double sg[MAX_W]
    cdef double sc[MAX_W]
    cdef floating mf[MAX_W]
    cdef floating inv[MAX_W]
    cdef floating g[MAX_W]
    cdef floating bt[MAX_W]
    cdef floating k1[MAX_W]
    cdef floating k2[MAX_W]
    cdef floating k3[MAX_W]
    cdef Py_ssize_t i, j
    cdef const floating* yrow
    cdef const floating* drow
    cdef floating* orow
    cdef floating xh, dz, d
    cdef double gi, dv

    for j in range(w):
        sb[j] = 0.0
        sg[j] = 0.0
        sc[j] = 0.0
        mf[j] = mean[c0 + j]
        inv[j] = inv_std[c0 + j]
        g[j] = gamma[c0 + j]
        bt[j] = beta[c0 + j]
        # the forward's scale, rounded the same way, so the recomputed ReLU
        # mask [Z > 0] is bit-identical to the forward's
        k1[j] = <floating>(<double>g[j] * inv[j])
    for i in range(B):
        yrow = Y + i * M + c0
        drow = dH + i * M + c0
        for j in range(w):
            d = yrow[j] - mf[j]
            xh = d * inv[j]
            dz = drow[j]
            if relu and d * k1[j] + bt[j] <= 0:
                dz = 0
            sb[j] += dz
            sg[j] += <double>dz * xh
            sc[j] += d
    for j in range(w):
        gi = <double>g[j] * inv[j]
        dbeta[c0 + j] = <floating>sb[j]
        dgamma[c0 + j] = <floating>sg[j]
        dv = -0.5 * g[j] * sg[j] * inv[j] * inv[j]
        dvar[c0 + j] = <floating>dv
        dmean[c0 + j] = <floating>(-gi * sb[j] + dv * (-2.0 / B) * sc[j])
        k2[j] = <floating>(gi * sb[j] / B)
        k3[j] = <floating>(gi * sg[j] / B)
    for i in range(B):
        yrow = Y + i * M + c0
        drow = dH + i * M + c0
        orow = dY + i * M + c0
        for j in range(w):
            xh = (yrow[j] - mf[j]) * inv[j]
            dz = drow[j]
            if relu and (yrow[j] - mf[j]) * k1[j] + bt[j] <= 0:
                dz = 0
            orow[j] = k1[j] * dz - k2[j] - k3[j] * xh
    if dZ_out != NULL or dYhat_out != NULL:
        for i in range(B):
            yrow = Y + i * M + c0
            drow = dH + i * M + c0
            for j in range(w):
                dz = drow[j]
                if relu and (yrow[j] - mf[j]) * k1[j] + bt[j] <= 0:
                    dz = 0
                if dZ_out != NULL:
                    dZ_out[i * M + c0 + j] = dz
                if dYhat_out != NULL:
                    dYhat_out[i * M + c0 + j] = dz * g[j]


def backward_train(const floating[:, ::1] dH, const floating[:, ::1] Y,
                   const floating[::1] mean, const floating[::1] inv_std,
                   const floating[::1] gamma, const floating[::1] beta, bint relu,
                   floating[:, ::1] dY, floating[:, ::1] dZ_out,
                   floating[:, ::1] dYhat_out, floating[::1] dgamma,
                   floating[::1] dbeta, floating[::1] dmean, floating[::1] dvar,
                   int nthreads):
    """Training-mode backward. dZ_out (relu only) and dYhat_out may be None."""
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef Py_ssize_t W = block_width(sizeof(floating))
    cdef Py_ssize_t nblocks = (M + W - 1) // W, blk, c0
    cdef floating* pdz = NULL
    cdef floating* pdyh = NULL
    if dZ_out is not None:
        pdz = &dZ_out[0, 0]
    if dYhat_out is not None:
        pdyh = &dYhat_out[0, 0]
    for blk in prange(nblocks, nogil=True, schedule="static",
                      num_threads=team_size(B * M, nthreads)):
        c0 = blk * W
        _backward_block(&dH[0, 0], &Y[0, 0], B, M, c0, min(W, M - c0),
                        &mean[0], &inv_std[0], &gamma[0], &beta[0], relu,
                        &dY[0, 0], pdz, pdyh, &dgamma[0], &dbeta[0],
                        &dmean[0], &dvar[0])
    return None
