/* tanh and sigmoid over n values in place, as loops gcc vectorizes
   (pyx/rnn.pyx): glibc's tanh, tanhf and exp are scalar calls.
     nnkit_tanh_f/_d(h, n)     h = tanh(h)
     nnkit_sigmoid_f/_d(h, n)  h = 1 / (1 + e^-h)
   Branch-free double arithmetic; float32 is computed in double and rounded
   once (within 1 ulp of the rounded float64 value); float64 within 4 ulp of
   NumPy's (tests/rnn/test_rnn_activations.py). exp(r) - 1 on |r| <= ln2/2
   by its Taylor series after Cody-Waite reduction x = n ln2 + r (fdlibm's
   split of ln2: n LN2_HI is exact for |n| < 2^20).

   NNKIT_NO_TRAP: the selects (|a|, the cap, the sign) are ordered
   comparisons, which under gcc's default -ftrapping-math may raise FP
   exceptions, so gcc will not if-convert them and leaves the loop scalar;
   no-trapping-math lifts that (nnkit never reads FP exception flags). It
   must sit on every function of the loop, or inlining drops it. It also
   turns FMA contraction back on here (setup.py builds with
   -ffp-contract=off for batch norm; nothing recomputes these values): each
   Horner step becomes one FMA. */
#ifndef NNKIT_ACT_H
#define NNKIT_ACT_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define NNKIT_NO_TRAP __attribute__((optimize("no-trapping-math", "fp-contract=fast")))
#else
#define NNKIT_NO_TRAP
#endif
#define NNKIT_LN2_HI 6.93147180369123816490e-01
#define NNKIT_LN2_LO 1.90821492927058770002e-10
#define NNKIT_INV_LN2 1.44269504088896338700e+00
/* (y + 1.5*2^52) - 1.5*2^52 rounds y to the nearest integer (|y| < 2^51,
   round-to-nearest mode, no -ffast-math); floor() does not vectorize */
#define NNKIT_ROUNDER 6755399441055744.0

/* 2^n for -1022 <= n <= 1023, from its bits */
NNKIT_NO_TRAP static inline double nnkit_pow2i(int n) {
    long long i = ((long long)(n + 1023)) << 52;
    double d;
    memcpy(&d, &i, sizeof d);
    return d;
}

/* exp(r) - 1 for |r| <= ln2/2 (Horner, no cancellation). single: for a
   float32 result, Taylor to r^9 (remainder < 3e-11 relative, far below
   float's half ulp of 3e-8), else to r^13 (remainder < 5e-18). */
NNKIT_NO_TRAP static inline double nnkit_expm1_red(double r, int single) {
    double p;
    if (single) {
        p = 1.0 / 362880.0;                 /* 1/9! */
    } else {
        p = 1.0 / 6227020800.0;             /* 1/13! */
        p = 1.0 / 479001600.0 + r * p;      /* 1/12! */
        p = 1.0 / 39916800.0 + r * p;
        p = 1.0 / 3628800.0 + r * p;
        p = 1.0 / 362880.0 + r * p;
    }
    p = 1.0 / 40320.0 + r * p;
    p = 1.0 / 5040.0 + r * p;
    p = 1.0 / 720.0 + r * p;
    p = 1.0 / 120.0 + r * p;
    p = 1.0 / 24.0 + r * p;
    p = 1.0 / 6.0 + r * p;
    p = 0.5 + r * p;
    p = 1.0 + r * p;
    return r * p;
}

/* tanh(a) = -em/(2 + em), em = expm1(-2|a|) in (-1, 0], with a's sign.
   |a| is capped at 25 (tanh = 1 in double from 19.1 on); NaN propagates
   (x > 25 is false for NaN). */
