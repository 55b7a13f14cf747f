/* Streaming (non-temporal) stores for outputs larger than the caches
   (stream_copy in pyx/_common.pxd). An ordinary store first reads the line
   it writes (write-allocate), so writing an output costs a read and a
   write-back; a streaming store writes without the read. */
#ifndef NNKIT_STREAM_H
#define NNKIT_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#define NNKIT_STREAM_ALIGN 32
#elif defined(__SSE2__)
#include <emmintrin.h>
#define NNKIT_STREAM_ALIGN 16
#endif

/* dst[0:n] = src[0:n], n bytes: memcpy up to dst's first vector-aligned
   address, aligned streaming stores, memcpy for the tail. One function for
   both dtypes: a streamed vector is the same bytes whatever it holds. */
static inline void nnkit_stream_bytes(char* dst, const char* src, size_t n) {
    size_t i = 0;
#ifdef NNKIT_STREAM_ALIGN
    size_t head = (NNKIT_STREAM_ALIGN - (uintptr_t)dst % NNKIT_STREAM_ALIGN)
                  % NNKIT_STREAM_ALIGN;
    if (head <= n) {
        memcpy(dst, src, head);
        i = head;
#if defined(__AVX__)
        for (; i + 32 <= n; i += 32)
            _mm256_stream_si256((__m256i*)(dst + i), _mm256_loadu_si256((const __m256i*)(src + i)));
#else
        for (; i + 16 <= n; i += 16)
            _mm_stream_si128((__m128i*)(dst + i), _mm_loadu_si128((const __m128i*)(src + i)));
#endif
    }
#endif
    if (i < n) memcpy(dst + i, src + i, n - i);
}

/* streaming stores are weakly ordered: fence before other threads read */
static inline void nnkit_stream_fence(void) {
#ifdef NNKIT_STREAM_ALIGN
    _mm_sfence();
#endif
}

#endif  /* NNKIT_STREAM_H */
