/* moe_dispatch.c: the MoE layer's token movement and expert compute: capacity and priority
 * (which assignments are kept and where their rows go), the gather of token rows into one
 * contiguous expert-major buffer, each expert's MLP as one sgemm per projection over its
 * rows, the gate-weighted combine, and the backward of each. */
#include "model/moe.h"
#include "core/core.h"
#include "ops/ops.h"
#include <string.h>

/* Priority (GShard): slot j of every token, in token order, before slot j+1 of any token.
 * Assignment a = n*k + j is kept if its expert has had fewer than capacity kept before it.
 * Rows are packed expert-major, in that priority order within an expert. Sequential: O(N k). */
void ct_moe_dispatch(const ct_moe_config *c, ct_moe_acts *a, int N) {
    int E = c->n_experts, k = c->top_k, cap = ct_moe_capacity(c, N);
    memset(a->count, 0, sizeof(int32_t) * (size_t)E);
    for (int j = 0; j < k; j++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)n * k + j;
            int e = a->expert[i];
            a->row[i] = a->count[e] < cap ? a->count[e]++ : -1; /* row within e for now */
        }
    a->offset[0] = 0;
    for (int e = 0; e < E; e++) a->offset[e + 1] = a->offset[e] + a->count[e];
    for (size_t i = 0; i < (size_t)N * k; i++) {
        if (a->row[i] < 0) continue;
        a->row[i] += a->offset[a->expert[i]];
        a->asg[a->row[i]] = (int32_t)i;
    }
    a->N = N;
    a->rows = a->offset[E];
    a->capacity = cap;
    CT_ASSERT(a->rows <= a->rows_max);
}

/* xe[r, :] = x[asg[r] / k, :]  -> xe [R, C] */
void ct_moe_gather(const ct_moe_acts *a, float *xe, const float *x, int C) {
    int R = a->rows, k = a->k;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++)
        memcpy(xe + (size_t)r * C, x + (size_t)(a->asg[r] / k) * C, sizeof(float) * (size_t)C);
}

void ct_moe_expert_forward(const ct_moe_params *p, int e, const float *xe, float *h, float *act, float *out,
                           int count, int C, int F) {
    if (count == 0) return;
    size_t CF = (size_t)C * F;
    ct_matmul_forward(h, xe, p->fc_w + e * CF, p->fc_b + (size_t)e * F, count, C, F);
    ct_gelu_forward(act, h, (size_t)count * F);
    ct_matmul_forward(out, act, p->proj_w + e * CF, p->proj_b + (size_t)e * C, count, F, C);
}

/* y[n] = sum_j gate[n,j] out[row[n,j]] in j order (deterministic; one token per thread). */
void ct_moe_combine(const ct_moe_acts *a, float *y, int C) {
    int N = a->N, k = a->k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *yn = y + (size_t)n * C;
        memset(yn, 0, sizeof(float) * (size_t)C);
        for (int j = 0; j < k; j++) {
            int r = a->row[(size_t)n * k + j];
            if (r < 0) continue;
            float g = a->gate[(size_t)n * k + j];
            const float *o = a->out + (size_t)r * C;
            for (int ch = 0; ch < C; ch++) yn[ch] += g * o[ch];
        }
    }
}

/* dout[r] = gate * dy[n] for every kept row; dgate[n,j] = dy[n] . out[r] (0 if dropped). */
void ct_moe_combine_backward(const ct_moe_acts *a, float *dout, float *dgate, const float *dy, int C) {
    int N = a->N, k = a->k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *dyn = dy + (size_t)n * C;
        for (int j = 0; j < k; j++) {
            size_t i = (size_t)n * k + j;
            int r = a->row[i];
            if (r < 0) {
                dgate[i] = 0.0f;
                continue;
            }
            const float *o = a->out + (size_t)r * C;
            float *d = dout + (size_t)r * C, g = a->gate[i], dot = 0.0f;
            for (int ch = 0; ch < C; ch++) {
                d[ch] = g * dyn[ch];
                dot += dyn[ch] * o[ch];
            }
            dgate[i] = dot;
        }
    }
}

/* Reverse of ct_moe_expert_forward; dout [count, C] becomes dL/dxe. */
void ct_moe_expert_backward(const ct_moe_params *p, ct_moe_params *g, int e, const float *xe, const float *h,
                            const float *act, float *dout, float *dh, int count, int C, int F) {
    if (count == 0) return;
    size_t CF = (size_t)C * F;
    ct_matmul_backward(dh, g->proj_w + e * CF, g->proj_b + (size_t)e * C, dout, act, p->proj_w + e * CF, count,
                       F, C);
    ct_gelu_backward(dh, h, dh, (size_t)count * F);
    ct_matmul_backward(dout, g->fc_w + e * CF, g->fc_b + (size_t)e * F, dh, xe, p->fc_w + e * CF, count, C, F);
}

/* dx[n] += dxe[row[n,j]] for j = 0..k-1 (kept only). */
void ct_moe_scatter_add(const ct_moe_acts *a, float *dx, const float *dxe, int C) {
    int N = a->N, k = a->k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *d = dx + (size_t)n * C;
        for (int j = 0; j < k; j++) {
            int r = a->row[(size_t)n * k + j];
            if (r < 0) continue;
            const float *src = dxe + (size_t)r * C;
            for (int ch = 0; ch < C; ch++) d[ch] += src[ch];
        }
    }
}
