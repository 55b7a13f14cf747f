# nnkit's register-tiled product for small GEMMs whose right operand is
# reused many times: the RNN's per-step product (op(W) = Wh, packed once per
# sequence, pyx/rnn.pyx) and the convolution's implicit GEMM (op(W) = a
# sample's im2col columns packed straight into panels, pyx/conv.pyx).
#   nnkit_small_gemm_f/_d(B, K, M, ja, jb, V, P, accumulate, out):
#     out[:, ja:jb] (+)= V (B, K) op(W)[:, ja:jb], row-major, out's rows M
#     apart, op(W) (K, M) packed in P (layout below); ja, jb on panel edges
#     (jb = M takes the leftover columns too).
#   nnkit_plain_gemm_f/_d(B, K, M, j0, V, R, accumulate, out): the plain loop
#     alone, out[:, j0:M] (+)= V (B, K) R with R a (K, M - j0) row-major block.
#   NNKIT_PANEL_F/_D: panel width in columns (AVX2 + FMA: 16 float32, 8
#     float64; AVX-512: 32, 16), 0 in a build without AVX2 + FMA (the plain
#     loop then does every product). NNKIT_TILE_WIDE: 1 for AVX-512.
cdef extern from *:
    """
    #include <stddef.h>
    #ifndef NNKIT_TILE_DEFINED
    #define NNKIT_TILE_DEFINED
    /* A small product out (B, M) = V (B, K) op(W)
       (+ out when accumulate), row-major, with op(W) (K, M) packed once per
       sequence (_pack in pyx/rnn.pyx) and reused at every step. One OpenBLAS call
       costs several times its flops at small B because it packs V and op(W)
       again on every call (8x64x64: ~4 us a call); here op(W) is packed T
       times less often and V is read in place.

       Packed layout: op(W)'s columns in panels of NNKIT_PANEL(T) (two
       vectors), panel p holding columns p*PW .. p*PW+PW-1 as a contiguous
       (K, PW) block; the columns left over (M mod PW) follow as a (K, rest)
       row-major block. Contiguous panels keep one panel in L1 while every
       row block passes over it; read in place from op(W), a panel's rows sit
       M elements apart, and from a 2 KB stride they fall into a few L1 sets
       and evict each other (measured: B = 1, M = 512 float64 7x slower
       unpacked).

       The tile kernel (AVX2 + FMA): 4 rows x 2 vectors of out (8
       accumulators) held in registers over the whole k loop; per k, 2 vector
       loads of the panel, 4 broadcasts of V, 8 fused multiply-adds, so it is
       bound by the FMA units rather than by loads and stores of out. Rows
       left over (B mod 4) run one at a time (two k-phases, 4 accumulators);
       of the leftover columns, one vector's worth (when there is one: M = 16
       float32 is all leftover on AVX-512) runs as a one-vector tile, the
       rest in the plain loop. Sums in the input type, as
       BLAS's, in another order (rounding level). Without AVX2+FMA at compile
       time (NNKIT_PORTABLE=1) NNKIT_PANEL is 0 and the plain loop does all. */
    #if defined(__AVX512F__) && !defined(NNKIT_TILE_AVX2)
    /* AVX-512: the same tile on 512-bit vectors (and 8-row blocks first,
       below), so twice the flops per FMA; panels of 32 float32 / 16 float64
       columns. The AVX2
       kernel stays for CPUs without AVX-512 (and the sanitizer build, which
       compiles for AVX2 + FMA); -DNNKIT_TILE_AVX2 forces it here. */
    #include <immintrin.h>
    #define NNKIT_TILE_512 1
    #define NNKIT_TILE_WIDE 1
    #define NNKIT_PANEL_F 32
    #define NNKIT_PANEL_D 16
    #elif defined(__AVX2__) && defined(__FMA__)
    #include <immintrin.h>
    #define NNKIT_PANEL_F 16
    #define NNKIT_PANEL_D 8
    #else
    #define NNKIT_PANEL_F 0
    #define NNKIT_PANEL_D 0
    #endif
    #ifndef NNKIT_TILE_WIDE
    #define NNKIT_TILE_WIDE 0
    #endif

    /* Memory for packed panels, on a 64-byte boundary (free() releases it).
       malloc's blocks start 16 bytes past a line, so every 64-byte load of
       a panel row (AVX-512: 2 loads per k) straddled two cache lines. */
    #include <stdlib.h>
    static inline void* nnkit_panel_alloc(size_t bytes) {
        void* p = NULL;
        return posix_memalign(&p, 64, bytes > 0 ? bytes : 64) == 0 ? p : NULL;
    }

    /* plain loop: out[:, j0:j0+n] (+)= V (B, K) R, R a (K, n) block whose
       rows lie ldr apart (the leftover block's columns from j0 on); k four
       at a time so each out row is loaded and stored once per four k.
       NAME(B, K, M, j0, V, R, accumulate, out) is the whole leftover block,
       n = ldr = M - j0. */
    #define NNKIT_PLAIN_GEMM(NAME, T)                                          \
    static inline void NAME##_ld(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M,     \
                                 Py_ssize_t j0, Py_ssize_t n,                  \
                                 const T* restrict V, const T* restrict R,     \
                                 Py_ssize_t ldr, int accumulate,               \
                                 T* restrict out) {                            \
        for (Py_ssize_t i = 0; i < B; i++) {                                   \
            const T* restrict v = V + i * K;                                   \
            T* restrict o = out + i * M + j0;                                  \
            if (!accumulate) for (Py_ssize_t j = 0; j < n; j++) o[j] = 0;     \
            Py_ssize_t k = 0;                                                  \
            for (; k + 4 <= K; k += 4) {                                       \
                const T v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];\
                const T* restrict w0 = R + k * ldr;                            \
                const T* restrict w1 = w0 + ldr;                               \
                const T* restrict w2 = w1 + ldr;                               \
                const T* restrict w3 = w2 + ldr;                               \
                for (Py_ssize_t j = 0; j < n; j++)                             \
                    o[j] = o[j] + v0 * w0[j] + v1 * w1[j] + v2 * w2[j]         \
                           + v3 * w3[j];                                       \
            }                                                                  \
            for (; k < K; k++) {                                               \
                const T vk = v[k];                                             \
                const T* restrict w = R + k * ldr;                             \
                for (Py_ssize_t j = 0; j < n; j++) o[j] = o[j] + vk * w[j];   \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    static inline void NAME(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M,          \
                            Py_ssize_t j0, const T* restrict V,                \
                            const T* restrict R, int accumulate,               \
                            T* restrict out) {                                 \
        NAME##_ld(B, K, M, j0, M - j0, V, R, M - j0, accumulate, out);         \
    }
    NNKIT_PLAIN_GEMM(nnkit_plain_gemm_f, float)
    NNKIT_PLAIN_GEMM(nnkit_plain_gemm_d, double)

    #if NNKIT_PANEL_F
    /* gcc folds the panel loads into the FMAs as memory operands, once per
       row: 8 loads per k instead of 2, and the loads (two 256-bit per cycle)
       then bound the loop, not the FMAs. An empty asm that "modifies" the
       vector makes it live in a register, so it is loaded once per k. */
    #ifdef NNKIT_TILE_512
    #define NNKIT_IN_REGISTER(x) __asm__("" : "+v"(x))  /* any of zmm0-31 */
    #else
    #define NNKIT_IN_REGISTER(x) __asm__("" : "+x"(x))
    #endif
    /* K is walked in blocks of NNKIT_TILE_KC_BYTES / (PW sizeof(T)) rows, so
       the block of a panel the row blocks pass over stays in L1: a whole
       panel of a 512-deep product is 64 KB, past the 48 KB L1, and every row
       block then streamed it from L2 (measured: (32, 512) x (512, 512) at
       108 GF/s float32 on one core, (64, 512) x (512, 512) float64 at 56).
       A later block starts its accumulators from out, which holds the
       earlier blocks' sums, so without accumulate a tile's sum is the same
       chain of FMAs as without blocks (with it, out joins the chain after
       the first block; the one-row path's two chains meet once per block). */
    #ifndef NNKIT_TILE_KC_BYTES
    #define NNKIT_TILE_KC_BYTES 16384
    #endif
    /* With 32 vector registers (AVX-512) row blocks of 8 come first: 16
       accumulators, so twice the FMAs per load of the panel and twice the
       independent chains in flight (FMA latency 4 x 2 ports needs 8; with
       exactly 8 the 4-row tile stalls on any late load): one core, tanh
       step products (32, 512) x (512, 512) float32 138 -> 151 GF/s,
       (64, 512) x (512, 512) float64 70 -> 77. An element's sum is
       the same chain of FMAs in an 8-row and a 4-row block. */
    #ifdef NNKIT_TILE_512
    #define NNKIT_TILE_ROWS8(T, VEC, L, LD, ST, BC, FMA, ADD, ZERO)            \
            for (; i + 8 <= B4; i += 8) {                                      \
                const T* restrict v = V + i * K;                               \
                T* restrict o = out + i * M + j;                               \
                VEC a[8][2];                                                   \
                for (int r = 0; r < 8; r++) {                                  \
                    a[r][0] = from_out ? LD(o + r * M) : ZERO();               \
                    a[r][1] = from_out ? LD(o + r * M + L) : ZERO();           \
                }                                                              \
                for (Py_ssize_t k = k0; k < k1; k++) {                         \
                    VEC w0 = LD(w + 2 * L * k), w1 = LD(w + 2 * L * k + L);  \
                    NNKIT_IN_REGISTER(w0); NNKIT_IN_REGISTER(w1);              \
                    for (int r = 0; r < 8; r++) {                              \
                        VEC b = BC(v + r * K + k);                             \
                        a[r][0] = FMA(b, w0, a[r][0]);                         \
                        a[r][1] = FMA(b, w1, a[r][1]);                         \
                    }                                                          \
                }                                                              \
                for (int r = 0; r < 8; r++) {                                  \
                    if (add_out) {                                             \
                        a[r][0] = ADD(a[r][0], LD(o + r * M));                 \
                        a[r][1] = ADD(a[r][1], LD(o + r * M + L));             \
                    }                                                          \
                    ST(o + r * M, a[r][0]); ST(o + r * M + L, a[r][1]);        \
                }                                                              \
            }
    #else
    #define NNKIT_TILE_ROWS8(T, VEC, L, LD, ST, BC, FMA, ADD, ZERO)
    #endif
    /* VEC: the vector type, L: its lanes, LD/ST/BC/FMA/ADD/ZERO: intrinsics;
       PW = 2 L */
    #define NNKIT_TILE_GEMM(NAME, T, PLAIN, VEC, L, LD, ST, BC, FMA, ADD, ZERO)\
    static void NAME(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M,                 \
                     Py_ssize_t ja, Py_ssize_t jb,                             \
                     const T* restrict V, const T* restrict P,                 \
                     int accumulate, T* restrict out) {                        \
        const Py_ssize_t M2 = M - M % (2 * L), B4 = B - B % 4;                 \
        const Py_ssize_t je = jb < M2 ? jb : M2;                               \
        const Py_ssize_t KC = NNKIT_TILE_KC_BYTES / (2 * L * (Py_ssize_t)sizeof(T));\
        /* the leftover block (K, rest): its first L columns as one vector    \
           when it has them and this call reaches them, the rest plain */     \
        const Py_ssize_t rest = M - M2;                                        \
        const int half = rest >= L && jb == M && ja < jb;                      \
        for (Py_ssize_t k0 = 0; k0 == 0 || k0 < K; k0 += KC) { /* K = 0: zeros */\
        const Py_ssize_t k1 = K - k0 > KC ? k0 + KC : K;                       \
        /* the first block starts from zero (and adds out at the end when     \
           accumulating), a later one from out */                             \
        const int from_out = k0 > 0, add_out = k0 == 0 && accumulate;         \
        for (Py_ssize_t j = ja; j < je; j += 2 * L) {                          \
            const T* restrict w = P + j * K;       /* panel j / (2L) */        \
            Py_ssize_t i = 0;                                                  \
            NNKIT_TILE_ROWS8(T, VEC, L, LD, ST, BC, FMA, ADD, ZERO)            \
            for (; i < B4; i += 4) {                                           \
                const T* restrict v = V + i * K;                               \
                T* restrict o = out + i * M + j;                               \
                VEC a00, a01, a10, a11, a20, a21, a30, a31;                    \
                if (from_out) {                                                \
                    a00 = LD(o); a01 = LD(o + L);                              \
                    a10 = LD(o + M); a11 = LD(o + M + L);                      \
                    a20 = LD(o + 2 * M); a21 = LD(o + 2 * M + L);              \
                    a30 = LD(o + 3 * M); a31 = LD(o + 3 * M + L);              \
                } else {                                                       \
                    a00 = ZERO(); a01 = ZERO(); a10 = ZERO(); a11 = ZERO();    \
                    a20 = ZERO(); a21 = ZERO(); a30 = ZERO(); a31 = ZERO();    \
                }                                                              \
                for (Py_ssize_t k = k0; k < k1; k++) {                         \
                    VEC w0 = LD(w + 2 * L * k), w1 = LD(w + 2 * L * k + L);  \
                    NNKIT_IN_REGISTER(w0); NNKIT_IN_REGISTER(w1);              \
                    VEC b = BC(v + k);                                         \
                    a00 = FMA(b, w0, a00); a01 = FMA(b, w1, a01);              \
                    b = BC(v + K + k);                                         \
                    a10 = FMA(b, w0, a10); a11 = FMA(b, w1, a11);              \
                    b = BC(v + 2 * K + k);                                     \
                    a20 = FMA(b, w0, a20); a21 = FMA(b, w1, a21);              \
                    b = BC(v + 3 * K + k);                                     \
                    a30 = FMA(b, w0, a30); a31 = FMA(b, w1, a31);              \
                }                                                              \
                if (add_out) {                                                 \
                    a00 = ADD(a00, LD(o)); a01 = ADD(a01, LD(o + L));          \
                    a10 = ADD(a10, LD(o + M)); a11 = ADD(a11, LD(o + M + L));  \
                    a20 = ADD(a20, LD(o + 2 * M));                             \
                    a21 = ADD(a21, LD(o + 2 * M + L));                         \
                    a30 = ADD(a30, LD(o + 3 * M));                             \
                    a31 = ADD(a31, LD(o + 3 * M + L));                         \
                }                                                              \
                ST(o, a00); ST(o + L, a01); ST(o + M, a10); ST(o + M + L, a11);\
                ST(o + 2 * M, a20); ST(o + 2 * M + L, a21);                    \
                ST(o + 3 * M, a30); ST(o + 3 * M + L, a31);                    \
            }                                                                  \
            for (; i < B; i++) {                                               \
                const T* restrict v = V + i * K;                               \
                T* restrict o = out + i * M + j;                               \
                VEC a0 = from_out ? LD(o) : ZERO();                            \
                VEC a1 = from_out ? LD(o + L) : ZERO();                        \
                VEC c0 = ZERO(), c1 = ZERO();                                  \
                Py_ssize_t k = k0;                                             \
                for (; k + 2 <= k1; k += 2) {                                  \
                    VEC b = BC(v + k);                                         \
                    a0 = FMA(b, LD(w + 2 * L * k), a0);                        \
                    a1 = FMA(b, LD(w + 2 * L * k + L), a1);                    \
                    b = BC(v + k + 1);                                         \
                    c0 = FMA(b, LD(w + 2 * L * (k + 1)), c0);                  \
                    c1 = FMA(b, LD(w + 2 * L * (k + 1) + L), c1);              \
                }                                                              \
                if (k < k1) {                                                  \
                    VEC b = BC(v + k);                                         \
                    a0 = FMA(b, LD(w + 2 * L * k), a0);                        \
                    a1 = FMA(b, LD(w + 2 * L * k + L), a1);                    \
                }                                                              \
                a0 = ADD(a0, c0); a1 = ADD(a1, c1);                            \
                if (add_out) { a0 = ADD(a0, LD(o)); a1 = ADD(a1, LD(o + L)); } \
                ST(o, a0); ST(o + L, a1);                                      \
            }                                                                  \
        }                                                                      \
        if (half) {          /* one vector of the leftover block: a chain per \
                                element, as in the panels */                  \
            const T* restrict w = P + M2 * K;                                  \
            Py_ssize_t i = 0;                                                  \
            for (; i < B4; i += 4) {                                           \
                const T* restrict v = V + i * K;                               \
                T* restrict o = out + i * M + M2;                              \
                VEC a0 = from_out ? LD(o) : ZERO();                            \
                VEC a1 = from_out ? LD(o + M) : ZERO();                        \
                VEC a2 = from_out ? LD(o + 2 * M) : ZERO();                    \
                VEC a3 = from_out ? LD(o + 3 * M) : ZERO();                    \
                for (Py_ssize_t k = k0; k < k1; k++) {                         \
                    VEC w0 = LD(w + rest * k);                                 \
                    NNKIT_IN_REGISTER(w0);                                     \
                    a0 = FMA(BC(v + k), w0, a0);                               \
                    a1 = FMA(BC(v + K + k), w0, a1);                           \
                    a2 = FMA(BC(v + 2 * K + k), w0, a2);                       \
                    a3 = FMA(BC(v + 3 * K + k), w0, a3);                       \
                }                                                              \
                if (add_out) {                                                 \
                    a0 = ADD(a0, LD(o)); a1 = ADD(a1, LD(o + M));              \
                    a2 = ADD(a2, LD(o + 2 * M)); a3 = ADD(a3, LD(o + 3 * M));  \
                }                                                              \
                ST(o, a0); ST(o + M, a1); ST(o + 2 * M, a2); ST(o + 3 * M, a3);\
            }                                                                  \
            for (; i < B; i++) {                                               \
                const T* restrict v = V + i * K;                               \
                T* restrict o = out + i * M + M2;                              \
                VEC a0 = from_out ? LD(o) : ZERO();                            \
                for (Py_ssize_t k = k0; k < k1; k++)                           \
                    a0 = FMA(BC(v + k), LD(w + rest * k), a0);                 \
                if (add_out) a0 = ADD(a0, LD(o));                              \
                ST(o, a0);                                                     \
            }                                                                  \
        }                                                                      \
        }                                                                      \
        if (M2 + half * L < M && jb == M && ja < jb)                           \
            PLAIN##_ld(B, K, M, M2 + half * L, rest - half * L, V,             \
                       P + M2 * K + half * L, rest, accumulate, out);          \
    }
    /* the vector types, lanes and intrinsics of the build's ISA */
    #ifdef NNKIT_TILE_512
    #define NNKIT_VEC_F __m512
    #define NNKIT_VEC_D __m512d
    #define NNKIT_LANES_F 16
    #define NNKIT_LANES_D 8
    #define NNKIT_MM(op) _mm512_##op
    #define NNKIT_BROADCAST_F(p) _mm512_set1_ps(*(p))
    #define NNKIT_BROADCAST_D(p) _mm512_set1_pd(*(p))
    #else
    #define NNKIT_VEC_F __m256
    #define NNKIT_VEC_D __m256d
    #define NNKIT_LANES_F 8
    #define NNKIT_LANES_D 4
    #define NNKIT_MM(op) _mm256_##op
    #define NNKIT_BROADCAST_F(p) _mm256_broadcast_ss(p)
    #define NNKIT_BROADCAST_D(p) _mm256_broadcast_sd(p)
    #endif
    NNKIT_TILE_GEMM(nnkit_small_gemm_f, float, nnkit_plain_gemm_f, NNKIT_VEC_F, NNKIT_LANES_F,
                    NNKIT_MM(loadu_ps), NNKIT_MM(storeu_ps), NNKIT_BROADCAST_F,
                    NNKIT_MM(fmadd_ps), NNKIT_MM(add_ps), NNKIT_MM(setzero_ps))
    NNKIT_TILE_GEMM(nnkit_small_gemm_d, double, nnkit_plain_gemm_d, NNKIT_VEC_D, NNKIT_LANES_D,
                    NNKIT_MM(loadu_pd), NNKIT_MM(storeu_pd), NNKIT_BROADCAST_D,
                    NNKIT_MM(fmadd_pd), NNKIT_MM(add_pd), NNKIT_MM(setzero_pd))
    #else
    /* no panels: one thread's range is all of op(W) (ja = 0, jb = M) */
    static inline void nnkit_small_gemm_f(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M,
            Py_ssize_t ja, Py_ssize_t jb, const float* restrict V,
            const float* restrict P, int accumulate, float* restrict out) {
        if (ja == 0 && jb == M) nnkit_plain_gemm_f(B, K, M, 0, V, P, accumulate, out); }
    static inline void nnkit_small_gemm_d(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M,
            Py_ssize_t ja, Py_ssize_t jb, const double* restrict V,
            const double* restrict P, int accumulate, double* restrict out) {
        if (ja == 0 && jb == M) nnkit_plain_gemm_d(B, K, M, 0, V, P, accumulate, out); }
    #endif
    #endif
    """
    void nnkit_plain_gemm_f(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t j0,
                            const float* V, const float* R, int accumulate,
                            float* out) noexcept nogil
    void nnkit_plain_gemm_d(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t j0,
                            const double* V, const double* R, int accumulate,
                            double* out) noexcept nogil
    void nnkit_small_gemm_f(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t ja,
                            Py_ssize_t jb, const float* V,
                            const float* Wt, int accumulate, float* out) noexcept nogil
    void nnkit_small_gemm_d(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t ja,
                            Py_ssize_t jb, const double* V,
                            const double* Wt, int accumulate, double* out) noexcept nogil
    void* nnkit_panel_alloc(size_t bytes) noexcept nogil
    int NNKIT_PANEL_F
    int NNKIT_PANEL_D
    int NNKIT_TILE_WIDE       # 1: the AVX-512 kernel (512-bit vectors)
