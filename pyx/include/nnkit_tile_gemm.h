/* One instantiation of nnkit_tile.h's products, for the element type T with
   name suffix S (and, with panels, VEC, L, LD, ST, BC, FMA, ADD, ZERO):
   nnkit_tile.h includes it once per type. No include guard on purpose. */

/* Plain loop: out[:, j0:j0+n] (+)= V (B, K) R, R a (K, n) block whose rows
   lie ldr apart (the leftover block's columns from j0 on); k four at a time
   so each out row is loaded and stored once per four k. */
static inline void NNKIT_PASTE(nnkit_plain_gemm_ld, S)(
        ptrdiff_t B, ptrdiff_t K, ptrdiff_t M, ptrdiff_t j0, ptrdiff_t n,
        const T* restrict V, const T* restrict R, ptrdiff_t ldr, int accumulate,
        T* restrict out) {
    for (ptrdiff_t i = 0; i < B; i++) {
        const T* restrict v = V + i * K;
        T* restrict o = out + i * M + j0;
        if (!accumulate) for (ptrdiff_t j = 0; j < n; j++) o[j] = 0;
        ptrdiff_t k = 0;
        for (; k + 4 <= K; k += 4) {
            const T v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];
            const T* restrict w0 = R + k * ldr;
            const T* restrict w1 = w0 + ldr;
            const T* restrict w2 = w1 + ldr;
            const T* restrict w3 = w2 + ldr;
            for (ptrdiff_t j = 0; j < n; j++)
                o[j] = o[j] + v0 * w0[j] + v1 * w1[j] + v2 * w2[j] + v3 * w3[j];
        }
        for (; k < K; k++) {
            const T vk = v[k];
            const T* restrict w = R + k * ldr;
            for (ptrdiff_t j = 0; j < n; j++) o[j] = o[j] + vk * w[j];
        }
    }
}

/* The whole leftover block: n = ldr = M - j0. */
static inline void NNKIT_PASTE(nnkit_plain_gemm, S)(
        ptrdiff_t B, ptrdiff_t K, ptrdiff_t M, ptrdiff_t j0, const T* restrict V,
        const T* restrict R, int accumulate, T* restrict out) {
    NNKIT_PASTE(nnkit_plain_gemm_ld, S)(B, K, M, j0, M - j0, V, R, M - j0, accumulate, out);
}

#ifdef VEC
/* The tile kernel. Per panel, 4 rows x 2 vectors of out (8 accumulators)
   stay in registers over the whole k block; per k, 2 vector loads of the
   panel, 4 broadcasts of V and 8 FMAs, so the FMA units bound it, not loads
   and stores of out. With 32 vector registers (AVX-512) blocks of 8 rows
   come first: 16 accumulators, twice the FMAs per panel load and enough
   independent chains to cover the FMA latency (4 cycles x 2 ports). Rows
   left over (B mod 4) run one at a time in two k-phases (4 accumulators).
   Of the leftover columns, one vector's worth (when there is one) runs as a
   one-vector tile, the rest in the plain loop. A later k block starts its
   accumulators from out, which holds the earlier blocks' sums, so an
   element's sum is the same chain of FMAs with or without k blocks, and in
   an 8-row and a 4-row block. */
