# Pooling (P10): max, average and Lp pooling of the planes of an NCHW
# tensor, forward and backward. The output-size arithmetic is the
# convolution's (pyx/conv.pyx, nnkit.conv_shapes).
#
# Planes (B*C, H, W) -> (B*C, H', W'), one OpenMP thread per block of planes.
# Max: y = the largest value of the window (padding never wins: it is -inf),
#   argmax[plane, oh, ow] = its flat index ih*W + iw in the plane; ties go to
#   the first in row-major window order (strict >), as PyTorch; a NaN wins.
# Avg: y = sum window / (kh*kw): padding counts as zeros (PyTorch's default
#   count_include_pad=True).
# Lp:  y = (sum_window |x|^p)^(1/p) (no padding).
#
# Called only from nnkit.conv, which has already checked shapes, dtypes,
# contiguity and the geometry and allocated every output; nothing here
# raises on bad input.

from cython.parallel cimport prange, threadid
from libc.math cimport fabs, pow, sqrt
from libc.string cimport memset
from libc.stdlib cimport free
from _common cimport floating, stream_copy, stream_fence, streams, team_size, workspace

cdef enum:
    POOL_MAX = 0
    POOL_AVG = 1
    POOL_LP = 2


cdef void _pool_plane(const floating* x, Py_ssize_t H, Py_ssize_t W, int kh, int kw,
                      int sh, int sw, int ph, int pw, Py_ssize_t Ho, Py_ssize_t Wo,
                      int mode, double p, floating* y, int* arg) noexcept nogil:
    # The window of output (oh, ow) is rows h0+i, columns w0+j; [i0, i1) x
    # [j0, j1) is its part inside the plane (padding is never read). Pooling
    # pads at most half a window (checked in Python), so it is never empty.
    cdef Py_ssize_t oh, ow, i, j, h0, w0, i0, i1, j0, j1, k, best_i
    cdef floating best, v
    cdef double acc, a
    cdef double inv = 1.0 / (kh * kw)
    for oh in range(Ho):
        h0 = oh * sh - ph
        i0 = max(0, -h0)
        i1 = min(kh, H - h0)
        for ow in range(Wo):
            w0 = ow * sw - pw
            j0 = max(0, -w0)
            j1 = min(kw, W - w0)
            if mode == POOL_MAX:
                best_i = -1
                best = 0
                for i in range(i0, i1):
                    k = (h0 + i) * W + w0
                    for j in range(j0, j1):
                        v = x[k + j]
                        if best_i < 0 or v > best or v != v:
                            best = v
                            best_i = k + j
                y[oh * Wo + ow] = best
                arg[oh * Wo + ow] = <int>best_i
                continue
            acc = 0.0
            for i in range(i0, i1):
                k = (h0 + i) * W + w0
                for j in range(j0, j1):
                    if mode == POOL_AVG:
                        acc = acc + x[k + j]
                    else:
                        a = fabs(x[k + j])
                        if p == 2.0:
                            acc = acc + a * a
                        elif p == 1.0:
                            acc = acc + a
                        else:
                            acc = acc + pow(a, p)
            if mode == POOL_AVG:
                y[oh * Wo + ow] = <floating>(acc * inv)
            elif p == 2.0:
                y[oh * Wo + ow] = <floating>sqrt(acc)
            elif p == 1.0:
                y[oh * Wo + ow] = <floating>acc
            else:
                y[oh * Wo + ow] = <floating>pow(acc, 1.0 / p)


# 2x2 stride-2 unpadded max pooling of a plane with even H, W: the windows
# tile the plane, two input rows per output row (the benchmark's case).
cdef void _max2x2_plane(const floating* x, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                        floating* y, int* arg) noexcept nogil:
    cdef Py_ssize_t oh, ow, k0, k1
    cdef floating a, b, c, d, m
    cdef int idx
    for oh in range(Ho):
        k0 = 2 * oh * W
        k1 = k0 + W
        for ow in range(Wo):
            a = x[k0 + 2 * ow]
            b = x[k0 + 2 * ow + 1]
            c = x[k1 + 2 * ow]
            d = x[k1 + 2 * ow + 1]
            m = a
            idx = <int>(k0 + 2 * ow)
            if b > m or b != b:
                m = b
                idx = <int>(k0 + 2 * ow + 1)
            if c > m or c != c:
                m = c
                idx = <int>(k1 + 2 * ow)
            if d > m or d != d:
                m = d
                idx = <int>(k1 + 2 * ow + 1)
            y[oh * Wo + ow] = m
            arg[oh * Wo + ow] = idx


