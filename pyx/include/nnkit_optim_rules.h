/* One instantiation of nnkit_optim.h's rules for the element type T with
   name suffix S (nnkit_as_float.h, nnkit_as_double.h) and square root SQRT;
   nnkit_optim.h includes it once per type. No include guard on purpose. */

/* SGD: p <- p - lr g' */
static inline void NNKIT_PASTE(nnkit_sgd, S)(T* restrict p, const T* restrict g, ptrdiff_t n,
                                             double lr_, double wd_) {
    const T lr = (T)lr_, wd = (T)wd_;
    for (ptrdiff_t i = 0; i < n; i++) {
        T gi = g[i] + wd * p[i];
        p[i] = p[i] - lr * gi;
    }
}

/* momentum: buf <- mu buf + c g';  p <- p - s buf  (nesterov: p <- p - s (g' + mu buf)) */
static inline void NNKIT_PASTE(nnkit_momentum, S)(T* restrict p, const T* restrict g,
                                                  T* restrict buf, ptrdiff_t n, double mu_,
                                                  double c_, double s_, double wd_,
                                                  int nesterov) {
    const T mu = (T)mu_, c = (T)c_, s = (T)s_, wd = (T)wd_;
    if (nesterov) {
        for (ptrdiff_t i = 0; i < n; i++) {
            T gi = g[i] + wd * p[i];
            T b = mu * buf[i] + c * gi;
            buf[i] = b;
            p[i] = p[i] - s * (gi + mu * b);
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            T gi = g[i] + wd * p[i];
            T b = mu * buf[i] + c * gi;
            buf[i] = b;
            p[i] = p[i] - s * b;
        }
    }
}

/* Adam: m <- b1 m + (1 - b1) g';  v <- b2 v + (1 - b2) g'^2;
   p <- p - step_size m / (sqrt(v) inv_bc2_sqrt + eps) */
static inline void NNKIT_PASTE(nnkit_adam, S)(T* restrict p, const T* restrict g,
                                              T* restrict m, T* restrict v, ptrdiff_t n,
                                              double b1_, double b2_, double step_size_,
                                              double inv_bc2_sqrt_, double eps_, double wd_) {
    const T b1 = (T)b1_, b2 = (T)b2_, a1 = (T)(1.0 - b1_), a2 = (T)(1.0 - b2_);
    const T step_size = (T)step_size_, inv_bc2_sqrt = (T)inv_bc2_sqrt_;
    const T eps = (T)eps_, wd = (T)wd_;
    for (ptrdiff_t i = 0; i < n; i++) {
        T gi = g[i] + wd * p[i];
        T mi = b1 * m[i] + a1 * gi;
        T vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - step_size * mi / (SQRT(vi) * inv_bc2_sqrt + eps);
    }
}

/* AdaGrad: sq <- sq + g'^2;  p <- p - clr g' / (sqrt(sq) + eps) */
static inline void NNKIT_PASTE(nnkit_adagrad, S)(T* restrict p, const T* restrict g,
                                                 T* restrict sq, ptrdiff_t n, double clr_,
                                                 double eps_, double wd_) {
    const T clr = (T)clr_, eps = (T)eps_, wd = (T)wd_;
    for (ptrdiff_t i = 0; i < n; i++) {
        T gi = g[i] + wd * p[i];
        T si = sq[i] + gi * gi;
        sq[i] = si;
        p[i] = p[i] - clr * gi / (SQRT(si) + eps);
    }
}

static inline void NNKIT_PASTE(nnkit_step, S)(int rule, T* p, const T* g, T* s1, T* s2,
                                              ptrdiff_t n, const double* h) {
    switch (rule) {
    case NNKIT_SGD:
        NNKIT_PASTE(nnkit_sgd, S)(p, g, n, h[0], h[1]);
        break;
    case NNKIT_MOMENTUM:
        NNKIT_PASTE(nnkit_momentum, S)(p, g, s1, n, h[0], h[1], h[2], h[3], (int)h[4]);
        break;
    case NNKIT_ADAM:
        NNKIT_PASTE(nnkit_adam, S)(p, g, s1, s2, n, h[0], h[1], h[2], h[3], h[4], h[5]);
        break;
    default:
        NNKIT_PASTE(nnkit_adagrad, S)(p, g, s1, n, h[0], h[1], h[2]);
    }
}

#include "nnkit_template_end.h"
