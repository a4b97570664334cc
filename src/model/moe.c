/* moe.c: the MoE layer: capacity (its names and checks are config: spec/model_spec.c), its size tables and
 * layouts for parameters, activations and scratch, and the forward/backward passes that run
 * the stages of moe_route.c and moe_dispatch.c in order:
 *   forward:  route -> dispatch -> gather -> expert e (each) -> combine
 *   backward: combine -> expert e (each) -> route (overwrites dx) -> scatter-add into dx */
#include "model/moe.h"
#include "model/model.h"
#include "core/core.h"
#include <math.h>
#include <string.h>

/* ---- sizes and layouts ----------------------------------------------------------------- */

size_t ct_moe_params_size(const ct_moe_config *c, int C) {
    size_t E = (size_t)c->n_experts, F = (size_t)c->d_hidden;
    return (size_t)C * E + E * ((size_t)C * F + F + F * C + (size_t)C);
}

void ct_moe_params_layout(ct_moe_params *p, float *base, const ct_moe_config *c, int C) {
    size_t E = (size_t)c->n_experts, F = (size_t)c->d_hidden;
    p->router_w = base;
    p->fc_w = p->router_w + (size_t)C * E;
    p->fc_b = p->fc_w + E * C * F;
    p->proj_w = p->fc_b + E * F;
    p->proj_b = p->proj_w + E * F * C;
}

size_t ct_moe_acts_size(const ct_moe_config *c, int n_max, int C) {
    size_t N = (size_t)n_max, E = (size_t)c->n_experts, k = (size_t)c->top_k;
    size_t R = (size_t)ct_moe_rows_max(c, n_max), F = (size_t)c->d_hidden;
    return 2 * N * E + N + 3 * N * k + R + 4 * E + 1 + R * (2 * (size_t)C + 2 * F);
}

void ct_moe_acts_layout(ct_moe_acts *a, float *buf, const ct_moe_config *c, int n_max, int C) {
    size_t N = (size_t)n_max, E = (size_t)c->n_experts, k = (size_t)c->top_k;
    size_t R = (size_t)ct_moe_rows_max(c, n_max), F = (size_t)c->d_hidden;
    float *p = buf;
    memset(a, 0, sizeof *a);
    a->n_max = n_max;
    a->rows_max = (int)R;
    a->E = c->n_experts;
    a->k = c->top_k;
#define TAKE(field, type, n) \
    do { \
        a->field = (type *)p; \
        p += (n); \
    } while (0)
    TAKE(logits, float, N *E);
    TAKE(probs, float, N *E);
    TAKE(lse, float, N);
    TAKE(gate, float, N *k);
    TAKE(expert, int32_t, N * k);
    TAKE(row, int32_t, N * k);
    TAKE(asg, int32_t, R);
    TAKE(routed, int32_t, E);
    TAKE(count, int32_t, E);
    TAKE(offset, int32_t, E + 1);
    TAKE(load, float, E);
    TAKE(xe, float, R *C);
    TAKE(h, float, R *F);
    TAKE(act, float, R *F);
    TAKE(out, float, R *C);
#undef TAKE
}

size_t ct_moe_scratch_size(const ct_moe_config *c, int n_max, int C) {
    size_t N = (size_t)n_max, E = (size_t)c->n_experts, k = (size_t)c->top_k;
    size_t R = (size_t)ct_moe_rows_max(c, n_max), F = (size_t)c->d_hidden;
    return N * E + N * k + R * ((size_t)C + F) + E;
}

void ct_moe_scratch_layout(ct_moe_scratch *s, float *buf, const ct_moe_config *c, int n_max, int C) {
    size_t N = (size_t)n_max, E = (size_t)c->n_experts, k = (size_t)c->top_k;
    size_t R = (size_t)ct_moe_rows_max(c, n_max);
    s->dlogits = buf;
    s->dgate = s->dlogits + N * E;
    s->dout = s->dgate + N * k;
    s->dh = s->dout + R * C;
    s->coef = s->dh + R * (size_t)c->d_hidden;
}

/* ---- the layer ------------------------------------------------------------------------- */

void ct_moe_stats_get(const ct_moe_config *c, const ct_moe_acts *a, ct_moe_stats *st) {
    st->aux = a->aux;
    st->z = a->z;
    st->loss = c->aux_coef * a->aux + c->z_coef * a->z;
    st->dropped = a->N ? (float)((double)((size_t)a->N * a->k - a->rows) / ((double)a->N * a->k)) : 0.0f;
    st->capacity = a->capacity;
    st->load = a->load;
    st->kept = a->count;
}

float ct_moe_forward(const ct_moe_config *c, const ct_moe_params *p, ct_moe_acts *a, const float *x, float *y,
                     int N, int C, uint64_t noise_seed, int training, ct_moe_stats *stats) {
    CT_ASSERT(N >= 1 && N <= a->n_max && a->E == c->n_experts && a->k == c->top_k);
    int F = c->d_hidden;
    ct_moe_route(c, p, a, x, N, C, noise_seed, training);
    ct_moe_dispatch(c, a, N);
    ct_moe_gather(a, a->xe, x, C);
    for (int e = 0; e < c->n_experts; e++) {
        size_t r0 = (size_t)a->offset[e];
        ct_moe_expert_forward(p, e, a->xe + r0 * C, a->h + r0 * F, a->act + r0 * F, a->out + r0 * C,
                              a->count[e], C, F);
    }
    ct_moe_combine(a, y, C);
    ct_moe_stats st;
    ct_moe_stats_get(c, a, &st);
    if (stats) *stats = st;
    return st.loss;
}

void ct_moe_backward(const ct_moe_config *c, const ct_moe_params *p, ct_moe_params *g, const ct_moe_acts *a,
                     const float *x, const float *dy, float *dx, ct_moe_scratch *s, int N, int C,
                     float loss_scale) {
    CT_ASSERT(N == a->N);
    int F = c->d_hidden;
    ct_moe_combine_backward(a, s->dout, s->dgate, dy, C); /* last read of dy */
    for (int e = 0; e < c->n_experts; e++) {
        size_t r0 = (size_t)a->offset[e];
        ct_moe_expert_backward(p, g, e, a->xe + r0 * C, a->h + r0 * F, a->act + r0 * F, s->dout + r0 * C,
                               s->dh + r0 * F, a->count[e], C, F);
    }
    ct_moe_route_backward(c, p, g, a, s->dgate, x, dx, s, N, C, loss_scale);
    ct_moe_scatter_add(a, dx, s->dout, C);
}
