/* moe_route.c: the MoE router: logits = x router_w (+ optional Gaussian noise while
 * training), softmax probabilities, the choice of experts and their gates for each routing
 * (top1, top2/topk, prototype), the auxiliary load-balancing and z losses, and the backward
 * of all of it into the logits, the router weights and x.
 *
 *   top1       e = argmax p; gate = p_e                          (p = softmax over E)
 *   top2/topk  k largest p; gate_j = p_j / sum of the chosen p
 *   prototype  group g = experts [gG, (g+1)G), G = E/k: e_g = argmax within the group;
 *              gate_g = q_e (q = softmax within the group)
 * Ties go to the lower expert index.
 *   aux = sum_i w_i P_i, w_i = S * routed_i / (N k), P_i = mean_n prob_{n,i};
 *         S = E (top-k routings) or G (prototype: the per-group Switch loss averaged over
 *         the k groups). routed_i counts assignments before capacity; no gradient via it.
 *   z   = mean_n lse_n^2, lse_n = logsumexp over all E logits. */
#include "model/moe.h"
#include "core/core.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

/* prob[0..m) = softmax(l[0..m)); returns logsumexp(l). */
static float softmax_row(float *prob, const float *l, int m) {
    float mx = l[0], sum = 0.0f;
    for (int i = 1; i < m; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < m; i++) {
        prob[i] = expf(l[i] - mx);
        sum += prob[i];
    }
    for (int i = 0; i < m; i++) prob[i] /= sum;
    return mx + logf(sum);
}

static int argmax_excluding(const float *l, int m, const int32_t *taken, int ntaken) {
    int best = -1;
    for (int i = 0; i < m; i++) {
        int skip = 0;
        for (int t = 0; t < ntaken; t++) skip |= taken[t] == i;
        if (!skip && (best < 0 || l[i] > l[best])) best = i;
    }
    return best;
}

/* Token n's probabilities, experts and gates. */
static void route_token(const ct_moe_config *c, ct_moe_acts *a, size_t n) {
    int E = c->n_experts, k = c->top_k;
    const float *l = a->logits + n * E;
    float *p = a->probs + n * E, *gate = a->gate + n * k;
    int32_t *ex = a->expert + n * k;
    if (c->routing == CT_MOE_PROTOTYPE) {
        int G = E / k;
        float mx = l[0], sum = 0.0f;
        for (int i = 1; i < E; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < E; i++) sum += expf(l[i] - mx);
        a->lse[n] = mx + logf(sum);
        for (int g = 0; g < k; g++) {
            softmax_row(p + g * G, l + g * G, G);
            ex[g] = g * G + argmax_excluding(l + g * G, G, NULL, 0);
            gate[g] = p[ex[g]];
        }
        return;
    }
    a->lse[n] = softmax_row(p, l, E);
    float chosen = 0.0f;
    for (int j = 0; j < k; j++) {
        ex[j] = argmax_excluding(l, E, ex, j);
        chosen += p[ex[j]];
    }
    for (int j = 0; j < k; j++) gate[j] = c->routing == CT_MOE_TOP1 ? p[ex[j]] : p[ex[j]] / chosen;
}

/* Per-expert aux weight w_i (see top of file). */
static double aux_weight(const ct_moe_config *c, const ct_moe_acts *a, int i, int N) {
    int E = c->n_experts, k = c->top_k;
    double S = c->routing == CT_MOE_PROTOTYPE ? (double)(E / k) : (double)E;
    return S * a->routed[i] / ((double)N * k);
}

static void route_losses(const ct_moe_config *c, ct_moe_acts *a, int N) {
    int E = c->n_experts, k = c->top_k;
    memset(a->routed, 0, sizeof(int32_t) * (size_t)E);
    for (size_t i = 0; i < (size_t)N * k; i++) a->routed[a->expert[i]]++;
    double z = 0.0, aux = 0.0;
    for (int n = 0; n < N; n++) z += (double)a->lse[n] * a->lse[n];
    for (int i = 0; i < E; i++) {
        double P = 0.0;
        for (int n = 0; n < N; n++) P += a->probs[(size_t)n * E + i];
        aux += aux_weight(c, a, i, N) * (P / N);
        a->load[i] = (float)((double)a->routed[i] / ((double)N * k));
    }
    a->z = (float)(z / N);
    a->aux = (float)aux;
}

