# Recurrent-network kernels (P9): a simple RNN over T steps and its
# backpropagation through time, and the output layer of a bidirectional RNN.
#
# Rows are samples; sequences are time-major and stored as 2-D row blocks:
#   X (T*B, N): rows t*B .. t*B+B-1 are x_t;  H (T*B, M): h_t the same way.
#   a_t = x_t Wx^T + h_prev Wh^T + b,   h_t = act(a_t)
# h_prev is h_{t-1} (h0 before t = 0) in the forward direction, and h_{t+1}
# (h0 after t = T-1) with reverse=True (the backward chain of a BiRNN), so one
# kernel serves both chains and nothing is copied to reverse a sequence.
#
# Called only from nnkit.rnn (shapes, dtypes, T, B, N, M >= 1 checked; outputs
# allocated, C-contiguous). Nothing here raises on bad input.
#
# The activation derivative is read from h_t alone (tanh: 1 - h^2, sigmoid:
# h (1 - h), relu: [h > 0]), so the forward never stores a_t.
#
# Elementwise passes run on one thread: per step they touch B*M values next to
# a B x M x M GEMM (2M flops per value), and the GEMMs already use OpenBLAS's
# threads; an OpenMP team woken 2T times per call would fight that pool for the
# cores (see GOMP_SPINCOUNT in nnkit/__init__.py). At (T, B, N, M) =
# (50, 64, 128, 256) float32 the activations are ~15% of the forward.

from libc.stdlib cimport malloc, free
from libc.string cimport memset
from _common cimport column_sums, floating, gemm_rowmajor

cdef enum:
    ACT_TANH = 0
    ACT_SIGMOID = 1
    ACT_RELU = 2


# ------------------------------------------------------- vectorizable exp
# glibc's tanh/tanhf/exp are scalar calls: ~25 ns per tanhf here, which made
# the elementwise pass 3x the cost of the recurrence GEMMs at M = 256 (NumPy's
# SIMD tanh does the same 819k values in 0.45 ms). The functions below are
# branch-free double arithmetic that gcc vectorizes; float32 is computed in
# double and rounded once (0 ulp from the rounded float64 value on the test
# sample). exp(r) − 1 on |r| <= ln2/2: Taylor to r^13 (remainder < 5e-18
# relative), after Cody–Waite reduction x = n ln2 + r (fdlibm's split of ln2:
# n*LN2_HI is exact for |n| < 2^20). float64: within 4 ulp of NumPy's
# tanh/exp (tests/kernels/test_rnn.py checks it; 3 ulp seen for tanh).
# (The constants are C macros and 2^n is built with memcpy, plain C that
# gcc vectorizes.)
cdef extern from *:
    """
    #include <string.h>
    #define NNKIT_LN2_HI 6.93147180369123816490e-01
    #define NNKIT_LN2_LO 1.90821492927058770002e-10
    #define NNKIT_INV_LN2 1.44269504088896338700e+00
    /* (y + 1.5*2^52) - 1.5*2^52 rounds y to the nearest integer (|y| < 2^51,
       round-to-nearest mode, no -ffast-math): floor() kept gcc 12 from
       vectorizing the loop */
    #define NNKIT_ROUNDER 6755399441055744.0
    /* 2^n for -1022 <= n <= 1023, from its bits */
    static inline double nnkit_pow2i(int n) {
        long long i = ((long long)(n + 1023)) << 52;
        double d;
        memcpy(&d, &i, sizeof d);
        return d;
    }
    """
    double LN2_HI "NNKIT_LN2_HI"
    double LN2_LO "NNKIT_LN2_LO"
    double INV_LN2 "NNKIT_INV_LN2"
    double ROUNDER "NNKIT_ROUNDER"
    double _pow2 "nnkit_pow2i"(int n) noexcept nogil


cdef inline double _expm1_red(double r) noexcept nogil:
    """exp(r) − 1 for |r| <= ln2/2 (Horner, no cancellation)."""
    cdef double p = 1.0 / 6227020800.0          # 1/13!
    p = 1.0 / 479001600 + r * p                 # 1/12!
    p = 1.0 / 39916800 + r * p
    p = 1.0 / 3628800 + r * p
    p = 1.0 / 362880 + r * p
    p = 1.0 / 40320 + r * p
    p = 1.0 / 5040 + r * p
    p = 1.0 / 720 + r * p
    p = 1.0 / 120 + r * p
    p = 1.0 / 24 + r * p
    p = 1.0 / 6 + r * p
    p = 0.5 + r * p
    p = 1.0 + r * p
    return r * p


