/* The chunk sums of layer and instance norm (pyx/norms.pyx), on 32-byte
   vectors (nnkit_vec.h). Accumulators are whole registers held over the
   chunk, each lane a sum of at most 32 terms in the input type; then the
   lanes go to double, folded pairwise. Leftovers (fewer than a loop's step)
   go one by one to one scalar of the input type.
     nnkit_chunk_sum_f/_d       sum x, over n <= NNKIT_FWD_CHUNK values
                                (4 vector accumulators)
     nnkit_chunk_centred_f/_d   s1 = sum (x - c), s2 = sum (x - c)^2, the
                                same n (a second look at the chunk, from L1)
     nnkit_chunk_bwd_f/_d       the backward's row sums over n <=
                                NNKIT_BWD_CHUNK values (2 accumulators each)
   Each reads its chunk once. */
#ifndef NNKIT_NORMS_H
#define NNKIT_NORMS_H

#include "nnkit_vec.h"

#include "nnkit_as_float.h"
#include "nnkit_norms_sums.h"
#include "nnkit_as_double.h"
#include "nnkit_norms_sums.h"

/* chunk sizes: 32 terms per accumulator lane (4 vectors forward, 2 backward) */
#define NNKIT_FWD_CHUNK_F (128 * NNKIT_VL_f)
#define NNKIT_FWD_CHUNK_D (128 * NNKIT_VL_d)
#define NNKIT_BWD_CHUNK_F (64 * NNKIT_VL_f)
#define NNKIT_BWD_CHUNK_D (64 * NNKIT_VL_d)

#endif  /* NNKIT_NORMS_H */
