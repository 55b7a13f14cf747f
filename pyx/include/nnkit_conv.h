/* The convolution's calls into the tile kernel (pyx/conv.pyx). */
#ifndef NNKIT_CONV_H
#define NNKIT_CONV_H

#include "nnkit_tile.h"
#include "nnkit_vec.h"

/* out[:, 0:jb] (+)= V (B, K) op(W)[:, 0:jb], op(W) packed in P, behind a
   call: inlined into _implicit_gemm's packing loops, the kernel ran out of
   registers and reloaded its loop bounds from the stack inside the k loop. */
__attribute__((noinline)) static void nnkit_conv_tile_f(
        ptrdiff_t B, ptrdiff_t K, ptrdiff_t M, ptrdiff_t jb, const float* V,
        const float* P, int acc, float* out) {
    nnkit_small_gemm_f(B, K, M, 0, jb, V, P, acc, out);
}

__attribute__((noinline)) static void nnkit_conv_tile_d(
        ptrdiff_t B, ptrdiff_t K, ptrdiff_t M, ptrdiff_t jb, const double* V,
        const double* P, int acc, double* out) {
    nnkit_small_gemm_d(B, K, M, 0, jb, V, P, acc, out);
}

#endif  /* NNKIT_CONV_H */
