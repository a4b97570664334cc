/* block.c: forward and backward of the GPT-2 decoder block.
 *   ln1 = LN(x); qkv = ln1 Wqkv + b; att = attention(qkv); res2 = x + att Wproj + b
 *   ln2 = LN(res2); y = res2 + FFN(ln2)
 * where FFN is the dense MLP gelu(ln2 Wfc + b) Wout + b or a Mixture-of-Experts layer.
 * Tensor-parallel (Megatron): each rank computes its heads and hidden units; the two
 * row-parallel products are summed over the ranks in forward, and the input gradients of
 * the two column-parallel products in backward: two sums each way per block. */
#include "model/block.h"
#include "ops/ops.h"
#include <stddef.h>
#include <string.h>

/* This rank's share of the split dimensions. */
typedef struct local_dims {
    int R, rank, C, H, F;
} local_dims; /* C: attention channels, F: MLP hidden */

static local_dims local(ct_dims d) {
    int R = d.tp ? d.tp->ranks : 1;
    return (local_dims){R, d.tp ? d.tp->rank : 0, d.C / R, d.H / R, 4 * d.C / R};
}

/* Floats of the attention half, as ct_block_acts_layout takes them: ln1 [N, C], its mean and
 * rstd [N] each, qkv [N, 3Cl], the attention's log-sum-exp [B, Hl, T], att [N, Cl], res2 and
 * ln2 [N, C] each, ln2's mean and rstd. Linear in T: the fused attention keeps no [T, T]. */
static size_t attn_acts_size(ct_dims d) {
    size_t N = (size_t)d.B * d.T, C = (size_t)d.C, Cl = (size_t)local(d).C;
    return 3 * N * C + 4 * N * Cl + 4 * N + N * (size_t)local(d).H;
}

size_t ct_block_acts_size(ct_dims d, const ct_moe_config *moe) {
    size_t N = (size_t)d.B * d.T;
    return attn_acts_size(d) + (moe ? ct_moe_acts_size(moe, (int)N, d.C) : 2 * N * (size_t)local(d).F);
}

void ct_block_acts_layout(ct_block_acts *a, float *buf, ct_dims d, const ct_moe_config *moe) {
    size_t N = (size_t)d.B * d.T, C = (size_t)d.C;
    local_dims l = local(d);
    float *p = buf;
    memset(a, 0, sizeof *a);
#define TAKE(field, n) \
    do { \
        a->field = p; \
        p += (n); \
    } while (0)
    TAKE(ln1, N * C);
    TAKE(ln1_mean, N);
    TAKE(ln1_rstd, N);
    TAKE(qkv, 3 * N * l.C);
    TAKE(att_lse, N * l.H);
    TAKE(att, N * l.C);
    TAKE(res2, N * C);
    TAKE(ln2, N * C);
    TAKE(ln2_mean, N);
    TAKE(ln2_rstd, N);
    if (moe) {
        ct_moe_acts_layout(&a->moe, p, moe, (int)N, d.C);
    } else {
        TAKE(fc, N * l.F);
        TAKE(gelu, N * l.F);
    }
#undef TAKE
}

size_t ct_block_scratch_size(ct_dims d, int threads, const ct_moe_config *moe) {
    size_t N = (size_t)d.B * d.T, C = (size_t)d.C;
    local_dims l = local(d);
    (void)threads; /* the attention's tiles live on each thread's stack */
    return N * C + 4 * N * l.C + N * l.F + (moe ? ct_moe_scratch_size(moe, (int)N, d.C) : 0);
}

void ct_block_scratch_layout(ct_block_scratch *s, float *buf, ct_dims d, int threads,
                             const ct_moe_config *moe) {
    size_t N = (size_t)d.B * d.T, C = (size_t)d.C;
    local_dims l = local(d);
    memset(s, 0, sizeof *s);
    s->dln = buf;
    s->dqkv = s->dln + N * C;
    s->datt = s->dqkv + 3 * N * l.C;
    s->dfc = s->datt + N * l.C;
    (void)threads;
    if (moe) ct_moe_scratch_layout(&s->moe, s->dfc + N * l.F, moe, (int)N, d.C);
}

/* Completes a row-parallel or column-parallel product: the sum of every rank's part. */
static void tp_sum(ct_dims d, float *buf, size_t n) {
    if (d.tp && d.tp->ranks > 1) d.tp->sum(d.tp->ctx, buf, n);
}

static void poll(ct_dims d) {
    if (d.tp && d.tp->poll) d.tp->poll(d.tp->ctx);
}

