/* A team that meets inside one OpenMP region (pyx/rnn.pyx): the team's
   size, a barrier, and a count one thread publishes and another waits for.
   Without OpenMP the region is one thread and the barrier a no-op. */
#ifndef NNKIT_TEAM_H
#define NNKIT_TEAM_H

/* acquire/release: what was written before the publish is visible after
   the wait */
static inline void nnkit_publish(long* p, long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline void nnkit_wait_for(long* p, long v) {
    while (__atomic_load_n(p, __ATOMIC_ACQUIRE) < v) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

#ifdef _OPENMP
#include <omp.h>
static inline int nnkit_team_size(void) { return omp_get_num_threads(); }
static inline void nnkit_barrier(void) { _Pragma("omp barrier") }
#else
static inline int nnkit_team_size(void) { return 1; }
static inline void nnkit_barrier(void) { }
#endif

#endif  /* NNKIT_TEAM_H */
