/* embedding.c: token + learned position embeddings, forward and backward, whole or with the
 * token table split by vocabulary rows over tensor ranks. */
#include "ops/cpu.h"
#include <omp.h>
#include <string.h>

void ct_cpu_embedding_forward(float *x, const int32_t *tokens, const float *wte, const float *wpe, int B, int T,
                              int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *out = x + ((size_t)b * T + t) * C;
            const float *te = wte + (size_t)tokens[b * T + t] * C, *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) out[c] = te[c] + pe[c];
        }
}

void ct_cpu_embedding_lookup(float *x, const int32_t *tokens, const float *wte, int v0, int v1, int B, int T,
                             int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B * T; n++) {
        float *out = x + (size_t)n * C;
        int tok = tokens[n];
        if (tok >= v0 && tok < v1) memcpy(out, wte + (size_t)(tok - v0) * C, (size_t)C * sizeof(float));
        else
            memset(out, 0, (size_t)C * sizeof(float));
    }
}

void ct_cpu_embedding_add_positions(float *x, const float *wpe, int B, int T, int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *out = x + ((size_t)b * T + t) * C;
            const float *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) out[c] += pe[c];
        }
}

/* Each thread owns a slice of channels, so the scatter-add has no races and a fixed order. */
void ct_cpu_embedding_backward(float *dwte, float *dwpe, const float *dx, const int32_t *tokens, int v0, int v1,
                               int B, int T, int C) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *d = dx + ((size_t)b * T + t) * C;
                int tok = tokens[b * T + t];
                float *pe = dwpe + (size_t)t * C;
                for (int c = c0; c < c1; c++) pe[c] += d[c];
                if (tok < v0 || tok >= v1) continue;
                float *te = dwte + (size_t)(tok - v0) * C;
                for (int c = c0; c < c1; c++) te[c] += d[c];
            }
    }
}
