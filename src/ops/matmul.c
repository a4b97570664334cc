/* matmul.c: the linear layer y = x W + b on the backend's product (gemm.c), with W stored [in, out] as in
 * Hugging Face's GPT-2 Conv1D, and the deterministic reductions: the column-sum used for
 * bias gradients and the sum of squares used for gradient norms. */
#include "core/core.h"
#include "ops/cpu.h"
#include <string.h>

#define COL_BLOCK 64  /* channels one thread sums: the partials live on its stack */
#define ROW_CHUNK 256 /* rows summed in float before the sum moves to double */
#define SUMSQ_CHUNKS 64

/* Channel blocks in parallel, rows in order within a block: the sum order does not depend on
 * the thread count, and no scratch buffer is needed (a kernel cannot report a failed
 * allocation). */
void ct_cpu_colsum_accumulate(float *dst, const float *src, int N, int C) {
    int blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        int c0 = b * COL_BLOCK, width = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
        double total[COL_BLOCK] = {0};
        for (int n0 = 0; n0 < N; n0 += ROW_CHUNK) {
            float acc[COL_BLOCK] = {0};
            int n1 = n0 + ROW_CHUNK < N ? n0 + ROW_CHUNK : N;
            for (int n = n0; n < n1; n++) {
                const float *row = src + (size_t)n * C + c0;
                for (int c = 0; c < width; c++) acc[c] += row[c];
            }
            for (int c = 0; c < width; c++) total[c] += acc[c];
        }
        for (int c = 0; c < width; c++) dst[c0 + c] += (float)total[c];
    }
}

double ct_cpu_sum_squares(const float *x, size_t n) {
    double partial[SUMSQ_CHUNKS];
    size_t chunk = (n + SUMSQ_CHUNKS - 1) / SUMSQ_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < SUMSQ_CHUNKS; k++) {
        size_t a = (size_t)k * chunk, e = a + chunk < n ? a + chunk : n;
        double s = 0.0;
        for (size_t i = a; i < e; i++) s += (double)x[i] * (double)x[i];
        partial[k] = s;
    }
    double total = 0.0;
    for (int k = 0; k < SUMSQ_CHUNKS; k++) total += partial[k];
    return total;
}

void ct_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IC,
                           int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * (size_t)OC);
        beta = 1.0f;
    }
    ct_cpu_gemm(0, 0, N, OC, IC, 1.0f, inp, IC, w, OC, beta, out, OC);
}

void ct_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                            const float *w, int N, int IC, int OC) {
    if (dinp) ct_cpu_gemm(0, 1, N, IC, OC, 1.0f, dout, OC, w, OC, 0.0f, dinp, IC);
    ct_cpu_gemm(1, 0, IC, OC, N, 1.0f, inp, IC, dout, OC, 1.0f, dw, OC);
    if (dbias) ct_cpu_colsum_accumulate(dbias, dout, N, OC);
}
