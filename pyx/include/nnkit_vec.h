/* 32-byte vectors in GCC/Clang's vector extensions, shared by the C sweeps
   of batch norm (nnkit_bn.h), layer/instance norm (nnkit_norms.h) and the
   convolution's packing (nnkit_conv.h). One code for every build: ymm
   registers with AVX, and gcc splits them into SSE halves or scalars on
   targets without it.

   Loads and stores go through memcpy: any alignment, no aliasing rules
   broken, and gcc compiles each to one unaligned vector move. */
#ifndef NNKIT_VEC_H
#define NNKIT_VEC_H

#include <string.h>
#include "nnkit_base.h"

typedef float nnkit_vec_f __attribute__((vector_size(32)));
typedef double nnkit_vec_d __attribute__((vector_size(32)));
/* integer vectors of the same lanes: comparison results, bit masks */
typedef int nnkit_ivec_f __attribute__((vector_size(32)));
typedef long long nnkit_ivec_d __attribute__((vector_size(32)));

/* lanes per vector */
enum { NNKIT_VL_f = 32 / sizeof(float), NNKIT_VL_d = 32 / sizeof(double) };

static inline nnkit_vec_f nnkit_load_f(const float* p) { nnkit_vec_f v; memcpy(&v, p, 32); return v; }
static inline nnkit_vec_d nnkit_load_d(const double* p) { nnkit_vec_d v; memcpy(&v, p, 32); return v; }
static inline void nnkit_store_f(float* p, nnkit_vec_f v) { memcpy(p, &v, 32); }
static inline void nnkit_store_d(double* p, nnkit_vec_d v) { memcpy(p, &v, 32); }

/* d[0:16] = s[0:16] as two vector moves each way (memcpy of 64 bytes
   inlines as four 16-byte moves) */
static inline void nnkit_copy64_f(float* d, const float* s) {
    nnkit_vec_f a = nnkit_load_f(s), b = nnkit_load_f(s + 8);
    nnkit_store_f(d, a);
    nnkit_store_f(d + 8, b);
}

#endif  /* NNKIT_VEC_H */