NNKIT_NO_TRAP static inline double nnkit_tanh(double a, int single) {
    double x = a >= 0 ? a : -a, nf, r, p, s, em;
    int n;
    x = x > 25.0 ? 25.0 : x;
    x = -2.0 * x;
    nf = (x * NNKIT_INV_LN2 + NNKIT_ROUNDER) - NNKIT_ROUNDER;
    n = (int)nf;
    r = (x - nf * NNKIT_LN2_HI) - nf * NNKIT_LN2_LO;
    p = nnkit_expm1_red(r, single);
    s = nnkit_pow2i(n);
    em = s * p + (s - 1.0);          /* 2^n e^r - 1; n <= 0, no cancellation */
    x = -em / (2.0 + em);
    return a >= 0 ? x : -x;
}

/* e^-x for x >= 0 (NaN propagates), built as 2^n1 2^n2 e^r so subnormal
   results are reached (x capped at 746: e^-746 is 0). */
NNKIT_NO_TRAP static inline double nnkit_exp_neg(double x, int single) {
    double nf, r;
    int n, n1;
    x = x > 746.0 ? 746.0 : x;
    x = -x;
    nf = (x * NNKIT_INV_LN2 + NNKIT_ROUNDER) - NNKIT_ROUNDER;
    n = (int)nf;
    n1 = n / 2;
    r = (x - nf * NNKIT_LN2_HI) - nf * NNKIT_LN2_LO;
    return ((1.0 + nnkit_expm1_red(r, single)) * nnkit_pow2i(n1)) * nnkit_pow2i(n - n1);
}

/* 1/(1 + e^-a) for a >= 0, z/(1 + z) with z = e^a for a < 0 (no overflow,
   full relative accuracy in the tail), z = e^-|a|. */
NNKIT_NO_TRAP static inline double nnkit_sigmoid(double a, int single) {
    double z = nnkit_exp_neg(a >= 0 ? a : -a, single);
    return a >= 0 ? 1.0 / (1.0 + z) : z / (1.0 + z);
}

NNKIT_NO_TRAP static void nnkit_tanh_f(float *h, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++) h[k] = (float)nnkit_tanh(h[k], 1);
}

NNKIT_NO_TRAP static void nnkit_tanh_d(double *h, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++) h[k] = nnkit_tanh(h[k], 0);
}

NNKIT_NO_TRAP static void nnkit_sigmoid_f(float *h, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++) h[k] = (float)nnkit_sigmoid(h[k], 1);
}

NNKIT_NO_TRAP static void nnkit_sigmoid_d(double *h, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++) h[k] = nnkit_sigmoid(h[k], 0);
}

/* ---------------------------------------------------------------------
   The activation and loss layers (pyx/activations.pyx): out-of-place loops
   over one block of n values; the kernel splits the array into blocks and
   hands them to its threads. Each loop reads each input once and writes its
   output once; float32 is computed in double and rounded once. Formulas
   are torch.nn's (GELU: torch's gelu and gelu_backward, both forms). Every
   loop vectorizes: erfc and log1p below are branch-free arithmetic on the
   exp above (glibc's erf and log1p are scalar calls). */

#define NNKIT_SQRT1_2 0.70710678118654752440       /* 1/sqrt(2) */
#define NNKIT_INV_SQRT_2PI 0.39894228040143267794  /* 1/sqrt(2 pi) = phi(0) */
#define NNKIT_GELU_BETA 0.79788456080286535588     /* sqrt(2/pi) */
#define NNKIT_GELU_KAPPA 0.044715

/* erfc(z) for z >= 0, within about 12 ulp (NaN propagates):
     erfc(z) = t e^{-z^2} e^{g(s)},  t = 1/(1 + 0.4 z),  s = 2t - 1 in (-1, 1]
   g(s) = log(e^{z^2} erfc(z) / t) is smooth on the whole range (g -> log(0.4/sqrt(pi))
   as z -> inf), fitted once by a Chebyshev least-squares fit of
   scipy.special.erfcx in float64, written here in powers of s (coefficients
   below 1: Horner is stable): degree 22, fit error 3e-15 relative; for a
   float32 result (single) degree 12, 4e-9. e^{-z^2} as e^{-zh^2} e^{-(z - zh)(z + zh)},
   zh = z rounded to float: zh^2 is exact, so the large exponent carries no
   rounding (single: one exp, z^2's rounding is far below float's). z is
   capped at 28 (erfc = 0 in double from 27.3 on). */