cdef inline double _tanh(double a) noexcept nogil:
    """tanh(a) = −em/(2 + em) with em = expm1(−2|a|) ∈ (−1, 0], sign of a.
    |a| is capped at 25 (tanh = 1 in double from 19.1 on); NaN propagates."""
    cdef double x = a if a >= 0 else -a
    cdef double nf, r, p, s, em
    cdef int n
    x = 25.0 if x > 25.0 else x
    x = -2.0 * x
    nf = (x * INV_LN2 + ROUNDER) - ROUNDER     # round to nearest
    n = <int>nf
    r = (x - nf * LN2_HI) - nf * LN2_LO
    p = _expm1_red(r)
    s = _pow2(n)
    em = s * p + (s - 1.0)     # 2^n e^r − 1; n <= 0 and no cancellation
    x = -em / (2.0 + em)
    return x if a >= 0 else -x


cdef inline double _sigmoid(double a) noexcept nogil:
    """1/(1 + e^−a) for a >= 0, z/(1 + z) with z = e^a for a < 0 (no
    overflow, full relative accuracy in the tail). z = e^{−|a|} built as
    2^n1 · 2^n2 · e^r so subnormal results are reached (|a| capped at 746,
    where e^{−|a|} is 0 in double)."""
    cdef double x = a if a >= 0 else -a
    cdef double nf, r, z
    cdef int n, n1
    x = 746.0 if x > 746.0 else x
    x = -x
    nf = (x * INV_LN2 + ROUNDER) - ROUNDER     # round to nearest
    n = <int>nf
    n1 = n // 2
    r = (x - nf * LN2_HI) - nf * LN2_LO
    z = ((1.0 + _expm1_red(r)) * _pow2(n1)) * _pow2(n - n1)
    return 1.0 / (1.0 + z) if a >= 0 else z / (1.0 + z)


cdef inline void _activate(floating* a, Py_ssize_t n, int act) noexcept nogil:
    """h = act(a) in place over n contiguous values (one loop per activation,
    so each vectorizes)."""
    cdef Py_ssize_t k
    cdef floating zero = 0
    if act == ACT_TANH:
        for k in range(n):
            a[k] = <floating>_tanh(a[k])
    elif act == ACT_SIGMOID:
        for k in range(n):
            a[k] = <floating>_sigmoid(a[k])
    else:
        for k in range(n):
            a[k] = a[k] if a[k] > zero else zero


cdef inline void _backprop_step(floating* dA, const floating* dH, const floating* H,
                                floating* dh, Py_ssize_t n, int act) noexcept nogil:
    """One fused pass: g = dH + dA (dA holds dA_next Wh, or 0 at the first
    step); dh = g (if dh != NULL); dA = g * act'(h), read from h: tanh 1 − h²,
    sigmoid h(1 − h), relu [h > 0]. One loop per activation (gcc unswitches
    the loop-invariant dh test), so each vectorizes."""
    cdef Py_ssize_t k
    cdef floating g, h, one = 1, zero = 0
    cdef bint want = dh != NULL
    if act == ACT_TANH:
        for k in range(n):
            g = dH[k] + dA[k]
            if want:
                dh[k] = g
            h = H[k]
            dA[k] = g * (one - h * h)
    elif act == ACT_SIGMOID:
        for k in range(n):
            g = dH[k] + dA[k]
            if want:
                dh[k] = g
            h = H[k]
            dA[k] = g * (h * (one - h))
    else:
        for k in range(n):
            g = dH[k] + dA[k]
            if want:
                dh[k] = g
            dA[k] = g if H[k] > zero else zero


