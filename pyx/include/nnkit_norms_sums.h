/* One instantiation of nnkit_norms.h's sums for the element type T with name
   suffix S (nnkit_as_float.h, nnkit_as_double.h); nnkit_norms.h includes it
   once per type. No include guard on purpose. */
#include "nnkit_vec_names.h"
#define FOLD NNKIT_PASTE(nnkit_fold, S)

/* the lanes of v, pairwise, in double */
static inline double FOLD(VEC v) {
    double t[VL];
    for (int i = 0; i < VL; i++) t[i] = (double)v[i];
    for (int w = VL / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) t[i] = t[i] + t[i + w];
    return t[0];
}

/* sum of x[0:n], n <= 128 VL: 4 vector accumulators */
static double NNKIT_PASTE(nnkit_chunk_sum, S)(const T* x, ptrdiff_t n) {
    const ptrdiff_t L = VL;
    VEC s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    T tail = 0;
    ptrdiff_t j = 0;
    for (; j + 4 * L <= n; j += 4 * L) {
        s0 += LOAD(x + j);         s1 += LOAD(x + j + L);
        s2 += LOAD(x + j + 2 * L); s3 += LOAD(x + j + 3 * L);
    }
    for (; j < n; j++) tail += x[j];
    return FOLD((s0 + s1) + (s2 + s3)) + (double)tail;
}

/* *s1 = sum (x - c), *s2 = sum (x - c)^2 over x[0:n], n <= 128 VL */
static void NNKIT_PASTE(nnkit_chunk_centred, S)(const T* x, ptrdiff_t n, T c,
                                                double* s1, double* s2) {
    const ptrdiff_t L = VL;
    VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    VEC q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};
    T ta = 0, tq = 0;
    ptrdiff_t j = 0;
    for (; j + 4 * L <= n; j += 4 * L) {
        VEC d0 = LOAD(x + j) - c;
        VEC d1 = LOAD(x + j + L) - c;
        VEC d2 = LOAD(x + j + 2 * L) - c;
        VEC d3 = LOAD(x + j + 3 * L) - c;
        a0 += d0; a1 += d1; a2 += d2; a3 += d3;
        q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3;
    }
    for (; j < n; j++) { T d = x[j] - c; ta += d; tq += d * d; }
    *s1 = FOLD((a0 + a1) + (a2 + a3)) + (double)ta;
    *s2 = FOLD((q0 + q1) + (q2 + q3)) + (double)tq;
}

/* backward sweep 1 over x[0:n], dy[0:n], n <= 64 VL, xh = (x - m) s:
   *a += sum w dy, *b += sum w dy xh, *sx += sum xh, with w = g[j] (layer
   norm) or 1 (g NULL: instance norm); when pg is not NULL also the column
   partials pg[j] += dy xh, pb[j] += dy (layer norm's dgamma, dbeta) */
static void NNKIT_PASTE(nnkit_chunk_bwd, S)(const T* x, const T* dy, const T* g,
                                            ptrdiff_t n, T m, T s, T* pg, T* pb,
                                            double* a, double* b, double* sx) {
    const ptrdiff_t L = VL;
    VEC a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, x0 = {0}, x1 = {0};
    T ta = 0, tb = 0, tx = 0;
    ptrdiff_t j = 0;
    if (g != NULL) {
        for (; j + 2 * L <= n; j += 2 * L) {
            VEC h0 = (LOAD(x + j) - m) * s;
            VEC h1 = (LOAD(x + j + L) - m) * s;
            VEC y0 = LOAD(dy + j), y1 = LOAD(dy + j + L);
            VEC w0 = y0 * LOAD(g + j);
            VEC w1 = y1 * LOAD(g + j + L);
            a0 += w0; a1 += w1; b0 += w0 * h0; b1 += w1 * h1;
            x0 += h0; x1 += h1;
            STORE(pg + j, LOAD(pg + j) + y0 * h0);
            STORE(pg + j + L, LOAD(pg + j + L) + y1 * h1);
            STORE(pb + j, LOAD(pb + j) + y0);
            STORE(pb + j + L, LOAD(pb + j + L) + y1);
        }
        for (; j < n; j++) {
            T h = (x[j] - m) * s, w = dy[j] * g[j];
            ta += w; tb += w * h; tx += h;
            pg[j] += dy[j] * h; pb[j] += dy[j];
        }
    } else {
        for (; j + 2 * L <= n; j += 2 * L) {
            VEC h0 = (LOAD(x + j) - m) * s;
            VEC h1 = (LOAD(x + j + L) - m) * s;
            VEC y0 = LOAD(dy + j), y1 = LOAD(dy + j + L);
            a0 += y0; a1 += y1; b0 += y0 * h0; b1 += y1 * h1;
            x0 += h0; x1 += h1;
        }
        for (; j < n; j++) {
            T h = (x[j] - m) * s;
            ta += dy[j]; tb += dy[j] * h; tx += h;
        }
    }
    *a += FOLD(a0 + a1) + (double)ta;
    *b += FOLD(b0 + b1) + (double)tb;
    *sx += FOLD(x0 + x1) + (double)tx;
}

#include "nnkit_template_end.h"
