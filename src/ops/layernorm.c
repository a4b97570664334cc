/* layernorm.c: LayerNorm over the channel axis, forward and backward. */
#include "ops/cpu.h"
#include <math.h>
#include <string.h>

#define LN_EPS 1e-5f
#define LN_COL_BLOCK 64  /* channels one thread sums the gain/bias gradients of */
#define LN_ROW_CHUNK 256 /* rows summed in float before the sums move to double */

void ct_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *g,
                              const float *b, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + LN_EPS);
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * g[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* Two passes, neither with a scratch buffer (a kernel cannot report a failed allocation):
 * rows in parallel for the input gradient, then channel blocks in parallel for the gain and
 * bias gradients, rows in order within a block so the sum order does not depend on the
 * thread count. */
void ct_cpu_layernorm_backward(float *dinp, float *dg, float *db, const float *dout, const float *inp,
                               const float *g, const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float sum_dn = 0.0f, sum_dn_xhat = 0.0f;
        for (int c = 0; c < C; c++) {
            float dn = dy[c] * g[c];
            sum_dn += dn;
            sum_dn_xhat += dn * (x[c] - m) * s;
        }
        sum_dn /= (float)C;
        sum_dn_xhat /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += s * (dy[c] * g[c] - sum_dn - xhat * sum_dn_xhat);
        }
    }
    int blocks = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        int c0 = b * LN_COL_BLOCK, width = C - c0 < LN_COL_BLOCK ? C - c0 : LN_COL_BLOCK;
        double sum_g[LN_COL_BLOCK] = {0}, sum_b[LN_COL_BLOCK] = {0};
        for (int n0 = 0; n0 < N; n0 += LN_ROW_CHUNK) {
            float pg[LN_COL_BLOCK] = {0}, pb[LN_COL_BLOCK] = {0};
            int n1 = n0 + LN_ROW_CHUNK < N ? n0 + LN_ROW_CHUNK : N;
            for (int n = n0; n < n1; n++) {
                const float *x = inp + (size_t)n * C + c0, *dy = dout + (size_t)n * C + c0;
                float m = mean[n], s = rstd[n];
                for (int c = 0; c < width; c++) {
                    pg[c] += dy[c] * (x[c] - m) * s;
                    pb[c] += dy[c];
                }
            }
            for (int c = 0; c < width; c++) {
                sum_g[c] += pg[c];
                sum_b[c] += pb[c];
            }
        }
        for (int c = 0; c < width; c++) {
            dg[c0 + c] += (float)sum_g[c];
            db[c0 + c] += (float)sum_b[c];
        }
    }
}
