# Row normalizations (P8): layer norm and instance norm, fused like batch norm.
#
# Both normalize the rows of a row-major (R, D) view. Layer norm: a row is a
# sample, X (B, ...) seen as (B, D) with D the product of the non-batch axes;
# gamma, beta have one entry per element of a row (shape X.shape[1:]).
# Instance norm: a row is one (sample, channel), X (B, C, ...) seen as
# (B*C, S); gamma, beta have one entry per channel c = r mod C. Per row r:
#   m = mean_j x;  v = mean_j (x - m)^2 (biased: divide by D);  rstd = (v + eps)^(-1/2)
#   xhat = (x - m) * rstd;  y = g * xhat + b
# Backward, with dxhat = g * dy (llm.c's layernorm_backward, two fused sweeps):
#   dbeta  = sum dy (over rows: per column for layer norm, per channel for instance)
#   dgamma = sum dy * xhat
#   dvar   = sum_j dxhat (x - m) (-1/2) rstd^3 = -1/2 rstd^2 sum_j dxhat xhat
#   dmean  = -rstd sum_j dxhat + dvar (-2/D) sum_j (x - m)
#   dx     = rstd (dxhat - mean_j dxhat - xhat mean_j (dxhat xhat))
#
# Memory plan: each row is worked on while it sits in cache. Rows are split
# between the threads in contiguous blocks (sequential streams).
#   forward : a row is read in chunks (4 KB, NNKIT_FWD_CHUNK): sum
#             the chunk, then a second look from L1 for its centred sums
#             (exact two-pass statistics, chunks merged by Chan's formula);
#             then the output sweep re-reads the row (from L1/L2 for rows
#             up to ~256 KB) and writes y.      memory: read X, write Y
#   backward: sweep 1 reads dy and x (sums over the row; layer norm also adds
#             dy and dy*xhat into per-thread column partials); sweep 2 re-reads
#             them from cache and writes dx.    memory: read dY, X; write dX
#             (+ write dXhat when asked)
# Y and dX of 8 MB and more go out through a CHUNK-element L1 buffer with
# streaming stores (stream_copy, pyx/_common.pxd): no read before the write.
# flops: forward ~7 per element, backward ~12 per element.
#
# Accuracy, as batch norm: sums run in the input type inside a chunk, in
# independent vector lanes (each lane a sum of at most 32 terms, ~1e-7
# relative in float32), and every chunk is added into double totals.
# Column partials of layer norm's dgamma/dbeta go to double every
# MAX_CHUNK_ROWS rows, as batch norm's do.
#
# Called only from nnkit.norms (shapes, dtypes, eps already checked; outputs
# allocated). Optional outputs are passed as None.

from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free
from _common cimport (floating, lines, row_start, stream_copy, stream_fence, streams, team_size,
                      workspace)

# NORMS_TEAM: the kernels below wake their thread team at half batch norm's
# size (team_size(2 * R * D)): a row is read three times (two statistics
# looks and the output sweep), so the loop pays for the team sooner.
cdef enum:
    CHUNK = 2048          # elements per output sweep chunk (the stream buffer)
    MAX_CHUNK_ROWS = 64   # rows per float-type column partial (layer norm backward)


# ------------------------------------------------------------- statistics
# The chunk sums, in C on 32-byte vectors with whole registers as
# accumulators: pyx/include/nnkit_norms.h.
cdef extern from "nnkit_norms.h":
    double nnkit_chunk_sum_f(const float* x, Py_ssize_t n) noexcept nogil
    double nnkit_chunk_sum_d(const double* x, Py_ssize_t n) noexcept nogil
    void nnkit_chunk_centred_f(const float* x, Py_ssize_t n, float c, double* s1,
                               double* s2) noexcept nogil
    void nnkit_chunk_centred_d(const double* x, Py_ssize_t n, double c, double* s1,
                               double* s2) noexcept nogil
    void nnkit_chunk_bwd_f(const float* x, const float* dy, const float* g, Py_ssize_t n,
                           float m, float s, float* pg, float* pb, double* a,
                           double* b, double* sx) noexcept nogil
    void nnkit_chunk_bwd_d(const double* x, const double* dy, const double* g,
                           Py_ssize_t n, double m, double s, double* pg, double* pb,
                           double* a, double* b, double* sx) noexcept nogil
    Py_ssize_t NNKIT_FWD_CHUNK_F
    Py_ssize_t NNKIT_FWD_CHUNK_D
    Py_ssize_t NNKIT_BWD_CHUNK_F
    Py_ssize_t NNKIT_BWD_CHUNK_D