NNKIT_NO_TRAP static inline double nnkit_erfc_nonneg(double z, int single) {
    double t, s, g, zh, d;
    z = z > 28.0 ? 28.0 : z;
    t = 1.0 / (1.0 + 0.4 * z);
    s = 2.0 * t - 1.0;
    if (single) {
        g = -2.8192346371365963e-05;
        g = 5.1164230325006036e-05 + s * g;
        g = 0.00021125686272285585 + s * g;
        g = -0.0003255415499571737 + s * g;
        g = -0.0010212052041530405 + s * g;
        g = 0.0011192380134868098 + s * g;
        g = 0.004712139645183625 + s * g;
        g = -0.0019357295938746293 + s * g;
        g = -0.02378656652226695 + s * g;
        g = -0.01798509024292056 + s * g;
        g = 0.1392528207009426 + s * g;
        g = 0.7634037995589322 + s * g;
        g = -0.8636680913044298 + s * g;
        return t * nnkit_exp_neg(z * z - g, 1);
    }
    g = 1.8988221925288136e-08;
    g = -2.382381436024963e-08 + s * g;
    g = -1.9609723064212617e-07 + s * g;
    g = 2.642512300260867e-07 + s * g;
    g = 1.101370448144063e-06 + s * g;
    g = -1.639969528837412e-06 + s * g;
    g = -4.7043446243135175e-06 + s * g;
    g = 7.781835920511998e-06 + s * g;
    g = 1.787662912606555e-05 + s * g;
    g = -3.178097824515415e-05 + s * g;
    g = -6.629591493289271e-05 + s * g;
    g = 0.00011728109066360838 + s * g;
    g = 0.00025451596722960714 + s * g;
    g = -0.000395193171759972 + s * g;
    g = -0.0010479614048782035 + s * g;
    g = 0.0011575346569216668 + s * g;
    g = 0.00472097692683183 + s * g;
    g = -0.0019463315442979812 + s * g;
    g = -0.02378798431672956 + s * g;
    g = -0.01798380987963447 + s * g;
    g = 0.13925290696443102 + s * g;
    g = 0.7634037549319723 + s * g;
    g = -0.8636680921673188 + s * g;
    zh = (double)(float)z;
    d = (z - zh) * (z + zh);
    return t * nnkit_exp_neg(zh * zh, 0) * nnkit_exp_neg(d - g, 0);
}

/* Phi(x) = (1 + erf(x/sqrt 2))/2 = erfc(-x/sqrt 2)/2: from erfc of |x|/sqrt 2,
   full relative accuracy in the lower tail (no 1 + erf cancellation) */
NNKIT_NO_TRAP static inline double nnkit_normal_cdf(double x, int single) {
    double e = 0.5 * nnkit_erfc_nonneg((x >= 0 ? x : -x) * NNKIT_SQRT1_2, single);
    return x < 0 ? e : 1.0 - e;
}

/* GELU exact: x Phi(x); derivative Phi(x) + x phi(x), phi(x) = e^{-x^2/2}/sqrt(2 pi) */
NNKIT_NO_TRAP static inline double nnkit_gelu(double x, int single) {
    return x * nnkit_normal_cdf(x, single);
}

NNKIT_NO_TRAP static inline double nnkit_gelu_grad(double x, int single) {
    return nnkit_normal_cdf(x, single)
        + x * NNKIT_INV_SQRT_2PI * nnkit_exp_neg(0.5 * x * x, single);
}

/* GELU tanh form: x (1 + t)/2, t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3);
   derivative (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) */
NNKIT_NO_TRAP static inline double nnkit_gelu_tanh(double x, int single) {
    double t = nnkit_tanh(NNKIT_GELU_BETA * (x + NNKIT_GELU_KAPPA * x * x * x), single);
    return 0.5 * x * (1.0 + t);
}

