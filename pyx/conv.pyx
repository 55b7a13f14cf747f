# Convolution (P3): the output-size arithmetic, and im2col + GEMM
# convolution, on nnkit's tile kernel by blocks of output positions (the
# float32 forward and the backward), else on BLAS. Pooling: pyx/pool.pyx.
#
# Layout is PyTorch's NCHW: X (B, C, H, W), W (C_out, C_in, kh, kw) seen as
# the matrix Wm (C_out, K) with K = C_in*kh*kw, Y (B, C_out, H'*W').
# Output size per spatial axis (floor semantics, P3 with dilation):
#   n' = floor((n + 2p - d(k - 1) - 1) / s) + 1
# which for d = 1 is P3's floor((n + 2p - k)/s) + 1.
#
# Called only from nnkit.conv, which has already checked shapes, dtypes,
# contiguity and the geometry (every output size >= 1) and allocated every
# output and workspace; nothing here raises on bad input.

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset
from libc.stdint cimport uintptr_t
from _common cimport floating, gemm_rowmajor
from _tile cimport (NNKIT_PANEL_D, NNKIT_PANEL_F, NNKIT_TILE_WIDE, nnkit_plain_gemm_d,
                   nnkit_plain_gemm_f)

# The calls into the tile kernel, and the panel row copy: pyx/include/nnkit_conv.h.
cdef extern from "nnkit_conv.h":
    # d[0:16] = s[0:16]: one float32 panel row (64 bytes)
    void nnkit_copy64_f(float* d, const float* s) noexcept nogil
    # out[:, 0:jb] (+)= V (B, K) op(W)[:, 0:jb], op(W) packed in P
    void nnkit_conv_tile_f(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t jb,
                           const float* V, const float* P, int acc, float* out) noexcept nogil
    void nnkit_conv_tile_d(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t jb,
                           const double* V, const double* P, int acc, double* out) noexcept nogil


# ----------------------------------------------------------- shape logic
# Geometry status codes (nnkit.conv_shapes turns them into messages that
# show the formula with every term filled in).
GEOM_OK = 0
GEOM_SIZE = 1        # input size < 1
GEOM_KERNEL = 2      # kernel < 1
GEOM_STRIDE = 3      # stride < 1
GEOM_DILATION = 4    # dilation < 1
GEOM_PADDING = 5     # padding < 0
GEOM_EMPTY = 6       # effective kernel larger than the padded input: n' <= 0


