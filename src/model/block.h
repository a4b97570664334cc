/* block.h: the GPT-2 decoder block (pre-LayerNorm attention + GELU MLP, both residual):
 * its parameter views, the activations its forward saves for backward, and the pair of
 * hand-written forward/backward passes. */
#ifndef CT_BLOCK_H
#define CT_BLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct ct_dims { int B, T, C, H; } ct_dims;

/* Views into the model's parameter (or gradient) buffer; shapes for C channels. */
typedef struct ct_block_params {
    float *ln1_w, *ln1_b;   /* [C], [C] */
    float *qkv_w, *qkv_b;   /* [C, 3C], [3C] */
    float *proj_w, *proj_b; /* [C, C], [C] */
    float *ln2_w, *ln2_b;   /* [C], [C] */
    float *fc_w, *fc_b;     /* [C, 4C], [4C] */
    float *out_w, *out_b;   /* [4C, C], [C] */
} ct_block_params;

#define CT_BLOCK_TENSORS 12

/* What forward saves for backward. N = B*T. */
typedef struct ct_block_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N, C], [N], [N] */
    float *qkv;                       /* [N, 3C] */
    float *probs;                     /* [B, H, T, T] */
    float *att;                       /* [N, C] attention output before projection */
    float *res2;                      /* [N, C] x + attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* [N, C], [N], [N] */
    float *fc;                        /* [N, 4C] before GELU */
    float *gelu;                      /* [N, 4C] */
} ct_block_acts;

/* Floats one block's activations take for dims d. */
size_t ct_block_acts_size(ct_dims d);
/* Lays a block's activations out in buf (ct_block_acts_size(d) floats). */
void ct_block_acts_layout(ct_block_acts *a, float *buf, ct_dims d);

/* Scratch shared by all blocks in backward. */
typedef struct ct_block_scratch {
    float *dln;   /* [N, C] */
    float *dqkv;  /* [N, 3C] */
    float *datt;  /* [N, C] */
    float *dfc;   /* [N, 4C] */
    float *dprob; /* [threads, T, T] */
} ct_block_scratch;
size_t ct_block_scratch_size(ct_dims d, int threads);
void ct_block_scratch_layout(ct_block_scratch *s, float *buf, ct_dims d, int threads);

/* y[N,C] = block(x[N,C]) */
void ct_block_forward(const ct_block_params *p, ct_block_acts *a, const float *x, float *y,
                      const int32_t *prefix_len, ct_dims d);
/* On entry dres holds dL/dy; on exit dL/dx. Parameter gradients accumulate into g. */
void ct_block_backward(const ct_block_params *p, ct_block_params *g, const ct_block_acts *a,
                       const float *x, float *dres, ct_block_scratch *s,
                       const int32_t *prefix_len, ct_dims d);

#endif
