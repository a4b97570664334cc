/* patch.c: image patch embeddings, forward and backward: each patch's pixels linearly
 * projected into the model width plus a learned 2-D position (a row and a column vector),
 * and cutting an image into patches. */
#include "ops/cpu.h"
#include <omp.h>
#include <string.h>

void ct_cpu_patches_cut(float *out, const float *pixels, int H, int W, int P) {
    int Hp = H / P, Wp = W / P;
    for (int r = 0; r < Hp; r++)
        for (int c = 0; c < Wp; c++) {
            float *dst = out + ((size_t)r * Wp + c) * (size_t)P * P;
            for (int y = 0; y < P; y++)
                memcpy(dst + (size_t)y * P, pixels + ((size_t)r * P + y) * W + (size_t)c * P,
                       (size_t)P * sizeof(float));
        }
}

void ct_cpu_patch_embed_forward(float *x, const float *patches, const float *w, const float *bias,
                                const float *row, const float *col, int Np, int Wp, int K, int C) {
    /* x[Np, C] = patches[Np, K] w[K, C] */
    ct_cpu_gemm(0, 0, Np, C, K, 1.0f, patches, K, w, C, 0.0f, x, C);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < Np; n++) {
        float *out = x + (size_t)n * C;
        const float *pr = row + (size_t)(n / Wp) * C, *pc = col + (size_t)(n % Wp) * C;
        for (int c = 0; c < C; c++) out[c] += bias[c] + pr[c] + pc[c];
    }
}

void ct_cpu_patch_embed_backward(float *dw, float *dbias, float *drow, float *dcol, const float *dx,
                                 const float *patches, int Np, int Wp, int K, int C) {
    /* dw[K, C] += patches^T[K, Np] dx[Np, C] */
    ct_cpu_gemm(1, 0, K, C, Np, 1.0f, patches, K, dx, C, 1.0f, dw, C);
#pragma omp parallel
    { /* each thread owns a slice of channels: no races, a fixed order */
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int n = 0; n < Np; n++) {
            const float *d = dx + (size_t)n * C;
            float *pr = drow + (size_t)(n / Wp) * C, *pc = dcol + (size_t)(n % Wp) * C;
            for (int c = c0; c < c1; c++) {
                dbias[c] += d[c];
                pr[c] += d[c];
                pc[c] += d[c];
            }
        }
    }
}