cdef inline double _chunk_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return nnkit_chunk_sum_f(x, n)
    else:
        return nnkit_chunk_sum_d(x, n)


cdef inline void _chunk_centred(const floating* x, Py_ssize_t n, floating c, double* s1,
                                double* s2) noexcept nogil:
    if floating is float:
        nnkit_chunk_centred_f(x, n, c, s1, s2)
    else:
        nnkit_chunk_centred_d(x, n, c, s1, s2)


cdef inline void _chunk_bwd(const floating* x, const floating* dy, const floating* g,
                            Py_ssize_t n, floating m, floating s, floating* pg,
                            floating* pb, double* a, double* b, double* sx) noexcept nogil:
    if floating is float:
        nnkit_chunk_bwd_f(x, dy, g, n, m, s, pg, pb, a, b, sx)
    else:
        nnkit_chunk_bwd_d(x, dy, g, n, m, s, pg, pb, a, b, sx)


cdef inline Py_ssize_t _fwd_chunk(const floating* unused) noexcept nogil:
    """Elements per forward chunk (32 terms per accumulator lane)."""
    if floating is float:
        return NNKIT_FWD_CHUNK_F
    else:
        return NNKIT_FWD_CHUNK_D


cdef inline Py_ssize_t _bwd_chunk(floating* unused) noexcept nogil:
    """Elements per backward chunk (32 terms per accumulator lane)."""
    if floating is float:
        return NNKIT_BWD_CHUNK_F
    else:
        return NNKIT_BWD_CHUNK_D


# One row x[0:D]: mean and M2 = sum (x - mean)^2 in double, by chunks.
cdef void _row_stats(const floating* x, Py_ssize_t D, double* mean_out,
                     double* m2_out) noexcept nogil:
    cdef floating c
    cdef Py_ssize_t c0 = 0, e, step = _fwd_chunk(x)
    cdef double n = 0.0, nb, w, s1, s2, delta, mean = 0.0, m2 = 0.0
    while c0 < D:
        e = min(c0 + step, D)
        nb = <double>(e - c0)
        c = <floating>(_chunk_sum(x + c0, e - c0) / nb)   # the chunk mean, rounded: a shift
        _chunk_centred(x + c0, e - c0, c, &s1, &s2)       # second look: from L1
        # shifted-data formula: exact chunk mean c + s1/nb, M2 = s2 - s1^2/nb;
        # then Chan's merge into the running (n, mean, m2)
        w = nb / (n + nb)
        delta = (c + s1 / nb) - mean
        mean += delta * w
        m2 += (s2 - s1 * s1 / nb) + delta * delta * n * w
        n += nb
        c0 = e
    mean_out[0] = mean
    m2_out[0] = m2


