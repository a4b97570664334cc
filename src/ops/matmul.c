/* matmul.c: the linear layer y = x W + b on OpenBLAS sgemm, with W stored [in, out] as in
 * Hugging Face's GPT-2 Conv1D, and the deterministic reductions: the column-sum used for
 * bias gradients and the sum of squares used for gradient norms. */
#include "core/core.h"
#include "ops/cpu.h"
#include <cblas.h>
#include <string.h>

#define COLSUM_CHUNKS 32 /* fixed, so the sum order does not depend on the thread count */
#define SUMSQ_CHUNKS 64

void ct_cpu_colsum_accumulate(float *dst, const float *src, int N, int C) {
    float *partial = ct_alloc(sizeof(float) * COLSUM_CHUNKS * (size_t)C, "column sum partials");
    CT_ASSERT(partial != NULL); /* a kernel cannot return the failure */
    int chunk = (N + COLSUM_CHUNKS - 1) / COLSUM_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < COLSUM_CHUNKS; k++) {
        float *acc = partial + (size_t)k * C;
        memset(acc, 0, sizeof(float) * (size_t)C);
        int end = (k + 1) * chunk < N ? (k + 1) * chunk : N;
        for (int n = k * chunk; n < end; n++) {
            const float *row = src + (size_t)n * C;
            for (int c = 0; c < C; c++) acc[c] += row[c];
        }
    }
    for (int k = 0; k < COLSUM_CHUNKS; k++)
        for (int c = 0; c < C; c++) dst[c] += partial[(size_t)k * C + c];
    ct_free(partial);
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

void ct_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                           int N, int IC, int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * (size_t)OC);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, IC, 1.0f, inp, IC, w, OC,
                beta, out, OC);
}

void ct_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, IC, OC, 1.0f, dout, OC, w, OC,
                    0.0f, dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, N, 1.0f, inp, IC, dout, OC,
                1.0f, dw, OC);
    if (dbias) ct_cpu_colsum_accumulate(dbias, dout, N, OC);
}
