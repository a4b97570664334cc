/* block.h: the GPT-2 decoder block (pre-LayerNorm attention, then a pre-LayerNorm feed-forward
 * that is either the dense GELU MLP or a Mixture-of-Experts layer, both residual): its
 * parameter views, the activations its forward saves for backward, and the pair of
 * hand-written forward/backward passes. */
#ifndef CT_BLOCK_H
#define CT_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include "model/moe.h"

/* A block's communication: tensor parallelism (rank `rank` of `ranks` holds heads
 * [rank*H/ranks, ...) and MLP hidden units [rank*4C/ranks, ...); sum adds buf [n] over the
 * ranks in place) and poll, called between the large products of backward so that
 * reductions in flight (data parallelism's gradient buckets) keep moving. */
typedef struct ct_block_comm {
    int rank, ranks;
    void (*sum)(void *ctx, float *buf, size_t n);
    void (*poll)(void *ctx);
    void *ctx;
} ct_block_comm;

/* Batch, time, channels, heads (of the whole model), and the tensor split (NULL: none). */
typedef struct ct_dims {
    int B, T, C, H;
    const ct_block_comm *tp;
} ct_dims;

/* Views into the model's parameter (or gradient) buffer; shapes for C channels and one
 * tensor rank (R ranks: QKV [C, 3C/R] with this rank's heads of Q, K and V, c_proj
 * [C/R, C], c_fc [C, 4C/R], out [4C/R, C]; the rest whole). */
typedef struct ct_block_params {
    float *ln1_w, *ln1_b;   /* [C], [C] */
    float *qkv_w, *qkv_b;   /* [C, 3C], [3C] */
    float *proj_w, *proj_b; /* [C, C], [C] */
    float *ln2_w, *ln2_b;   /* [C], [C] */
    float *fc_w, *fc_b;     /* [C, 4C], [4C]   dense feed-forward (NULL in an MoE block) */
    float *out_w, *out_b;   /* [4C, C], [C] */
    ct_moe_params moe;      /* MoE feed-forward (NULL pointers in a dense block) */
} ct_block_params;

/* Tensors of the attention half (ln_1 .. ln_2) and of each feed-forward kind. */
#define CT_BLOCK_ATTN_TENSORS 8
#define CT_BLOCK_MLP_TENSORS 4

/* The block's feed-forward kind and, for MoE, its per-call routing inputs. */
typedef struct ct_block_ffn {
    const ct_moe_config *moe;  /* NULL: dense MLP */
    uint64_t noise_seed;       /* router noise seed of this call */
    int training;              /* router noise only while training */
    const ct_moe_group *group; /* expert parallelism: the group (NULL: every expert here) */
    ct_moe_ep_acts *ep;        /* and this block's expert side */
} ct_block_ffn;

/* What forward saves for backward. N = B*T. */
typedef struct ct_block_acts {        /* tensor-parallel: C/R of the 3C, C and 4C columns, H/R heads */
    float *ln1, *ln1_mean, *ln1_rstd; /* [N, C], [N], [N] */
    float *qkv;                       /* [N, 3C] */
    float *att_lse;                   /* [B, H, T] log-sum-exp of each attention row */
    float *att;                       /* [N, C] attention output before projection */
    float *res2;                      /* [N, C] x + attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* [N, C], [N], [N] */
    float *fc;                        /* [N, 4C] before GELU (dense) */
    float *gelu;                      /* [N, 4C] (dense) */
    ct_moe_acts moe;                  /* routing and expert activations (MoE) */
} ct_block_acts;

/* Floats one block's activations take for dims d (moe NULL: dense). */
size_t ct_block_acts_size(ct_dims d, const ct_moe_config *moe);
/* Lays a block's activations out in buf (ct_block_acts_size floats). */
void ct_block_acts_layout(ct_block_acts *a, float *buf, ct_dims d, const ct_moe_config *moe);

/* Scratch shared by all blocks in backward. */
typedef struct ct_block_scratch {
    float *dln;  /* [N, C] */
    float *dqkv; /* [N, 3C] */
    float *datt; /* [N, C] */
    float *dfc;  /* [N, 4C] */
    ct_moe_scratch moe;
} ct_block_scratch;
/* moe: the model's MoE configuration, or NULL when no block is MoE. threads: OpenMP threads
 * of the passes; nothing in the scratch is per thread now (the attention's tiles live on
 * each thread's stack), the argument stays for the callers. */
size_t ct_block_scratch_size(ct_dims d, int threads, const ct_moe_config *moe);
void ct_block_scratch_layout(ct_block_scratch *s, float *buf, ct_dims d, int threads, const ct_moe_config *moe);

/* y[N,C] = block(x[N,C]). Returns the MoE auxiliary loss (coefficients applied) to add to
 * the training loss; 0 for a dense block. */
float ct_block_forward(const ct_block_params *p, ct_block_acts *a, const float *x, float *y,
                       const int32_t *prefix_len, ct_dims d, const ct_block_ffn *ffn);
/* On entry dres holds dL/dy; on exit dL/dx. Parameter gradients accumulate into g.
 * grad_scale weighs the MoE auxiliary losses' gradients like the main loss's. */
void ct_block_backward(const ct_block_params *p, ct_block_params *g, const ct_block_acts *a, const float *x,
                       float *dres, ct_block_scratch *s, const int32_t *prefix_len, ct_dims d,
                       const ct_block_ffn *ffn, float grad_scale);

#endif
