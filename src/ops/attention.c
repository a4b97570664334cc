/* attention.c: multi-head scaled dot-product attention with a causal or prefix-LM mask.
 * One (batch, head) pair per task, each on single-threaded sgemm calls inside an OpenMP
 * loop; rows (and in backward's dK and dV, columns) are processed in blocks so the masked-out
 * blocks past the diagonal are skipped, forward and backward. */
#include "ops/cpu.h"
#include "ops/vmath.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define ROW_BLOCK 64

/* Row i may attend to columns [0, visible(i)). */
static inline int visible(int i, int prefix, int T) {
    int lim = i + 1 > prefix ? i + 1 : prefix;
    return lim < T ? lim : T;
}

/* The first row that sees column c: every row within the prefix, else row c on. */
static inline int first_seeing(int c, int prefix) { return c < prefix ? 0 : c; }

static void softmax_rows(float *S, int r0, int r1, int prefix, int T) {
    for (int i = r0; i < r1; i++) {
        float *row = S + (size_t)i * T;
        int lim = visible(i, prefix, T);
        float m = -INFINITY;
        for (int j = 0; j < lim; j++) m = row[j] > m ? row[j] : m;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < lim; j++) {
            float e = ct_expf(row[j] - m);
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < lim; j++) row[j] *= inv;
        for (int j = lim; j < T; j++) row[j] = 0.0f;
    }
}

void ct_cpu_attention_forward(float *out, float *probs, const float *qkv, const int32_t *prefix_len, int B,
                              int T, int C, int H) {
    int hd = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C;
            float *S = probs + ((size_t)b * H + h) * T * T;
            float *o = out + (size_t)b * T * C + h * hd;
            int prefix = prefix_len ? prefix_len[b] : 0;
            for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
                int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
                int cols = visible(r1 - 1, prefix, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, cols, hd, scale,
                            q + (size_t)r0 * C3, C3, k, C3, 0.0f, S + (size_t)r0 * T, T);
                softmax_rows(S, r0, r1, prefix, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, hd, cols, 1.0f,
                            S + (size_t)r0 * T, T, v, C3, 0.0f, o + (size_t)r0 * C, C);
            }
        }
}

void ct_cpu_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *probs, const int32_t *prefix_len, int B, int T, int C, int H) {
    int hd = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C;
            const float *P = probs + ((size_t)b * H + h) * T * T;
            const float *dO = dout + (size_t)b * T * C + h * hd;
            float *dq = dqkv + (size_t)b * T * C3 + h * hd, *dk = dq + C, *dv = dq + 2 * C;
            float *dS = scratch + (size_t)omp_get_thread_num() * T * T;
            int prefix = prefix_len ? prefix_len[b] : 0;
            /* dP = dO V^T over the visible columns, then dS = P * (dP - rowsum(P * dP)) */
            for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
                int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
                int cols = visible(r1 - 1, prefix, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, cols, hd, 1.0f,
                            dO + (size_t)r0 * C, C, v, C3, 0.0f, dS + (size_t)r0 * T, T);
                for (int i = r0; i < r1; i++) {
                    const float *p = P + (size_t)i * T;
                    float *d = dS + (size_t)i * T;
                    int lim = visible(i, prefix, T);
                    float dot = 0.0f;
                    for (int j = 0; j < lim; j++) dot += p[j] * d[j];
                    for (int j = 0; j < lim; j++) d[j] = p[j] * (d[j] - dot);
                    for (int j = lim; j < T; j++) d[j] = 0.0f;
                }
            }
            /* dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO, each over the unmasked blocks
             * only (dS and P are zero above the diagonal and right of the prefix) */
            for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) { /* rows r0..r1 see columns < cols */
                int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, hd, visible(r1 - 1, prefix, T),
                            scale, dS + (size_t)r0 * T, T, k, C3, 0.0f, dq + (size_t)r0 * C3, C3);
            }
            for (int c0 = 0; c0 < T; c0 += ROW_BLOCK) { /* columns c0..c1 are seen from row `from` on */
                int c1 = c0 + ROW_BLOCK < T ? c0 + ROW_BLOCK : T, from = first_seeing(c0, prefix);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, hd, T - from, scale,
                            dS + (size_t)from * T + c0, T, q + (size_t)from * C3, C3, 0.0f,
                            dk + (size_t)c0 * C3, C3);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, hd, T - from, 1.0f,
                            P + (size_t)from * T + c0, T, dO + (size_t)from * C, C, 0.0f, dv + (size_t)c0 * C3,
                            C3);
            }
        }
}