NNKIT_NO_TRAP static inline double nnkit_gelu_tanh_grad(double x, int single) {
    double x2 = x * x;
    double t = nnkit_tanh(NNKIT_GELU_BETA * (x + NNKIT_GELU_KAPPA * x2 * x), single);
    return 0.5 * (1.0 + t)
        + 0.5 * x * (1.0 - t * t) * NNKIT_GELU_BETA * (1.0 + 3.0 * NNKIT_GELU_KAPPA * x2);
}

/* log(1 + z) for 0 <= z <= 1: 2 atanh(w), w = z/(2 + z) in [0, 1/3], by its
   series 2 (w + w^3/3 + ... + w^33/33) (the rest < 2e-18 relative) */
NNKIT_NO_TRAP static inline double nnkit_log1p_unit(double z) {
    double w = z / (2.0 + z), q = w * w, p = 1.0 / 33;
    p = 1.0 / 31 + q * p;
    p = 1.0 / 29 + q * p;
    p = 1.0 / 27 + q * p;
    p = 1.0 / 25 + q * p;
    p = 1.0 / 23 + q * p;
    p = 1.0 / 21 + q * p;
    p = 1.0 / 19 + q * p;
    p = 1.0 / 17 + q * p;
    p = 1.0 / 15 + q * p;
    p = 1.0 / 13 + q * p;
    p = 1.0 / 11 + q * p;
    p = 1.0 / 9 + q * p;
    p = 1.0 / 7 + q * p;
    p = 1.0 / 5 + q * p;
    p = 1.0 / 3 + q * p;
    p = 1.0 + q * p;
    return 2.0 * w * p;
}

/* BCE with logits, one term: max(x, 0) - x t + log1p(e^{-|x|}) (e^{-|x|} <= 1:
   nothing overflows for any x) */
NNKIT_NO_TRAP static inline double nnkit_bce_term(double x, double t, int single) {
    double ax = x >= 0 ? x : -x;
    return (x > 0 ? x : 0.0) - x * t + nnkit_log1p_unit(nnkit_exp_neg(ax, single));
}

/* One loop per shape, defined for float (_f, single = 1) and double (_d):
     NNKIT_MAP1(name, f)   y[k] = f(a)            a = x[k]
     NNKIT_MAP1C(name, f)  y[k] = f(a, c)         a = x[k], c a double parameter
     NNKIT_MAP2(name, f)   y[k] = f(a, b)         a = x[k], b = u[k]
     NNKIT_MAP2C(name, f)  y[k] = f(a, b, c)
   f is an expression in a, b, c and single, evaluated in double. */
#define NNKIT_MAP_PAIR(name, params, args, body)                                  \
    NNKIT_NO_TRAP static void name##_f params(float, float) {                     \
        const int single = 1; (void)single;                                        \
        for (ptrdiff_t k = 0; k < n; k++) { args; y[k] = (float)(body); }          \
    }                                                                             \
    NNKIT_NO_TRAP static void name##_d params(double, double) {                   \
        const int single = 0; (void)single;                                        \
        for (ptrdiff_t k = 0; k < n; k++) { args; y[k] = (body); }                 \
    }
#define NNKIT_P1(T, U) (const T *x, T *y, ptrdiff_t n)
#define NNKIT_P1C(T, U) (const T *x, double c, T *y, ptrdiff_t n)
#define NNKIT_P2(T, U) (const T *x, const T *u, T *y, ptrdiff_t n)
#define NNKIT_P2C(T, U) (const T *x, const T *u, double c, T *y, ptrdiff_t n)
#define NNKIT_MAP1(name, f) NNKIT_MAP_PAIR(name, NNKIT_P1, double a = x[k], f)
#define NNKIT_MAP1C(name, f) NNKIT_MAP_PAIR(name, NNKIT_P1C, double a = x[k], f)
#define NNKIT_MAP2(name, f) \
    NNKIT_MAP_PAIR(name, NNKIT_P2, double a = x[k]; double b = u[k], f)
