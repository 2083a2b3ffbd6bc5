/* What every kernel here shares: masks for the channels left, and the split of work among
 * torch's OpenMP threads. */
#pragma once
#include <immintrin.h>
#include <omp.h>

/* the lanes of channels c .. c + 15 that exist */
static inline __mmask16 lanes(long c, long channels) {
    long left = channels - c;
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* `call` with `first` and `last` the part of [0, total) each of `threads` threads takes, `part`
 * the thread's number; one thread runs outside OpenMP: a forked worker's runtime may not
 * survive the fork */
#define SPLIT(threads, total, call)                                                   \
    do {                                                                              \
        if ((threads) <= 1) {                                                         \
            long part = 0, first = 0, last = (total);                                 \
            (void)part;                                                               \
            call;                                                                     \
        } else {                                                                      \
            _Pragma("omp parallel num_threads(threads)") {                            \
                long part = omp_get_thread_num(), parts_ = omp_get_num_threads();     \
                long first = (total) * part / parts_;                                 \
                long last = (total) * (part + 1) / parts_;                            \
                (void)part;                                                           \
                call;                                                                 \
            }                                                                         \
        }                                                                             \
    } while (0)
