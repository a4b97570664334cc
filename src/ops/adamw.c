/* adamw.c: the AdamW update of a run of elements (the optimizer in src/train decides which
 * runs, with which settings). */
#include "ops/cpu.h"
#include <math.h>

void ct_cpu_adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, const ct_adamw_hparams *h) {
    const float lr = h->lr, wd = h->weight_decay, clip_scale = h->clip_scale, beta1 = h->beta1,
                beta2 = h->beta2, eps = h->eps, bc1 = h->bc1, bc2 = h->bc2;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] * clip_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * grad;
        float vi = beta2 * v[i] + (1.0f - beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        float update = (mi / bc1) / (sqrtf(vi / bc2) + eps);
        p[i] -= lr * (update + wd * p[i]);
    }
}
