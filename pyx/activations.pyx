# Activation and loss kernels: tanh, sigmoid, leaky ReLU, GELU (exact and
# tanh form), MSELoss and BCEWithLogitsLoss (mean reduction), forward and
# backward.
#
# Called only from nnkit.activations, which checks dtypes and shapes and
# allocates every output first: nothing here raises on bad input. Every
# array is a flat C-contiguous view of n values (any shape upstream).
# Arguments: inputs (# IN), then outputs (# OUT), then the thread count.
#
# The per-element C is pyx/include/nnkit_act.h (the RNN's vectorizable tanh
# and sigmoid, their e^-x, and erfc and log1p built on it): one loop per
# kernel over a block of BLOCK values. Here the array is cut into those
# blocks and the blocks are shared among the threads (OpenMP static
# schedule: each thread a contiguous run of blocks), one team when
# n >= PARALLEL_MIN_ELEMENTS.
#
# The losses' forwards are sums: each block's sum in double (float32 too),
# into partials[block], then the partials added in block order on one
# thread. The blocks do not depend on the thread count, so neither does the
# loss (the same bits for NNKIT_NUM_THREADS=1 and 2).

from cython.parallel cimport prange
from libc.stdlib cimport free
from _common cimport floating, team_size, workspace

cdef extern from "nnkit_act.h":
    void nnkit_act_tanh_f(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_tanh_d(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_sigmoid_f(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_sigmoid_d(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_f(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_d(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_tanh_f(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_tanh_d(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_leaky_relu_f(const float* x, double c, float* y, Py_ssize_t n) noexcept nogil
    void nnkit_act_leaky_relu_d(const double* x, double c, double* y,
                                Py_ssize_t n) noexcept nogil
    void nnkit_act_tanh_grad_f(const float* h, const float* dy, float* dx,
                               Py_ssize_t n) noexcept nogil
    void nnkit_act_tanh_grad_d(const double* h, const double* dy, double* dx,
                               Py_ssize_t n) noexcept nogil
    void nnkit_act_sigmoid_grad_f(const float* s, const float* dy, float* dx,
                                  Py_ssize_t n) noexcept nogil
    void nnkit_act_sigmoid_grad_d(const double* s, const double* dy, double* dx,
                                  Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_grad_f(const float* x, const float* dy, float* dx,
                               Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_grad_d(const double* x, const double* dy, double* dx,
                               Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_tanh_grad_f(const float* x, const float* dy, float* dx,
                                    Py_ssize_t n) noexcept nogil
    void nnkit_act_gelu_tanh_grad_d(const double* x, const double* dy, double* dx,
                                    Py_ssize_t n) noexcept nogil
    void nnkit_act_leaky_relu_grad_f(const float* x, const float* dy, double c, float* dx,
                                     Py_ssize_t n) noexcept nogil
    void nnkit_act_leaky_relu_grad_d(const double* x, const double* dy, double c, double* dx,
                                     Py_ssize_t n) noexcept nogil
    void nnkit_act_mse_grad_f(const float* d, double c, float* dp, Py_ssize_t n) noexcept nogil
    void nnkit_act_mse_grad_d(const double* d, double c, double* dp,
                              Py_ssize_t n) noexcept nogil
    void nnkit_act_bce_grad_f(const float* x, const float* t, double c, float* dx,
                              Py_ssize_t n) noexcept nogil
    void nnkit_act_bce_grad_d(const double* x, const double* t, double c, double* dx,
                              Py_ssize_t n) noexcept nogil
    double nnkit_act_mse_sum_f(const float* p, const float* t, float* d,
                               Py_ssize_t n) noexcept nogil
    double nnkit_act_mse_sum_d(const double* p, const double* t, double* d,
                               Py_ssize_t n) noexcept nogil
    double nnkit_act_bce_sum_f(const float* x, const float* t, Py_ssize_t n) noexcept nogil
    double nnkit_act_bce_sum_d(const double* x, const double* t, Py_ssize_t n) noexcept nogil

cdef enum:
    # values per block: a thread's unit of work, and the losses' partial sums
    # (fixed, so the loss does not depend on the thread count)
    BLOCK = 4096


cdef inline Py_ssize_t block_count(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


cdef inline Py_ssize_t block_len(Py_ssize_t blk, Py_ssize_t n) noexcept nogil:
    """Values in block blk: BLOCK, or fewer in the last one."""
    return min(<Py_ssize_t>BLOCK, n - blk * BLOCK)


# --------------------------------------------------------------- forwards
# H = tanh(X). Passes: one read of X, one write of H.
def tanh_forward(const floating[::1] X,          # IN (n,)
                 floating[::1] H,                # OUT (n,)
                 int nthreads):
    cdef Py_ssize_t n = X.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_tanh_f(&X[k], &H[k], block_len(blk, n))
        else:
            nnkit_act_tanh_d(&X[k], &H[k], block_len(blk, n))


# S = 1/(1 + e^-X) (no overflow for any X). Passes: one read, one write.
def sigmoid_forward(const floating[::1] X,       # IN (n,)
                    floating[::1] S,             # OUT (n,)
                    int nthreads):
    cdef Py_ssize_t n = X.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_sigmoid_f(&X[k], &S[k], block_len(blk, n))
        else:
            nnkit_act_sigmoid_d(&X[k], &S[k], block_len(blk, n))


# H = X where X > 0, slope X elsewhere. Passes: one read, one write.
def leaky_relu_forward(const floating[::1] X,    # IN (n,)
                       double slope,             # IN negative_slope
                       floating[::1] H,          # OUT (n,)
                       int nthreads):
    cdef Py_ssize_t n = X.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_leaky_relu_f(&X[k], slope, &H[k], block_len(blk, n))
        else:
            nnkit_act_leaky_relu_d(&X[k], slope, &H[k], block_len(blk, n))


# GELU: H = X Phi(X), Phi(x) = (1 + erf(x/sqrt 2))/2 (tanh_form = 0), or
# H = X (1 + tanh(sqrt(2/pi) (X + 0.044715 X^3)))/2 (tanh_form = 1).
# Passes: one read, one write (NumPy's version: five ufunc passes, nine for tanh).
def gelu_forward(const floating[::1] X,          # IN (n,)
                 bint tanh_form,                 # IN approximate == "tanh"
                 floating[::1] H,                # OUT (n,)
                 int nthreads):
    cdef Py_ssize_t n = X.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            if tanh_form:
                nnkit_act_gelu_tanh_f(&X[k], &H[k], block_len(blk, n))
            else:
                nnkit_act_gelu_f(&X[k], &H[k], block_len(blk, n))
        else:
            if tanh_form:
                nnkit_act_gelu_tanh_d(&X[k], &H[k], block_len(blk, n))
            else:
                nnkit_act_gelu_d(&X[k], &H[k], block_len(blk, n))


# -------------------------------------------------------------- backwards
# dX = dH (1 - H^2), from the forward's output. Passes: two reads, one write.
def tanh_backward(const floating[::1] dH,        # IN (n,)
                  const floating[::1] H,         # IN (n,) tanh(X)
                  floating[::1] dX,              # OUT (n,)
                  int nthreads):
    cdef Py_ssize_t n = dH.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_tanh_grad_f(&H[k], &dH[k], &dX[k], block_len(blk, n))
        else:
            nnkit_act_tanh_grad_d(&H[k], &dH[k], &dX[k], block_len(blk, n))


# dX = dS S (1 - S), from the forward's output. Passes: two reads, one write.
def sigmoid_backward(const floating[::1] dS,     # IN (n,)
                     const floating[::1] S,      # IN (n,) sigmoid(X)
                     floating[::1] dX,           # OUT (n,)
                     int nthreads):
    cdef Py_ssize_t n = dS.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_sigmoid_grad_f(&S[k], &dS[k], &dX[k], block_len(blk, n))
        else:
            nnkit_act_sigmoid_grad_d(&S[k], &dS[k], &dX[k], block_len(blk, n))


# dX = dH where X > 0, slope dH elsewhere. Passes: two reads, one write.
def leaky_relu_backward(const floating[::1] dH,  # IN (n,)
                        const floating[::1] X,   # IN (n,) the forward's input
                        double slope,            # IN negative_slope
                        floating[::1] dX,        # OUT (n,)
                        int nthreads):
    cdef Py_ssize_t n = dH.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_leaky_relu_grad_f(&X[k], &dH[k], slope, &dX[k], block_len(blk, n))
        else:
            nnkit_act_leaky_relu_grad_d(&X[k], &dH[k], slope, &dX[k], block_len(blk, n))


# dX = dH (Phi(X) + X phi(X)), phi(x) = e^{-x^2/2}/sqrt(2 pi) (exact), or
# dX = dH ((1 + t)/2 + X/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 X^2)),
# t = tanh(sqrt(2/pi) (X + 0.044715 X^3)) (tanh form): torch's gelu_backward.
# Passes: two reads (dH, X), one write (NumPy's version: about ten ufunc passes).
def gelu_backward(const floating[::1] dH,        # IN (n,)
                  const floating[::1] X,         # IN (n,) the forward's input
                  bint tanh_form,                # IN approximate == "tanh"
                  floating[::1] dX,              # OUT (n,)
                  int nthreads):
    cdef Py_ssize_t n = dH.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            if tanh_form:
                nnkit_act_gelu_tanh_grad_f(&X[k], &dH[k], &dX[k], block_len(blk, n))
            else:
                nnkit_act_gelu_grad_f(&X[k], &dH[k], &dX[k], block_len(blk, n))
        else:
            if tanh_form:
                nnkit_act_gelu_tanh_grad_d(&X[k], &dH[k], &dX[k], block_len(blk, n))
            else:
                nnkit_act_gelu_grad_d(&X[k], &dH[k], &dX[k], block_len(blk, n))


# ----------------------------------------------------------------- losses
# Sums the partials in block order: the same total for any thread count.
cdef double _ordered_total(const double* partials, Py_ssize_t nb) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t blk
    for blk in range(nb):
        s += partials[blk]
    return s


# MSE: D = P - T (kept for the backward), returns (1/n) sum D^2 (in double).
# Passes: two reads (P, T), one write (D); then nb = n/BLOCK partials.
def mse_forward(const floating[::1] P,           # IN (n,) predictions
                const floating[::1] T,           # IN (n,) targets
                floating[::1] D,                 # OUT (n,) P - T
                int nthreads):
    cdef Py_ssize_t n = P.shape[0], nb = block_count(n), blk, k
    cdef double* partials = <double*>workspace(nb * sizeof(double), "mse_forward")
    cdef double total
    for blk in prange(nb, nogil=True, schedule="static", num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            partials[blk] = nnkit_act_mse_sum_f(&P[k], &T[k], &D[k], block_len(blk, n))
        else:
            partials[blk] = nnkit_act_mse_sum_d(&P[k], &T[k], &D[k], block_len(blk, n))
    total = _ordered_total(partials, nb)
    free(partials)
    return total / n


# dP = scale D, scale = 2 dloss / n. Passes: one read (D), one write.
def mse_backward(const floating[::1] D,          # IN (n,) P - T
                 double scale,                   # IN 2 dloss / n
                 floating[::1] dP,               # OUT (n,)
                 int nthreads):
    cdef Py_ssize_t n = D.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_mse_grad_f(&D[k], scale, &dP[k], block_len(blk, n))
        else:
            nnkit_act_mse_grad_d(&D[k], scale, &dP[k], block_len(blk, n))


# BCE with logits: returns (1/n) sum max(x, 0) - x t + log1p(e^{-|x|})
# (PyTorch's stable form; in double). Passes: two reads (X, T), no write
# (the backward recomputes sigmoid(X)); then nb partials.
def bce_forward(const floating[::1] X,           # IN (n,) logits
                const floating[::1] T,           # IN (n,) targets
                int nthreads):
    cdef Py_ssize_t n = X.shape[0], nb = block_count(n), blk, k
    cdef double* partials = <double*>workspace(nb * sizeof(double), "bce_forward")
    cdef double total
    for blk in prange(nb, nogil=True, schedule="static", num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            partials[blk] = nnkit_act_bce_sum_f(&X[k], &T[k], block_len(blk, n))
        else:
            partials[blk] = nnkit_act_bce_sum_d(&X[k], &T[k], block_len(blk, n))
    total = _ordered_total(partials, nb)
    free(partials)
    return total / n


# dX = scale (sigmoid(X) - T), scale = dloss / n. Passes: two reads, one write.
def bce_backward(const floating[::1] X,          # IN (n,) logits
                 const floating[::1] T,          # IN (n,) targets
                 double scale,                   # IN dloss / n
                 floating[::1] dX,               # OUT (n,)
                 int nthreads):
    cdef Py_ssize_t n = X.shape[0], blk, k
    for blk in prange(block_count(n), nogil=True, schedule="static",
                      num_threads=team_size(n, nthreads)):
        k = blk * BLOCK
        if floating is float:
            nnkit_act_bce_grad_f(&X[k], &T[k], scale, &dX[k], block_len(blk, n))
        else:
            nnkit_act_bce_grad_d(&X[k], &T[k], scale, &dX[k], block_len(blk, n))
