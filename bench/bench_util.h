/* bench_util.h: what the C benchmarks share: the median of timings. (Time comes from
 * ct_now in src/core.) */
#ifndef CT_BENCH_UTIL_H
#define CT_BENCH_UTIL_H

#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place and returns its median. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
