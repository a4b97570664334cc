/* loss_guard.h: what a training step does when its loss or gradient norm is not finite, or
 * its loss explodes (train.on_nonfinite = stop | skip, train.loss_spike). The guard keeps the
 * recent accepted losses of each kind of batch (text, caption), judges every step before its
 * update, and records each refused step in run.dir/anomalies.jsonl with its batch's data
 * position, so the batch can be found and inspected again.
 *
 * The guard sees only values every rank holds identical bytes of (the loss averaged over the
 * data ranks and summed over the stages, the global gradient norm), so every rank reaches
 * the same verdict without a message. */
#ifndef CT_LOSS_GUARD_H
#define CT_LOSS_GUARD_H

#include "data/loader.h"
#include "train/config.h"
#include <stdint.h>

#define CT_GUARD_WINDOW 16   /* accepted losses of one kind the reference is the mean of */
#define CT_GUARD_MAX_SKIPS 8 /* steps skipped in a row that stop the run all the same */

typedef struct ct_loss_guard {
    int skip;       /* train.on_nonfinite = skip */
    double factor;  /* train.loss_spike (0: off) */
    double uniform; /* ln(vocab_size): the reference before any accepted loss */
    float recent[2][CT_GUARD_WINDOW];
    int count[2], next[2]; /* per kind (0 caption, 1 text): accepted losses held, ring slot */
    int skipped_in_row;
    int64_t skipped;   /* steps skipped in this process's run */
    int speak;         /* this rank writes the record and the warnings */
    int inject_step;   /* tests: the step whose loss reads as NaN (CETUS_INJECT_NONFINITE); -1 */
    char record[1100]; /* run.dir/anomalies.jsonl */
} ct_loss_guard;

void ct_loss_guard_init(ct_loss_guard *g, const ct_config *c, int speak);

/* What the guard judges: the step (0-based, before it is counted), the step's loss and each
 * kind's (NAN: none this step), the global gradient norm before clipping, and where the
 * step's batch started in the training data. */
typedef struct ct_guard_step {
    int64_t step;
    float loss, kind_loss[2], grad_norm;
    ct_loader_pos pos;
    int batch_size;
} ct_guard_step;

/* Judges a step before its update. Accepted: *skip = 0 and its losses join the reference.
 * Refused: recorded; with on_nonfinite = skip, *skip = 1 (CT_GUARD_MAX_SKIPS in a row fail);
 * with stop, a CT_EINVAL message naming the value, the key, the record and what to change. */
ct_status ct_loss_guard_judge(ct_loss_guard *g, ct_guard_step *s, int *skip);

#endif
