/* zero3.h: ZeRO stage 3, the parameters' side: every data rank keeps only its slice of each
 * unit's parameters (a unit: the embeddings, a block's weights -- one set for blocks that
 * share them --, ln_f and the head; the slice: the near-even contiguous part of the unit's
 * flat range for this rank, the same part its gradients are reduce-scattered into and the
 * optimizer updates, parallel/dp.h). Before a pass uses a unit (the model's parameters
 * hook), the slices are all-gathered in place into the unit's range of the parameter
 * buffer; the gather of the unit the pass uses next starts at once, so it moves while the
 * current unit computes. After the use, the range's pages outside this rank's slice are
 * given back to the system, so the resident parameters are this rank's slices plus the
 * units in use. The last `keep` uses of forward (the head first, then the blocks from the
 * last) stay gathered for backward, which uses them first. Shapes: everything is flat
 * floats of this rank's part of the model (with tensor parallelism, its tensor part). */
#ifndef CT_ZERO3_H
#define CT_ZERO3_H

#include "model/model.h"
#include "parallel/comm.h"

typedef struct ct_zero3 ct_zero3;

/* A part of the flat buffer that is gathered as one (data parallelism's buckets: a unit, or
 * its dense and its expert tensors apart): [lo, lo + n), split over axis (the data ranks, or
 * for experts spread the ranks that hold the same experts) as split says. */
typedef struct ct_zero3_part {
    size_t lo, n;
    ct_axis axis;
    const ct_split *split; /* borrowed: it must outlive the ct_zero3 */
} ct_zero3_part;

/* Shards the model's parameters as the parts say (sorted, tiling every unit) and installs
 * the hook: the other ranks' slices are given back now. The model must hold the same
 * parameters on every rank of each part's axis. */
ct_status ct_zero3_create(ct_zero3 **out, ct_world *w, ct_model *m, const ct_zero3_part *parts, int n_parts,
                          int keep);
void ct_zero3_free(ct_zero3 *z); /* removes the hook; NULL is a no-op */
/* Advances the gathers in flight (between the model's products). */
void ct_zero3_poll(ct_zero3 *z);
/* After this rank's slices changed (an optimizer step, a checkpoint load): waits for the
 * gathers in flight and drops every gathered unit, so the next use gathers the new values. */
ct_status ct_zero3_invalidate(ct_zero3 *z);
/* Since creation: bytes all-gathered into this rank, the gathers' seconds from start to
 * completion seen (busy), the seconds the passes waited for them (the part not hidden
 * behind compute: 1 - wait / busy was hidden), and how many. */
void ct_zero3_stats(const ct_zero3 *z, double *gathered_bytes, double *busy_s, double *wait_s, long *gathers);

/* The most floats of parameters and of gradients a rank holds at once at stage 3 with
 * `ranks` data ranks (its slices, plus: the units in use, the next one in flight and the
 * kept ones; for gradients the head's and the embeddings' ranges, written from the start
 * of backward, and two blocks being reduced; with gradient accumulation the whole buffer,
 * as micro-batches before the last sum into all of it). expert_ranks: the ranks each expert
 * tensor is sliced over (those holding the same experts; = ranks without experts spread). */
void ct_zero3_resident(const ct_model *m, int ranks, int expert_ranks, int keep, int accum, size_t *params,
                       size_t *grads);
/* keep outside 0 .. n_layer + 1: EINVAL naming parallel.zero_keep. */
ct_status ct_zero3_check_keep(int keep, int n_layer);

#endif
