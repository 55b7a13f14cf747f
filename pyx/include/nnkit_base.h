/* What every nnkit header uses: name pasting for the headers instantiated
   once per element type, the build flag, and line-aligned memory. */
#ifndef NNKIT_BASE_H
#define NNKIT_BASE_H

#include <stddef.h>
#include <stdlib.h>

/* name##_##suffix after expanding suffix: NNKIT_PASTE(nnkit_load, S) with
   S defined as f is nnkit_load_f */
#define NNKIT_PASTE_(a, b) a##_##b
#define NNKIT_PASTE(a, b) NNKIT_PASTE_(a, b)

/* 1 in the bounds-checked build (setup.py defines it; NNKIT_DEBUG_CYTHON=1) */
#ifndef NNKIT_DEBUG
#define NNKIT_DEBUG 0
#endif

/* bytes (at least one line) on a 64-byte boundary, or NULL; free() releases
   it. malloc's blocks start 16 bytes past a line, so a 64-byte vector load
   from one would straddle two lines. */
static inline void* nnkit_aligned_alloc(size_t bytes) {
    void* p = NULL;
    return posix_memalign(&p, 64, bytes > 0 ? bytes : 64) == 0 ? p : NULL;
}

#endif  /* NNKIT_BASE_H */
