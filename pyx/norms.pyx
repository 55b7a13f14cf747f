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
#   forward : a row is read in chunks (4 KB, see "statistics" below): sum
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
from libc.stdlib cimport malloc, free
from _common cimport floating, row_start, stream_copy, stream_fence, streams, team_size

# NORMS_TEAM: the kernels below wake their thread team at half batch norm's
# size (team_size(2 * R * D)): a row is read three times (two statistics
# looks and the output sweep), so the loop pays for the team sooner. Measured
# float32, min of 7 x 2000 calls, 1 thread / 2 threads, fwd + bwd in us:
# 64 x 768: 21 + 34 / 12 + 24;  32 x 768: 12 + 21 / 12 + 25 (stays at 1).
# With the vector-register sums below (min of 5 x 20000 calls): 64 x 768
# 17 + 23 / 10 + 18.
cdef enum:
    CHUNK = 2048          # elements per output sweep chunk (the stream buffer)
    MAX_CHUNK_ROWS = 64   # rows per float-type column partial (layer norm backward)


# ------------------------------------------------------------- statistics
# The chunk sums run in C on 32-byte vectors (GCC/Clang vector extensions:
# AVX's ymm registers here; gcc splits them into SSE halves or scalars on
# targets without AVX, so this one code serves every build). Accumulators are
# whole registers held over the chunk, and a chunk has 32 terms per lane:
#   forward : 4 vectors per sum (32 float32 / 16 float64 lanes), chunks of
#             NNKIT_FWD_CHUNK = 128 vector lanes (1024 float32, 512 float64)
#   backward: 2 vectors per sum (three sums), chunks of NNKIT_BWD_CHUNK =
#             64 vector lanes (512 float32, 256 float64)
# then the lanes of a chunk go to double, folded pairwise. Leftovers (fewer
# than a loop's step) go one by one to one scalar of the input type.
# The first version kept LANES = 64 partials in stack arrays: the loop loaded
# and stored every accumulator on every element, 5 stores per 8 elements in
# the backward (perf annotate), 29 us for a 64 x 768 float32 backward.
cdef extern from *:
    """
    #include <string.h>
    typedef float nnkit_vf __attribute__((vector_size(32)));
    typedef double nnkit_vd __attribute__((vector_size(32)));

    #define NNKIT_NORM_KERNELS(SUF, T, VEC)                                      \\
    enum { NNKIT_VL_##SUF = 32 / sizeof(T) };                                   \\
    static inline VEC nnkit_ld_##SUF(const T* p) { VEC v; memcpy(&v, p, 32); return v; } \\
    static inline void nnkit_st_##SUF(T* p, VEC v) { memcpy(p, &v, 32); }       \\
    /* the lanes of v, pairwise, in double */                                   \\
    static inline double nnkit_fold_##SUF(VEC v) {                              \\
        double t[NNKIT_VL_##SUF];                                               \\
        for (int i = 0; i < NNKIT_VL_##SUF; i++) t[i] = (double)v[i];           \\
        for (int w = NNKIT_VL_##SUF / 2; w >= 1; w /= 2)                        \\
            for (int i = 0; i < w; i++) t[i] = t[i] + t[i + w];                 \\
        return t[0];                                                            \\
    }                                                                           \\
    /* sum of x[0:n], n <= 128 VL: 4 vector accumulators */                     \\
    static double nnkit_chunk_sum_##SUF(const T* x, Py_ssize_t n) {             \\
        const Py_ssize_t L = NNKIT_VL_##SUF;                                    \\
        VEC s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                             \\
        T tail = 0;                                                             \\
        Py_ssize_t j = 0;                                                       \\
        for (; j + 4 * L <= n; j += 4 * L) {                                    \\
            s0 += nnkit_ld_##SUF(x + j);         s1 += nnkit_ld_##SUF(x + j + L); \\
            s2 += nnkit_ld_##SUF(x + j + 2 * L); s3 += nnkit_ld_##SUF(x + j + 3 * L); \\
        }                                                                       \\
        for (; j < n; j++) tail += x[j];                                        \\
        return nnkit_fold_##SUF((s0 + s1) + (s2 + s3)) + (double)tail;          \\
    }                                                                           \\
    /* *s1 = sum (x - c), *s2 = sum (x - c)^2 over x[0:n], n <= 128 VL */      \\
    static void nnkit_chunk_centred_##SUF(const T* x, Py_ssize_t n, T c,        \\
                                          double* s1, double* s2) {             \\
        const Py_ssize_t L = NNKIT_VL_##SUF;                                    \\
        VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                             \\
        VEC q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};                             \\
        T ta = 0, tq = 0;                                                       \\
        Py_ssize_t j = 0;                                                       \\
        for (; j + 4 * L <= n; j += 4 * L) {                                    \\
            VEC d0 = nnkit_ld_##SUF(x + j) - c;                                 \\
            VEC d1 = nnkit_ld_##SUF(x + j + L) - c;                             \\
            VEC d2 = nnkit_ld_##SUF(x + j + 2 * L) - c;                         \\
            VEC d3 = nnkit_ld_##SUF(x + j + 3 * L) - c;                         \\
            a0 += d0; a1 += d1; a2 += d2; a3 += d3;                             \\
            q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3;         \\
        }                                                                       \\
        for (; j < n; j++) { T d = x[j] - c; ta += d; tq += d * d; }            \\
        *s1 = nnkit_fold_##SUF((a0 + a1) + (a2 + a3)) + (double)ta;             \\
        *s2 = nnkit_fold_##SUF((q0 + q1) + (q2 + q3)) + (double)tq;             \\
    }                                                                           \\
    /* backward sweep 1 over x[0:n], dy[0:n], n <= 64 VL, xh = (x - m) s:      \\
       *a += sum w dy, *b += sum w dy xh, *sx += sum xh, with w = g[j] (layer   \\
       norm) or 1 (g NULL: instance norm); when pg is not NULL also the column  \\
       partials pg[j] += dy xh, pb[j] += dy (layer norm's dgamma, dbeta) */     \\
    static void nnkit_chunk_bwd_##SUF(const T* x, const T* dy, const T* g,      \\
                                      Py_ssize_t n, T m, T s, T* pg, T* pb,     \\
                                      double* a, double* b, double* sx) {       \\
        const Py_ssize_t L = NNKIT_VL_##SUF;                                    \\
        VEC a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, x0 = {0}, x1 = {0};         \\
        T ta = 0, tb = 0, tx = 0;                                               \\
        Py_ssize_t j = 0;                                                       \\
        if (g != NULL) {                                                        \\
            for (; j + 2 * L <= n; j += 2 * L) {                                \\
                VEC h0 = (nnkit_ld_##SUF(x + j) - m) * s;                       \\
                VEC h1 = (nnkit_ld_##SUF(x + j + L) - m) * s;                   \\
                VEC y0 = nnkit_ld_##SUF(dy + j), y1 = nnkit_ld_##SUF(dy + j + L); \\
                VEC w0 = y0 * nnkit_ld_##SUF(g + j);                            \\
                VEC w1 = y1 * nnkit_ld_##SUF(g + j + L);                        \\
                a0 += w0; a1 += w1; b0 += w0 * h0; b1 += w1 * h1;               \\
                x0 += h0; x1 += h1;                                             \\
                nnkit_st_##SUF(pg + j, nnkit_ld_##SUF(pg + j) + y0 * h0);       \\
                nnkit_st_##SUF(pg + j + L, nnkit_ld_##SUF(pg + j + L) + y1 * h1); \\
                nnkit_st_##SUF(pb + j, nnkit_ld_##SUF(pb + j) + y0);            \\
                nnkit_st_##SUF(pb + j + L, nnkit_ld_##SUF(pb + j + L) + y1);    \\
            }                                                                   \\
            for (; j < n; j++) {                                                \\
                T h = (x[j] - m) * s, w = dy[j] * g[j];                         \\
                ta += w; tb += w * h; tx += h;                                  \\
                pg[j] += dy[j] * h; pb[j] += dy[j];                             \\
            }                                                                   \\
        } else {                                                                \\
            for (; j + 2 * L <= n; j += 2 * L) {                                \\
                VEC h0 = (nnkit_ld_##SUF(x + j) - m) * s;                       \\
                VEC h1 = (nnkit_ld_##SUF(x + j + L) - m) * s;                   \\
                VEC y0 = nnkit_ld_##SUF(dy + j), y1 = nnkit_ld_##SUF(dy + j + L); \\
                a0 += y0; a1 += y1; b0 += y0 * h0; b1 += y1 * h1;               \\
                x0 += h0; x1 += h1;                                             \\
            }                                                                   \\
            for (; j < n; j++) {                                                \\
                T h = (x[j] - m) * s;                                           \\
                ta += dy[j]; tb += dy[j] * h; tx += h;                          \\
            }                                                                   \\
        }                                                                       \\
        *a += nnkit_fold_##SUF(a0 + a1) + (double)ta;                           \\
        *b += nnkit_fold_##SUF(b0 + b1) + (double)tb;                           \\
        *sx += nnkit_fold_##SUF(x0 + x1) + (double)tx;                          \\
    }
    NNKIT_NORM_KERNELS(f, float, nnkit_vf)
    NNKIT_NORM_KERNELS(d, double, nnkit_vd)
    #define NNKIT_FWD_CHUNK_F (128 * NNKIT_VL_f)
    #define NNKIT_FWD_CHUNK_D (128 * NNKIT_VL_d)
    #define NNKIT_BWD_CHUNK_F (64 * NNKIT_VL_f)
    #define NNKIT_BWD_CHUNK_D (64 * NNKIT_VL_d)
    """
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
        buf = <floating*>malloc(nt * CHUNK * sizeof(floating))
        if buf == NULL:
            raise MemoryError("norms forward: no memory for the stream buffer")
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
    if nt > R:
        nt = <int>R
    if dXhat is not None:
        dxh = &dXhat[0, 0]
    if C == 0:
        # per thread: sg, sb (D doubles each) and pg, pb (D floats each)
        ws = <double*>malloc(2 * nt * D * sizeof(double) + 2 * nt * D * sizeof(floating))
    else:
        # rg, rb: R doubles each
        ws = <double*>malloc(2 * R * sizeof(double))
    if ws == NULL:
        raise MemoryError("norms backward: no memory for the workspace")
    if streams(R * D, sizeof(floating)):
        buf = <floating*>malloc(nt * CHUNK * sizeof(floating))
        if buf == NULL:
            free(ws)
            raise MemoryError("norms backward: no memory for the stream buffer")
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
    free(buf)
    free(ws)
    return None