# Forward. Passes over memory: one write of H with b (skipped without a bias),
# then one GEMM for the input projection of all T steps at once
# ((T*B, N) x (N, M), accumulating onto b), then per step a (B, M) x (M, M)
# GEMM accumulating onto that step's rows and one in-place activation pass.
def forward(const floating[:, ::1] X, const floating[:, ::1] h0,
            const floating[:, ::1] Wx, const floating[:, ::1] Wh,
            const floating[::1] b, int act, bint reverse,
            floating[:, ::1] H, Py_ssize_t T):
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], M = Wx.shape[0]
    cdef Py_ssize_t B = R // T, s, t, p, i, j
    cdef bint has_bias = b is not None
    cdef const floating* prev
    cdef floating beta0 = 1 if has_bias else 0
    with nogil:
        if has_bias:
            for i in range(R):
                for j in range(M):
                    H[i, j] = b[j]
        gemm_rowmajor(False, True, <int>R, <int>M, <int>N, <floating>1.0,
                      &X[0, 0], <int>N, &Wx[0, 0], <int>N, beta0, &H[0, 0], <int>M)
        for s in range(T):
            t = T - 1 - s if reverse else s
            if s == 0:
                prev = &h0[0, 0]
            else:
                p = t + 1 if reverse else t - 1
                prev = &H[p * B, 0]
            gemm_rowmajor(False, True, <int>B, <int>M, <int>M, <floating>1.0,
                          prev, <int>M, &Wh[0, 0], <int>M, <floating>1.0,
                          &H[t * B, 0], <int>M)
            _activate(&H[t * B, 0], B * M, act)
    return None


# Backward (BPTT). The steps run opposite to the forward. Per step:
#   carry = dA_next Wh        (B, M) x (M, M) GEMM into dA_t (beta = 0; 0 at the first)
#   g = dH_t + carry;  dh_t = g (optional);  dA_t = g * act'(h_t)   one pass
# After the loop, all with one GEMM over the stacked T*B rows each:
#   dh0 = dA_first Wh;  dX = dA Wx (+= for the BiRNN's second chain);
#   dWx = dA^T X;  dWh = dA_first^T h0 + (dA of the other T-1 steps)^T (the
#   states they read), and db = column sums of dA (double accumulators).
# dWh as one big GEMM over the stacked states rather than one per step: the
# states each step read are already contiguous in H (shifted by one block),
# so no copy is needed; a single K = (T-1)*B product runs near BLAS peak where
# T small K = B products would not, and it stays off the sequential critical
# path of the recurrence (the per-step loop holds only what must be serial).
def backward(const floating[:, ::1] dH, const floating[:, ::1] H,
             const floating[:, ::1] h0, const floating[:, ::1] X,
             const floating[:, ::1] Wx, const floating[:, ::1] Wh,
             int act, bint reverse, Py_ssize_t T,
             floating[:, ::1] dA, floating[:, ::1] dh, floating[:, ::1] dX,
             bint accumulate_dX, floating[:, ::1] dh0, floating[:, ::1] dWx,
             floating[:, ::1] dWh, floating[::1] db):
    cdef Py_ssize_t R = X.shape[0], N = X.shape[1], M = Wx.shape[0]
    cdef Py_ssize_t B = R // T, s, t, nxt, i, j, first
    cdef bint want_dh = dh is not None
    cdef floating* dhp
    cdef double* acc
    acc = <double*>malloc(M * sizeof(double))
    if acc == NULL:
        raise MemoryError("rnn backward: no memory for the bias accumulator")
    with nogil:
        for s in range(T):
            t = s if reverse else T - 1 - s
            if s > 0:
                nxt = t - 1 if reverse else t + 1
                gemm_rowmajor(False, False, <int>B, <int>M, <int>M, <floating>1.0,
                              &dA[nxt * B, 0], <int>M, &Wh[0, 0], <int>M,
                              <floating>0.0, &dA[t * B, 0], <int>M)
            else:
                # nothing flows back into the last step: a zero carry
                memset(&dA[t * B, 0], 0, B * M * sizeof(floating))
            dhp = NULL
            if want_dh:
                dhp = &dh[t * B, 0]
            _backprop_step(&dA[t * B, 0], &dH[t * B, 0], &H[t * B, 0], dhp, B * M, act)
        # the step that read h0
        first = T - 1 if reverse else 0
        gemm_rowmajor(False, False, <int>B, <int>M, <int>M, <floating>1.0,
                      &dA[first * B, 0], <int>M, &Wh[0, 0], <int>M, <floating>0.0,
                      &dh0[0, 0], <int>M)
        gemm_rowmajor(False, False, <int>R, <int>N, <int>M, <floating>1.0,
                      &dA[0, 0], <int>M, &Wx[0, 0], <int>N,
                      <floating>(1.0 if accumulate_dX else 0.0), &dX[0, 0], <int>N)
        gemm_rowmajor(True, False, <int>M, <int>N, <int>R, <floating>1.0,
                      &dA[0, 0], <int>M, &X[0, 0], <int>N, <floating>0.0,
                      &dWx[0, 0], <int>N)
        gemm_rowmajor(True, False, <int>M, <int>M, <int>B, <floating>1.0,
                      &dA[first * B, 0], <int>M, &h0[0, 0], <int>M, <floating>0.0,
                      &dWh[0, 0], <int>M)
        if T > 1:
            if reverse:
                # steps 0..T-2 read h_1..h_{T-1}
                gemm_rowmajor(True, False, <int>M, <int>M, <int>((T - 1) * B),
                              <floating>1.0, &dA[0, 0], <int>M, &H[B, 0], <int>M,
                              <floating>1.0, &dWh[0, 0], <int>M)
            else:
                # steps 1..T-1 read h_0..h_{T-2}
                gemm_rowmajor(True, False, <int>M, <int>M, <int>((T - 1) * B),
                              <floating>1.0, &dA[B, 0], <int>M, &H[0, 0], <int>M,
                              <floating>1.0, &dWh[0, 0], <int>M)
        column_sums(&dA[0, 0], R, M, acc, &db[0])
    free(acc)
    return None


