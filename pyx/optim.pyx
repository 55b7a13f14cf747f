# distutils: extra_compile_args = -fno-math-errno
# Optimizer kernels: one fused pass over a parameter, its gradient and its
# state per step (SGD, momentum / running average, Adam, AdaGrad).
#
# Called only from nnkit.optim, which has already checked that every array is
# C-contiguous, of one dtype and of one length (flat views of the parameter's
# shape) and that θ and g do not overlap (the state is the optimizer's own);
# nothing here raises on bad input. Arithmetic is in the parameter's dtype, as
# torch.optim's: float32 Adam in double arithmetic was compute bound (sqrt and
# division at half the vector width).
#
# Weight decay is PyTorch's L2 form: the gradient used is g' = g + wd·θ
# (computed in a register; the caller's gradient array is never written).
#
# Why a kernel and not NumPy: an Adam step as NumPy ufuncs with out= makes
# 13 passes over memory (m *= β1; tmp = (1−β1)g; m += tmp; ...); this loop
# makes one (reads θ, g, m, v; writes θ, m, v), the memory floor.
# `nnkit bench optim` measures both against the floor (7 arrays of traffic).
#
# -fno-math-errno (this module only, the distutils line above): with C's
# default errno, gcc guards every sqrt with a branch to libm for negative
# inputs and leaves the loop scalar (measured 120 ms for a 10M float32 Adam
# step against 25 ms vectorized); the arguments here are sums of squares.
# Neither `#pragma GCC optimize` nor the optimize attribute turned it off.
# The loops are C functions over a slice with restrict pointers; Cython's
# prange hands each thread whole CHUNK-sized slices.

from cython.parallel cimport prange
from _common cimport floating, team_size

cdef extern from *:
    """
    #include <stddef.h>
    #define NK_OPT static inline
    enum { NK_SGD, NK_MOMENTUM, NK_ADAM, NK_ADAGRAD };
    #define NK_DEFINE_OPTIM(T, S, SQRT)                                                      \
    NK_OPT void nk_sgd_##S(T* restrict p, const T* restrict g, ptrdiff_t n,           \
                                  double lr_, double wd_) {                                  \
        const T lr = (T)lr_, wd = (T)wd_;                                                    \
        for (ptrdiff_t i = 0; i < n; i++) {                                                  \
            T gi = g[i] + wd * p[i];                                                         \
            p[i] = p[i] - lr * gi;                                                           \
        }                                                                                    \
    }                                                                                        \
    NK_OPT void nk_momentum_##S(T* restrict p, const T* restrict g, T* restrict buf,  \
                                       ptrdiff_t n, double mu_, double c_, double s_,        \
                                       double wd_, int nesterov) {                           \
        const T mu = (T)mu_, c = (T)c_, s = (T)s_, wd = (T)wd_;                              \
        if (nesterov) {                                                                      \
            for (ptrdiff_t i = 0; i < n; i++) {                                              \
                T gi = g[i] + wd * p[i];                                                     \
                T b = mu * buf[i] + c * gi;                                                  \
                buf[i] = b;                                                                  \
                p[i] = p[i] - s * (gi + mu * b);                                             \
            }                                                                                \
        } else {                                                                             \
            for (ptrdiff_t i = 0; i < n; i++) {                                              \
                T gi = g[i] + wd * p[i];                                                     \
                T b = mu * buf[i] + c * gi;                                                  \
                buf[i] = b;                                                                  \
                p[i] = p[i] - s * b;                                                         \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    NK_OPT void nk_adam_##S(T* restrict p, const T* restrict g, T* restrict m,        \
                                   T* restrict v, ptrdiff_t n, double b1_, double b2_,       \
                                   double step_size_, double inv_bc2_sqrt_, double eps_,     \
                                   double wd_) {                                             \
        const T b1 = (T)b1_, b2 = (T)b2_, a1 = (T)(1.0 - b1_), a2 = (T)(1.0 - b2_);          \
        const T step_size = (T)step_size_, inv_bc2_sqrt = (T)inv_bc2_sqrt_;                  \
        const T eps = (T)eps_, wd = (T)wd_;                                                  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                  \
            T gi = g[i] + wd * p[i];                                                         \
            T mi = b1 * m[i] + a1 * gi;                                                      \
            T vi = b2 * v[i] + a2 * gi * gi;                                                 \
            m[i] = mi;                                                                       \
            v[i] = vi;                                                                       \
            p[i] = p[i] - step_size * mi / (SQRT(vi) * inv_bc2_sqrt + eps);                  \
        }                                                                                    \
    }                                                                                        \
    NK_OPT void nk_adagrad_##S(T* restrict p, const T* restrict g, T* restrict S_,    \
                                      ptrdiff_t n, double clr_, double eps_, double wd_) {   \
        const T clr = (T)clr_, eps = (T)eps_, wd = (T)wd_;                                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                                  \
            T gi = g[i] + wd * p[i];                                                         \
            T si = S_[i] + gi * gi;                                                          \
            S_[i] = si;                                                                      \
            p[i] = p[i] - clr * gi / (SQRT(si) + eps);                                       \
        }                                                                                    \
    }                                                                                        \
    NK_OPT void nk_step_##S(int rule, T* p, const T* g, T* s1, T* s2, ptrdiff_t n,           \
                            const double* h) {                                               \
        switch (rule) {                                                                      \
        case NK_SGD: nk_sgd_##S(p, g, n, h[0], h[1]); break;                                 \
        case NK_MOMENTUM: nk_momentum_##S(p, g, s1, n, h[0], h[1], h[2], h[3], (int)h[4]);   \
            break;                                                                           \
        case NK_ADAM: nk_adam_##S(p, g, s1, s2, n, h[0], h[1], h[2], h[3], h[4], h[5]);      \
            break;                                                                           \
        default: nk_adagrad_##S(p, g, s1, n, h[0], h[1], h[2]);                              \
        }                                                                                    \
    }
    NK_DEFINE_OPTIM(float, f, __builtin_sqrtf)
    NK_DEFINE_OPTIM(double, d, __builtin_sqrt)
    """
    enum:
        NK_SGD, NK_MOMENTUM, NK_ADAM, NK_ADAGRAD
    # one slice of rule `rule` (s1, s2: its state arrays, unused ones any valid
    # pointer); h: the rule's hyperparameters in its C function's order
    void nk_step_f(int rule, float* p, const float* g, float* s1, float* s2, Py_ssize_t n,
                   const double* h) noexcept nogil
    void nk_step_d(int rule, double* p, const double* g, double* s1, double* s2,
                   Py_ssize_t n, const double* h) noexcept nogil

