/* moe_ep.c: the MoE layer over an expert-parallel group (moe.h): routing and dispatch stay
 * on the token's rank, expert rows travel to the experts' owners and back with two
 * all-to-all exchanges each way (counts, then rows), so each expert sees the rows of every
 * member in one contiguous block.
 *
 * Layouts, for P members and L = E/P local experts:
 *   sent  local packed rows are expert-major over all E experts, so the rows for member d
 *         (experts d*L .. d*L+L-1) are one contiguous run: a d-major [P][L] count table.
 *   wire  what arrives is member-major: from member s, its rows for local expert 0, 1, ..
 *   xr    regrouped expert-major: local expert j's rows from member 0, then 1, ...; the
 *         outputs travel the reverse way, so they land where the rows were sent from. */
#include "core/core.h"
#include "model/model.h"
#include "model/moe.h"
#include <string.h>

ct_status ct_moe_group_check(const ct_moe_config *c, int ranks) {
    if (ranks < 1 || c->n_experts % ranks != 0)
        return ct_fail(CT_EINVAL,
                       "moe.n_experts = %d is not divisible by the %d expert-parallel "
                       "ranks (parallel.expert): each rank holds an equal share of the experts",
                       c->n_experts, ranks);
    return CT_OK;
}

/* The most rows a member receives: from each of the ranks, at most one row per token for
 * each of its local experts, and at most the capacity of each (a sender enforces it over
 * its own tokens), and never more than that sender's N * k rows. */
static size_t rows_received_max(const ct_moe_config *c, int n_max, int ranks) {
    size_t local = (size_t)(c->n_experts / ranks), all = (size_t)n_max * (size_t)c->top_k;
    size_t bound = local * (size_t)ct_moe_capacity(c, n_max);
    return (size_t)ranks * (all < bound ? all : bound);
}

size_t ct_moe_ep_acts_bytes(const ct_moe_config *c, int n_max, int C, int ranks) {
    size_t R = rows_received_max(c, n_max, ranks), F = (size_t)c->d_hidden;
    size_t local = (size_t)(c->n_experts / ranks) * (size_t)ranks;
    return 2 * local * sizeof(size_t) + sizeof(float) * R * (3 * (size_t)C + 3 * F);
}

void ct_moe_ep_acts_layout(ct_moe_ep_acts *ep, void *buf, const ct_moe_config *c, int n_max, int C, int ranks) {
    size_t R = rows_received_max(c, n_max, ranks), F = (size_t)c->d_hidden;
    memset(ep, 0, sizeof *ep);
    ep->ranks = ranks;
    ep->local = c->n_experts / ranks;
    ep->rows_max = (int)R;
    ep->sent = buf;
    ep->got = ep->sent + (size_t)ep->local * ranks;
    float *p = (float *)(ep->got + (size_t)ep->local * ranks);
    ep->xr = p;
    p += R * C;
    ep->hr = p;
    p += R * F;
    ep->actr = p;
    p += R * F;
    ep->outr = p;
    p += R * C;
    ep->wire = p;
    p += R * C; /* R >= this rank's own packed rows */
    ep->dhr = p;
}

/* Floats per member: sum over its L entries of the count table times width. */
static void member_floats(const size_t *table, int P, int L, size_t width, size_t *out) {
    for (int d = 0; d < P; d++) {
        size_t rows = 0;
        for (int j = 0; j < L; j++) rows += table[(size_t)d * L + j];
        out[d] = rows * width;
    }
}

/* Moves rows between the member-major wire layout and the expert-major one (got table):
 * to_expert != 0: wire -> xr order; else xr order -> wire. */
static void regroup(const ct_moe_ep_acts *ep, float *expert_major, float *wire, size_t width, int to_expert) {
    int P = ep->ranks, L = ep->local;
    size_t at = 0; /* in expert-major order */
    for (int j = 0; j < L; j++)
        for (int s = 0; s < P; s++) {
            size_t rows = ep->got[(size_t)s * L + j], from = 0;
            for (int s2 = 0; s2 < s; s2++)
                for (int j2 = 0; j2 < L; j2++) from += ep->got[(size_t)s2 * L + j2];
            for (int j2 = 0; j2 < j; j2++) from += ep->got[(size_t)s * L + j2];
            float *e = expert_major + at * width, *w = wire + from * width;
            if (to_expert) memcpy(e, w, rows * width * sizeof(float));
            else
                memcpy(w, e, rows * width * sizeof(float));
            at += rows;
        }
}

