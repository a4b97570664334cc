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
 *   3  the parameters too (zero3.h): each unit (the embeddings, a block, the head) is split
 *      near-evenly over the data ranks, and a rank keeps, updates and is reduced into its
 *      slice of every unit; a unit's parameters are gathered just before each use and given
 *      back after it; gradients are reduce-scattered per unit into the slices, as stage 2
 *      does per bucket (expert buckets over the ranks that hold the same experts). One
 *      pipeline stage.
 * With tensor parallelism every buffer here is this rank's part of the model, the data
 * axis groups the ranks holding the same part, and the gradient norm adds the split
 * tensors' squares over the tensor ranks. */
#ifndef CT_DP_H
#define CT_DP_H

#include "cetus.h"
#include "parallel/comm.h"
#include "core/store.h"

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

/* zero_keep: stage 3's parallel.zero_keep (the uses at the end of forward left gathered). */
ct_status ct_dp_create(ct_dp **out, ct_world *w, ct_model *m, int zero_stage, int zero_keep,
                       ct_overlap overlap);
/* 1 when a helper thread drives the reductions. */
int ct_dp_threaded(const ct_dp *dp);
void ct_dp_free(ct_dp *dp);
int ct_dp_ranks(const ct_dp *dp);
/* The flat parameter range this rank updates: [lo, hi); everything for stage 0 (stages
 * 0-2, or one rank). */
void ct_dp_shard(const ct_dp *dp, size_t *lo, size_t *hi);
/* The flat ranges this rank updates, sorted (any stage; place: compute): out
 * [ct_dp_max_owned_ranges]; returns how many. */
int ct_dp_owned_ranges(const ct_dp *dp, ct_place_range *out);
int ct_dp_max_owned_ranges(const ct_dp *dp);

/* Zeroes the gradients before a step. Stage 2 touches only this rank's shard (and page
 * edges): the rest was given back and reads as zeros, so it stays unmapped until written. */
void ct_dp_zero_grad(ct_dp *dp);

/* Arms (reduce != 0) or disarms the bucket hook for the next backward: only the last
 * micro-batch of a step reduces. */
void ct_dp_arm(ct_dp *dp, int reduce);
/* Waits for every bucket of the armed backward. */
ct_status ct_dp_finish(ct_dp *dp);

/* The global gradient norm after ct_dp_finish: every rank gets the same value (summed over
 * the shards under ZeRO 2 and 3, the tensor, expert and pipeline splits). The optimizer then
 * updates this rank's shard (ct_dp_owned_ranges) and ct_dp_gather_params brings every rank
 * the other shards' updated parameters (ZeRO 1 and 2; nothing to do for stage 0; stage 3
 * drops every gathered unit instead, and each is gathered again at its next use: call it
 * after anything that changed this rank's slices, a checkpoint load too). */
ct_status ct_dp_grad_norm(ct_dp *dp, float *norm);
ct_status ct_dp_gather_params(ct_dp *dp);
/* Stage 3: gathered bytes, the gathers' busy seconds, seconds waited for them and their
 * count since creation (ct_zero3_stats; 0 otherwise). */
void ct_dp_gather_stats(const ct_dp *dp, double *bytes, double *busy_s, double *wait_s, long *gathers);

/* Mean of a per-rank value over the data axis (losses for reporting). */
ct_status ct_dp_mean(ct_dp *dp, float *value);

/* The axis the ZeRO shards are spread over: the data axis, or with experts split over an
 * expert group the expert-data axis (the ranks that hold equal copies of everything). */
ct_axis ct_dp_shard_axis(const ct_dp *dp);
/* The axis the part holding flat position at is sharded over: the shard axis, or at
 * stage 3 its bucket's (the data axis; for experts spread, the expert-data axis). */
ct_axis ct_dp_part_axis(const ct_dp *dp, size_t at);
/* The part [*a, *e) of flat [first, end) (a tensor: inside one unit) that the rank at
 * coordinate coord of its axis (ct_dp_part_axis) updates (empty: *a == *e); for
 * assembling checkpoints. */
void ct_dp_owned_part(const ct_dp *dp, int coord, size_t first, size_t end, size_t *a, size_t *e);

/* Every rank learns whether any rank failed: returns local when it failed here, an error
 * naming the other rank's failure otherwise, CT_OK when all succeeded. */
ct_status ct_dp_agree(ct_dp *dp, ct_status local, const char *what);

#endif