# Pooling forward, one plane per thread. Passes: read X once, write Y (and the
# int32 arg-max for max pooling): n + n/(kh kw) values (+ n/(kh kw) ints).
# Flops: kh kw compares (max) or adds (avg; Lp adds a pow) per output.
def pool2d_forward(const floating[:, :, ::1] X,     # IN  (planes, H, W)
                   int mode, double p, int kh, int kw, int sh, int sw, int ph, int pw,
                   floating[:, :, ::1] Y,           # OUT (planes, H', W')
                   int[:, :, ::1] argmax,           # OUT (planes, H', W') (max only)
                   int nthreads):
    cdef Py_ssize_t P = X.shape[0], H = X.shape[1], W = X.shape[2]
    cdef Py_ssize_t Ho = Y.shape[1], Wo = Y.shape[2], q
    cdef bint tiled = (mode == POOL_MAX and kh == 2 and kw == 2 and sh == 2 and sw == 2
                       and ph == 0 and pw == 0)
    cdef int* a0 = &argmax[0, 0, 0] if mode == POOL_MAX else NULL
    for q in prange(P, nogil=True, schedule="static",
                    num_threads=team_size(P * H * W, nthreads)):
        if tiled:
            _max2x2_plane(&X[q, 0, 0], W, Ho, Wo, &Y[q, 0, 0], a0 + q * Ho * Wo)
        else:
            _pool_plane(&X[q, 0, 0], H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, mode, p,
                        &Y[q, 0, 0], a0 + q * Ho * Wo if a0 != NULL else NULL)


# 2x2 stride-2 max backward of a plane with even H, W: the input rows 2oh and
# 2oh + 1 (2W contiguous values) of output row oh are written together, dy
# where the arg-max points and 0 elsewhere, into `rows` (2W values of
# scratch) when dX is streamed out, else in place.
cdef void _max2x2_backward_plane(const floating* dy, const int* arg, Py_ssize_t W,
                                 Py_ssize_t Ho, Py_ssize_t Wo, floating* dx,
                                 floating* rows) noexcept nogil:
    cdef Py_ssize_t oh, ow, k0, a
    cdef floating g
    cdef floating zero = 0
    cdef floating* t
    for oh in range(Ho):
        k0 = 2 * oh * W
        t = rows if rows != NULL else dx + k0
        for ow in range(Wo):
            g = dy[oh * Wo + ow]
            a = arg[oh * Wo + ow] - k0       # its offset in the two rows
            t[2 * ow] = g if a == 2 * ow else zero
            t[2 * ow + 1] = g if a == 2 * ow + 1 else zero
            t[W + 2 * ow] = g if a == W + 2 * ow else zero
            t[W + 2 * ow + 1] = g if a == W + 2 * ow + 1 else zero
        if rows != NULL:
            stream_copy(dx + k0, rows, 2 * W)
    if rows != NULL:
        stream_fence()                   # this thread's streamed plane is visible