/* A row-parallel layer's bias is added once, by tensor rank 0, before the sum. */
static const float *row_bias(ct_dims d, const float *bias) { return local(d).rank == 0 ? bias : NULL; }

float ct_block_forward(const ct_block_params *p, ct_block_acts *a, const float *x, float *y,
                       const int32_t *prefix_len, ct_dims d, const ct_block_ffn *ffn) {
    int N = d.B * d.T, C = d.C;
    size_t NC = (size_t)N * C;
    local_dims l = local(d);
    float aux = 0.0f;
    ct_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p->ln1_w, p->ln1_b, N, C);
    ct_matmul_forward(a->qkv, a->ln1, p->qkv_w, p->qkv_b, N, C, 3 * l.C);
    poll(d);
    ct_attention_forward(a->att, a->att_lse, a->qkv, prefix_len, d.B, d.T, l.C, l.H);
    poll(d);
    ct_matmul_forward(y, a->att, p->proj_w, row_bias(d, p->proj_b), N, l.C, C); /* y as scratch */
    tp_sum(d, y, NC);
    ct_residual_add(a->res2, x, y, NC);
    ct_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, p->ln2_w, p->ln2_b, N, C);
    if (ffn->moe && ffn->group) { /* a failed exchange is recorded by the group's hooks */
        (void)ct_moe_forward_ep(ffn->moe, &p->moe, &a->moe, ffn->ep, ffn->group, a->ln2, y, N, C,
                                ffn->noise_seed, ffn->training, &aux);
    } else if (ffn->moe) { /* whole on every tensor rank */
        aux = ct_moe_forward(ffn->moe, &p->moe, &a->moe, a->ln2, y, N, C, ffn->noise_seed, ffn->training, NULL);
    } else {
        ct_matmul_forward(a->fc, a->ln2, p->fc_w, p->fc_b, N, C, l.F);
        poll(d);
        ct_gelu_forward(a->gelu, a->fc, (size_t)N * l.F);
        ct_matmul_forward(y, a->gelu, p->out_w, row_bias(d, p->out_b), N, l.F, C);
        tp_sum(d, y, NC);
    }
    ct_residual_add(y, a->res2, y, NC);
    return aux;
}

void ct_block_backward(const ct_block_params *p, ct_block_params *g, const ct_block_acts *a, const float *x,
                       float *dres, ct_block_scratch *s, const int32_t *prefix_len, ct_dims d,
                       const ct_block_ffn *ffn, float grad_scale) {
    int N = d.B * d.T, C = d.C;
    local_dims l = local(d);
    /* feed-forward branch: dres is dL/dy = dL/d(ffn out); s->dln receives dL/dln2. The
     * row-parallel biases get their (identical) gradient on every rank. */
    if (ffn->moe && ffn->group) {
        (void)ct_moe_backward_ep(ffn->moe, &p->moe, &g->moe, &a->moe, ffn->ep, ffn->group, a->ln2, dres, s->dln,
                                 &s->moe, N, C, grad_scale);
    } else if (ffn->moe) {
        ct_moe_backward(ffn->moe, &p->moe, &g->moe, &a->moe, a->ln2, dres, s->dln, &s->moe, N, C, grad_scale);
    } else {
        ct_matmul_backward(s->dfc, g->out_w, g->out_b, dres, a->gelu, p->out_w, N, l.F, C);
        poll(d);
        ct_gelu_backward(s->dfc, a->fc, s->dfc, (size_t)N * l.F);
        ct_matmul_backward(s->dln, g->fc_w, g->fc_b, s->dfc, a->ln2, p->fc_w, N, C, l.F);
        poll(d);
        tp_sum(d, s->dln, (size_t)N * C);
    }
    ct_layernorm_backward(dres, g->ln2_w, g->ln2_b, s->dln, a->res2, p->ln2_w, a->ln2_mean, a->ln2_rstd, N,
                          C); /* dres is now dL/dres2 */
    /* attention branch */
    ct_matmul_backward(s->datt, g->proj_w, g->proj_b, dres, a->att, p->proj_w, N, l.C, C);
    poll(d);
    ct_attention_backward(s->dqkv, s->datt, a->qkv, a->att, a->att_lse, prefix_len, d.B, d.T, l.C, l.H);
    poll(d);
    ct_matmul_backward(s->dln, g->qkv_w, g->qkv_b, s->dqkv, a->ln1, p->qkv_w, N, C, 3 * l.C);
    poll(d);
    tp_sum(d, s->dln, (size_t)N * C);
    ct_layernorm_backward(dres, g->ln1_w, g->ln1_b, s->dln, x, p->ln1_w, a->ln1_mean, a->ln1_rstd, N,
                          C); /* dres is now dL/dx */
}
