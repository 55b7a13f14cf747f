# Dense-layer kernels: affine (P1), ReLU, softmax cross-entropy (P4).
#
# Called only from nnkit.dense and nnkit.softmax, which check shapes, dtypes
# and contiguity and allocate every output first: nothing here raises on bad
# input. Rows are samples: X (B, N), W (M, N), b (M,), Y (B, M).
# Arguments: inputs (# IN), then outputs (# OUT), then the thread count.

from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdlib cimport free
from _common cimport (column_sums, floating, gemm_rowmajor, relu_grad, relu_value, team_size,
                      workspace)

cdef extern from "nnkit_base.h":
    int NNKIT_DEBUG

# True in the bounds-checked build (NNKIT_DEBUG_CYTHON=1); tests assert it there.
DEBUG_BUILD = bool(NNKIT_DEBUG)


# P1: Y = X W^T + b, bias broadcast over the B rows (never copied B times).
# Passes: one write of Y with b, then the GEMM accumulates into it (beta = 1).
# Flops: 2 B N M (the GEMM).
def affine_forward(const floating[:, ::1] X,     # IN (B, N)
                   const floating[:, ::1] W,     # IN (M, N)
                   const floating[::1] b,        # IN (M,)
                   floating[:, ::1] Y):          # OUT (B, M)
    cdef Py_ssize_t B = X.shape[0], N = X.shape[1], M = W.shape[0], i, j
    with nogil:
        for i in range(B):
            for j in range(M):
                Y[i, j] = b[j]
        gemm_rowmajor(False, True, <int>B, <int>M, <int>N, <floating>1.0,
                      &X[0, 0], <int>N, &W[0, 0], <int>N, <floating>1.0,
                      &Y[0, 0], <int>M)


# P1 backward: dX = dY W (B,N); dW = dY^T X (M,N); db = sum_rows dY (M,).
# Passes: two GEMMs and one read of dY (db, chunked sums totalled in double:
# a float32 running sum over large B loses ~1e-3 relative).
# Flops: 4 B N M (two GEMMs) + B M.
def affine_backward(const floating[:, ::1] dY,   # IN (B, M)
                    const floating[:, ::1] X,    # IN (B, N)
                    const floating[:, ::1] W,    # IN (M, N)
                    floating[:, ::1] dX,         # OUT (B, N)
                    floating[:, ::1] dW,         # OUT (M, N)
                    floating[::1] db):           # OUT (M,)
    cdef Py_ssize_t B = dY.shape[0], M = dY.shape[1], N = X.shape[1], i, j
    cdef double* acc = <double*>workspace(M * sizeof(double), "affine_backward")
    with nogil:
        gemm_rowmajor(False, False, <int>B, <int>N, <int>M, <floating>1.0,
                      &dY[0, 0], <int>M, &W[0, 0], <int>N, <floating>0.0,
                      &dX[0, 0], <int>N)
        gemm_rowmajor(True, False, <int>M, <int>N, <int>B, <floating>1.0,
                      &dY[0, 0], <int>M, &X[0, 0], <int>N, <floating>0.0,
                      &dW[0, 0], <int>N)
        column_sums(&dY[0, 0], B, M, acc, &db[0])
    free(acc)


# H = max(Y, 0), NaN propagating (relu_value in _common.pxd). Any shape:
# callers pass a flat view. Passes: one read, one write. Flops: n compares.
def relu_forward(const floating[::1] Y,          # IN (n,)
                 floating[::1] H,                # OUT (n,)
                 int nthreads):
    cdef Py_ssize_t n = Y.shape[0], i
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=team_size(n, nthreads)):
        H[i] = relu_value(Y[i])
    return None


# dY = dH * [Y > 0], the mask read from H: H <= 0 exactly where Y <= 0, and a
# NaN Y gave a NaN H (relu_grad passes dH there, as the forward passed Y).
# Passes: two reads, one write. Flops: n compares.
def relu_backward(const floating[::1] dH,        # IN (n,)
                  const floating[::1] H,         # IN (n,) the forward's output
                  floating[::1] dY,              # OUT (n,)
                  int nthreads):
    cdef Py_ssize_t n = dH.shape[0], i
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=team_size(n, nthreads)):
        dY[i] = relu_grad(dH[i], H[i])
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
# Passes: three over each row of Z/P (see _softmax_row). Flops: ~4 B K + B K exp.
def softmax_xent_forward(const floating[:, ::1] Z,          # IN (B, K) logits
                         const long long[::1] labels,       # IN (B,) class indices
                         floating[:, ::1] P):               # OUT (B, K) softmax
    cdef Py_ssize_t B = Z.shape[0], K = Z.shape[1], i
    cdef double total = 0.0
    with nogil:
        for i in range(B):
            total += _softmax_row(&Z[i, 0], &P[i, 0], K) - Z[i, labels[i]]
    return total / B


# Soft (one-hot or probability) targets T (B, K): loss = -(1/B) sum T (z - lse).
# Passes: those of _softmax_row plus one read of T. Flops: ~6 B K + B K exp.
def softmax_xent_forward_soft(const floating[:, ::1] Z,     # IN (B, K) logits
                              const floating[:, ::1] T,     # IN (B, K) targets
                              floating[:, ::1] P):          # OUT (B, K) softmax
    cdef Py_ssize_t B = Z.shape[0], K = Z.shape[1], i, k
    cdef double lse, total = 0.0
    with nogil:
        for i in range(B):
            lse = _softmax_row(&Z[i, 0], &P[i, 0], K)
            for k in range(K):
                if T[i, k] != 0:
                    total += -T[i, k] * (Z[i, k] - lse)
    return total / B


# dZ = dloss (p - onehot(y)) / B. Passes: one read of P, one write.
# Flops: B K.
def softmax_xent_backward(const floating[:, ::1] P,         # IN (B, K)
                          const long long[::1] labels,      # IN (B,)
                          double dloss,                     # IN dL'/dL
                          floating[:, ::1] dZ):             # OUT (B, K)
    cdef Py_ssize_t B = P.shape[0], K = P.shape[1], i, k
    cdef double scale = dloss / B
    with nogil:
        for i in range(B):
            for k in range(K):
                dZ[i, k] = <floating>(P[i, k] * scale)
            dZ[i, labels[i]] = <floating>((P[i, labels[i]] - 1.0) * scale)


# dZ = dloss (p sum_k t_k - t) / B for soft targets (= (p - t)/B when the
# rows of T sum to 1). Passes: two reads of T, one of P, one write.
# Flops: 3 B K.
def softmax_xent_backward_soft(const floating[:, ::1] P,    # IN (B, K)
                               const floating[:, ::1] T,    # IN (B, K)
                               double dloss,                # IN dL'/dL
                               floating[:, ::1] dZ):        # OUT (B, K)
    cdef Py_ssize_t B = P.shape[0], K = P.shape[1], i, k
    cdef double scale = dloss / B, t
    with nogil:
        for i in range(B):
            t = 0.0
            for k in range(K):
                t += T[i, k]
            for k in range(K):
                dZ[i, k] = <floating>((P[i, k] * t - T[i, k]) * scale)
