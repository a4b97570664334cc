/* optim.c: AdamW, gradient clipping and the learning-rate schedule. */
#include "core/core.h"
#include "ops/ops.h"
#include "train/optim.h"
#include <math.h>
#include <string.h>


struct ct_adamw {
    size_t lo, n; /* moments cover the flat parameter range [lo, lo + n) */
    float *m, *v;
    int64_t t;
};

ct_status ct_adamw_create(ct_adamw **out, size_t num_params) {
    return ct_adamw_create_range(out, 0, num_params);
}

size_t ct_adamw_range_lo(const ct_adamw *o) { return o->lo; }
size_t ct_adamw_range_n(const ct_adamw *o) { return o->n; }

ct_status ct_adamw_create_range(ct_adamw **out, size_t lo, size_t num_params) {
    ct_adamw *o = calloc(1, sizeof *o);
    if (!o) return ct_fail(CT_ENOMEM, "out of memory for the optimizer");
    o->lo = lo;
    o->n = num_params;
    o->m = ct_calloc(num_params * sizeof(float), "AdamW first moments");
    o->v = ct_calloc(num_params * sizeof(float), "AdamW second moments");
    if (!o->m || !o->v) { ct_adamw_free(o); return CT_ENOMEM; }
    *out = o;
    return CT_OK;
}

void ct_adamw_free(ct_adamw *o) {
    if (!o) return;
    ct_free(o->m);
    ct_free(o->v);
    free(o);
}

float *ct_adamw_m(ct_adamw *o) { return o->m; }
float *ct_adamw_v(ct_adamw *o) { return o->v; }
int64_t ct_adamw_steps(const ct_adamw *o) { return o->t; }
void ct_adamw_set_steps(ct_adamw *o, int64_t t) { o->t = t; }

float ct_grad_norm(const float *g, size_t n) { return (float)sqrt(ct_sum_squares(g, n)); }

static void update_range(float *p, const float *g, float *m, float *v, size_t n, float lr,
                         float wd, float clip_scale, float bc1, float bc2,
                         const ct_adamw_config *c) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] * clip_scale;
        float mi = c->beta1 * m[i] + (1.0f - c->beta1) * grad;
        float vi = c->beta2 * v[i] + (1.0f - c->beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        float update = (mi / bc1) / (sqrtf(vi / bc2) + c->eps);
        p[i] -= lr * (update + wd * p[i]);
    }
}

float ct_clip_scale(float norm, const ct_adamw_config *c) {
    return c->grad_clip > 0.0f && norm > c->grad_clip ? c->grad_clip / norm : 1.0f;
}

void ct_adamw_update(ct_adamw *o, ct_model *m, float lr, float clip_scale, const ct_adamw_config *c) {
    float *params = ct_model_params(m), *grads = ct_model_grads(m);
    CT_ASSERT(grads != NULL && o->lo + o->n <= ct_model_num_params(m));
    o->t += 1;
    float bc1 = 1.0f - powf(c->beta1, (float)o->t), bc2 = 1.0f - powf(c->beta2, (float)o->t);
    size_t lo = o->lo, hi = o->lo + o->n;
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        size_t a = t->offset > lo ? t->offset : lo, b = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (a >= b) continue;
        update_range(params + a, grads + a, o->m + (a - lo), o->v + (a - lo), b - a, lr,
                     t->decay ? c->weight_decay : 0.0f, clip_scale, bc1, bc2, c);
    }
}

float ct_adamw_step(ct_adamw *o, ct_model *m, float lr, const ct_adamw_config *c) {
    CT_ASSERT(ct_model_grads(m) != NULL && ct_model_num_params(m) == o->n && o->lo == 0);
    float norm = ct_grad_norm(ct_model_grads(m), o->n);
    ct_adamw_update(o, m, lr, ct_clip_scale(norm, c), c);
    return norm;
}

float ct_lr_at(const ct_lr_schedule *s, int64_t step) {
    if (step < s->warmup_steps) return s->lr_max * (float)(step + 1) / (float)s->warmup_steps;
    if (step >= s->total_steps) return s->lr_min;
    double span = (double)(s->total_steps - s->warmup_steps);
    double progress = span > 0 ? (double)(step - s->warmup_steps) / span : 1.0;
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return s->lr_min + (float)cosine * (s->lr_max - s->lr_min);
}
