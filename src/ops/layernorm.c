/* layernorm.c: LayerNorm over the channel axis, forward and backward. */
#include "core/core.h"
#include "ops/cpu.h"
#include <math.h>
#include <string.h>

#define LN_EPS 1e-5f
#define LN_CHUNKS 32 /* fixed row chunks for the gain/bias gradient sums */

void ct_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *g, const float *b, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + LN_EPS);
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * g[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void ct_cpu_layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
                               const float *inp, const float *g, const float *mean,
                               const float *rstd, int N, int C) {
    float *pg_all = ct_alloc(sizeof(float) * 2 * LN_CHUNKS * (size_t)C, "layernorm gain and bias gradient partials");
    CT_ASSERT(pg_all != NULL); /* a kernel cannot return the failure */
#define pg(k) (pg_all + (size_t)(k) * C)
#define pb(k) (pg_all + (size_t)(LN_CHUNKS + (k)) * C)
    int chunk = (N + LN_CHUNKS - 1) / LN_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < LN_CHUNKS; k++) {
        memset(pg(k), 0, sizeof(float) * (size_t)C);
        memset(pb(k), 0, sizeof(float) * (size_t)C);
        int end = (k + 1) * chunk < N ? (k + 1) * chunk : N;
        for (int n = k * chunk; n < end; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float sum_dn = 0.0f, sum_dn_xhat = 0.0f;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                float dn = dy[c] * g[c];
                sum_dn += dn;
                sum_dn_xhat += dn * xhat;
                pg(k)[c] += dy[c] * xhat;
                pb(k)[c] += dy[c];
            }
            sum_dn /= (float)C;
            sum_dn_xhat /= (float)C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                dx[c] += s * (dy[c] * g[c] - sum_dn - xhat * sum_dn_xhat);
            }
        }
    }
    for (int k = 0; k < LN_CHUNKS; k++)
        for (int c = 0; c < C; c++) { dg[c] += pg(k)[c]; db[c] += pb(k)[c]; }
    ct_free(pg_all);
#undef pg
#undef pb
}