cdef inline long long _floordiv(long long a, long long b) noexcept nogil:
    """floor(a / b) for b > 0 (C division truncates toward zero)."""
    if a >= 0:
        return a // b
    return -((-a + b - 1) // b)


cdef inline long long out_dim(long long n, long long k, long long s, long long p,
                              long long d) noexcept nogil:
    """n' = floor((n + 2p - d(k-1) - 1)/s) + 1 (may be <= 0: checked by callers)."""
    return _floordiv(n + 2 * p - d * (k - 1) - 1, s) + 1


cpdef long long output_size(long long n, long long k, long long s=1, long long p=0,
                            long long d=1):
    """The floor-semantics output size of one spatial axis (s >= 1 required)."""
    if s < 1:
        return 0
    return out_dim(n, k, s, p, d)


cpdef int geometry_status(long long n, long long k, long long s, long long p,
                          long long d):
    """GEOM_OK or the first thing wrong with one axis's geometry."""
    if n < 1:
        return GEOM_SIZE
    if k < 1:
        return GEOM_KERNEL
    if s < 1:
        return GEOM_STRIDE
    if d < 1:
        return GEOM_DILATION
    if p < 0:
        return GEOM_PADDING
    if out_dim(n, k, s, p, d) < 1:
        return GEOM_EMPTY
    return GEOM_OK


# ------------------------------------------------------------- im2col
# The output columns [lo, hi) whose input column ow*sw + off lies inside the
# row (0 <= ow*sw + off <= W-1); the rest read padding. Empty: lo == hi.
cdef inline void _inside(Py_ssize_t off, int sw, Py_ssize_t W, Py_ssize_t Wo,
                         Py_ssize_t* lo_out, Py_ssize_t* hi_out) noexcept nogil:
    cdef Py_ssize_t lo = 0 if off >= 0 else (-off + sw - 1) // sw
    cdef Py_ssize_t hi = (W - 1 - off) // sw + 1 if W - 1 - off >= 0 else 0
    if hi > Wo:
        hi = Wo
    if lo > hi:
        lo = hi
    lo_out[0] = lo
    hi_out[0] = hi


# col (K, H'W') for one sample: row r = (c, i, j) holds, for every output
# position (oh, ow), x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 in the
# padding). One read of the input per kernel tap, one write of col
# (K * H'W' values); stride 1 rows are contiguous copies.
cdef void _im2col(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                  int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                  Py_ssize_t Ho, Py_ssize_t Wo, floating* col) noexcept nogil:
    cdef Py_ssize_t c, i, j, oh, ow, ih, off, lo, hi, L = Ho * Wo
    cdef floating* dst
    cdef const floating* src
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pw
                _inside(off, sw, W, Wo, &lo, &hi)
                for oh in range(Ho):
                    dst = col + ((c * kh + i) * kw + j) * L + oh * Wo
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        memset(dst, 0, Wo * sizeof(floating))
                        continue
                    for ow in range(lo):
                        dst[ow] = 0
                    if hi > lo:
                        src = x + (c * H + ih) * W + lo * sw + off   # the tap of ow = lo
                        if sw == 1:
                            memcpy(dst + lo, src, (hi - lo) * sizeof(floating))
                        else:
                            for ow in range(hi - lo):
                                dst[lo + ow] = src[ow * sw]
                    for ow in range(hi, Wo):
                        dst[ow] = 0


# col2im: dx = 0, then dx[c, ih, iw] += dcol[(c,i,j), (oh,ow)] for every tap
# inside the input (the adjoint of im2col). One write of dx, one read of dcol,
# K*H'W' read-modify-writes of dx (in cache: one plane row at a time).
cdef void _col2im(const floating* dcol, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                  int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                  Py_ssize_t Ho, Py_ssize_t Wo, floating* dx) noexcept nogil:
    cdef Py_ssize_t c, i, j, oh, ow, ih, off, lo, hi, L = Ho * Wo
    cdef const floating* src
    cdef floating* dst
    memset(dx, 0, C * H * W * sizeof(floating))
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pw
                _inside(off, sw, W, Wo, &lo, &hi)
                for oh in range(Ho):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    if hi <= lo:
                        continue
                    src = dcol + ((c * kh + i) * kw + j) * L + oh * Wo + lo
                    dst = dx + (c * H + ih) * W + lo * sw + off      # the tap of ow = lo
                    if sw == 1:
                        for ow in range(hi - lo):
                            dst[ow] += src[ow]
                    else:
                        for ow in range(hi - lo):
                            dst[ow * sw] += src[ow]


# ------------------------------------------------ im2col into panels
# The implicit GEMM (where the build has the tile kernel,
# pyx/include/nnkit_tile.h): im2col writes its (K, L) columns, a block of
# output positions at a time, straight into the tile kernel's packed layout
# (panels of pw columns, each a contiguous (K, pw) block; the L mod pw
# columns left over as one (K, rest) block), and the kernel multiplies Wm
# (C_out, K) by the block while it sits in L2: no separate packing pass, no
# (K, L) matrix in L3, and a product that keeps a tile of Y in registers
# over all of K (BLAS would pack both operands again on every call).
cdef inline Py_ssize_t _panel_width(floating* unused) noexcept nogil:
    """Columns per packed panel of the implicit GEMM; 0 (im2col + BLAS) in a
    build without the tile kernel, and for float64 under AVX2, where dgemm
    is faster than the 256-bit kernel (the 512-bit one beats it)."""
    if floating is float:
        return NNKIT_PANEL_F
    else:
        return NNKIT_PANEL_D if NNKIT_TILE_WIDE else 0


# Columns l .. l+n-1 of row k of a packed block = src[0], src[ss], ...
# (zeros when src is NULL). The block: panels of pw columns, each a (K, pw)
# block (pw = the panel width), or one (K, pw) row-major block (pw = the
# leftover width): either way column l sits at P + (l - l%pw)*K + k*pw + l%pw.
cdef inline void _put_run(floating* P, Py_ssize_t K, Py_ssize_t pw, Py_ssize_t k,
                          Py_ssize_t l, const floating* src, Py_ssize_t ss,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t q = l % pw, m, a       # one division a run: later chunks start panels
    cdef floating* dst
    while n > 0:
        m = min(pw - q, n)
        dst = P + (l - q) * K + k * pw + q
        if src == NULL:
            for a in range(m):
                dst[a] = 0
        else:
            if floating is float and ss == 1 and m == 16:
                nnkit_copy64_f(dst, src)
            elif ss == 1:
                for a in range(m):
                    dst[a] = src[a]
            else:
                for a in range(m):
                    dst[a] = src[a * ss]
            src += m * ss
        l += m
        n -= m
        q = 0


# The packed columns l0 .. l0+nb-1 of one sample's im2col (row r = (c, i, j)
# holds, for every output position (oh, ow), x[c, oh*sh - ph + i*dh,
# ow*sw - pw + j*dw], 0 in the padding) into P: panels of `width` columns
# (nb a multiple of it), or, for the leftover columns, one (K, nb) block
# (width = nb). Each output row the block touches is one run from x between
# two runs of padding zeros.
cdef void _pack_columns(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                        Py_ssize_t Wo, Py_ssize_t l0, Py_ssize_t nb, Py_ssize_t width,
                        floating* P) noexcept nogil:
    cdef Py_ssize_t c, i, j, k, oh, ih, off, lo, hi, a, b, u, v, l
    cdef Py_ssize_t K = C * kh * kw, oh0 = l0 // Wo, oh1 = (l0 + nb - 1) // Wo
    cdef const floating* plane
    for c in range(C):
        plane = x + c * H * W
        for i in range(kh):
            for j in range(kw):
                k = (c * kh + i) * kw + j
                off = j * dw - pw
                _inside(off, sw, W, Wo, &lo, &hi)
                for oh in range(oh0, oh1 + 1):
                    a = l0 - oh * Wo if oh == oh0 else 0          # this row's ow range [a, b)
                    b = l0 + nb - oh * Wo if oh == oh1 else Wo
                    l = oh * Wo + a - l0                          # its first column in P
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        _put_run(P, K, width, k, l, NULL, 1, b - a)
                        continue
                    u = max(a, lo)                                # inside: [u, v)
                    v = min(b, hi)
                    if u >= v:
                        _put_run(P, K, width, k, l, NULL, 1, b - a)
                        continue
                    if u > a:
                        _put_run(P, K, width, k, l, NULL, 1, u - a)
                    _put_run(P, K, width, k, l + u - a, plane + ih * W + u * sw + off, sw,
                             v - u)
                    if b > v:
                        _put_run(P, K, width, k, l + v - a, NULL, 1, b - v)


# _pack_columns when the rows of the output and of the input line up (see
# _gather_flat below): per row of col, one long run of the plane at a flat
# shift between padding zeros, then the taps off the row's ends set to 0.
cdef void _pack_flat(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     int kh, int kw, int ph, int pw, int dh, int dw,
                     Py_ssize_t l0, Py_ssize_t nb, Py_ssize_t width,
                     floating* P) noexcept nogil:
    cdef Py_ssize_t c, i, j, k, t, delta, la, lb, lo, hi, oh, ow
    cdef Py_ssize_t K = C * kh * kw
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                k = (c * kh + i) * kw + j
                delta = _flat_tap(H, W, i, j, ph, pw, dh, dw, l0, nb, &la, &lb, &lo, &hi)
                if la >= lb:
                    _put_run(P, K, width, k, 0, NULL, 1, nb)
                    continue
                _put_run(P, K, width, k, 0, NULL, 1, la - l0)
                _put_run(P, K, width, k, la - l0, x + c * H * W + delta + la, 1, lb - la)
                _put_run(P, K, width, k, lb - l0, NULL, 1, l0 + nb - lb)
                if lo == 0 and hi == W:
                    continue
                for oh in range(l0 // W, (l0 + nb - 1) // W + 1):
                    for ow in range(lo):
                        t = oh * W + ow - l0
                        if 0 <= t < nb:
                            P[(t - t % width) * K + k * width + t % width] = 0
                    for ow in range(hi, W):
                        t = oh * W + ow - l0
                        if 0 <= t < nb:
                            P[(t - t % width) * K + k * width + t % width] = 0


# The tile kernel loads a panel row as 64-byte vectors (AVX-512): unless the
# panel starts on a cache line, every load straddles two. The workspaces are
# NumPy arrays (16-byte aligned), so each buffer that holds panels starts at
# the next 64-byte boundary inside its workspace, whose size carries
# ALIGN_BYTES of slack per buffer.
cdef enum:
    ALIGN_BYTES = 64


cdef inline floating* _aligned(floating* p) noexcept nogil:
    return <floating*>((<uintptr_t>p + (ALIGN_BYTES - 1)) & ~(<uintptr_t>(ALIGN_BYTES - 1)))


cdef inline Py_ssize_t block_columns(Py_ssize_t K, Py_ssize_t width) noexcept nogil:
    """Output positions per packed block of the implicit GEMM: about 64K
    values (256 KB float32, half of L2: the block stays in L2 while it is
    multiplied), whole panels, at least one."""
    cdef Py_ssize_t n = (65536 // K) // width * width if width > 0 else 0
    return n if n > width else width


# y (Co, L) (+)= Wm (Co, K) im2col(x) by blocks of output positions: each
# block's columns packed into buf (block_columns(K, width) * K values; by
# flat shift when the rows line up, else one run per output row), then
# multiplied while they sit in L2; the L mod width positions left over as
# one (K, rest) block through the plain loop. The flat packing copies one
# long run per row of the block instead of one short run per output row.
cdef void _implicit_gemm(const floating* x, const floating* Wm, Py_ssize_t C, Py_ssize_t H,
                         Py_ssize_t W, Py_ssize_t Co, int kh, int kw, int sh, int sw,
                         int ph, int pw, int dh, int dw, Py_ssize_t Ho, Py_ssize_t Wo,
                         Py_ssize_t width, bint accumulate, floating* buf,
                         floating* y) noexcept nogil:
    cdef Py_ssize_t L = Ho * Wo, K = C * kh * kw, Lf = L - L % width, l0, nb
    cdef Py_ssize_t NB = block_columns(K, width)
    buf = _aligned(buf)
    cdef bint flat = sh == 1 and sw == 1 and Wo == W
    l0 = 0
    while l0 < Lf:
        nb = min(NB, Lf - l0)
        if flat:
            _pack_flat(x, C, H, W, kh, kw, ph, pw, dh, dw, l0, nb, width, buf)
        else:
            _pack_columns(x, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Wo, l0, nb, width, buf)
        if floating is float:
            nnkit_conv_tile_f(Co, K, L, nb, Wm, buf, accumulate, y + l0)
        else:
            nnkit_conv_tile_d(Co, K, L, nb, Wm, buf, accumulate, y + l0)
        l0 += nb
    if Lf < L:
        if flat:
            _pack_flat(x, C, H, W, kh, kw, ph, pw, dh, dw, Lf, L - Lf, L - Lf, buf)
        else:
            _pack_columns(x, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Wo, Lf, L - Lf, L - Lf,
                          buf)
        if floating is float:
            nnkit_plain_gemm_f(Co, K, L, Lf, Wm, buf, accumulate, y)
        else:
            nnkit_plain_gemm_d(Co, K, L, Lf, Wm, buf, accumulate, y)


cdef inline bint _is_pointwise(int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil:
    """A 1x1 stride-1 unpadded conv: col is x itself (no im2col copy)."""
    return kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0


# ------------------------------------------------------ conv2d forward
# Per sample n:  col = im2col(x_n) (K x L);  y_n = b 1ᵀ + Wm col  (C_out x L).
# Passes: im2col (reads x kh*kw times, writes col once; the implicit GEMM
# keeps col in L2 a block at a time), one write of y_n with b, and the GEMM,
# 2*C_out*K*L flops, accumulating into it (beta = 1).
cdef void _forward_one(const floating* x, const floating* Wm, const floating* b,
                       Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Co,
                       int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                       Py_ssize_t Ho, Py_ssize_t Wo, bint tiled, floating* col,
                       floating* y) noexcept nogil:
    cdef Py_ssize_t L = Ho * Wo, K = C * kh * kw, o, l
    cdef Py_ssize_t width = _panel_width(col) if tiled else 0
    cdef const floating* cm = x
    for o in range(Co):
        for l in range(L):
            y[o * L + l] = b[o]
    if width > 0:
        # the implicit GEMM; col: the packed block (see _implicit_gemm)
        _implicit_gemm(x, Wm, C, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, width,
                       True, col, y)
        return
    if not _is_pointwise(kh, kw, sh, sw, ph, pw):
        _im2col(x, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, col)
        cm = col
    gemm_rowmajor(False, False, <int>Co, <int>L, <int>K, <floating>1.0, Wm, <int>K,
                  cm, <int>L, <floating>1.0, y, <int>L)


# The forward of every sample (formula and passes above, at "conv2d forward").
def conv2d_forward(const floating[:, :, :, ::1] X,    # IN  (B, C, H, W)
                   const floating[:, ::1] Wm,         # IN  (C_out, K)
                   const floating[::1] b,             # IN  (C_out,) (zeros: no bias)
                   int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                   floating[:, :, ::1] Y,             # OUT (B, C_out, H'W')
                   floating[::1] col,                 # workspace: T blocks of col_size
                   Py_ssize_t col_size,               # IN  each block: the packed block, or K*L
                   bint tiled, int nthreads):
    """tiled: the implicit GEMM where _panel_width allows it (chosen in
    nnkit.conv), else im2col + BLAS. nthreads > 1: samples split over an
    OpenMP team, thread t using its block of col and single-threaded BLAS
    calls; 1: samples in order, BLAS's own threads."""
    cdef Py_ssize_t B = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef Py_ssize_t Co = Wm.shape[0], n
    cdef Py_ssize_t Ho = out_dim(H, kh, sh, ph, dh), Wo = out_dim(W, kw, sw, pw, dw)
    cdef int t
    if nthreads <= 1 or B == 1:
        with nogil:
            for n in range(B):
                _forward_one(&X[n, 0, 0, 0], &Wm[0, 0], &b[0], C, H, W, Co, kh, kw,
                             sh, sw, ph, pw, dh, dw, Ho, Wo, tiled, &col[0], &Y[n, 0, 0])
    else:
        for n in prange(B, nogil=True, schedule="static", num_threads=nthreads):
            t = threadid()
            _forward_one(&X[n, 0, 0, 0], &Wm[0, 0], &b[0], C, H, W, Co, kh, kw,
                         sh, sw, ph, pw, dh, dw, Ho, Wo, tiled, &col[t * col_size],
                         &Y[n, 0, 0])


# ----------------------------------------------------- conv2d backward
# Per sample n, with col = im2col(x_n) recomputed (storing every sample's col
# would cost K/C_in times the input's memory):
#   dW  += dy_n colᵀ          (C_out x K, GEMM 2*C_out*K*L flops)
#   dcol = Wmᵀ dy_n           (K x L,     GEMM 2*C_out*K*L flops)
#   dx_n = col2im(dcol)
#   db  += Σ_l dy_n[:, l]     (double accumulators)
# Thread t accumulates into dWacc[t] and dbacc[t]; summed at the end.
# Two ways to run it (`tiled`, chosen in nnkit.conv):
# - BLAS: the whole (K, L) col and dcol of a sample, two GEMMs, col2im.
# - tiled (both dtypes, where the build has the tile kernel): the same
#   products a block of output positions at a time (_backward_tiled): no
#   (K, L) matrix in L3, no BLAS packing copies.
cdef inline void _db_sums(const floating* dy, Py_ssize_t Co, Py_ssize_t L,
                          double* dbacc) noexcept nogil:
    """dbacc[o] += Σ_l dy[o, l] in double, four partial sums (one sum alone
    waits on each add's latency: 4 cycles a value)."""
    cdef Py_ssize_t o, l
    cdef double s0, s1, s2, s3
    cdef const floating* d
    for o in range(Co):
        d = dy + o * L
        s0 = s1 = s2 = s3 = 0.0
        l = 0
        while l + 4 <= L:
            s0 = s0 + d[l]
            s1 = s1 + d[l + 1]
            s2 = s2 + d[l + 2]
            s3 = s3 + d[l + 3]
            l += 4
        while l < L:
            s0 = s0 + d[l]
            l += 1
        dbacc[o] += (s0 + s1) + (s2 + s3)


cdef void _backward_one(const floating* dy, const floating* x, const floating* Wm,
                        Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Co,
                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                        Py_ssize_t Ho, Py_ssize_t Wo, floating* dx,
                        floating* col, floating* dcol, floating* dWacc,
                        double* dbacc) noexcept nogil:
    cdef Py_ssize_t L = Ho * Wo, K = C * kh * kw
    cdef const floating* cm = x
    cdef bint pointwise = _is_pointwise(kh, kw, sh, sw, ph, pw)
    if not pointwise:
        _im2col(x, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, col)
        cm = col
    gemm_rowmajor(False, True, <int>Co, <int>K, <int>L, <floating>1.0, dy, <int>L,
                  cm, <int>L, <floating>1.0, dWacc, <int>K)
    if pointwise:
        gemm_rowmajor(True, False, <int>K, <int>L, <int>Co, <floating>1.0, Wm, <int>K,
                      dy, <int>L, <floating>0.0, dx, <int>L)
    else:
        gemm_rowmajor(True, False, <int>K, <int>L, <int>Co, <floating>1.0, Wm, <int>K,
                      dy, <int>L, <floating>0.0, dcol, <int>L)
        _col2im(dcol, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, dx)
    _db_sums(dy, Co, L, dbacc)


# The (R, N) matrix src[r*rs + c*cs] in the tile kernel's packed layout
# (pyx/include/nnkit_tile.h): panels of pw columns, each a contiguous (R, pw) block,
# then the N mod pw columns left over as one (R, rest) row-major block. The
# loop runs along whichever of rows and columns is contiguous in src.
cdef void _pack_panels(const floating* src, Py_ssize_t rs, Py_ssize_t cs, Py_ssize_t R,
                       Py_ssize_t N, Py_ssize_t pw, floating* P) noexcept nogil:
    cdef Py_ssize_t Np = N - N % pw, rest = N - Np, r, c, q
    cdef floating* dst
    cdef const floating* s
    c = 0
    while c < Np:                                    # panel c / pw
        dst = P + c * R
        s = src + c * cs
        if cs == 1:
            for r in range(R):
                for q in range(pw):
                    dst[r * pw + q] = s[r * rs + q]
        else:
            for q in range(pw):
                for r in range(R):
                    dst[r * pw + q] = s[r * rs + q * cs]
        c += pw
    if rest > 0:                                     # the leftover block
        dst = P + Np * R
        s = src + Np * cs
        if cs == 1:
            for r in range(R):
                for q in range(rest):
                    dst[r * rest + q] = s[r * rs + q]
        else:
            for q in range(rest):
                for r in range(R):
                    dst[r * rest + q] = s[r * rs + q * cs]


# im2col of a block: D (K, nb) row-major = the columns l0 .. l0+nb-1 of
# im2col(x_n) (0 in the padding); the adjoint of _scatter_columns below.
cdef void _gather_columns(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                          int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                          Py_ssize_t Wo, Py_ssize_t l0, Py_ssize_t nb,
                          floating* D) noexcept nogil:
    cdef Py_ssize_t c, i, j, k, oh, ih, off, lo, hi, a, b, u, v, t
    cdef Py_ssize_t oh0 = l0 // Wo, oh1 = (l0 + nb - 1) // Wo
    cdef const floating* s
    cdef floating* d
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                k = (c * kh + i) * kw + j
                off = j * dw - pw
                _inside(off, sw, W, Wo, &lo, &hi)
                for oh in range(oh0, oh1 + 1):
                    a = l0 - oh * Wo if oh == oh0 else 0          # this row's ow range [a, b)
                    b = l0 + nb - oh * Wo if oh == oh1 else Wo
                    # pointers only ever to elements inside their arrays (one
                    # before the start, even unread, is undefined in C, and gcc
                    # once compiled such a loop into reads before x)
                    d = D + k * nb + oh * Wo + a - l0             # column of (oh, a)
                    ih = oh * sh - ph + i * dh
                    u = max(a, lo)                                # inside: [u, v)
                    v = min(b, hi)
                    if ih < 0 or ih >= H or u >= v:
                        for t in range(b - a):
                            d[t] = 0
                        continue
                    for t in range(u - a):
                        d[t] = 0
                    s = x + (c * H + ih) * W + u * sw + off       # the tap of (oh, u)
                    if sw == 1:
                        for t in range(v - u):
                            d[u - a + t] = s[t]
                    else:
                        for t in range(v - u):
                            d[u - a + t] = s[t * sw]
                    for t in range(v - a, b - a):
                        d[t] = 0


# The block's rows when the rows of the output and of the input line up
# (stride 1 and W' = W, "same" padding along W: the benchmark shapes): row
# (c,i,j) of the block reads the plane at one flat shift,
#   D[(c,i,j), l - l0] = x_c[l + δ],  δ = (i dh - ph) W + j dw - pw,
# except the taps that fall off a row's ends (ow + j dw - pw outside
# [0, W)) and the rows above and below the plane, which are padding. So a
# row is one long copy instead of one short run per output row (at small W'
# a run's loop overhead costs as much as its copy). [la, lb): the
# positions whose tap is inside the plane's rows and flat extent.
cdef inline Py_ssize_t _flat_tap(Py_ssize_t H, Py_ssize_t W, Py_ssize_t i, Py_ssize_t j,
                                 int ph, int pw, int dh, int dw, Py_ssize_t l0, Py_ssize_t nb,
                                 Py_ssize_t* la, Py_ssize_t* lb, Py_ssize_t* lo,
                                 Py_ssize_t* hi) noexcept nogil:
    """δ of tap (i, j); [la, lb) as above (empty: la >= lb); [lo, hi) the
    output columns whose tap is inside the row (_inside)."""
    cdef Py_ssize_t off = j * dw - pw
    cdef Py_ssize_t delta = (i * dh - ph) * W + off
    la[0] = max(max(l0, (ph - i * dh) * W), -delta)
    lb[0] = min(min(l0 + nb, (H + ph - i * dh) * W), H * W - delta)
    _inside(off, 1, W, W, lo, hi)
    return delta


# D[(c,i,j), t] = 0 for the block's positions whose tap falls off the row's
# ends: ow in [0, lo) or [hi, W) (W' = W), t = l - l0.
cdef inline void _zero_row_ends(floating* d, Py_ssize_t W, Py_ssize_t lo, Py_ssize_t hi,
                                Py_ssize_t l0, Py_ssize_t nb) noexcept nogil:
    cdef Py_ssize_t oh, ow, t
    if lo == 0 and hi == W:
        return
    for oh in range(l0 // W, (l0 + nb - 1) // W + 1):
        for ow in range(lo):
            t = oh * W + ow - l0
            if 0 <= t < nb:
                d[t] = 0
        for ow in range(hi, W):
            t = oh * W + ow - l0
            if 0 <= t < nb:
                d[t] = 0


cdef void _gather_flat(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                       int kh, int kw, int ph, int pw, int dh, int dw,
                       Py_ssize_t l0, Py_ssize_t nb, floating* D) noexcept nogil:
    cdef Py_ssize_t c, i, j, t, delta, la, lb, lo, hi
    cdef floating* d
    cdef const floating* s
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                d = D + ((c * kh + i) * kw + j) * nb
                delta = _flat_tap(H, W, i, j, ph, pw, dh, dw, l0, nb, &la, &lb, &lo, &hi)
                if la >= lb:
                    la = lb = l0
                for t in range(la - l0):
                    d[t] = 0
                s = x + c * H * W + delta + la                # the tap of position la
                for t in range(lb - la):
                    d[la - l0 + t] = s[t]
                for t in range(lb - l0, nb):
                    d[t] = 0
                _zero_row_ends(d, W, lo, hi, l0, nb)


# dx_c[l + δ] += D[(c,i,j), l - l0] over [la, lb): the adjoint of
# _gather_flat. The row ends of D are zeroed first, so the taps that fall
# off a row add 0 to the neighbouring row's end instead of being skipped
# one short run at a time.
cdef void _scatter_flat(floating* D, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                        int kh, int kw, int ph, int pw, int dh, int dw,
                        Py_ssize_t l0, Py_ssize_t nb, floating* dx) noexcept nogil:
    cdef Py_ssize_t c, i, j, t, delta, la, lb, lo, hi
    cdef floating* d
    cdef floating* s
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                d = D + ((c * kh + i) * kw + j) * nb
                delta = _flat_tap(H, W, i, j, ph, pw, dh, dw, l0, nb, &la, &lb, &lo, &hi)
                if la >= lb:
                    continue
                _zero_row_ends(d, W, lo, hi, l0, nb)
                s = dx + c * H * W + delta + la               # the tap of position la
                for t in range(lb - la):
                    s[t] += d[la - l0 + t]


# col2im of a block: dx[c, ih, iw] += D[(c,i,j), l - l0] for the output
# positions l0 .. l0+nb-1 and every tap inside the input, D (K, nb)
# row-major (the adjoint of _pack_columns with width = nb).
cdef void _scatter_columns(const floating* D, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                           Py_ssize_t Wo, Py_ssize_t l0, Py_ssize_t nb,
                           floating* dx) noexcept nogil:
    cdef Py_ssize_t c, i, j, k, oh, ih, off, lo, hi, a, b, u, v, t
    cdef Py_ssize_t oh0 = l0 // Wo, oh1 = (l0 + nb - 1) // Wo
    cdef const floating* s
    cdef floating* d
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                k = (c * kh + i) * kw + j
                off = j * dw - pw
                _inside(off, sw, W, Wo, &lo, &hi)
                for oh in range(oh0, oh1 + 1):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    a = l0 - oh * Wo if oh == oh0 else 0          # this row's ow range [a, b)
                    b = l0 + nb - oh * Wo if oh == oh1 else Wo
                    u = max(a, lo)                                # inside: [u, v)
                    v = min(b, hi)
                    s = D + k * nb + oh * Wo + u - l0
                    d = dx + (c * H + ih) * W + u * sw + off
                    if sw == 1:
                        for t in range(v - u):
                            d[t] += s[t]
                    else:
                        for t in range(v - u):
                            d[t * sw] += s[t]


cdef inline Py_ssize_t _tile_width(floating* unused) noexcept nogil:
    if floating is float:
        return NNKIT_PANEL_F
    else:
        return NNKIT_PANEL_D


# Output positions per block of the tiled backward: each block costs a
# fixed few hundred cycles per row of col (K rows: the run bounds, the row
# ends) against 4 C_out nb flops per row, so blocks stay long (400
# positions) rather than inside L2; their buffers are capped at
# BACKWARD_BLOCK bytes.
cdef enum:
    BLOCK_POSITIONS = 400
    BACKWARD_BLOCK = 1 << 22


cdef inline Py_ssize_t backward_block_columns(Py_ssize_t K, Py_ssize_t Co, Py_ssize_t L,
                                              Py_ssize_t itemsize) noexcept nogil:
    """Positions per block: all L if it is at most BLOCK_POSITIONS, else
    BLOCK_POSITIONS, fewer if the block's col and dcol (K, nb) and dy's two
    packings (C_out, nb) would pass BACKWARD_BLOCK bytes; a multiple of 16
    (at least 16) unless one block holds all L. Never rows a multiple of
    4 KB apart: their lines would share L1 sets and evict each other."""
    cdef Py_ssize_t n = (BACKWARD_BLOCK // itemsize // (2 * (K + Co))) // 16 * 16
    n = min(n, <Py_ssize_t>BLOCK_POSITIONS)
    if n < 16:
        n = 16
    if L <= n:
        n = L
    if (n * itemsize) % 4096 == 0 and n > 16:
        n -= 16
    return n


# The tiled backward of one sample, per block of nb output positions:
#   colb  = im2col(x_n)[:, block]      (K, nb)  row-major (_gather_columns)
#   dyP   = dy_n[:, block]             (Co, nb) packed in panels of positions
#   dyT   = dy_n[:, block]ᵀ            (nb, Co) packed in panels of channels
#   dWᵀ  += colb dyT                   (K, Co)  tile kernel, 2 K nb Co flops
#   dcolb = Wmᵀ dyP                    (K, nb)  tile kernel, 2 K Co nb flops
#   dx_n += col2im(dcolb)              (_scatter_columns)
# work: 2 (K + Co) NB values; dWT: this thread's dWᵀ (K, Co).
cdef void _backward_tiled(const floating* dy, const floating* x, const floating* WmT,
                          Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Co,
                          int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                          Py_ssize_t Ho, Py_ssize_t Wo, floating* dx, floating* work,
                          floating* dWT, double* dbacc) noexcept nogil:
    cdef Py_ssize_t L = Ho * Wo, K = C * kh * kw, l0 = 0, nb
    cdef Py_ssize_t NB = backward_block_columns(K, Co, L, sizeof(floating))
    cdef Py_ssize_t width = _tile_width(work)
    cdef floating* colb = _aligned(work)          # each buffer on a line (ALIGN_BYTES)
    cdef floating* dcolb = _aligned(colb + K * NB)
    cdef floating* dyP = _aligned(dcolb + K * NB)
    cdef floating* dyT = _aligned(dyP + Co * NB)
    cdef bint flat = sh == 1 and sw == 1 and Wo == W
    memset(dx, 0, C * H * W * sizeof(floating))
    while l0 < L:
        nb = min(NB, L - l0)
        if flat:
            _gather_flat(x, C, H, W, kh, kw, ph, pw, dh, dw, l0, nb, colb)
        else:
            _gather_columns(x, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Wo, l0, nb, colb)
        _pack_panels(dy + l0, L, 1, Co, nb, width, dyP)
        _pack_panels(dy + l0, 1, L, nb, Co, width, dyT)
        if floating is float:
            nnkit_conv_tile_f(K, nb, Co, Co, colb, dyT, True, dWT)
            nnkit_conv_tile_f(K, Co, nb, nb, WmT, dyP, False, dcolb)
        else:
            nnkit_conv_tile_d(K, nb, Co, Co, colb, dyT, True, dWT)
            nnkit_conv_tile_d(K, Co, nb, nb, WmT, dyP, False, dcolb)
        if flat:
            _scatter_flat(dcolb, C, H, W, kh, kw, ph, pw, dh, dw, l0, nb, dx)
        else:
            _scatter_columns(dcolb, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Wo, l0, nb, dx)
        l0 += nb
    _db_sums(dy, Co, L, dbacc)


# The backward of every sample (formulas above, at "conv2d backward").
# Passes per sample: read dy_n and x_n (im2col again), write dx_n, with the
# two GEMMs' 4*C_out*K*L flops in between (col and dcol: whole (K, L)
# matrices on the BLAS path, one L2-sized block at a time when tiled).
def conv2d_backward(const floating[:, :, ::1] dY,     # IN  (B, C_out, L)
                    const floating[:, :, :, ::1] X,   # IN  (B, C, H, W)
                    const floating[:, ::1] Wm,        # IN  (C_out, K)
                    const floating[:, ::1] WmT,       # IN  (K, C_out) = Wmᵀ (read when tiled)
                    int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                    floating[:, :, :, ::1] dX,        # OUT (B, C, H, W)
                    floating[:, ::1] dW,              # OUT (C_out, K)
                    floating[::1] db,                 # OUT (C_out,)
                    floating[:, ::1] work,            # workspace (T, backward_work_size)
                    floating[:, ::1] dWacc,           # workspace (T, C_out*K): dW, or dWᵀ when tiled
                    double[:, ::1] dbacc,             # workspace (T, C_out)
                    bint tiled, int nthreads):
    """nthreads > 1: samples split over an OpenMP team, thread t using
    work[t], dWacc[t], dbacc[t] and single-threaded BLAS calls; 1: samples in
    order (BLAS's own threads on the BLAS path)."""
    cdef Py_ssize_t B = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef Py_ssize_t Co = Wm.shape[0], K = Wm.shape[1], T = dWacc.shape[0], n, t2, i, o, k
    cdef Py_ssize_t Ho = out_dim(H, kh, sh, ph, dh), Wo = out_dim(W, kw, sw, pw, dw)
    cdef Py_ssize_t KL = K * Ho * Wo
    cdef int t
    cdef double s
    tiled = tiled and _tile_width(&dWacc[0, 0]) > 0     # no tile kernel in this build: BLAS
    with nogil:
        memset(&dWacc[0, 0], 0, T * Co * K * sizeof(floating))
        memset(&dbacc[0, 0], 0, T * Co * sizeof(double))
    if nthreads <= 1 or B == 1:
        with nogil:
            for n in range(B):
                if tiled:
                    _backward_tiled(&dY[n, 0, 0], &X[n, 0, 0, 0], &WmT[0, 0], C, H, W, Co,
                                    kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, &dX[n, 0, 0, 0],
                                    &work[0, 0], &dWacc[0, 0], &dbacc[0, 0])
                else:
                    _backward_one(&dY[n, 0, 0], &X[n, 0, 0, 0], &Wm[0, 0], C, H, W, Co,
                                  kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, &dX[n, 0, 0, 0],
                                  &work[0, 0], &work[0, KL], &dWacc[0, 0], &dbacc[0, 0])
    else:
        for n in prange(B, nogil=True, schedule="static", num_threads=nthreads):
            t = threadid()
            if tiled:
                _backward_tiled(&dY[n, 0, 0], &X[n, 0, 0, 0], &WmT[0, 0], C, H, W, Co,
                                kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, &dX[n, 0, 0, 0],
                                &work[t, 0], &dWacc[t, 0], &dbacc[t, 0])
            else:
                _backward_one(&dY[n, 0, 0], &X[n, 0, 0, 0], &Wm[0, 0], C, H, W, Co,
                              kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, &dX[n, 0, 0, 0],
                              &work[t, 0], &work[t, KL], &dWacc[t, 0], &dbacc[t, 0])
    with nogil:
        for o in range(Co):
            for k in range(K):
                i = k * Co + o if tiled else o * K + k
                dW[o, k] = dWacc[0, i]
                for t2 in range(1, T):
                    dW[o, k] += dWacc[t2, i]
        for i in range(Co):
            s = 0.0
            for t2 in range(T):
                s = s + dbacc[t2, i]
            db[i] = <floating>s


def backward_work_size(Py_ssize_t K, Py_ssize_t Co, Py_ssize_t L, Py_ssize_t itemsize,
                       bint tiled):
    """Values of conv2d_backward's workspace per thread: the tiled
    backward's block buffers, else (also when the build has no tile kernel:
    the kernel then takes the BLAS path) the whole col and dcol (2 K L)."""
    cdef Py_ssize_t width = _tile_width(<float*>NULL) if itemsize == 4 else _tile_width(<double*>NULL)
    if tiled and width > 0:      # four buffers, each moved up to a line
        return 2 * (K + Co) * backward_block_columns(K, Co, L, itemsize) + 4 * ALIGN_BYTES // itemsize
    return 2 * K * L


def tile_width(bint float32):
    """The tile kernel's panel width for the dtype; 0 in a build without it."""
    return _tile_width(<float*>NULL) if float32 else _tile_width(<double*>NULL)


def forward_col_size(Py_ssize_t K, Py_ssize_t L, bint float32, bint tiled):
    """Values of conv2d_forward's workspace per thread: the implicit GEMM's
    packed block (tiled and _panel_width say when it runs), else im2col's
    K x L."""
    cdef Py_ssize_t width = 0
    if tiled:
        width = _panel_width(<float*>NULL) if float32 else _panel_width(<double*>NULL)
    if width == 0:
        return K * L
    return block_columns(K, width) * K + ALIGN_BYTES // (4 if float32 else 8)   # + _aligned's slack