# Elements per slice a thread takes at a time (static schedule: contiguous runs).
DEF CHUNK = 16384


cdef inline Py_ssize_t _chunks(Py_ssize_t n) noexcept nogil:
    return (n + CHUNK - 1) // CHUNK


# Every rule's step: threads take whole CHUNK-sized slices of θ, g and the
# state (static schedule: contiguous runs); each slice is one C loop.
cdef void _steps(int rule, floating[::1] p, const floating[::1] g, floating[::1] s1,
                 floating[::1] s2, const double* h, int nthreads) noexcept:
    cdef Py_ssize_t n = p.shape[0], c, lo, k
    if n == 0:
        return
    for c in prange(_chunks(n), nogil=True, schedule="static",
                    num_threads=team_size(n, nthreads)):
        lo = c * CHUNK
        k = min(CHUNK, n - lo)
        if floating is float:
            nk_step_f(rule, &p[lo], &g[lo], &s1[lo], &s2[lo], k, h)
        else:
            nk_step_d(rule, &p[lo], &g[lo], &s1[lo], &s2[lo], k, h)


# SGD: θ ← θ − lr·g'.   Reads θ, g; writes θ (3 arrays of traffic).
def sgd_step(floating[::1] p,           # IN/OUT θ
             const floating[::1] g,     # IN gradient
             double lr, double wd, int nthreads):
    cdef double h[2]
    h[:] = [lr, wd]
    _steps(NK_SGD, p, g, p, p, h, nthreads)
    return None


# Momentum in one form that covers three conventions:
#   buf ← μ·buf + c·g'
#   θ   ← θ − s·buf                 (nesterov: θ ← θ − s·(g' + μ·buf))
# P5 momentum:          c = ε (the lr), s = 1      (v = αv + εg, Δθ = −v)
# P5 running average:   c = 1 − β, s = δ [/(1 − β^t) with bias correction]
# torch.optim.SGD:      c = 1, s = lr              (buf = μ·buf + g, θ −= lr·buf)
# Reads θ, g, buf; writes θ, buf (5 arrays of traffic).
def momentum_step(floating[::1] p,       # IN/OUT θ
                  const floating[::1] g,  # IN gradient
                  floating[::1] buf,      # IN/OUT velocity
                  double mu, double c, double s, double wd, bint nesterov,
                  int nthreads):
    cdef double h[5]
    h[:] = [mu, c, s, wd, nesterov]
    _steps(NK_MOMENTUM, p, g, buf, buf, h, nthreads)
    return None


# Adam, PyTorch's form (torch.optim.Adam, amsgrad=False):
#   m ← β1·m + (1−β1)·g'
#   v ← β2·v + (1−β2)·g'²
#   θ ← θ − step_size · m / (√v · inv_bc2_sqrt + ε)
# with step_size = lr/(1 − β1^t) and inv_bc2_sqrt = 1/√(1 − β2^t), i.e.
# θ −= lr·m̂/(√v̂ + ε): ε is added to √v̂, outside the root.
# Reads θ, g, m, v; writes θ, m, v (7 arrays of traffic); one sqrt and one
# division per element.
def adam_step(floating[::1] p,           # IN/OUT θ
              const floating[::1] g,     # IN gradient
              floating[::1] m,           # IN/OUT first moment
              floating[::1] v,           # IN/OUT second moment
              double beta1, double beta2, double step_size, double inv_bc2_sqrt,
              double eps, double wd, int nthreads):
    cdef double h[6]
    h[:] = [beta1, beta2, step_size, inv_bc2_sqrt, eps, wd]
    _steps(NK_ADAM, p, g, m, v, h, nthreads)
    return None


# AdaGrad, PyTorch's form (torch.optim.Adagrad):
#   S ← S + g'²
#   θ ← θ − clr · g' / (√S + ε)
# Reads θ, g, S; writes θ, S (5 arrays of traffic).
def adagrad_step(floating[::1] p,         # IN/OUT θ
                 const floating[::1] g,   # IN gradient
                 floating[::1] S,         # IN/OUT sum of squared gradients
                 double clr, double eps, double wd, int nthreads):
    cdef double h[3]
    h[:] = [clr, eps, wd]
    _steps(NK_ADAGRAD, p, g, S, S, h, nthreads)
    return None
