# distutils: extra_compile_args = -fno-math-errno
# Optimizer kernels: one fused pass over a parameter, its gradient and its
# state per step (SGD, momentum / running average, Adam, AdaGrad).
#
# Called only from nnkit.optim, which has already checked that every array is
# C-contiguous, of one dtype and of one length (flat views of the parameter's
# shape) and that θ and g do not overlap (the state is the optimizer's own);
# nothing here raises on bad input. Arithmetic is in the parameter's dtype, as
# torch.optim's: float32 Adam in double arithmetic would be compute bound
# (sqrt and division at half the vector width).
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
# inputs and leaves the loop scalar; the arguments here are sums of squares.
# It has to be a command-line flag: `#pragma GCC optimize` and the optimize
# attribute do not turn errno off. The loops are C functions over a slice
# with restrict pointers; Cython's prange hands each thread whole
# CHUNK-sized slices.

from cython.parallel cimport prange
from _common cimport floating, team_size

# The rules' loops, in C over a slice with restrict pointers:
# pyx/include/nnkit_optim.h.
cdef extern from "nnkit_optim.h":
    enum:
        NNKIT_SGD, NNKIT_MOMENTUM, NNKIT_ADAM, NNKIT_ADAGRAD
    # one slice of rule `rule` (s1, s2: its state arrays, unused ones any valid
    # pointer); h: the rule's hyperparameters in its C function's order
    void nnkit_step_f(int rule, float* p, const float* g, float* s1, float* s2, Py_ssize_t n,
                      const double* h) noexcept nogil
    void nnkit_step_d(int rule, double* p, const double* g, double* s1, double* s2,
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
            nnkit_step_f(rule, &p[lo], &g[lo], &s1[lo], &s2[lo], k, h)
        else:
            nnkit_step_d(rule, &p[lo], &g[lo], &s1[lo], &s2[lo], k, h)


# SGD: θ ← θ − lr·g'.   Reads θ, g; writes θ (3 arrays of traffic).
def sgd_step(floating[::1] p,           # IN/OUT θ
             const floating[::1] g,     # IN gradient
             double lr, double wd, int nthreads):
    cdef double h[2]
    h[:] = [lr, wd]
    _steps(NNKIT_SGD, p, g, p, p, h, nthreads)
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
    _steps(NNKIT_MOMENTUM, p, g, buf, buf, h, nthreads)
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
    _steps(NNKIT_ADAM, p, g, m, v, h, nthreads)
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
    _steps(NNKIT_ADAGRAD, p, g, S, S, h, nthreads)
    return None
