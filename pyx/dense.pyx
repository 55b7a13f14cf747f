# Dense-layer kernels: affine, ReLU, softmax cross-entropy.
#
# Called only from nnkit.functional, which has already checked shapes, dtypes
# and contiguity and allocated every output; nothing here raises on bad input.
# Rows are samples: X (B, N), W (M, N), b (M,), Y (B, M).

from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdlib cimport malloc, free
from _common cimport column_sums, floating, gemm_rowmajor, team_size

cdef extern from *:
    """
    #ifndef NNKIT_DEBUG
    #define NNKIT_DEBUG 0
    #endif
    """
    int NNKIT_DEBUG

# True in the bounds-checked build (NNKIT_DEBUG_CYTHON=1); tests assert it there.
DEBUG_BUILD = bool(NNKIT_DEBUG)


# P1: Y = X W^T + b, bias broadcast over the B rows (never copied B times).
# Passes: one write of Y with b, then the GEMM accumulates into it (beta = 1).
def affine_forward(const floating[:, ::1] X, const floating[:, ::1] W,
                   const floating[::1] b, floating[:, ::1] Y):
    cdef Py_ssize_t B = X.shape[0], N = X.shape[1], M = W.shape[0], i, j
    with nogil:
        for i in range(B):
            for j in range(M):
                Y[i, j] = b[j]
        gemm_rowmajor(False, True, <int>B, <int>M, <int>N, <floating>1.0,
                      &X[0, 0], <int>N, &W[0, 0], <int>N, <floating>1.0,
                      &Y[0, 0], <int>M)


# P1 backward: dX = dY W (B,N); dW = dY^T X (M,N); db = sum_rows dY (M,).
# Two GEMMs and one pass over dY; db accumulates in double (float32 sums over
# large B lose ~1e-3 relative otherwise).
def affine_backward(const floating[:, ::1] dY, const floating[:, ::1] X,
                    const floating[:, ::1] W, floating[:, ::1] dX,
                    floating[:, ::1] dW, floating[::1] db):
    cdef Py_ssize_t B = dY.shape[0], M = dY.shape[1], N = X.shape[1], i, j
    cdef double* acc
    with nogil:
        gemm_rowmajor(False, False, <int>B, <int>N, <int>M, <floating>1.0,
                      &dY[0, 0], <int>M, &W[0, 0], <int>N, <floating>0.0,
                      &dX[0, 0], <int>N)
        gemm_rowmajor(True, False, <int>M, <int>N, <int>B, <floating>1.0,
                      &dY[0, 0], <int>M, &X[0, 0], <int>N, <floating>0.0,
                      &dW[0, 0], <int>N)
        acc = <double*>malloc(M * sizeof(double))
        if acc != NULL:
            column_sums(&dY[0, 0], B, M, acc, &db[0])
            free(acc)
    if acc == NULL:
        raise MemoryError("affine_backward: no memory for the db accumulator")


# H = max(Y, 0). One read, one write. (Any shape: callers pass a flat view.)
def relu_forward(const floating[::1] Y, floating[::1] H, int nthreads):
    cdef Py_ssize_t n = Y.shape[0], i
    cdef floating y
    cdef floating zero = 0
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=team_size(n, nthreads)):
        y = Y[i]
        H[i] = y if y > zero else zero
    return None


# dY = dH * [H > 0]  ([Y > 0] and [H > 0] are the same mask).
# Two reads, one write.
def relu_backward(const floating[::1] dH, const floating[::1] H,
                  floating[::1] dY, int nthreads):
    cdef Py_ssize_t n = dH.shape[0], i
    cdef floating g
    cdef floating zero = 0   # typed: `> 0` would compare in double
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=team_size(n, nthreads)):
        # load, then select: a conditional load keeps gcc from vectorizing
        g = dH[i]
        dY[i] = g if H[i] > zero else zero
    return None


# P4: p = softmax(z) row-wise, subtracting the row max so exp never
# overflows. Writes the row of P and returns log sum_k exp(z_k) (the losses
# use z - lse, never log(p): p can underflow to 0).
# Passes over the row: max (read), exp (read + write), scale (read + write).
cdef double _softmax_row(const floating* z, floating* p, Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t k
    cdef double mx = z[0], s = 0.0, e
    for k in range(1, K):
        if z[k] > mx:
            mx = z[k]
    for k in range(K):
        e = exp(z[k] - mx)
        p[k] = <floating>e
        s += e
    for k in range(K):
        p[k] = <floating>(p[k] / s)
    return mx + log(s)


# loss = -(1/B) sum_i (z[i, y_i] - lse_i). Writes P (B, K); returns the loss.
def softmax_xent_forward(const floating[:, ::1] Z, const long long[::1] labels,
                         floating[:, ::1] P):
    cdef Py_ssize_t B = Z.shape[0], K = Z.shape[1], i
    cdef double total = 0.0
    with nogil:
        for i in range(B):
            total += _softmax_row(&Z[i, 0], &P[i, 0], K) - Z[i, labels[i]]
    return total / B


# Soft (one-hot or probability) targets T (B, K): loss = -(1/B) sum T (z - lse).
def softmax_xent_forward_soft(const floating[:, ::1] Z, const floating[:, ::1] T,
                              floating[:, ::1] P):
    cdef Py_ssize_t B = Z.shape[0], K = Z.shape[1], i, k
    cdef double lse, total = 0.0
    with nogil:
        for i in range(B):
            lse = _softmax_row(&Z[i, 0], &P[i, 0], K)
            for k in range(K):
                if T[i, k] != 0:
                    total += -T[i, k] * (Z[i, k] - lse)
    return total / B


# dZ = (p - onehot(y)) / B. One read of P, one write.
def softmax_xent_backward(const floating[:, ::1] P, const long long[::1] labels,
                          floating[:, ::1] dZ, double dloss):
    cdef Py_ssize_t B = P.shape[0], K = P.shape[1], i, k
    cdef double scale = dloss / B
    with nogil:
        for i in range(B):
            for k in range(K):
                dZ[i, k] = <floating>(P[i, k] * scale)
            dZ[i, labels[i]] = <floating>((P[i, labels[i]] - 1.0) * scale)


# dZ = (p - t) / B for soft targets.
def softmax_xent_backward_soft(const floating[:, ::1] P, const floating[:, ::1] T,
                               floating[:, ::1] dZ, double dloss):
    cdef Py_ssize_t B = P.shape[0], K = P.shape[1], i, k
    cdef double scale = dloss / B, t
    with nogil:
        for i in range(B):
            # dL/dz = p * sum_k t_k - t  (= p - t when the row of T sums to 1)
            t = 0.0
            for k in range(K):
                t += T[i, k]
            for k in range(K):
                dZ[i, k] = <floating>((P[i, k] * t - T[i, k]) * scale)
