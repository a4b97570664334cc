/* residual.c: the residual connection's element-wise add. */
#include "ops/cpu.h"

void ct_cpu_residual_add(float *y, const float *x, const float *delta, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] + delta[i];
}