# buf: NULL, or CHUNK elements of scratch when Y is written with streaming
# stores (each chunk of y is computed into buf, then streamed out).
cdef void _forward_rows(const floating* X, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t D,
                        const floating* gamma, const floating* beta, int C, double eps,
                        floating* Y, floating* mean, floating* var,
                        floating* rstd, floating* buf) noexcept nogil:
    cdef Py_ssize_t r, j, c0, n
    cdef double m, m2, inv
    cdef floating mf, sf, g = 0, b = 0
    cdef const floating* x
    cdef floating* y
    cdef floating* dst
    for r in range(r0, r1):
        x = X + r * D
        y = Y + r * D
        _row_stats(x, D, &m, &m2)
        inv = 1.0 / sqrt(m2 / D + eps)
        mean[r] = <floating>m
        var[r] = <floating>(m2 / D)
        rstd[r] = <floating>inv
        mf = mean[r]
        sf = rstd[r]
        if C != 0:                       # instance norm: one (gamma, beta) per row
            g = <floating>(<double>gamma[r % C] * sf)
            b = beta[r % C]
        c0 = 0
        while c0 < D:                    # the output sweep, by chunks
            n = min(CHUNK, D - c0)
            dst = buf if buf != NULL else y + c0
            if C == 0:                   # layer norm: gamma, beta per column
                for j in range(n):
                    dst[j] = (x[c0 + j] - mf) * sf * gamma[c0 + j] + beta[c0 + j]
            else:
                for j in range(n):
                    dst[j] = (x[c0 + j] - mf) * g + b
            if buf != NULL:
                stream_copy(y + c0, buf, n)
            c0 += n
    if buf != NULL:
        stream_fence()


# Training forward (formulas at the top): per row m, v, rstd, then
# y = g (x - m) rstd + b. Passes over (R, D): read X, write Y: 2 (the row's
# second and third looks come from cache; Y streamed out when large).
def forward(const floating[:, ::1] X,        # IN  (R, D) rows to normalize
            const floating[::1] gamma,       # IN  (D,) layer norm, (C,) instance norm
            const floating[::1] beta,        # IN  like gamma
            int C,                           # IN  0: layer norm; else channels (instance)
            double eps,                      # IN
            floating[:, ::1] out,            # OUT (R, D) y
            floating[::1] mean,              # OUT (R,)
            floating[::1] var,               # OUT (R,) biased
            floating[::1] rstd,              # OUT (R,) (v + eps)^(-1/2)
            int nthreads):
    """Training forward of layer norm (C = 0) or instance norm (C channels)."""
    cdef Py_ssize_t R = X.shape[0], D = X.shape[1]
    cdef int nt = team_size(2 * R * D, nthreads)   # see NORMS_TEAM
    cdef Py_ssize_t t
    cdef floating* buf = NULL
    if nt > R:
        nt = <int>R
    if streams(R * D, sizeof(floating)):
        buf = <floating*>workspace(nt * CHUNK * sizeof(floating), "norms forward")
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            _forward_rows(&X[0, 0], row_start(t, nt, R), row_start(t + 1, nt, R), D,
                          &gamma[0], &beta[0], C, eps, &out[0, 0], &mean[0], &var[0],
                          &rstd[0], NULL if buf == NULL else buf + t * CHUNK)
    free(buf)
    return None


# --------------------------------------------------------------- backward
# Layer norm, rows [r0, r1): dX (and dXhat), per-row dmean/dvar, and the
# column sums sg = sum dy*xhat, sb = sum dy into double (D each), with
# float-type partials pg, pb (D each) flushed every MAX_CHUNK_ROWS rows.
cdef void _ln_backward_rows(const floating* dY, const floating* X, Py_ssize_t r0,
                            Py_ssize_t r1, Py_ssize_t D, const floating* mean,
                            const floating* rstd, const floating* gamma,
                            floating* dX, floating* dXhat, floating* dmean,
                            floating* dvar, double* sg, double* sb, floating* pg,
                            floating* pb, floating* buf) noexcept nogil:
    cdef floating mf, sf, xh, k2, k3
    cdef Py_ssize_t r, j, c0, e, n, rows = 0
    cdef Py_ssize_t step = _bwd_chunk(dX)
    cdef floating* dst
    cdef double a, b, sx, inv, dv
    cdef const floating* x
    cdef const floating* dy
    cdef floating* dx
    for j in range(D):
        sg[j] = 0.0
        sb[j] = 0.0
        pg[j] = 0
        pb[j] = 0
    for r in range(r0, r1):
        x = X + r * D
        dy = dY + r * D
        dx = dX + r * D
        mf = mean[r]
        sf = rstd[r]
        a = 0.0
        b = 0.0
        sx = 0.0
        c0 = 0
        while c0 < D:                    # sweep 1: row sums and column partials
            e = min(c0 + step, D)
            _chunk_bwd(x + c0, dy + c0, gamma + c0, e - c0, mf, sf, pg + c0, pb + c0,
                       &a, &b, &sx)
            c0 = e
        inv = <double>sf
        dv = -0.5 * inv * inv * b
        dvar[r] = <floating>dv
        # sum_j (x - m) = sum_j xhat / rstd
        dmean[r] = <floating>(-inv * a + dv * (-2.0 / D) * (sx / inv))
        k2 = <floating>(inv * a / D)
        k3 = <floating>(inv * b / D)
        c0 = 0
        while c0 < D:                    # sweep 2: from cache, by chunks
            n = min(CHUNK, D - c0)
            dst = buf if buf != NULL else dx + c0
            for j in range(n):
                xh = (x[c0 + j] - mf) * sf
                dst[j] = sf * gamma[c0 + j] * dy[c0 + j] - k2 - k3 * xh
            if buf != NULL:
                stream_copy(dx + c0, buf, n)
            c0 += n
        if dXhat != NULL:
            for j in range(D):
                dXhat[r * D + j] = dy[j] * gamma[j]
        rows += 1
        if rows == MAX_CHUNK_ROWS:
            for j in range(D):
                sg[j] += pg[j]
                sb[j] += pb[j]
                pg[j] = 0
                pb[j] = 0
            rows = 0
    for j in range(D):
        sg[j] += pg[j]
        sb[j] += pb[j]
    if buf != NULL:
        stream_fence()