# Max backward: dx = 0, dx[argmax] += dy (several windows may pick the same
# input when they overlap). When the windows tile the plane exactly (s = k,
# no padding, H = H'k, W = W'k) every input is written once, dy at the arg-max
# and 0 elsewhere: one write of dx, no zero pass.
# Passes: read dY and the arg-max (n/(kh kw) each), write dX (n); untiled, a
# zero pass over dX first. Flops: none but compares (tiled) or n/(kh kw) adds.
def maxpool2d_backward(const floating[:, :, ::1] dY,   # IN  (planes, H', W')
                       const int[:, :, ::1] argmax,    # IN  (planes, H', W')
                       int kh, int kw, int sh, int sw, int ph, int pw,
                       floating[:, :, ::1] dX,         # OUT (planes, H, W)
                       int nthreads):
    cdef Py_ssize_t P = dX.shape[0], H = dX.shape[1], W = dX.shape[2]
    cdef Py_ssize_t Ho = dY.shape[1], Wo = dY.shape[2], q, oh, ow, i, j, base, am
    cdef bint tiled = (sh == kh and sw == kw and ph == 0 and pw == 0
                       and H == Ho * kh and W == Wo * kw)
    cdef bint two = tiled and kh == 2 and kw == 2
    cdef int nt = team_size(P * H * W, nthreads)
    cdef floating g
    cdef floating* dx
    cdef const floating* dy
    cdef const int* arg
    cdef floating* rows = NULL      # 2W values per thread: the streamed pair of rows
    if two and streams(P * H * W, sizeof(floating)):
        rows = <floating*>workspace(nt * 2 * W * sizeof(floating), "maxpool2d backward")
    for q in prange(P, nogil=True, schedule="static", num_threads=nt):
        dx = &dX[q, 0, 0]
        dy = &dY[q, 0, 0]
        arg = &argmax[q, 0, 0]
        if two:
            _max2x2_backward_plane(dy, arg, W, Ho, Wo, dx,
                                   NULL if rows == NULL else rows + threadid() * 2 * W)
        elif tiled:
            for oh in range(Ho):
                for ow in range(Wo):
                    g = dy[oh * Wo + ow]
                    am = arg[oh * Wo + ow]
                    base = oh * kh * W + ow * kw
                    for i in range(kh):
                        for j in range(kw):
                            dx[base + i * W + j] = g if base + i * W + j == am else 0
        else:
            memset(dx, 0, H * W * sizeof(floating))
            for oh in range(Ho * Wo):
                if arg[oh] >= 0:
                    dx[arg[oh]] += dy[oh]
    free(rows)


# Avg backward: dx = 0, then every window adds dy/(kh*kw) to its inputs.
# Lp backward: dx_i += dy * |x_i|^(p-1) sign(x_i) / y^(p-1)  (0 where y = 0).
# Passes: zero dX, read dY (and X, Y for Lp), then kh kw read-modify-writes of
# dX per output (from cache when the windows are small). Flops: kh kw per
# output (avg), ~10 kh kw with the pow (Lp).
def pool2d_backward(const floating[:, :, ::1] dY,   # IN  (planes, H', W')
                    const floating[:, :, ::1] X,    # IN  (planes, H, W) (Lp only)
                    const floating[:, :, ::1] Y,    # IN  (planes, H', W') (Lp only)
                    int mode, double p, int kh, int kw, int sh, int sw, int ph, int pw,
                    floating[:, :, ::1] dX,         # OUT (planes, H, W)
                    int nthreads):
    cdef Py_ssize_t P = dX.shape[0], H = dX.shape[1], W = dX.shape[2]
    cdef Py_ssize_t Ho = dY.shape[1], Wo = dY.shape[2], q, oh, ow, i, j, ih, iw
    cdef double g, yv, xv, scale
    cdef double inv = 1.0 / (kh * kw)
    cdef floating* dx
    for q in prange(P, nogil=True, schedule="static",
                    num_threads=team_size(P * H * W, nthreads)):
        dx = &dX[q, 0, 0]
        memset(dx, 0, H * W * sizeof(floating))
        for oh in range(Ho):
            for ow in range(Wo):
                g = dY[q, oh, ow]
                if mode == POOL_AVG:
                    g = g * inv
                else:
                    yv = Y[q, oh, ow]
                    if yv == 0:
                        continue
                    g = g / (yv if p == 2.0 else pow(yv, p - 1.0))
                for i in range(kh):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j
                        if iw < 0 or iw >= W:
                            continue
                        if mode == POOL_AVG:
                            dx[ih * W + iw] += g
                        else:
                            xv = X[q, ih, iw]
                            if p == 2.0:
                                scale = xv
                            elif p == 1.0:
                                scale = (xv > 0) - (xv < 0)
                            else:
                                scale = pow(fabs(xv), p - 1.0) * ((xv > 0) - (xv < 0))
                            dx[ih * W + iw] += g * scale
