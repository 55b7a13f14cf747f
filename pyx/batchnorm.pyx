# Batch-norm kernels (P2), training and inference, with an optional fused ReLU.
#
# Per feature j over the batch (rows are samples, Y is (B, M)):
#   m = mean_i Y;  v = mean_i (Y - m)^2 (biased);  inv = (v + eps)^(-1/2)
#   Yhat = (Y - m) * inv;  Z = gamma * Yhat + beta;  H = max(Z, 0) (fused variant)
#
# Memory plan: every pass walks whole rows in order (sequential streams the
# prefetcher follows, one page after another), with per-feature accumulators
# (M doubles) that stay in L1/L2. The rows are split between the threads
# (OpenMP); each thread keeps its own accumulators, merged afterwards.
#   forward : statistics (read Y), output (read Y, write Z/H)         3 passes
#   backward: reductions (read dH, Y), dY (read dH, Y, write dY)      5 passes
# The statistics pass is one pass over memory yet exact two-pass variance:
# rows go in chunks small enough to stay in L2, each chunk gets its own mean
# and centred sum of squares (second look from cache), and chunks merge by
# Chan et al.'s formula  M2 = M2a + M2b + delta^2 na nb / (na + nb).
# (A column-blocked layout that reads each block once was tried first: it
# touches one page per row per block and ran 10x slower on TLB misses.)
#
# Reductions accumulate in double for both dtypes: a float32 running sum over
# B = 16384 rows is off by ~1e-2 relative.
#
# Called only from nnkit.functional (shapes, dtypes, eps, B >= 2 already
# checked; outputs allocated). Optional outputs are passed as None.

from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport malloc, free
from _common cimport floating, team_size

# rows per chunk: about CHUNK_BYTES of Y (re-read from L2), at most
# MAX_CHUNK_ROWS rows (the length of a sum kept in the input type)
cdef enum:
    CHUNK_BYTES = 131072
    MAX_CHUNK_ROWS = 64


cdef inline Py_ssize_t _row_start(Py_ssize_t t, Py_ssize_t nt, Py_ssize_t B) noexcept nogil:
    return (B * t) // nt