# Instance norm, rows [r0, r1): one gamma per row; the row sums of dy and
# dy*xhat go to rg[r], rb[r] (double) and are added per channel afterwards.
cdef void _in_backward_rows(const floating* dY, const floating* X, Py_ssize_t r0,
                            Py_ssize_t r1, Py_ssize_t D, const floating* mean,
                            const floating* rstd, const floating* gamma, int C,
                            floating* dX, floating* dXhat, floating* dmean,
                            floating* dvar, double* rg, double* rb,
                            floating* buf) noexcept nogil:
    cdef floating mf, sf, xh, g, k1, k2, k3
    cdef Py_ssize_t r, j, c0, e, n
    cdef Py_ssize_t step = _bwd_chunk(dX)
    cdef floating* dst
    cdef double sdy, sdyx, sx, inv, dv, gd
    cdef const floating* x
    cdef const floating* dy
    cdef floating* dx
    for r in range(r0, r1):
        x = X + r * D
        dy = dY + r * D
        dx = dX + r * D
        mf = mean[r]
        sf = rstd[r]
        g = gamma[r % C]
        sdy = 0.0
        sdyx = 0.0
        sx = 0.0
        c0 = 0
        while c0 < D:                    # row sums: sum dy, sum dy*xhat, sum xhat
            e = min(c0 + step, D)
            _chunk_bwd(x + c0, dy + c0, NULL, e - c0, mf, sf, NULL, NULL,
                       &sdy, &sdyx, &sx)
            c0 = e
        rb[r] = sdy
        rg[r] = sdyx
        inv = <double>sf
        gd = <double>g
        dv = -0.5 * inv * inv * gd * sdyx
        dvar[r] = <floating>dv
        dmean[r] = <floating>(-inv * gd * sdy + dv * (-2.0 / D) * (sx / inv))
        k1 = <floating>(gd * inv)
        k2 = <floating>(gd * inv * sdy / D)
        k3 = <floating>(gd * inv * sdyx / D)
        c0 = 0
        while c0 < D:
            n = min(CHUNK, D - c0)
            dst = buf if buf != NULL else dx + c0
            for j in range(n):
                xh = (x[c0 + j] - mf) * sf
                dst[j] = k1 * dy[c0 + j] - k2 - k3 * xh
            if buf != NULL:
                stream_copy(dx + c0, buf, n)
            c0 += n
        if dXhat != NULL:
            for j in range(D):
                dXhat[r * D + j] = dy[j] * g
    if buf != NULL:
        stream_fence()


