# Optimizer kernels: one fused pass over a parameter, its gradient and its
# state per step (SGD, momentum / running average, Adam, AdaGrad).
#
# Called only from nnkit.optim, which has already checked that every array is
# C-contiguous, of one dtype and of one length (flat views of the parameter's
# shape); nothing here raises on bad input. Arithmetic is in double for both
# dtypes (the loops are memory bound: the conversions cost nothing measurable).
#
# Weight decay is PyTorch's L2 form: the gradient used is g' = g + wd·θ
# (computed in a register; the caller's gradient array is never written).
#
# Why a kernel and not NumPy: an Adam step as NumPy ufuncs with out= makes
# about ten passes over memory (m *= β1; m += (1−β1)g needs a temporary; ...);
# this loop makes one (reads θ, g, m, v; writes θ, m, v), which is the memory
# floor. benchmarks/bench_optim.py measures both.

from cython.parallel cimport prange
from libc.math cimport sqrt
from _common cimport floating, team_size


# SGD: θ ← θ − lr·g'.   Reads θ, g; writes θ (3 arrays of traffic).
def sgd_step(floating[::1] p,           # IN/OUT θ
             const floating[::1] g,     # IN gradient
             double lr, double wd, int nthreads):
    cdef Py_ssize_t n = p.shape[0], i
    cdef double gi
    for i in prange(n, nogil=True, schedule="static", num_threads=team_size(n, nthreads)):
        gi = g[i] + wd * p[i]
        p[i] = <floating>(p[i] - lr * gi)
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
    cdef Py_ssize_t n = p.shape[0], i
    cdef double gi, b
    for i in prange(n, nogil=True, schedule="static", num_threads=team_size(n, nthreads)):
        gi = g[i] + wd * p[i]
        b = mu * buf[i] + c * gi
        buf[i] = <floating>b
        if nesterov:
            p[i] = <floating>(p[i] - s * (gi + mu * b))
        else:
            p[i] = <floating>(p[i] - s * b)
    return None


# Adam, PyTorch's form (torch.optim.Adam, amsgrad=False):
#   m ← β1·m + (1−β1)·g'
#   v ← β2·v + (1−β2)·g'²
#   θ ← θ − step_size · m / (√v · inv_bc2_sqrt + ε)
# with step_size = lr/(1 − β1^t) and inv_bc2_sqrt = 1/√(1 − β2^t), i.e.
# θ −= lr·m̂/(√v̂ + ε): ε is added to √v̂, outside the root.
# Reads θ, g, m, v; writes θ, m, v (7 arrays of traffic). 2 sqrt-free
# multiplies per state, one sqrt and one division per element.
def adam_step(floating[::1] p,           # IN/OUT θ
              const floating[::1] g,     # IN gradient
              floating[::1] m,           # IN/OUT first moment
              floating[::1] v,           # IN/OUT second moment
              double beta1, double beta2, double step_size, double inv_bc2_sqrt,
              double eps, double wd, int nthreads):
    cdef Py_ssize_t n = p.shape[0], i
    cdef double gi, mi, vi
    cdef double a1 = 1.0 - beta1, a2 = 1.0 - beta2
    for i in prange(n, nogil=True, schedule="static", num_threads=team_size(n, nthreads)):
        gi = g[i] + wd * p[i]
        mi = beta1 * m[i] + a1 * gi
        vi = beta2 * v[i] + a2 * gi * gi
        m[i] = <floating>mi
        v[i] = <floating>vi
        p[i] = <floating>(p[i] - step_size * mi / (sqrt(vi) * inv_bc2_sqrt + eps))
    return None


# AdaGrad, PyTorch's form (torch.optim.Adagrad):
#   S ← S + g'²
#   θ ← θ − clr · g' / (√S + ε)
# Reads θ, g, S; writes θ, S (5 arrays of traffic).
def adagrad_step(floating[::1] p,         # IN/OUT θ
                 const floating[::1] g,   # IN gradient
                 floating[::1] S,         # IN/OUT sum of squared gradients
                 double clr, double eps, double wd, int nthreads):
    cdef Py_ssize_t n = p.shape[0], i
    cdef double gi, si
    for i in prange(n, nogil=True, schedule="static", num_threads=team_size(n, nthreads)):
        gi = g[i] + wd * p[i]
        si = S[i] + gi * gi
        S[i] = <floating>si
        p[i] = <floating>(p[i] - clr * gi / (sqrt(si) + eps))
    return None
