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

/* 1/(1 + e^-a) for a >= 0, z/(1 + z) with z = e^a for a < 0 (no overflow,
   full relative accuracy in the tail). z = e^-|a| built as 2^n1 2^n2 e^r so
   subnormal results are reached (|a| capped at 746: e^-746 is 0). */
NNKIT_NO_TRAP static inline double nnkit_sigmoid(double a, int single) {
    double x = a >= 0 ? a : -a, nf, r, z;
    int n, n1;
    x = x > 746.0 ? 746.0 : x;
    x = -x;
    nf = (x * NNKIT_INV_LN2 + NNKIT_ROUNDER) - NNKIT_ROUNDER;
    n = (int)nf;
    n1 = n / 2;
    r = (x - nf * NNKIT_LN2_HI) - nf * NNKIT_LN2_LO;
    z = ((1.0 + nnkit_expm1_red(r, single)) * nnkit_pow2i(n1)) * nnkit_pow2i(n - n1);
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

#endif  /* NNKIT_ACT_H */