# ------------------------------------------------------------- statistics
# Rows [r0, r1) of Y (B, M): mean and M2 per feature into mean[M], m2[M]
# (double); csum, cm2, cm1 (M floats of the input type) are scratch.
#
# Within a chunk of at most MAX_CHUNK_ROWS rows the sums run in the input
# type (8 float32 lanes per AVX2 op, no float->double conversions in the hot
# loops; a 64-term float32 sum is good to ~1e-7 relative), and each chunk's
# (n, mean, M2) is merged into the double totals by Chan's formula.
# The chunk mean c is only a rounded shift: the second look accumulates
# s1 = sum (y - c) too, and the exact chunk statistics are
# mean = c + s1/n, M2 = sum (y - c)^2 - s1^2/n (shifted-data formula).
cdef void _stats_rows(const floating* Y, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t M,
                      double* mean, double* m2, floating* csum, floating* cm2,
                      floating* cm1) noexcept nogil:
    cdef Py_ssize_t R = max(1, min(MAX_CHUNK_ROWS, CHUNK_BYTES // (M * sizeof(floating))))
    cdef Py_ssize_t c, e, i, j
    cdef double n = 0.0, nb, delta, w, s1
    cdef floating d, d1, d2, d3, inv_nb
    cdef const floating* row
    for j in range(M):
        mean[j] = 0.0
        m2[j] = 0.0
    c = r0
    while c < r1:
        e = min(c + R, r1)
        nb = <double>(e - c)
        inv_nb = <floating>(1.0 / nb)
        for j in range(M):
            csum[j] = 0
            cm2[j] = 0
            cm1[j] = 0
        # four rows per sweep: one load/store of the accumulator per four
        # rows (a store per row made the L1 store port the bottleneck)
        i = c
        while i + 4 <= e:
            row = Y + i * M
            for j in range(M):
                csum[j] += (row[j] + row[M + j]) + (row[2 * M + j] + row[3 * M + j])
            i += 4
        while i < e:
            row = Y + i * M
            for j in range(M):
                csum[j] += row[j]
            i += 1
        for j in range(M):
            csum[j] *= inv_nb                 # now the chunk mean
        i = c                                 # same rows again: from L2
        while i + 4 <= e:
            row = Y + i * M
            for j in range(M):
                d = row[j] - csum[j]
                d1 = row[M + j] - csum[j]
                d2 = row[2 * M + j] - csum[j]
                d3 = row[3 * M + j] - csum[j]
                cm2[j] += (d * d + d1 * d1) + (d2 * d2 + d3 * d3)
                cm1[j] += (d + d1) + (d2 + d3)
            i += 4
        while i < e:
            row = Y + i * M
            for j in range(M):
                d = row[j] - csum[j]
                cm2[j] += d * d
                cm1[j] += d
            i += 1
        w = nb / (n + nb)
        for j in range(M):
            s1 = <double>cm1[j] / nb          # exact chunk mean = c + s1
            delta = (csum[j] + s1) - mean[j]
            mean[j] += delta * w
            m2[j] += (cm2[j] - s1 * cm1[j]) + delta * delta * n * w
        n += nb
        c = e


def forward_train(const floating[:, ::1] Y, const floating[::1] gamma,
                  const floating[::1] beta, double eps, bint relu,
                  floating[:, ::1] out, floating[::1] mean, floating[::1] var,
                  floating[::1] inv_std, int nthreads):
    """Training-mode forward: writes out (Z, or H if relu), mean, var, inv_std."""
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef int nt = team_size(B * M, nthreads)
    cdef Py_ssize_t t, i, j, r0, r1
    cdef double n, nb, delta, inv
    cdef double* ws
    cdef floating* mf
    cdef floating* sc
    cdef floating* sh
    cdef floating z
    cdef floating zero = 0      # see _reduce_rows
    if nt > B:
        nt = <int>B
    # per thread: mean, m2, csum, cm2, cm1 (M doubles of room each); then mf, sc, sh
    ws = <double*>malloc((5 * nt * M) * sizeof(double) + 3 * M * sizeof(floating))
    if ws == NULL:
        raise MemoryError("batchnorm forward: no memory for the workspace")
    mf = <floating*>(ws + 5 * nt * M)
    sc = mf + M
    sh = sc + M
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            _stats_rows(&Y[0, 0], _row_start(t, nt, B), _row_start(t + 1, nt, B), M,
                        ws + 5 * t * M, ws + (5 * t + 1) * M,
                        <floating*>(ws + (5 * t + 2) * M), <floating*>(ws + (5 * t + 3) * M),
                        <floating*>(ws + (5 * t + 4) * M))
        # merge the threads' (n, mean, M2) into thread 0's slot (Chan)
        n = <double>_row_start(1, nt, B)
        for t in range(1, nt):
            nb = <double>(_row_start(t + 1, nt, B) - _row_start(t, nt, B))
            for j in range(M):
                delta = ws[5 * t * M + j] - ws[j]
                ws[j] += delta * nb / (n + nb)
                ws[M + j] += ws[(5 * t + 1) * M + j] + delta * delta * n * nb / (n + nb)
            n += nb
        for j in range(M):
            inv = 1.0 / sqrt(ws[M + j] / B + eps)
            mean[j] = <floating>ws[j]
            var[j] = <floating>(ws[M + j] / B)
            inv_std[j] = <floating>inv
            mf[j] = mean[j]
            # Z = (Y - m) * <floating>(gamma*inv) + beta; the backward rebuilds
            # this scale from the stored (rounded) inv_std, so round it first
            sc[j] = <floating>(<double>gamma[j] * inv_std[j])
            sh[j] = beta[j]
        for i in prange(B, schedule="static", num_threads=nt):
            if relu:
                for j in range(M):
                    z = (Y[i, j] - mf[j]) * sc[j] + sh[j]
                    out[i, j] = z if z > zero else zero
            else:
                for j in range(M):
                    out[i, j] = (Y[i, j] - mf[j]) * sc[j] + sh[j]
    free(ws)
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
# Given dZ (or dH with the fused ReLU: dZ = dH [Z > 0], Z recomputed from Y
# with the forward's exact arithmetic):
#   dbeta = sum_i dZ;  dgamma = sum_i dZ Yhat;  dYhat = gamma dZ
#   dvar  = sum_i dYhat (Y - m) (-1/2) inv^3 = -1/2 gamma dgamma inv^2
#   dmean = -sum_i dYhat inv + dvar (-2/B) sum_i (Y - m)
#   dY    = gamma inv / B (B dZ - dbeta - Yhat dgamma)        (compact form)

# Rows [r0, r1): sb += dZ, sg += dZ Yhat, sc += (Y - m), per feature (double).
# As in _stats_rows, chunks of at most MAX_CHUNK_ROWS rows sum in the input
# type (psb, psg, psc: M floats each) and are then added to the double totals.
# With the ReLU, the masked rows dZ = dH [Z > 0] go to `row` (2M floats, in
# L1) first: a select on its own vectorizes, while a select inside the
# accumulation loop does not (gcc: "control flow in loop").
cdef void _reduce_rows(const floating* dH, const floating* Y, Py_ssize_t r0,
                       Py_ssize_t r1, Py_ssize_t M, const floating* mf,
                       const floating* inv, const floating* k1, const floating* bt,
                       bint relu, double* sb, double* sg, double* sc,
                       floating* psb, floating* psg, floating* psc,
                       floating* row) noexcept nogil:
    cdef Py_ssize_t i, j, c, e
    cdef bint two
    cdef const floating* yrow
    cdef const floating* drow
    cdef floating d, d1, dz
    cdef floating zero = 0   # a typed zero: `> 0` would compare in double
    for j in range(M):
        sb[j] = 0.0
        sg[j] = 0.0
        sc[j] = 0.0
    c = r0
    while c < r1:
        e = min(c + MAX_CHUNK_ROWS, r1)
        for j in range(M):
            psb[j] = 0
            psg[j] = 0
            psc[j] = 0
        # two rows per sweep: one load/store of each partial per two rows
        i = c
        while i < e:
            two = i + 1 < e
            yrow = Y + i * M
            drow = dH + i * M
            if relu:
                # the masked dZ of the row(s) into `row` (2M floats)
                for j in range(M):
                    dz = drow[j]
                    row[j] = dz if (yrow[j] - mf[j]) * k1[j] + bt[j] > zero else zero
                if two:
                    for j in range(M):
                        dz = drow[M + j]
                        row[M + j] = dz if (yrow[M + j] - mf[j]) * k1[j] + bt[j] > zero else zero
                drow = row
            if two:
                for j in range(M):
                    d = yrow[j] - mf[j]
                    d1 = yrow[M + j] - mf[j]
                    psb[j] += drow[j] + drow[M + j]
                    psg[j] += (drow[j] * d + drow[M + j] * d1) * inv[j]
                    psc[j] += d + d1
                i += 2
            else:
                for j in range(M):
                    d = yrow[j] - mf[j]
                    psb[j] += drow[j]
                    psg[j] += drow[j] * (d * inv[j])
                    psc[j] += d
                i += 1
        for j in range(M):
            sb[j] += psb[j]
            sg[j] += psg[j]
            sc[j] += psc[j]
        c = e


def backward_train(const floating[:, ::1] dH, const floating[:, ::1] Y,
                   const floating[::1] mean, const floating[::1] inv_std,
                   const floating[::1] gamma, const floating[::1] beta, bint relu,
                   floating[:, ::1] dY, floating[:, ::1] dZ_out,
                   floating[:, ::1] dYhat_out, floating[::1] dgamma,
                   floating[::1] dbeta, floating[::1] dmean, floating[::1] dvar,
                   int nthreads):
    """Training-mode backward. dZ_out (relu only) and dYhat_out may be None."""
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef int nt = team_size(B * M, nthreads)
    cdef Py_ssize_t t, i, j
    cdef bint want_dz = dZ_out is not None, want_dyh = dYhat_out is not None
    cdef double* ws
    cdef floating* k1
    cdef floating* k2
    cdef floating* k3
    cdef double gi, dv
    cdef floating d, xh, dz
    cdef floating zero = 0      # see _reduce_rows
    if nt > B:
        nt = <int>B
    # per thread: sb, sg, sc (M doubles each); then k1, k2, k3; then per
    # thread the chunk partials psb, psg, psc (M floats each) and a 2-row
    # buffer (2M floats)
    ws = <double*>malloc((3 * nt * M) * sizeof(double) + (3 + 5 * nt) * M * sizeof(floating))
    if ws == NULL:
        raise MemoryError("batchnorm backward: no memory for the workspace")
    k1 = <floating*>(ws + 3 * nt * M)
    k2 = k1 + M
    k3 = k2 + M
    with nogil:
        for j in range(M):
            # the forward's scale, rounded the same way, so the recomputed
            # ReLU mask [Z > 0] is bit-identical to the forward's
            k1[j] = <floating>(<double>gamma[j] * inv_std[j])
        for t in prange(nt, schedule="static", num_threads=nt):
            _reduce_rows(&dH[0, 0], &Y[0, 0], _row_start(t, nt, B), _row_start(t + 1, nt, B),
                         M, &mean[0], &inv_std[0], k1, &beta[0], relu,
                         ws + 3 * t * M, ws + (3 * t + 1) * M, ws + (3 * t + 2) * M,
                         k3 + (1 + 5 * t) * M, k3 + (2 + 5 * t) * M, k3 + (3 + 5 * t) * M,
                         k3 + (4 + 5 * t) * M)
        for t in range(1, nt):
            for j in range(3 * M):
                ws[j] += ws[3 * t * M + j]
        for j in range(M):
            # ws[0:M] = sum dZ, ws[M:2M] = sum dZ Yhat, ws[2M:3M] = sum (Y - m)
            gi = <double>gamma[j] * inv_std[j]
            dbeta[j] = <floating>ws[j]
            dgamma[j] = <floating>ws[M + j]
            dv = -0.5 * gamma[j] * ws[M + j] * inv_std[j] * inv_std[j]
            dvar[j] = <floating>dv
            dmean[j] = <floating>(-gi * ws[j] + dv * (-2.0 / B) * ws[2 * M + j])
            k2[j] = <floating>(gi * ws[j] / B)
            k3[j] = <floating>(gi * ws[M + j] / B)
        for i in prange(B, schedule="static", num_threads=nt):
            if relu:
                for j in range(M):
                    d = Y[i, j] - mean[j]
                    xh = d * inv_std[j]
                    dz = dH[i, j]
                    dz = dz if d * k1[j] + beta[j] > zero else zero
                    dY[i, j] = k1[j] * dz - k2[j] - k3[j] * xh
            else:
                for j in range(M):
                    xh = (Y[i, j] - mean[j]) * inv_std[j]
                    dY[i, j] = k1[j] * dH[i, j] - k2[j] - k3[j] * xh
            # the (B, M) intermediates only when asked (one write each)
            if want_dz or want_dyh:
                for j in range(M):
                    dz = dH[i, j]
                    dz = dz if not relu or (Y[i, j] - mean[j]) * k1[j] + beta[j] > zero else zero
                    if want_dz:
                        dZ_out[i, j] = dz
                    if want_dyh:
                        dYhat_out[i, j] = dz * gamma[j]
    free(ws)
    return None
