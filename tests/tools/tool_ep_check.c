/* tool_ep_check.c: checks the expert-parallel MoE layer (moe.h: ct_moe_forward_ep /
 * ct_moe_backward_ep) under mpirun with an expert group of every rank, against the
 * one-process layer on every rank:
 *   - dropless routing (top-1, top-2, top-k, prototype): each rank's outputs and input
 *     gradients for its own tokens, its experts' gradients (from every rank's tokens) and
 *     the router's gradient summed over the ranks match the one-process layer over all
 *     tokens within TOL (max abs difference over max abs value);
 *   - a router that sends every token to expert 0 (the other experts and the other ranks'
 *     expert sides get no rows), with and without capacity: no hang, finite outputs.
 * Usage: tool_ep_check [TOL]. Prints "ep check ok" on rank 0. */
#include "core/core.h"
#include "mpi_check.h"
#include "model/moe.h"
#include "parallel/comm.h"
#include <math.h>
#include <string.h>

static ct_status a2a(void *ctx, const float *send, const size_t *sc, float *recv, const size_t *rc) {
    return ct_comm_alltoallv(ctx, CT_AXIS_EXPERT, send, sc, recv, rc);
}
static ct_status a2a_sizes(void *ctx, const size_t *send, size_t *recv, size_t per_peer) {
    return ct_comm_alltoall_sizes(ctx, CT_AXIS_EXPERT, send, recv, per_peer);
}

static float *falloc(size_t n) {
    float *p = ct_calloc(n * sizeof(float) + 64, "ep check buffer");
    check(p != NULL, "out of memory");
    return p;
}

typedef struct layer {
    ct_moe_params p, g;
    float *pbuf, *gbuf, *acts, *scratch;
    ct_moe_acts a;
    ct_moe_scratch s;
} layer;

static void layer_init(layer *L, const ct_moe_config *c, int C, int n_max, int experts) {
    ct_moe_config local = *c;
    local.n_experts = experts; /* the stacked expert tensors this layer holds */
    size_t np = ct_moe_params_size(&local, C) + (size_t)C * (c->n_experts - experts);
    L->pbuf = falloc(np);
    L->gbuf = falloc(np);
    /* router [C, E] whole, then the experts' tensors for `experts` experts */
    L->p.router_w = L->pbuf;
    L->g.router_w = L->gbuf;
    ct_moe_params q;
    ct_moe_params_layout(&q, L->pbuf + (size_t)C * c->n_experts - (size_t)C * experts, &local, C);
    L->p.fc_w = q.fc_w;
    L->p.fc_b = q.fc_b;
    L->p.proj_w = q.proj_w;
    L->p.proj_b = q.proj_b;
    ct_moe_params_layout(&q, L->gbuf + (size_t)C * c->n_experts - (size_t)C * experts, &local, C);
    L->g.fc_w = q.fc_w;
    L->g.fc_b = q.fc_b;
    L->g.proj_w = q.proj_w;
    L->g.proj_b = q.proj_b;
    L->acts = falloc(ct_moe_acts_size(c, n_max, C));
    L->scratch = falloc(ct_moe_scratch_size(c, n_max, C));
    ct_moe_acts_layout(&L->a, L->acts, c, n_max, C);
    ct_moe_scratch_layout(&L->s, L->scratch, c, n_max, C);
}

static void layer_free(layer *L) {
    ct_free(L->pbuf);
    ct_free(L->gbuf);
    ct_free(L->acts);
    ct_free(L->scratch);
}

/* Fills the whole layer's parameters from seed; copies expert slices [e0, e0 + n) to part. */
static void fill_params(layer *whole, layer *part, const ct_moe_config *c, int C, int e0, int n) {
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    size_t E = (size_t)c->n_experts, F = (size_t)c->d_hidden;
    for (size_t i = 0; i < (size_t)C * E; i++) whole->p.router_w[i] = 0.5f * ct_rng_normal(&rng);
    float *t[4] = {whole->p.fc_w, whole->p.fc_b, whole->p.proj_w, whole->p.proj_b};
    float *u[4] = {part->p.fc_w, part->p.fc_b, part->p.proj_w, part->p.proj_b};
    size_t per[4] = {(size_t)C * F, F, F * (size_t)C, (size_t)C};
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < E * per[k]; i++) t[k][i] = 0.1f * ct_rng_normal(&rng);
        memcpy(u[k], t[k] + (size_t)e0 * per[k], (size_t)n * per[k] * sizeof(float));
    }
    memcpy(part->p.router_w, whole->p.router_w, (size_t)C * E * sizeof(float));
}