# BiRNN output layer: Y = [Hf, Hb] Wy^T + by with Wy (K, 2M), never building
# the concatenation: two GEMMs read the column halves of Wy in place (row
# stride 2M). Passes: one write of Y with by, two accumulating GEMMs.
def output_forward(const floating[:, ::1] Hf, const floating[:, ::1] Hb,
                   const floating[:, ::1] Wy, const floating[::1] by,
                   floating[:, ::1] Y):
    cdef Py_ssize_t R = Hf.shape[0], M = Hf.shape[1], K = Wy.shape[0], i, j
    with nogil:
        for i in range(R):
            for j in range(K):
                Y[i, j] = by[j]
        gemm_rowmajor(False, True, <int>R, <int>K, <int>M, <floating>1.0,
                      &Hf[0, 0], <int>M, &Wy[0, 0], <int>(2 * M), <floating>1.0,
                      &Y[0, 0], <int>K)
        gemm_rowmajor(False, True, <int>R, <int>K, <int>M, <floating>1.0,
                      &Hb[0, 0], <int>M, &Wy[0, M], <int>(2 * M), <floating>1.0,
                      &Y[0, 0], <int>K)
    return None


# Output layer backward: dHf = dY Wy[:, :M], dHb = dY Wy[:, M:],
# dWy[:, :M] = dY^T Hf, dWy[:, M:] = dY^T Hb (written in place with row
# stride 2M), dby = column sums of dY (double). Four GEMMs, one pass over dY.
def output_backward(const floating[:, ::1] dY, const floating[:, ::1] Hf,
                    const floating[:, ::1] Hb, const floating[:, ::1] Wy,
                    floating[:, ::1] dHf, floating[:, ::1] dHb,
                    floating[:, ::1] dWy, floating[::1] dby):
    cdef Py_ssize_t R = Hf.shape[0], M = Hf.shape[1], K = Wy.shape[0], i, j
    cdef double* acc
    acc = <double*>malloc(K * sizeof(double))
    if acc == NULL:
        raise MemoryError("birnn backward: no memory for the bias accumulator")
    with nogil:
        gemm_rowmajor(False, False, <int>R, <int>M, <int>K, <floating>1.0,
                      &dY[0, 0], <int>K, &Wy[0, 0], <int>(2 * M), <floating>0.0,
                      &dHf[0, 0], <int>M)
        gemm_rowmajor(False, False, <int>R, <int>M, <int>K, <floating>1.0,
                      &dY[0, 0], <int>K, &Wy[0, M], <int>(2 * M), <floating>0.0,
                      &dHb[0, 0], <int>M)
        gemm_rowmajor(True, False, <int>K, <int>M, <int>R, <floating>1.0,
                      &dY[0, 0], <int>K, &Hf[0, 0], <int>M, <floating>0.0,
                      &dWy[0, 0], <int>(2 * M))
        gemm_rowmajor(True, False, <int>K, <int>M, <int>R, <floating>1.0,
                      &dY[0, 0], <int>K, &Hb[0, 0], <int>M, <floating>0.0,
                      &dWy[0, M], <int>(2 * M))
        column_sums(&dY[0, 0], R, K, acc, &dby[0])
    free(acc)
    return None
