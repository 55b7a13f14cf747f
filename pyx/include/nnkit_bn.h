/* The two sweeps of batch norm's training backward (pyx/batchnorm.pyx), on
   32-byte vectors (nnkit_vec.h). Per column j, with c = y - m and the
   forward's z = c s + b recomputed by the same expression (same rounding:
   the ReLU mask is the forward's exactly), dz = dh where z > 0 or z is NaN,
   else 0 (relu_grad in pyx/_common.pxd); without the ReLU dz = dh.
     nnkit_bn_reduce_f/_d  one or two rows into the chunk partials:
                           psb += dz;  psg += dz c;  psc += c
                           (the input type; Yhat's inv is applied per chunk,
                           in double, by the caller)
     nnkit_bn_dy_f/_d      one row of dY: dst = s dz - mt - vi c
                           (mt = mean_term, vi = var_term inv)
   Each reads its rows once. Explicit vectors, so that the ReLU select inside
   the accumulation vectorizes (gcc leaves such a loop scalar). */
#ifndef NNKIT_BN_H
#define NNKIT_BN_H

#include "nnkit_vec.h"

#include "nnkit_as_float.h"
#include "nnkit_bn_sweeps.h"
#include "nnkit_as_double.h"
#include "nnkit_bn_sweeps.h"

#endif  /* NNKIT_BN_H */
