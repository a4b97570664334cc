/* optim.h: AdamW with decoupled weight decay (only on tensors the model marks for decay:
 * matrices and embeddings, never biases or norm gains), global-norm gradient clipping, and
 * the learning-rate schedule (linear warmup, then cosine decay to a floor). */
#ifndef CT_OPTIM_H
#define CT_OPTIM_H

#include "cetus.h"
#include "core/store.h"

/* Disk-held moments stream through two staging buffers, each a piece of at most this many
 * floats of m and of v (16 MiB each). */
enum { CT_ADAMW_PIECE = 1 << 22 };

typedef struct ct_adamw_config {
    float beta1, beta2, eps, weight_decay;
    float grad_clip; /* max global L2 norm; <= 0 disables clipping */
} ct_adamw_config;

typedef struct ct_adamw ct_adamw;

ct_status ct_adamw_create(ct_adamw **out, size_t num_params);
/* Moments for the flat parameter range [lo, lo + n) only (a ZeRO shard). */
ct_status ct_adamw_create_range(ct_adamw **out, size_t lo, size_t n);
size_t ct_adamw_range_lo(const ct_adamw *o);
size_t ct_adamw_range_n(const ct_adamw *o);
void ct_adamw_free(ct_adamw *o);
/* Moments for [lo, lo + n) with the given flat ranges (sorted, disjoint; clipped to the
 * range) placed in host memory or on disk (in store's file, which must be large enough:
 * 8 bytes per disk-placed float), the rest in compute memory. */
ct_status ct_adamw_create_placed(ct_adamw **out, size_t lo, size_t n, const ct_place_range *ranges, int count,
                                 ct_store *store);
/* The same for several owned ranges (sorted, disjoint: a ZeRO 3 rank's slice of every
 * unit); the moments cover only them. The optimizer's range (ct_adamw_range_lo/_n) then spans
 * from the first to the end of the last. */
ct_status ct_adamw_create_owned(ct_adamw **out, const ct_place_range *owned, int n_owned,
                                const ct_place_range *ranges, int count, ct_store *store);
/* Bytes of moments placed at place. */
size_t ct_adamw_bytes(const ct_adamw *o, ct_place place);
/* Moments [n] for the range in the model's parameter layout, when none are placed off the
 * compute tier (NULL otherwise: use ct_adamw_read / ct_adamw_write). */
float *ct_adamw_m(ct_adamw *o);
float *ct_adamw_v(ct_adamw *o);
/* Copies moments (which: 1 first, 2 second) of flat [at, at + n) out of / into the
 * optimizer, wherever they are placed (for checkpoints). */
ct_status ct_adamw_read(ct_adamw *o, int which, size_t at, size_t n, float *dst);
ct_status ct_adamw_write(ct_adamw *o, int which, size_t at, size_t n, const float *src);
int64_t ct_adamw_steps(const ct_adamw *o);
void ct_adamw_set_steps(ct_adamw *o, int64_t t);

/* Global L2 norm of the gradients, summed in a fixed order (deterministic). */
float ct_grad_norm(const float *grads, size_t n);

/* One update of the model's parameters from its gradients; returns the gradient norm
 * before clipping. */
float ct_adamw_step(ct_adamw *o, ct_model *m, float lr, const ct_adamw_config *c);
/* The update of the parameters in o's range alone, with gradients already scaled by
 * clip_scale (what ct_adamw_step does after the norm). Fails only on disk I/O. */
ct_status ct_adamw_update(ct_adamw *o, ct_model *m, float lr, float clip_scale, const ct_adamw_config *c);
/* The clipping factor for a gradient norm. */
float ct_clip_scale(float norm, const ct_adamw_config *c);

typedef struct ct_lr_schedule {
    float lr_max, lr_min; /* cosine decays from lr_max to lr_min */
    int64_t warmup_steps, total_steps;
} ct_lr_schedule;

/* Learning rate for step (0-based): linear warmup to lr_max over warmup_steps, cosine to
 * lr_min at total_steps, lr_min after. */
float ct_lr_at(const ct_lr_schedule *s, int64_t step);

#endif
