/* nnkit's register-tiled product for small GEMMs whose right operand is
   reused many times: the RNN's per-step product (op(W) = Wh, packed once per
   sequence, pyx/rnn.pyx) and the convolution's implicit GEMM (op(W) = a
   block of im2col columns packed straight into panels, pyx/conv.pyx).

     nnkit_small_gemm_f/_d(B, K, M, ja, jb, V, P, accumulate, out)
       out[:, ja:jb] (+)= V (B, K) op(W)[:, ja:jb], row-major, out's rows M
       apart, op(W) (K, M) packed in P (layout below); ja, jb on panel edges
       (jb = M takes the leftover columns too).
     nnkit_plain_gemm_f/_d(B, K, M, j0, V, R, accumulate, out)
       the plain loop alone: out[:, j0:M] (+)= V (B, K) R, R a (K, M - j0)
       row-major block.
     NNKIT_PANEL_F/_D  panel width in columns: two vectors (AVX2 + FMA: 16
       float32, 8 float64; AVX-512: 32, 16); 0 in a build without AVX2 + FMA,
       where the plain loop does every product.
     NNKIT_TILE_WIDE   1 for the AVX-512 kernel.

   Why not BLAS: at small B one BLAS call costs several times its flops,
   because it packs V and op(W) again on every call; here op(W) is packed
   once per sequence and V is read in place.

   Packed layout: op(W)'s columns in panels of PW = NNKIT_PANEL columns,
   panel p holding columns p*PW .. p*PW+PW-1 as a contiguous (K, PW) block;
   the M mod PW columns left over follow as one (K, rest) row-major block.
   A contiguous panel stays in L1 while every row block passes over it; read
   in place from op(W), a panel's rows would sit M elements apart, fall into
   a few L1 sets at power-of-two strides and evict each other.

   Sums are in the input type, as BLAS's, in another order (rounding level). */
#ifndef NNKIT_TILE_H
#define NNKIT_TILE_H

#include "nnkit_base.h"

/* ISA. AVX-512 doubles the flops per FMA (panels of 32 float32 / 16 float64
   columns) and has 32 vector registers, room for 8-row blocks. The AVX2
   kernel stays for CPUs without AVX-512 and for the sanitizer build, which
   compiles for AVX2 + FMA; -DNNKIT_TILE_AVX2 forces it on AVX-512. */
#if defined(__AVX512F__) && !defined(NNKIT_TILE_AVX2)
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

#if NNKIT_PANEL_F
/* gcc folds the panel loads into the FMAs as memory operands, once per row:
   8 loads per k instead of 2, and the loads then bound the loop, not the
   FMAs. An empty asm that "modifies" the vector keeps it in a register, so
   it is loaded once per k. */
#ifdef NNKIT_TILE_512
#define NNKIT_IN_REGISTER(x) __asm__("" : "+v"(x))  /* any of zmm0-31 */
#else
#define NNKIT_IN_REGISTER(x) __asm__("" : "+x"(x))
#endif

/* K is walked in blocks of NNKIT_TILE_KC_BYTES / (PW sizeof(T)) rows so that
   the part of a panel the row blocks pass over stays in L1 (a whole panel
   of a 512-deep product is 64 KB, past a 48 KB L1). */
#ifndef NNKIT_TILE_KC_BYTES
#define NNKIT_TILE_KC_BYTES 16384
#endif
#endif

/* The instantiations: T the element type, S the name suffix; with panels,
   VEC the vector type, L its lanes, LD ST BC FMA ADD ZERO its intrinsics
   (unaligned load and store, broadcast of *p, fused multiply-add, add,
   zero). nnkit_tile_gemm.h ends with nnkit_template_end.h, which #undefs them. */
#include "nnkit_as_float.h"
#if NNKIT_PANEL_F
#ifdef NNKIT_TILE_512
#define VEC __m512
#define L 16
#define LD _mm512_loadu_ps
#define ST _mm512_storeu_ps
#define BC(p) _mm512_set1_ps(*(p))
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define ZERO _mm512_setzero_ps
#else
#define VEC __m256
#define L 8
#define LD _mm256_loadu_ps
#define ST _mm256_storeu_ps
#define BC(p) _mm256_broadcast_ss(p)
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define ZERO _mm256_setzero_ps
#endif
#endif
#include "nnkit_tile_gemm.h"

#include "nnkit_as_double.h"
#if NNKIT_PANEL_D
#ifdef NNKIT_TILE_512
#define VEC __m512d
#define L 8
#define LD _mm512_loadu_pd
#define ST _mm512_storeu_pd
#define BC(p) _mm512_set1_pd(*(p))
#define FMA _mm512_fmadd_pd
#define ADD _mm512_add_pd
#define ZERO _mm512_setzero_pd
#else
#define VEC __m256d
#define L 4
#define LD _mm256_loadu_pd
#define ST _mm256_storeu_pd
#define BC(p) _mm256_broadcast_sd(p)
#define FMA _mm256_fmadd_pd
#define ADD _mm256_add_pd
#define ZERO _mm256_setzero_pd
#endif
#endif
#include "nnkit_tile_gemm.h"

#endif  /* NNKIT_TILE_H */