static void run_case(ct_moe_config c, double tol, int skew) {
    enum { C = 16, NR = 24 }; /* NR tokens per rank */
    int P = ct_world_size(W), r = ct_world_rank(W), N = NR * P, L = c.n_experts / P;
    ct_moe_group g = {ct_world_coord(W, CT_AXIS_EXPERT), P, a2a, a2a_sizes, W};
    ok_or_abort(ct_moe_group_check(&c, P), "group");
    layer whole, part;
    layer_init(&whole, &c, C, N, c.n_experts);
    layer_init(&part, &c, C, NR, L);
    fill_params(&whole, &part, &c, C, r * L, L);
    if (skew) /* every token's largest logit is expert 0's */
        for (int i = 0; i < C; i++) {
            whole.p.router_w[(size_t)i * c.n_experts] = part.p.router_w[(size_t)i * c.n_experts] = 50.0f;
        }
    ct_moe_ep_acts ep;
    void *epbuf = falloc(ct_moe_ep_acts_bytes(&c, NR, C, P) / sizeof(float) + 1);
    ct_moe_ep_acts_layout(&ep, epbuf, &c, NR, C, P);
    float *x = falloc((size_t)N * C), *dy = falloc((size_t)N * C), *y = falloc((size_t)N * C);
    float *dx = falloc((size_t)N * C), *yp = falloc((size_t)NR * C), *dxp = falloc((size_t)NR * C);
    ct_rng rng;
    ct_rng_seed(&rng, 9);
    for (size_t i = 0; i < (size_t)N * C; i++) {
        x[i] = fabsf(ct_rng_normal(&rng));
        dy[i] = ct_rng_normal(&rng);
    }
    const float *xm = x + (size_t)r * NR * C, *dym = dy + (size_t)r * NR * C;
    ct_moe_forward(&c, &whole.p, &whole.a, x, y, N, C, 3, 0, NULL);
    float aux;
    ok_or_abort(ct_moe_forward_ep(&c, &part.p, &part.a, &ep, &g, xm, yp, NR, C, 3, 0, &aux), "forward");
    ct_moe_backward(&c, &whole.p, &whole.g, &whole.a, x, dy, dx, &whole.s, N, C, 1.0f);
    ok_or_abort(ct_moe_backward_ep(&c, &part.p, &part.g, &part.a, &ep, &g, xm, dym, dxp, &part.s, NR, C, 1.0f),
                "backward");
    char what[160];
    for (size_t i = 0; i < (size_t)NR * C; i++) check(isfinite(yp[i]) && isfinite(dxp[i]), "not finite");
    if (!skew || c.dropless) {
        snprintf(what, sizeof what, "%s: outputs differ", ct_moe_routing_name(c.routing));
        check(rel_diff(yp, y + (size_t)r * NR * C, (size_t)NR * C) <= tol, what);
        snprintf(what, sizeof what, "%s: input gradients differ", ct_moe_routing_name(c.routing));
        check(rel_diff(dxp, dx + (size_t)r * NR * C, (size_t)NR * C) <= tol, what);
        size_t F = (size_t)c.d_hidden;
        float *wg[4] = {whole.g.fc_w, whole.g.fc_b, whole.g.proj_w, whole.g.proj_b};
        float *pg[4] = {part.g.fc_w, part.g.fc_b, part.g.proj_w, part.g.proj_b};
        size_t per[4] = {(size_t)C * F, F, F * C, C};
        for (int k = 0; k < 4; k++) {
            snprintf(what, sizeof what, "%s: expert gradient %d differs", ct_moe_routing_name(c.routing), k);
            check(rel_diff(pg[k], wg[k] + (size_t)r * L * per[k], (size_t)L * per[k]) <= tol, what);
        }
        ok_or_abort(ct_comm_allreduce(W, CT_AXIS_EXPERT, part.g.router_w, (size_t)C * c.n_experts), "sum");
        snprintf(what, sizeof what, "%s: router gradient differs", ct_moe_routing_name(c.routing));
        check(rel_diff(part.g.router_w, whole.g.router_w, (size_t)C * c.n_experts) <= tol, what);
    }
    layer_free(&whole);
    layer_free(&part);
    ct_free(epbuf);
    ct_free(x);
    ct_free(dy);
    ct_free(y);
    ct_free(dx);
    ct_free(yp);
    ct_free(dxp);
}

int main(int argc, char **argv) {
    double tol = check_init(argc, argv, CT_AXIS_EXPERT, 1e-5);
    int P = ct_world_size(W);
    ct_moe_config base = {.n_experts = 8,
                          .top_k = 2,
                          .d_hidden = 24,
                          .routing = CT_MOE_TOP2,
                          .capacity_factor = 1.0f,
                          .dropless = 1};
    ct_moe_routing modes[] = {CT_MOE_TOP1, CT_MOE_TOP2, CT_MOE_TOPK, CT_MOE_PROTOTYPE};
    int ks[] = {1, 2, 3, 2};
    for (int m = 0; m < 4; m++) {
        ct_moe_config c = base;
        c.routing = modes[m];
        c.top_k = ks[m];
        run_case(c, tol, 0);
    }
    run_case(base, tol, 1); /* all to expert 0, dropless: compared too */
    ct_moe_config capped = base;
    capped.dropless = 0;
    run_case(capped, tol, 1); /* all to expert 0 with capacity: runs, finite */
    if (ct_world_rank(W) == 0) printf("ep check ok: %d expert ranks, 8 experts\n", P);
    ct_world_free(W);
    return 0;
}