# Training backward (formulas at the top): dX, dgamma, dbeta, dmean, dvar.
# Passes over (R, D): read dY and X, write dX: 3 (sweep 2 re-reads the row
# from cache; dX streamed out when large); one more write for dXhat.
def backward(const floating[:, ::1] dY,       # IN  (R, D) upstream gradient
             const floating[:, ::1] X,        # IN  (R, D) the forward's input
             const floating[::1] mean,        # IN  (R,)
             const floating[::1] rstd,        # IN  (R,)
             const floating[::1] gamma,       # IN  (D,) or (C,)
             int C,                           # IN  0: layer norm; else channels
             floating[:, ::1] dX,             # OUT (R, D)
             floating[:, ::1] dXhat,          # OUT (R, D) g * dy, or None
             floating[::1] dgamma,            # OUT like gamma
             floating[::1] dbeta,             # OUT like gamma
             floating[::1] dmean,             # OUT (R,)
             floating[::1] dvar,              # OUT (R,)
             int nthreads):
    """Training backward of layer norm (C = 0) or instance norm (C channels)."""
    cdef Py_ssize_t R = X.shape[0], D = X.shape[1], P = gamma.shape[0]
    cdef int nt = team_size(2 * R * D, nthreads)   # see NORMS_TEAM
    cdef Py_ssize_t t, j, r
    cdef floating* dxh = NULL
    cdef floating* buf = NULL
    cdef double* ws
    cdef floating* fl
    cdef double acc, acc2
    cdef size_t sums_bytes
    if nt > R:
        nt = <int>R
    if dXhat is not None:
        dxh = &dXhat[0, 0]
    # workspace: layer norm, per thread sg, sb (D doubles each) and pg, pb (D
    # floats each); instance norm, rg, rb (R doubles each); then the
    # streaming-store buffers (CHUNK per thread) when streaming
    if C == 0:
        sums_bytes = lines(2 * nt * D * sizeof(double) + 2 * nt * D * sizeof(floating))
    else:
        sums_bytes = lines(2 * R * sizeof(double))
    if streams(R * D, sizeof(floating)):
        ws = <double*>workspace(sums_bytes + nt * CHUNK * sizeof(floating), "norms backward")
        buf = <floating*>(<char*>ws + sums_bytes)
    else:
        ws = <double*>workspace(sums_bytes, "norms backward")
    with nogil:
        if C == 0:
            fl = <floating*>(ws + 2 * nt * D)
            for t in prange(nt, schedule="static", num_threads=nt):
                _ln_backward_rows(&dY[0, 0], &X[0, 0], row_start(t, nt, R),
                                  row_start(t + 1, nt, R), D, &mean[0], &rstd[0],
                                  &gamma[0], &dX[0, 0], dxh, &dmean[0], &dvar[0],
                                  ws + 2 * t * D, ws + (2 * t + 1) * D,
                                  fl + 2 * t * D, fl + (2 * t + 1) * D,
                                  NULL if buf == NULL else buf + t * CHUNK)
            for j in range(D):
                acc = 0.0
                for t in range(nt):
                    acc = acc + ws[2 * t * D + j]
                dgamma[j] = <floating>acc
                acc = 0.0
                for t in range(nt):
                    acc = acc + ws[(2 * t + 1) * D + j]
                dbeta[j] = <floating>acc
        else:
            for t in prange(nt, schedule="static", num_threads=nt):
                _in_backward_rows(&dY[0, 0], &X[0, 0], row_start(t, nt, R),
                                  row_start(t + 1, nt, R), D, &mean[0], &rstd[0],
                                  &gamma[0], C, &dX[0, 0], dxh, &dmean[0], &dvar[0],
                                  ws, ws + R, NULL if buf == NULL else buf + t * CHUNK)
            for j in range(P):           # channel j: rows j, j + C, j + 2C, ...
                acc = 0.0
                acc2 = 0.0
                r = j
                while r < R:
                    acc = acc + ws[r]
                    acc2 = acc2 + ws[R + r]
                    r = r + C
                dgamma[j] = <floating>acc
                dbeta[j] = <floating>acc2
    free(ws)
    return None
