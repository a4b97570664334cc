/* dp.h: data parallelism over the data axis: gradient reduction bucket by bucket while
 * backward still runs (a bucket is the final norm, a block, or the embeddings: each one
 * contiguous range of the flat gradient buffer), and the ZeRO stages:
 *   0  all-reduce the gradients; every rank keeps full AdamW state and updates everything
 *   1  all-reduce the gradients; AdamW state only for this rank's shard of the flat
 *      parameter range, which it updates; the parameters are all-gathered
 *   2  reduce-scatter the gradients, so a rank ends with only its shard's sums; the pages
 *      of other ranks' gradient ranges are handed back to the system as soon as their
 *      bucket is reduced (they fault back in as zeros, and the next step's zeroing skips
 *      them), so the resident gradient memory is this rank's shard plus the buckets that
 *      backward has written and not yet reduced; otherwise as stage 1. With gradient
 *      accumulation the micro-batches before the last sum into the whole buffer.
 * With tensor parallelism every buffer here is this rank's part of the model, the data
 * axis groups the ranks holding the same part, and the gradient norm adds the split
 * tensors' squares over the tensor ranks. */
#ifndef CT_DP_H
#define CT_DP_H

#include "cetus.h"
#include "parallel/comm.h"

typedef struct ct_dp ct_dp;

/* How reductions move while backward computes (parallel.overlap):
 *   AUTO   a helper thread when the data group spans several nodes (network transfers
 *          need only MPI's attention) or for ZeRO 2 (whose gradient memory falls only as
 *          buckets complete during backward), polls otherwise (within a node every copy is
 *          work for the cores that compute: a thread there only adds switching)
 *   THREAD a progress thread (progress.h) drives the buckets' reductions
 *   POLL   the main thread advances them between backward's products; most of the
 *          transfer then happens in ct_dp_finish */
typedef enum ct_overlap { CT_OVERLAP_AUTO = 0, CT_OVERLAP_THREAD, CT_OVERLAP_POLL } ct_overlap;
/* "auto", "thread", "poll" -> *out; EINVAL naming parallel.overlap otherwise. */
ct_status ct_overlap_parse(const char *text, ct_overlap *out);

ct_status ct_dp_create(ct_dp **out, ct_world *w, ct_model *m, int zero_stage, ct_overlap overlap);
/* 1 when a helper thread drives the reductions. */
int ct_dp_threaded(const ct_dp *dp);
void ct_dp_free(ct_dp *dp);
int ct_dp_ranks(const ct_dp *dp);
/* The flat parameter range this rank updates: [lo, hi); everything for stage 0. */
void ct_dp_shard(const ct_dp *dp, size_t *lo, size_t *hi);

/* Zeroes the gradients before a step. Stage 2 touches only this rank's shard (and page
 * edges): the rest was given back and reads as zeros, so it stays unmapped until written. */
void ct_dp_zero_grad(ct_dp *dp);

/* Arms (reduce != 0) or disarms the bucket hook for the next backward: only the last
 * micro-batch of a step reduces. */
void ct_dp_arm(ct_dp *dp, int reduce);
/* Waits for every bucket of the armed backward. */
ct_status ct_dp_finish(ct_dp *dp);

/* The global gradient norm after ct_dp_finish: every rank gets the same value (summed over
 * the shards under ZeRO 2, the tensor, expert and pipeline splits). The optimizer then
 * updates this rank's shard (ct_dp_shard) and ct_dp_gather_params brings every rank the
 * other shards' updated parameters (ZeRO 1 and 2; nothing to do for stage 0). */
ct_status ct_dp_grad_norm(ct_dp *dp, float *norm);
ct_status ct_dp_gather_params(ct_dp *dp);

/* Mean of a per-rank value over the data axis (losses for reporting). */
ct_status ct_dp_mean(ct_dp *dp, float *value);

/* The axis the ZeRO shards are spread over: the data axis, or with experts split over an
 * expert group the expert-data axis (the ranks that hold equal copies of everything). */
ct_axis ct_dp_shard_axis(const ct_dp *dp);
/* The range the rank at coordinate coord of that axis updates (for assembling moments). */
void ct_dp_shard_of(const ct_dp *dp, int coord, size_t *lo, size_t *hi);

/* Every rank learns whether any rank failed: returns local when it failed here, an error
 * naming the other rank's failure otherwise, CT_OK when all succeeded. */
ct_status ct_dp_agree(ct_dp *dp, ct_status local, const char *what);

#endif
