/* moe.h: the Mixture-of-Experts feed-forward layer: its capacity, parameter
 * views, the activations its forward saves, and the forward/backward pair, split into the
 * stages expert parallelism will put communication between:
 *
 *   route    x[N,C] -> router logits, probabilities, top-k experts and gates, aux/z losses
 *   dispatch routing -> per-expert counts, capacity drops, packed rows; gather x -> xe
 *   expert   expert e on its contiguous rows xe[count_e, C] (one sgemm per projection)
 *   combine  y[n] = sum over token n's kept assignments of gate * expert output
 *
 * The layer is y = MoE(x) only: no LayerNorm and no residual add (the block adds x back, so
 * a dropped token passes through on the residual path).
 *
 * Shapes: N tokens, C = d_model, E experts, F = expert hidden size, k = top_k, G = E / k,
 * R = packed expert rows (<= ct_moe_rows_max: E * capacity, or N * k when dropless). */
#ifndef CT_MOE_H
#define CT_MOE_H

#include "cetus.h"
#include "model/model.h"
#include "spec/model_spec.h"
#include <stddef.h>
#include <stdint.h>

/* ct_moe_routing and ct_moe_config are public: see include/cetus.h. */

/* Its names and checks are config arithmetic: spec/model_spec.h. */

/* Capacity and the most packed rows (ct_moe_capacity, ct_moe_rows_max): spec/model_spec.h. */

/* ---- parameters ------------------------------------------------------------------------ */

/* Views into the model's parameter (or gradient) buffer. Expert e's slice of each stacked
 * tensor is contiguous: fc_w + e*C*F, fc_b + e*F, proj_w + e*F*C, proj_b + e*C. */
typedef struct ct_moe_params {
    float *router_w;        /* [C, E]    logits = x router_w (no bias) */
    float *fc_w, *fc_b;     /* [E, C, F], [E, F] */
    float *proj_w, *proj_b; /* [E, F, C], [E, C] */
} ct_moe_params;

#define CT_MOE_TENSORS 5

/* Floats of one layer's parameters: C*E + E*(C*F + F + F*C + C). */
size_t ct_moe_params_size(const ct_moe_config *c, int C);
/* Points p at base laid out in the order router_w, fc_w, fc_b, proj_w, proj_b. */
void ct_moe_params_layout(ct_moe_params *p, float *base, const ct_moe_config *c, int C);

/* ---- activations ----------------------------------------------------------------------- */

/* What forward saves for backward (all sized for at most n_max tokens). Integer arrays live
 * in the same float buffer (4-byte slots). After a forward the layer's statistics are here
 * too; ct_moe_stats points at them. */
typedef struct ct_moe_acts {
    int n_max, rows_max, E, k;
    float *logits;   /* [N, E] router logits (noise included when it was added) */
    float *probs;    /* [N, E] softmax over E (top-k routings) or within each group of G
                      * (prototype) */
    float *lse;      /* [N] logsumexp over all E logits */
    float *gate;     /* [N, k] gate of token n's j-th assignment */
    int32_t *expert; /* [N, k] expert of token n's j-th assignment */
    int32_t *row;    /* [N, k] packed row of the assignment, -1 if dropped */
    int32_t *asg;    /* [R] assignment n*k + j that packed row r holds */
    int32_t *routed; /* [E] assignments routed to e before capacity (f_i numerator) */
    int32_t *count;  /* [E] rows kept for e */
    int32_t *offset; /* [E + 1] first packed row of e; offset[E] = R */
    float *xe;       /* [R, C] gathered expert inputs, expert-major */
    float *h;        /* [R, F] expert pre-activation */
    float *act;      /* [R, F] gelu(h) */
    float *out;      /* [R, C] expert outputs (before the gate) */
    float *load;     /* [E] routed[e] / (N*k) */
    int N, rows, capacity;
    float aux, z; /* raw losses (before coefficients) of the last forward */
} ct_moe_acts;

size_t ct_moe_acts_size(const ct_moe_config *c, int n_max, int C);
void ct_moe_acts_layout(ct_moe_acts *a, float *buf, const ct_moe_config *c, int n_max, int C);