void ct_moe_route(const ct_moe_config *c, const ct_moe_params *p, ct_moe_acts *a, const float *x, int N, int C,
                  uint64_t noise_seed, int training) {
    int E = c->n_experts;
    ct_matmul_forward(a->logits, x, p->router_w, NULL, N, C, E);
    if (training && c->router_noise > 0.0f) {
        ct_rng r;
        ct_rng_seed(&r, noise_seed);
        for (size_t i = 0; i < (size_t)N * E; i++) a->logits[i] += c->router_noise * ct_rng_normal(&r);
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) route_token(c, a, (size_t)n);
    route_losses(c, a, N);
}

/* ---- backward -------------------------------------------------------------------------- */

/* dl[i] += q_i (d_i - sum_m q_m d_m) over m entries: the softmax backward. */
static void softmax_backward_add(float *dl, const float *q, const float *d, int m) {
    float dot = 0.0f;
    for (int i = 0; i < m; i++) dot += q[i] * d[i];
    for (int i = 0; i < m; i++) dl[i] += q[i] * (d[i] - dot);
}

/* Gate part of dlogits for token n (overwrites dl[0..E)). */
static void gate_backward(const ct_moe_config *c, const ct_moe_acts *a, const float *dgate, float *dl,
                          size_t n) {
    int E = c->n_experts, k = c->top_k;
    const float *p = a->probs + n * E, *gate = a->gate + n * k, *dg = dgate + n * k;
    const int32_t *ex = a->expert + n * k;
    memset(dl, 0, sizeof(float) * (size_t)E);
    if (c->routing == CT_MOE_TOP1 || c->routing == CT_MOE_PROTOTYPE) {
        /* gate = q_e over its softmax domain: dl_i = dg * gate * (delta_ie - q_i) */
        int G = c->routing == CT_MOE_PROTOTYPE ? E / k : E;
        for (int j = 0; j < k; j++) {
            int g0 = (ex[j] / G) * G;
            for (int i = g0; i < g0 + G; i++) dl[i] -= dg[j] * gate[j] * p[i];
            dl[ex[j]] += dg[j] * gate[j];
        }
        return;
    }
    /* renormalised gates are a softmax over the chosen logits */
    float dot = 0.0f;
    for (int j = 0; j < k; j++) dot += gate[j] * dg[j];
    for (int j = 0; j < k; j++) dl[ex[j]] += gate[j] * (dg[j] - dot);
}

void ct_moe_route_backward(const ct_moe_config *c, const ct_moe_params *p, ct_moe_params *g,
                           const ct_moe_acts *a, const float *dgate, const float *x, float *dx,
                           ct_moe_scratch *s, int N, int C, float loss_scale) {
    int E = c->n_experts, k = c->top_k;
    int G = c->routing == CT_MOE_PROTOTYPE ? E / k : E; /* softmax domain of probs */
    for (int i = 0; i < E; i++)                         /* d(aux_coef * aux)/d prob_{n,i} */
        s->coef[i] = (float)(loss_scale * c->aux_coef * aux_weight(c, a, i, N) / N);
    float zscale = loss_scale * c->z_coef * 2.0f / (float)N;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *dl = s->dlogits + (size_t)n * E;
        const float *pn = a->probs + (size_t)n * E, *l = a->logits + (size_t)n * E;
        gate_backward(c, a, dgate, dl, (size_t)n);
        if (c->aux_coef > 0.0f)
            for (int g0 = 0; g0 < E; g0 += G) softmax_backward_add(dl + g0, pn + g0, s->coef + g0, G);
        if (c->z_coef > 0.0f) {
            float zl = zscale * a->lse[n];
            for (int i = 0; i < E; i++) dl[i] += zl * expf(l[i] - a->lse[n]);
        }
    }
    ct_matmul_backward(dx, g->router_w, NULL, s->dlogits, x, p->router_w, N, C, E);
}