/* Rows of local expert j over all members, and where they start in expert-major order. */
static size_t expert_rows(const ct_moe_ep_acts *ep, int j, size_t *first) {
    size_t before = 0, rows = 0;
    for (int j2 = 0; j2 <= j; j2++)
        for (int s = 0; s < ep->ranks; s++) {
            size_t r = ep->got[(size_t)s * ep->local + j2];
            if (j2 < j) before += r;
            else
                rows += r;
        }
    *first = before;
    return rows;
}

ct_status ct_moe_forward_ep(const ct_moe_config *c, const ct_moe_params *p, ct_moe_acts *a, ct_moe_ep_acts *ep,
                            const ct_moe_group *g, const float *x, float *y, int N, int C, uint64_t noise_seed,
                            int training, float *aux) {
    CT_ASSERT(N >= 1 && N <= a->n_max && ep->ranks == g->ranks);
    int P = g->ranks, L = ep->local, F = c->d_hidden;
    ct_moe_route(c, p, a, x, N, C, noise_seed, training);
    ct_moe_dispatch(c, a, N);
    ct_moe_gather(a, a->xe, x, C);
    for (int e = 0; e < c->n_experts; e++) ep->sent[e] = (size_t)a->count[e];
    CT_TRY(g->alltoall_sizes(g->ctx, ep->sent, ep->got, (size_t)L));
    size_t send[1024], recv[1024], rows = 0;
    CT_ASSERT(P <= 1024);
    member_floats(ep->sent, P, L, (size_t)C, send);
    member_floats(ep->got, P, L, (size_t)C, recv);
    for (int s = 0; s < P; s++) rows += recv[s] / (size_t)C;
    if (rows > (size_t)ep->rows_max)
        return ct_fail(CT_EINVAL, "expert parallelism: %zu rows arrived, buffers hold %d", rows, ep->rows_max);
    ep->rows = (int)rows;
    CT_TRY(g->alltoall(g->ctx, a->xe, send, ep->wire, recv));
    regroup(ep, ep->xr, ep->wire, (size_t)C, 1);
    for (int j = 0; j < L; j++) {
        size_t r0, n = expert_rows(ep, j, &r0);
        ct_moe_expert_forward(p, j, ep->xr + r0 * C, ep->hr + r0 * F, ep->actr + r0 * F, ep->outr + r0 * C,
                              (int)n, C, F);
    }
    regroup(ep, ep->outr, ep->wire, (size_t)C, 0);
    CT_TRY(g->alltoall(g->ctx, ep->wire, recv, a->out, send)); /* back where they came from */
    ct_moe_combine(a, y, C);
    ct_moe_stats st;
    ct_moe_stats_get(c, a, &st);
    *aux = st.loss;
    return CT_OK;
}

ct_status ct_moe_backward_ep(const ct_moe_config *c, const ct_moe_params *p, ct_moe_params *grad,
                             const ct_moe_acts *a, ct_moe_ep_acts *ep, const ct_moe_group *g, const float *x,
                             const float *dy, float *dx, ct_moe_scratch *s, int N, int C, float loss_scale) {
    CT_ASSERT(N == a->N && ep->ranks == g->ranks);
    int P = g->ranks, L = ep->local, F = c->d_hidden;
    size_t send[1024], recv[1024];
    member_floats(ep->sent, P, L, (size_t)C, send);
    member_floats(ep->got, P, L, (size_t)C, recv);
    ct_moe_combine_backward(a, s->dout, s->dgate, dy, C); /* last read of dy */
    CT_TRY(g->alltoall(g->ctx, s->dout, send, ep->wire, recv));
    regroup(ep, ep->outr, ep->wire, (size_t)C, 1);
    for (int j = 0; j < L; j++) {
        size_t r0, n = expert_rows(ep, j, &r0);
        ct_moe_expert_backward(p, grad, j, ep->xr + r0 * C, ep->hr + r0 * F, ep->actr + r0 * F,
                               ep->outr + r0 * C, ep->dhr + r0 * F, (int)n, C, F);
    }
    regroup(ep, ep->outr, ep->wire, (size_t)C, 0); /* dL/dxr, member-major */
    CT_TRY(g->alltoall(g->ctx, ep->wire, recv, s->dout, send));
    ct_moe_route_backward(c, p, grad, a, s->dgate, x, dx, s, N, C, loss_scale);
    ct_moe_scatter_add(a, dx, s->dout, C);
    return CT_OK;
}