/* Scratch for backward (may be shared by all MoE layers of a model). */
typedef struct ct_moe_scratch {
    float *dlogits; /* [N, E] */
    float *dgate;   /* [N, k] */
    float *dout;    /* [R, C] dL/d(expert output), then dL/dxe */
    float *dh;      /* [R, F] */
    float *coef;    /* [E] per-expert aux-loss gradient factor */
} ct_moe_scratch;

size_t ct_moe_scratch_size(const ct_moe_config *c, int n_max, int C);
void ct_moe_scratch_layout(ct_moe_scratch *s, float *buf, const ct_moe_config *c, int n_max, int C);

/* ct_moe_stats (what a forward reports) is public: see include/cetus.h. */

/* ---- the layer ------------------------------------------------------------------------- */

/* y[N,C] = MoE(x[N,C]); N <= a->n_max. Router noise is drawn only when training != 0 and
 * router_noise > 0, from a generator seeded with noise_seed (N*E normals in row-major
 * order), so a replayed step gives the same routing. Returns aux_coef*aux + z_coef*z, the
 * amount to add to the training loss; fills *stats if not NULL. */
float ct_moe_forward(const ct_moe_config *c, const ct_moe_params *p, ct_moe_acts *a, const float *x, float *y,
                     int N, int C, uint64_t noise_seed, int training, ct_moe_stats *stats);

/* Backward of the last forward on a (same x, N). dx[N,C] is overwritten (it may alias dy);
 * parameter gradients accumulate into g. The aux and z loss gradients are multiplied by
 * loss_scale (the weight the caller gave the main loss, e.g. 1 / grad_accum). */
void ct_moe_backward(const ct_moe_config *c, const ct_moe_params *p, ct_moe_params *g, const ct_moe_acts *a,
                     const float *x, const float *dy, float *dx, ct_moe_scratch *s, int N, int C,
                     float loss_scale);

void ct_moe_stats_get(const ct_moe_config *c, const ct_moe_acts *a, ct_moe_stats *stats);

/* ---- stages (used by the layer above; separate so expert parallelism can exchange the
 * gathered rows between dispatch and expert compute) ------------------------------------ */

/* Router: logits, probs, lse, expert choices, gates, routed counts, load, aux and z. */
void ct_moe_route(const ct_moe_config *c, const ct_moe_params *p, ct_moe_acts *a, const float *x, int N, int C,
                  uint64_t noise_seed, int training);
/* Capacity and priority: count/offset/row/asg, rows and capacity in a (GShard order: every token's
 * first choice in token order, then every second choice, ...). */
void ct_moe_dispatch(const ct_moe_config *c, ct_moe_acts *a, int N);
/* xe[r] = x[token of row r] for every packed row. */
void ct_moe_gather(const ct_moe_acts *a, float *xe, const float *x, int C);
/* Expert e on count contiguous rows: h = xe fc_w[e] + fc_b[e]; act = gelu(h);
 * out = act proj_w[e] + proj_b[e]. xe/out [count, C], h/act [count, F]. */
void ct_moe_expert_forward(const ct_moe_params *p, int e, const float *xe, float *h, float *act, float *out,
                           int count, int C, int F);
/* y[n] = sum_j gate[n,j] * out[row[n,j]] over kept assignments (0 if all dropped). */
void ct_moe_combine(const ct_moe_acts *a, float *y, int C);

/* Backward stages. combine: dout[r] = gate * dy[token]; dgate[n,j] = dy[n] . out[row]
 * (0 when dropped). */
void ct_moe_combine_backward(const ct_moe_acts *a, float *dout, float *dgate, const float *dy, int C);
/* Expert e: on entry dout holds dL/dout [count, C], on exit dL/dxe; dh [count, F] scratch;
 * parameter gradients accumulate into g's expert e slices. */
void ct_moe_expert_backward(const ct_moe_params *p, ct_moe_params *g, int e, const float *xe, const float *h,
                            const float *act, float *dout, float *dh, int count, int C, int F);
/* Router: dlogits from the gates' gradient and the aux and z losses (times loss_scale);
 * dx = dlogits router_w^T (overwrites), g->router_w += x^T dlogits. */
