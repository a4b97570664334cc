/* crossentropy.c: fused softmax + cross-entropy over the vocabulary; backward in place. */
#include "ops/cpu.h"
#include "ops/vmath.h"
#include <math.h>

static float row_logsumexp(const float *x, int V) {
    float m = -INFINITY;
    for (int v = 0; v < V; v++) m = x[v] > m ? x[v] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += ct_expf(x[v] - m);
    return m + logf(s);
}

float ct_cpu_crossentropy_forward(float *lse, const float *logits, const int32_t *targets, int N, int V,
                                  int *counted) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) lse[n] = row_logsumexp(logits + (size_t)n * V, V);
    double total = 0.0; /* summed in row order: the reported loss is reproducible */
    int count = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        total += (double)(lse[n] - logits[(size_t)n * V + targets[n]]);
        count += 1;
    }
    if (counted) *counted = count;
    return count ? (float)(total / count) : 0.0f;
}

void ct_cpu_crossentropy_backward(float *logits, const float *lse, const int32_t *targets, int N, int V,
                                  float scale) {
    ct_cpu_crossentropy_backward_part(logits, lse, targets, N, V, 0, scale);
}

void ct_cpu_crossentropy_backward_part(float *logits, const float *lse, const int32_t *targets, int N, int V,
                                       int v0, float scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = logits + (size_t)n * V;
        if (targets[n] < 0) {
            for (int v = 0; v < V; v++) x[v] = 0.0f;
            continue;
        }
        float l = lse[n];
#pragma omp simd
        for (int v = 0; v < V; v++) x[v] = scale * ct_expf(x[v] - l);
        int t = targets[n] - v0;
        if (t >= 0 && t < V) x[t] -= scale;
    }
}

void ct_cpu_rowmax(const float *logits, int N, int V, float *out) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float m = -INFINITY;
        for (int v = 0; v < V; v++) m = x[v] > m ? x[v] : m;
        out[n] = m;
    }
}

void ct_cpu_crossentropy_partials(const float *logits, const int32_t *targets, int N, int V, int v0,
                                  const float *shift, float *sum_exp, float *target) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float m = shift[n], s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int v = 0; v < V; v++) s += ct_expf(x[v] - m);
        sum_exp[n] = s;
        int t = targets[n] - v0;
        target[n] = targets[n] >= 0 && t >= 0 && t < V ? x[t] : 0.0f;
    }
}