static void NNKIT_PASTE(nnkit_small_gemm, S)(
        ptrdiff_t B, ptrdiff_t K, ptrdiff_t M, ptrdiff_t ja, ptrdiff_t jb,
        const T* restrict V, const T* restrict P, int accumulate, T* restrict out) {
    const ptrdiff_t M2 = M - M % (2 * L), B4 = B - B % 4;
    const ptrdiff_t je = jb < M2 ? jb : M2;
    const ptrdiff_t KC = NNKIT_TILE_KC_BYTES / (2 * L * (ptrdiff_t)sizeof(T));
    /* the leftover block (K, rest): its first L columns as one vector when it
       has them and this call reaches them, the rest plain */
    const ptrdiff_t rest = M - M2;
    const int half = rest >= L && jb == M && ja < jb;
    for (ptrdiff_t k0 = 0; k0 == 0 || k0 < K; k0 += KC) {  /* K = 0: zeros */
        const ptrdiff_t k1 = K - k0 > KC ? k0 + KC : K;
        /* the first block starts from zero (and adds out at the end when
           accumulating), a later one from out */
        const int from_out = k0 > 0, add_out = k0 == 0 && accumulate;
        for (ptrdiff_t j = ja; j < je; j += 2 * L) {
            const T* restrict w = P + j * K;       /* panel j / (2L) */
            ptrdiff_t i = 0;
#ifdef NNKIT_TILE_512
            for (; i + 8 <= B4; i += 8) {
                const T* restrict v = V + i * K;
                T* restrict o = out + i * M + j;
                VEC a[8][2];
                for (int r = 0; r < 8; r++) {
                    a[r][0] = from_out ? LD(o + r * M) : ZERO();
                    a[r][1] = from_out ? LD(o + r * M + L) : ZERO();
                }
                for (ptrdiff_t k = k0; k < k1; k++) {
                    VEC w0 = LD(w + 2 * L * k), w1 = LD(w + 2 * L * k + L);
                    NNKIT_IN_REGISTER(w0); NNKIT_IN_REGISTER(w1);
                    for (int r = 0; r < 8; r++) {
                        VEC b = BC(v + r * K + k);
                        a[r][0] = FMA(b, w0, a[r][0]);
                        a[r][1] = FMA(b, w1, a[r][1]);
                    }
                }
                for (int r = 0; r < 8; r++) {
                    if (add_out) {
                        a[r][0] = ADD(a[r][0], LD(o + r * M));
                        a[r][1] = ADD(a[r][1], LD(o + r * M + L));
                    }
                    ST(o + r * M, a[r][0]); ST(o + r * M + L, a[r][1]);
                }
            }
#endif
            for (; i < B4; i += 4) {
                const T* restrict v = V + i * K;
                T* restrict o = out + i * M + j;
                VEC a00, a01, a10, a11, a20, a21, a30, a31;
                if (from_out) {
                    a00 = LD(o); a01 = LD(o + L);
                    a10 = LD(o + M); a11 = LD(o + M + L);
                    a20 = LD(o + 2 * M); a21 = LD(o + 2 * M + L);
                    a30 = LD(o + 3 * M); a31 = LD(o + 3 * M + L);
                } else {
                    a00 = ZERO(); a01 = ZERO(); a10 = ZERO(); a11 = ZERO();
                    a20 = ZERO(); a21 = ZERO(); a30 = ZERO(); a31 = ZERO();
                }
                for (ptrdiff_t k = k0; k < k1; k++) {
                    VEC w0 = LD(w + 2 * L * k), w1 = LD(w + 2 * L * k + L);
                    NNKIT_IN_REGISTER(w0); NNKIT_IN_REGISTER(w1);
                    VEC b = BC(v + k);
                    a00 = FMA(b, w0, a00); a01 = FMA(b, w1, a01);
                    b = BC(v + K + k);
                    a10 = FMA(b, w0, a10); a11 = FMA(b, w1, a11);
                    b = BC(v + 2 * K + k);
                    a20 = FMA(b, w0, a20); a21 = FMA(b, w1, a21);
                    b = BC(v + 3 * K + k);
                    a30 = FMA(b, w0, a30); a31 = FMA(b, w1, a31);
                }
                if (add_out) {
                    a00 = ADD(a00, LD(o)); a01 = ADD(a01, LD(o + L));
                    a10 = ADD(a10, LD(o + M)); a11 = ADD(a11, LD(o + M + L));
                    a20 = ADD(a20, LD(o + 2 * M));
                    a21 = ADD(a21, LD(o + 2 * M + L));
                    a30 = ADD(a30, LD(o + 3 * M));
                    a31 = ADD(a31, LD(o + 3 * M + L));
                }
                ST(o, a00); ST(o + L, a01); ST(o + M, a10); ST(o + M + L, a11);
                ST(o + 2 * M, a20); ST(o + 2 * M + L, a21);
                ST(o + 3 * M, a30); ST(o + 3 * M + L, a31);
            }
            for (; i < B; i++) {
                const T* restrict v = V + i * K;
                T* restrict o = out + i * M + j;
                VEC a0 = from_out ? LD(o) : ZERO();
                VEC a1 = from_out ? LD(o + L) : ZERO();
                VEC c0 = ZERO(), c1 = ZERO();
                ptrdiff_t k = k0;
                for (; k + 2 <= k1; k += 2) {
                    VEC b = BC(v + k);
                    a0 = FMA(b, LD(w + 2 * L * k), a0);
                    a1 = FMA(b, LD(w + 2 * L * k + L), a1);
                    b = BC(v + k + 1);
                    c0 = FMA(b, LD(w + 2 * L * (k + 1)), c0);
                    c1 = FMA(b, LD(w + 2 * L * (k + 1) + L), c1);
                }
                if (k < k1) {
                    VEC b = BC(v + k);
                    a0 = FMA(b, LD(w + 2 * L * k), a0);
                    a1 = FMA(b, LD(w + 2 * L * k + L), a1);
                }
                a0 = ADD(a0, c0); a1 = ADD(a1, c1);
                if (add_out) { a0 = ADD(a0, LD(o)); a1 = ADD(a1, LD(o + L)); }
                ST(o, a0); ST(o + L, a1);
            }
        }
        if (half) {      /* one vector of the leftover block: a chain per element, as in the panels */
            const T* restrict w = P + M2 * K;
            ptrdiff_t i = 0;
            for (; i < B4; i += 4) {
                const T* restrict v = V + i * K;
                T* restrict o = out + i * M + M2;
                VEC a0 = from_out ? LD(o) : ZERO();
                VEC a1 = from_out ? LD(o + M) : ZERO();
                VEC a2 = from_out ? LD(o + 2 * M) : ZERO();
                VEC a3 = from_out ? LD(o + 3 * M) : ZERO();
                for (ptrdiff_t k = k0; k < k1; k++) {
                    VEC w0 = LD(w + rest * k);
                    NNKIT_IN_REGISTER(w0);
                    a0 = FMA(BC(v + k), w0, a0);
                    a1 = FMA(BC(v + K + k), w0, a1);
                    a2 = FMA(BC(v + 2 * K + k), w0, a2);
                    a3 = FMA(BC(v + 3 * K + k), w0, a3);
                }
                if (add_out) {
                    a0 = ADD(a0, LD(o)); a1 = ADD(a1, LD(o + M));
                    a2 = ADD(a2, LD(o + 2 * M)); a3 = ADD(a3, LD(o + 3 * M));
                }
                ST(o, a0); ST(o + M, a1); ST(o + 2 * M, a2); ST(o + 3 * M, a3);
            }
            for (; i < B; i++) {
                const T* restrict v = V + i * K;
                T* restrict o = out + i * M + M2;
                VEC a0 = from_out ? LD(o) : ZERO();
                for (ptrdiff_t k = k0; k < k1; k++)
                    a0 = FMA(BC(v + k), LD(w + rest * k), a0);
                if (add_out) a0 = ADD(a0, LD(o));
                ST(o, a0);
            }
        }
    }
    if (M2 + half * L < M && jb == M && ja < jb)
        NNKIT_PASTE(nnkit_plain_gemm_ld, S)(B, K, M, M2 + half * L, rest - half * L, V,
                                            P + M2 * K + half * L, rest, accumulate, out);
}
#else
/* No panels: one thread's range is all of op(W) (ja = 0, jb = M). */
static inline void NNKIT_PASTE(nnkit_small_gemm, S)(
        ptrdiff_t B, ptrdiff_t K, ptrdiff_t M, ptrdiff_t ja, ptrdiff_t jb,
        const T* restrict V, const T* restrict P, int accumulate, T* restrict out) {
    if (ja == 0 && jb == M) NNKIT_PASTE(nnkit_plain_gemm, S)(B, K, M, 0, V, P, accumulate, out);
}
#endif

#include "nnkit_template_end.h"