void ct_moe_route_backward(const ct_moe_config *c, const ct_moe_params *p, ct_moe_params *g,
                           const ct_moe_acts *a, const float *dgate, const float *x, float *dx,
                           ct_moe_scratch *s, int N, int C, float loss_scale);
/* dx[n] += dxe[row] over token n's kept assignments (in j order). */
void ct_moe_scatter_add(const ct_moe_acts *a, float *dx, const float *dxe, int C);

/* ---- expert parallelism ---------------------------------------------------------------- */

/* An expert-parallel group of P ranks: rank r holds the E/P experts [r*E/P, (r+1)*E/P) (the
 * layer's expert tensors are then [E/P, ...]; the router stays whole) and routes its own
 * tokens. alltoall is the group's personalised exchange (send_counts[d] floats to member d,
 * packed in member order; recv_counts[s] from s), alltoall_sizes its exchange of per_peer
 * size_t per member. Every member calls both in the same order in every forward and
 * backward, also when it sends or receives no rows. */
typedef struct ct_moe_group {
    int rank, ranks;
    ct_status (*alltoall)(void *ctx, const float *send, const size_t *send_counts, float *recv,
                          const size_t *recv_counts);
    ct_status (*alltoall_sizes)(void *ctx, const size_t *send, size_t *recv, size_t per_peer);
    void *ctx;
} ct_moe_group;

/* What the expert side of a group member keeps between forward and backward: the rows the
 * members sent to this rank's experts, regrouped expert-major, and their activations. Sized
 * for every member sending at most ct_moe_rows_max(n_max) rows. */
typedef struct ct_moe_ep_acts {
    int ranks, local, rows_max; /* P, E/P, most rows received */
    size_t *sent;               /* [P * E/P] rows this rank sent to member d's local expert j (d-major) */
    size_t *got;                /* [P * E/P] rows member s sent to this rank's local expert j (s-major) */
    int rows;                   /* rows received */
    float *xr;                  /* [rows, C] received inputs, expert-major (expert j: from member 0, 1, ...) */
    float *hr, *actr;           /* [rows, F] */
    float *outr;                /* [rows, C] expert outputs */
    float *wire;                /* [max(rows_max, R), C] member-major staging for the exchanges */
    float *dhr;                 /* [rows_max, F] backward scratch */
} ct_moe_ep_acts;

/* Bytes (not floats: it holds counts too) of a member's expert-side buffers. */
size_t ct_moe_ep_acts_bytes(const ct_moe_config *c, int n_max, int C, int ranks);
void ct_moe_ep_acts_layout(ct_moe_ep_acts *ep, void *buf, const ct_moe_config *c, int n_max, int C, int ranks);
/* Checks that the group splits the experts: E divisible by ranks. */
ct_status ct_moe_group_check(const ct_moe_config *c, int ranks);

/* ct_moe_forward over an expert-parallel group: route and dispatch this rank's N tokens over
 * all E experts, send each expert's rows to its owner, run this rank's experts on what the
 * members sent, send the outputs back, combine. *aux receives what ct_moe_forward returns
 * (computed from this rank's tokens). Capacity, when not dropless, applies per member to its
 * own tokens. p holds the whole router and this rank's E/P experts. */
ct_status ct_moe_forward_ep(const ct_moe_config *c, const ct_moe_params *p, ct_moe_acts *a, ct_moe_ep_acts *ep,
                            const ct_moe_group *g, const float *x, float *y, int N, int C, uint64_t noise_seed,
                            int training, float *aux);
/* Backward of the last ct_moe_forward_ep: the output gradients go to the experts' owners,
 * the input gradients come back; g gets this rank's experts' gradients (from every member's
 * tokens) and the router's (from this rank's tokens). */
ct_status ct_moe_backward_ep(const ct_moe_config *c, const ct_moe_params *p, ct_moe_params *grad,
                             const ct_moe_acts *a, ct_moe_ep_acts *ep, const ct_moe_group *g, const float *x,
                             const float *dy, float *dx, ct_moe_scratch *s, int N, int C, float loss_scale);

#endif
