# Batch-norm kernels (P2), training and inference, with an optional fused ReLU.
#
# Per feature j over the batch (rows are samples, Y is (B, M)):
#   m = mean_i Y;  v = mean_i (Y - m)^2 (biased);  inv = (v + eps)^(-1/2)
#   Yhat = (Y - m) * inv;  Z = gamma * Yhat + beta;  H = relu(Z) (fused variant)
#
# Memory plan: every pass walks whole rows in order (sequential streams the
# prefetcher follows, one page after another), with per-feature accumulators
# (M doubles) that stay in L1/L2. The rows are split between the threads
# (row_start in _common.pxd); each thread keeps its own accumulators, merged
# afterwards. The alternative, giving each thread a block of columns, reads a
# short piece of every row per block: one page, and so one TLB miss, per row
# per block.
#
# The statistics pass is one pass over memory yet exact two-pass variance:
# rows go in chunks small enough to stay in L2, each chunk gets its own mean
# and centred sum of squares (second look from cache), and chunks merge by
# Chan et al.'s formula  M2 = M2a + M2b + delta^2 na nb / (na + nb).
#
# Sums run in the input type over CHUNK_ROWS rows, then in double: a float32
# running sum over a large batch keeps only two or three digits.
#
# Called only from nnkit.batchnorm (shapes, dtypes, eps, B >= 2 checked,
# outputs allocated). Arguments: inputs (# IN), outputs (# OUT), thread count;
# optional outputs are passed as None.

from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free
from _common cimport (CHUNK_ROWS, STREAM_BUFFER, clear_sums, floating, flush_partials, lines,
                      relu_grad, relu_value, row_start, row_team, stream_copy, stream_fence,
                      streams, team_size, workspace)

# rows per chunk of the statistics pass: about CHUNK_BYTES of Y (looked at a
# second time from L2), at most CHUNK_ROWS
cdef enum:
    CHUNK_BYTES = 131072
    STATS_SUMS = 2       # per thread, M doubles each: mean, m2
    STATS_SCRATCH = 3    # per thread, M floats each: chunk sum, chunk m2, chunk m1
    GRAD_SUMS = 3        # per thread, M doubles each: sum dZ, sum dZ Yhat, sum (Y - m)
    GRAD_SCRATCH = 3     # per thread, M floats each: their chunk partials


# The backward's two sweeps, in C on 32-byte vectors: pyx/include/nnkit_bn.h.
cdef extern from "nnkit_bn.h":
    void nnkit_bn_reduce_f(const float* ya, const float* yb, const float* da, const float* db,
                           Py_ssize_t M, const float* m, const float* s, const float* bt,
                           int relu, int two, float* psb, float* psg,
                           float* psc) noexcept nogil
    void nnkit_bn_reduce_d(const double* ya, const double* yb, const double* da,
                           const double* db, Py_ssize_t M, const double* m, const double* s,
                           const double* bt, int relu, int two, double* psb, double* psg,
                           double* psc) noexcept nogil
    void nnkit_bn_dy_f(const float* y, const float* dh, Py_ssize_t n, const float* m,
                       const float* s, const float* bt, const float* mt, const float* vi,
                       int relu, float* dst) noexcept nogil
    void nnkit_bn_dy_d(const double* y, const double* dh, Py_ssize_t n, const double* m,
                       const double* s, const double* bt, const double* mt,
                       const double* vi, int relu, double* dst) noexcept nogil


# A training kernel's workspace: n_sums doubles, then n_scratch values of the
# input type, then (when streaming) STREAM_BUFFER values per thread for the
# streaming stores. at[0], at[1]: the byte offsets of the scratch and of the
# buffers (at[1] = 0: no streaming).
cdef char* _workspace(Py_ssize_t n_sums, Py_ssize_t n_scratch, size_t itemsize, int nt,
                      bint stream, str kernel, Py_ssize_t* at) except NULL:
    at[0] = lines(n_sums * sizeof(double))
    at[1] = at[0] + lines(n_scratch * itemsize) if stream else 0
    return <char*>workspace(at[0] + lines(n_scratch * itemsize)
                            + (nt * STREAM_BUFFER * itemsize if stream else 0), kernel)