#define NNKIT_MAP2C(name, f) \
    NNKIT_MAP_PAIR(name, NNKIT_P2C, double a = x[k]; double b = u[k], f)

/* forwards: y = f(x) */
NNKIT_MAP1(nnkit_act_tanh, nnkit_tanh(a, single))
NNKIT_MAP1(nnkit_act_sigmoid, nnkit_sigmoid(a, single))
NNKIT_MAP1(nnkit_act_gelu, nnkit_gelu(a, single))
NNKIT_MAP1(nnkit_act_gelu_tanh, nnkit_gelu_tanh(a, single))
/* leaky ReLU: x where x > 0, else c x (a NaN takes c x: NaN, as torch) */
NNKIT_MAP1C(nnkit_act_leaky_relu, a > 0 ? a : c * a)

/* backwards: dx = f(x or the forward's output, dy) */
NNKIT_MAP2(nnkit_act_tanh_grad, b * (1.0 - a * a))               /* a = h */
NNKIT_MAP2(nnkit_act_sigmoid_grad, b * a * (1.0 - a))            /* a = s */
NNKIT_MAP2(nnkit_act_gelu_grad, b * nnkit_gelu_grad(a, single))
NNKIT_MAP2(nnkit_act_gelu_tanh_grad, b * nnkit_gelu_tanh_grad(a, single))
NNKIT_MAP2C(nnkit_act_leaky_relu_grad, a > 0 ? b : c * b)        /* a = x, b = dy */

/* loss gradients: dpred = c (pred - target) with c = 2 dloss/n (MSE, from the
   cached difference d), dlogits = c (sigma(x) - t) with c = dloss/n (BCE) */
NNKIT_MAP1C(nnkit_act_mse_grad, c * a)                           /* a = d */
NNKIT_MAP2C(nnkit_act_bce_grad, c * (nnkit_sigmoid(a, single) - b))

/* Loss forwards over one block: the block's sum in double, in 8 lanes and
   then the tail (a fixed order: the same sum on any thread).
     nnkit_act_mse_sum: d = p - t (in the input type, the cached
       difference), returns sum d^2
     nnkit_act_bce_sum: returns sum of nnkit_bce_term(x, t) */
#define NNKIT_LANE_SUM(term)                                                      \
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0.0;                           \
    ptrdiff_t k = 0, j;                                                           \
    for (; k + 8 <= n; k += 8)                                                    \
        for (j = 0; j < 8; j++) lane[j] += term(k + j);                           \
    for (; k < n; k++) s += term(k);                                              \
    for (j = 0; j < 8; j++) s += lane[j];                                         \
    return s;

#define NNKIT_MSE_TERM(i) (d[i] = p[i] - t[i], (double)d[i] * (double)d[i])
NNKIT_NO_TRAP static double nnkit_act_mse_sum_f(const float *p, const float *t, float *d,
                                                ptrdiff_t n) {
    NNKIT_LANE_SUM(NNKIT_MSE_TERM)
}
NNKIT_NO_TRAP static double nnkit_act_mse_sum_d(const double *p, const double *t, double *d,
                                                ptrdiff_t n) {
    NNKIT_LANE_SUM(NNKIT_MSE_TERM)
}

#define NNKIT_BCE_TERM_F(i) nnkit_bce_term(x[i], t[i], 1)
#define NNKIT_BCE_TERM_D(i) nnkit_bce_term(x[i], t[i], 0)
NNKIT_NO_TRAP static double nnkit_act_bce_sum_f(const float *x, const float *t, ptrdiff_t n) {
    NNKIT_LANE_SUM(NNKIT_BCE_TERM_F)
}
NNKIT_NO_TRAP static double nnkit_act_bce_sum_d(const double *x, const double *t,
                                                ptrdiff_t n) {
    NNKIT_LANE_SUM(NNKIT_BCE_TERM_D)
}

#endif  /* NNKIT_ACT_H */
