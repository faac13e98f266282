/*
 * Timing helpers of the benchmark programs (bench/engine_bench.c, bench/engine/conv_backends.c).
 * Header-only: each benchmark is one source file built as its own executable.
 */
#ifndef VG_BENCH_CLOCK_H
#define VG_BENCH_CLOCK_H

#include <time.h>

static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* qsort comparator for doubles (ascending). */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