# ------------------------------------------------------------- statistics
# Rows [r0, r1) of Y (B, M): mean and M2 per feature into sums = [mean | m2]
# (2M doubles); scratch = [csum | cm2 | cm1] (3M floats of the input type).
#
# Within a chunk of at most CHUNK_ROWS rows the sums run in the input type
# (8 float32 lanes per AVX2 op, no float->double conversions in the hot
# loops), and each chunk's (n, mean, M2) is merged into the double totals by
# Chan's formula. The chunk mean c is only a rounded shift: the second look
# accumulates s1 = sum (y - c) too, and the exact chunk statistics are
# mean = c + s1/n, M2 = sum (y - c)^2 - s1^2/n (shifted-data formula).
cdef void _stats_rows(const floating* Y, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t M,
                      double* sums, floating* scratch) noexcept nogil:
    cdef Py_ssize_t R = max(1, min(CHUNK_ROWS, CHUNK_BYTES // (M * sizeof(floating))))
    cdef Py_ssize_t c, e, i, j
    cdef double n = 0.0, nb, delta, w, s1
    cdef floating d, d1, d2, d3, inv_nb
    cdef const floating* row
    cdef double* mean = sums
    cdef double* m2 = sums + M
    cdef floating* csum = scratch
    cdef floating* cm2 = scratch + M
    cdef floating* cm1 = scratch + 2 * M
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


# The output pass of the training forward, rows [r0, r1): Z (or H) =
# (Y - m) * scale + shift, by pieces of at most STREAM_BUFFER elements; buf is
# NULL (ordinary stores) or a piece's scratch when `out` is streamed.
cdef void _output_rows(const floating* Y, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t M,
                       const floating* mean, const floating* scale, const floating* shift,
                       bint relu, floating* out, floating* buf) noexcept nogil:
    cdef Py_ssize_t i, j, c0, n
    cdef const floating* y
    cdef floating* dst
    for i in range(r0, r1):
        y = Y + i * M
        c0 = 0
        while c0 < M:
            n = min(STREAM_BUFFER, M - c0)
            dst = buf if buf != NULL else out + i * M + c0
            if relu:
                for j in range(n):
                    dst[j] = relu_value((y[c0 + j] - mean[c0 + j]) * scale[c0 + j]
                                        + shift[c0 + j])
            else:
                for j in range(n):
                    dst[j] = (y[c0 + j] - mean[c0 + j]) * scale[c0 + j] + shift[c0 + j]
            if buf != NULL:
                stream_copy(out + i * M + c0, buf, n)
            c0 += n
    if buf != NULL:
        stream_fence()


# Training forward. Passes over (B, M): statistics (read Y, a second look
# from L2), output (read Y, write Z or H): 3. Flops: ~9 B M (statistics) +
# 3 B M (output), plus a compare per element with the ReLU.
def forward_train(const floating[:, ::1] Y,        # IN (B, M)
                  const floating[::1] gamma,       # IN (M,)
                  const floating[::1] beta,        # IN (M,)
                  double eps,                      # IN
                  bint relu,                       # IN: write H = relu(Z) instead of Z
                  floating[:, ::1] out,            # OUT (B, M) Z or H
                  floating[:, ::1] stats,          # OUT (3, M) rows mean, var, inv_std
                  int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef int nt = row_team(B, M, nthreads)
    cdef Py_ssize_t t, i, j
    cdef double n, nb, delta, inv
    cdef floating* mean = &stats[0, 0]
    cdef floating* var = &stats[1, 0]
    cdef floating* inv_std = &stats[2, 0]
    cdef Py_ssize_t at[2]
    cdef char* ws = _workspace(STATS_SUMS * nt * M, (STATS_SCRATCH * nt + 2) * M,
                               sizeof(floating), nt, streams(B * M, sizeof(floating)),
                               "batchnorm forward", at)
    cdef double* sums = <double*>ws
    cdef floating* scratch = <floating*>(ws + at[0])    # then scale and shift
    cdef floating* buf = <floating*>(ws + at[1]) if at[1] > 0 else NULL
    cdef floating* scale = scratch + STATS_SCRATCH * nt * M   # gamma * inv_std, rounded
    cdef floating* shift = scale + M                           # beta
    cdef double* mean_t
    cdef double* m2_t
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            _stats_rows(&Y[0, 0], row_start(t, nt, B), row_start(t + 1, nt, B), M,
                        sums + STATS_SUMS * t * M, scratch + STATS_SCRATCH * t * M)
        # merge the threads' (n, mean, M2) into thread 0's (Chan)
        n = <double>row_start(1, nt, B)
        for t in range(1, nt):
            nb = <double>(row_start(t + 1, nt, B) - row_start(t, nt, B))
            mean_t = sums + STATS_SUMS * t * M
            m2_t = mean_t + M
            for j in range(M):
                delta = mean_t[j] - sums[j]
                sums[j] += delta * nb / (n + nb)
                sums[M + j] += m2_t[j] + delta * delta * n * nb / (n + nb)
            n += nb
        for j in range(M):
            inv = 1.0 / sqrt(sums[M + j] / B + eps)
            mean[j] = <floating>sums[j]
            var[j] = <floating>(sums[M + j] / B)
            inv_std[j] = <floating>inv
            # Z = (Y - m) * <floating>(gamma*inv) + beta; the backward rebuilds
            # this scale from the stored (rounded) inv_std, so round it first
            scale[j] = <floating>(<double>gamma[j] * inv_std[j])
            shift[j] = beta[j]
        for t in prange(nt, schedule="static", num_threads=nt):
            _output_rows(&Y[0, 0], row_start(t, nt, B), row_start(t + 1, nt, B), M, mean,
                         scale, shift, relu, &out[0, 0],
                         NULL if buf == NULL else buf + t * STREAM_BUFFER)
    free(ws)
    return None


# Yhat = (Y - m) * inv (for traces and caches). Passes: one read, one write.
# Flops: 2 B M.
def normalize(const floating[:, ::1] Y,           # IN (B, M)
              const floating[::1] mean,           # IN (M,)
              const floating[::1] inv_std,        # IN (M,)
              floating[:, ::1] yhat,              # OUT (B, M)
              int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1], i, j
    for i in prange(B, nogil=True, schedule="static",
                    num_threads=team_size(B * M, nthreads)):
        for j in range(M):
            yhat[i, j] = (Y[i, j] - mean[j]) * inv_std[j]
    return None


# Inference: Z = gamma * (Y - running_mean) * inv + beta (+ ReLU).
# Passes: one read, one write. Flops: 4 B M (+ a compare with the ReLU).
def forward_eval(const floating[:, ::1] Y,        # IN (B, M)
                 const floating[::1] mean,        # IN (M,) running mean
                 const floating[::1] inv_std,     # IN (M,) 1/sqrt(running var + eps)
                 const floating[::1] gamma,       # IN (M,)
                 const floating[::1] beta,        # IN (M,)
                 bint relu,                       # IN
                 floating[:, ::1] out,            # OUT (B, M)
                 int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1], i, j
    cdef floating z
    for i in prange(B, nogil=True, schedule="static",
                    num_threads=team_size(B * M, nthreads)):
        for j in range(M):
            z = (Y[i, j] - mean[j]) * inv_std[j] * gamma[j] + beta[j]
            out[i, j] = relu_value(z) if relu else z
    return None


# --------------------------------------------------------------- backward
# Given dZ (or dH with the fused ReLU: dZ = relu_grad(dH, Z), Z recomputed
# from Y with the forward's exact arithmetic), P2.3 in the kernel's names:
#   dbeta  = sum_i dZ;  dgamma = sum_i dZ Yhat;  dYhat = gamma dZ
#   dvar   = sum_i dYhat (Y - m) (-1/2) inv^3 = -1/2 gamma dgamma inv^2
#   dmean  = -sum_i dYhat inv + dvar (-2/B) sum_i (Y - m)
#   dY     = dYhat inv  +  dvar 2 (Y - m)/B  +  dmean/B        (P2.3's three terms)
#          = direct dZ  -  var_term Yhat     -  mean_term
# with, per feature,
#   direct    = gamma inv             (term 1: dYhat/sqrt(v + eps) = direct dZ)
#   var_term  = gamma inv dgamma / B  (term 2: dvar 2 (Y - m)/B = -var_term Yhat)
#   mean_term = gamma inv dbeta / B   (term 3: dmean/B = -mean_term, as
#                                      sum_i (Y - m) = 0 exactly)
# i.e. the compact form gamma inv / B (B dZ - dbeta - Yhat dgamma).

# Rows [r0, r1): sums = [sum dZ | sum dZ Yhat | sum (Y - m)] (3M doubles).
# Chunks of at most CHUNK_ROWS rows sum in the input type in scratch =
# [psb | psg | psc] (3M floats; psg without Yhat's inv) and are then added
# to the double totals; two rows per sweep (one load and store of each
# partial per two rows).
cdef void _reduce_rows(const floating* dH, const floating* Y, Py_ssize_t r0,
                       Py_ssize_t r1, Py_ssize_t M, const floating* mf,
                       const floating* inv, const floating* scale, const floating* bt,
                       bint relu, double* sums, floating* scratch) noexcept nogil:
    cdef Py_ssize_t i, j, c, e
    cdef bint two
    cdef floating* psb = scratch       # partial sum dZ; sums[0:M] its total
    cdef floating* psg = scratch + M   # partial sum dZ (Y - m); sums[M:2M] (x inv)
    cdef floating* psc = scratch + 2 * M   # partial sum (Y - m); sums[2M:3M]
    clear_sums(sums, scratch, 3 * M)
    c = r0
    while c < r1:
        e = min(c + CHUNK_ROWS, r1)
        i = c
        while i < e:
            two = i + 1 < e
            if floating is float:
                nnkit_bn_reduce_f(Y + i * M, Y + (i + 1) * M if two else Y, dH + i * M,
                                  dH + (i + 1) * M if two else dH, M, mf, scale, bt, relu,
                                  two, psb, psg, psc)
            else:
                nnkit_bn_reduce_d(Y + i * M, Y + (i + 1) * M if two else Y, dH + i * M,
                                  dH + (i + 1) * M if two else dH, M, mf, scale, bt, relu,
                                  two, psb, psg, psc)
            i += 2 if two else 1
        for j in range(M):
            sums[j] += psb[j]
            sums[M + j] += <double>psg[j] * inv[j]
            sums[2 * M + j] += psc[j]
            psb[j] = 0
            psg[j] = 0
            psc[j] = 0
        c = e


# dY of rows [r0, r1) (the last pass of the training backward), by pieces of
# at most STREAM_BUFFER elements, streamed out through buf when it is not NULL.
cdef void _dy_rows(const floating* dout, const floating* Y, Py_ssize_t r0, Py_ssize_t r1,
                   Py_ssize_t M, const floating* mean, const floating* direct,
                   const floating* beta, const floating* mean_term,
                   const floating* var_inv, bint relu, floating* dY,
                   floating* buf) noexcept nogil:
    cdef Py_ssize_t i, c0, n, k
    cdef floating* dst
    for i in range(r0, r1):
        c0 = 0
        while c0 < M:
            n = min(STREAM_BUFFER, M - c0)
            dst = buf if buf != NULL else dY + i * M + c0
            k = i * M + c0                   # the piece's first element
            if floating is float:
                nnkit_bn_dy_f(Y + k, dout + k, n, mean + c0, direct + c0, beta + c0,
                              mean_term + c0, var_inv + c0, relu, dst)
            else:
                nnkit_bn_dy_d(Y + k, dout + k, n, mean + c0, direct + c0, beta + c0,
                              mean_term + c0, var_inv + c0, relu, dst)
            if buf != NULL:
                stream_copy(dY + k, buf, n)
            c0 += n
    if buf != NULL:
        stream_fence()


# Training backward. Passes over (B, M): sums (read dH, Y), dY (read dH, Y,
# write dY): 5 (dY streamed out when large, pyx/_common.pxd); when dZ or dYhat
# is asked, one more pass reads dH, Y again and writes them.
# Flops: ~8 B M (sums) + 6 B M (dY), plus the ReLU mask twice.
def backward_train(const floating[:, ::1] dout,   # IN (B, M) dZ, or dH with the ReLU
                   const floating[:, ::1] Y,      # IN (B, M)
                   const floating[::1] gamma,     # IN (M,)
                   const floating[::1] beta,      # IN (M,)
                   const floating[::1] mean,      # IN (M,) the forward's m
                   const floating[::1] inv_std,   # IN (M,) the forward's inv
                   bint relu,                     # IN: dout is dH of H = relu(Z)
                   floating[:, ::1] dY,           # OUT (B, M)
                   floating[:, ::1] dZ_out,       # OUT (B, M) relu only, or None
                   floating[:, ::1] dYhat_out,    # OUT (B, M) or None
                   floating[:, ::1] dvecs,        # OUT (4, M) rows dgamma, dbeta, dmean, dvar
                   int nthreads):
    cdef Py_ssize_t B = Y.shape[0], M = Y.shape[1]
    cdef int nt = row_team(B, M, nthreads)
    cdef Py_ssize_t t, i, j
    cdef bint want_dz = dZ_out is not None, want_dyh = dYhat_out is not None
    cdef double gi, dv
    cdef floating dz
    cdef floating* dgamma = &dvecs[0, 0]
    cdef floating* dbeta = &dvecs[1, 0]
    cdef floating* dmean = &dvecs[2, 0]
    cdef floating* dvar = &dvecs[3, 0]
    cdef Py_ssize_t at[2]
    cdef char* ws = _workspace(GRAD_SUMS * nt * M, (GRAD_SCRATCH * nt + 3) * M,
                               sizeof(floating), nt, streams(B * M, sizeof(floating)),
                               "batchnorm backward", at)
    cdef double* sums = <double*>ws
    cdef floating* scratch = <floating*>(ws + at[0])    # then direct, mean_term, var_inv
    cdef floating* buf = <floating*>(ws + at[1]) if at[1] > 0 else NULL
    cdef double* sum_dz = sums              # thread 0's sums after the merge
    cdef double* sum_dz_yhat = sums + M
    cdef double* sum_yc = sums + 2 * M
    cdef floating* direct = scratch + GRAD_SCRATCH * nt * M
    cdef floating* mean_term = direct + M
    cdef floating* var_inv = mean_term + M  # var_term inv: the dY sweep's factor of (Y - m)
    with nogil:
        for j in range(M):
            # the forward's scale, rounded the same way, so the recomputed
            # ReLU mask is bit-identical to the forward's
            direct[j] = <floating>(<double>gamma[j] * inv_std[j])
        for t in prange(nt, schedule="static", num_threads=nt):
            _reduce_rows(&dout[0, 0], &Y[0, 0], row_start(t, nt, B), row_start(t + 1, nt, B),
                         M, &mean[0], &inv_std[0], direct, &beta[0], relu,
                         sums + GRAD_SUMS * t * M, scratch + GRAD_SCRATCH * t * M)
        for t in range(1, nt):
            for j in range(GRAD_SUMS * M):
                sums[j] += sums[GRAD_SUMS * t * M + j]
        for j in range(M):
            gi = <double>gamma[j] * inv_std[j]
            dbeta[j] = <floating>sum_dz[j]
            dgamma[j] = <floating>sum_dz_yhat[j]
            dv = -0.5 * gamma[j] * sum_dz_yhat[j] * inv_std[j] * inv_std[j]
            dvar[j] = <floating>dv
            dmean[j] = <floating>(-gi * sum_dz[j] + dv * (-2.0 / B) * sum_yc[j])
            mean_term[j] = <floating>(gi * sum_dz[j] / B)
            var_inv[j] = <floating>(gi * sum_dz_yhat[j] / B * inv_std[j])
        for t in prange(nt, schedule="static", num_threads=nt):
            _dy_rows(&dout[0, 0], &Y[0, 0], row_start(t, nt, B), row_start(t + 1, nt, B), M,
                     &mean[0], direct, &beta[0], mean_term, var_inv, relu,
                     &dY[0, 0], NULL if buf == NULL else buf + t * STREAM_BUFFER)
        # the (B, M) intermediates only when asked (one write each)
        if want_dz or want_dyh:
            for i in prange(B, schedule="static", num_threads=nt):
                for j in range(M):
                    dz = dout[i, j]
                    if relu:
                        dz = relu_grad(dz, (Y[i, j] - mean[j]) * direct[j] + beta[j])
                    if want_dz:
                        dZ_out[i, j] = dz
                    if want_dyh:
                        dYhat_out[i, j] = dz * gamma[j]
    free(ws)
    return None
