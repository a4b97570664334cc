/* trainer.h: one training run: model, AdamW, data loaders, schedule, evaluation, samples,
 * checkpoints (save, resume bit-identically) and the progress/metrics output. */
#ifndef CT_TRAINER_H
#define CT_TRAINER_H

#include "train/config.h"

typedef struct ct_trainer ct_trainer;

typedef struct ct_step_stats {
    float loss; /* mean cross-entropy over the step's micro-batches */
    float aux;  /* mean MoE auxiliary loss (coefficients applied; 0 if dense) */
    float lr;
    float grad_norm;               /* before clipping */
    float caption_loss, text_loss; /* the step's mean over each kind of micro-batch (NAN: none) */
    double positions;              /* sequence positions the step computed, over the global batch (image
                       * patches included) */
    double seconds;
    double comm_bytes;   /* sent by this rank during the step, over every parallel axis */
    double expert_bytes; /* of those, the MoE all-to-all exchanges (expert axis) */
    /* pipeline stages: seconds this rank's stage spent in the schedule (stage 0 starts first
     * and ends last: its span is the pipeline's), and per stage the seconds of it spent
     * computing, not waiting for messages: 1 - max(busy) / pipe_s is the bubble; NULL with
     * one stage */
    double pipe_s;
    const float *pipe_busy; /* [stages], owned by the trainer */
    int stages;
    int skipped; /* the loss guard dropped this step's update (train.on_nonfinite = skip) */
} ct_step_stats;

typedef struct ct_world ct_world;

/* Builds everything from cfg on world (from ct_world_create: one process, or this rank of an
 * MPI layout); resumes from run.dir's latest checkpoint when run.resume is set and one
 * exists (the checkpoint's model shape must match cfg; its parallel layout need not). */
ct_status ct_trainer_create(ct_trainer **out, const ct_config *cfg, ct_world *world);
/* 1 on the rank that prints, writes metrics and saves checkpoints. */
int ct_trainer_is_leader(const ct_trainer *tr);
void ct_trainer_free(ct_trainer *tr);

ct_status ct_trainer_step(ct_trainer *tr, ct_step_stats *st);
/* Seconds so far the offload I/O threads moved state (weights and moments), and the
 * training waited for them. */
void ct_trainer_offload_times(const ct_trainer *tr, double *busy_s, double *wait_s);
/* Bytes of activation buffers this rank holds (every pipeline micro-batch slot). */
size_t ct_trainer_acts_bytes(const ct_trainer *tr);
/* What one evaluation covered: the mean loss over `tokens` validation targets, out of the
 * split's `split_tokens` (every complete batch of windows when whole). */
typedef struct ct_eval_result {
    float loss;
    uint64_t tokens, split_tokens;
    int batches, whole;
} ct_eval_result;
/* Mean validation loss over `batches` micro-batches whose windows are spread evenly over the
 * whole split (the same windows at every evaluation; see ct_loader_spread), or over every
 * complete batch of windows when batches <= 0 or the split holds no more. Collective. */
ct_status ct_trainer_evaluate(ct_trainer *tr, int batches, ct_eval_result *out);
/* Writes run.dir/ckpt/step_NNNNNNNN and prunes to train.ckpt_keep checkpoints. */
ct_status ct_trainer_save(ct_trainer *tr);
/* The whole run: steps with progress lines, metrics, evaluations, samples, checkpoints. */
ct_status ct_trainer_run(ct_trainer *tr);

int64_t ct_trainer_step_index(const ct_trainer *tr); /* optimizer steps done */
/* The checkpoint directory this trainer saves for a step. */
void ct_trainer_ckpt_dir(const ct_trainer *tr, int64_t step, char *out, size_t cap);
/* The whole of `cetus train` on a world: one trainer, or with delink.step the pseudo model's
 * trainer until that step, the switch (ct_delink_checkpoint on its checkpoint) and the real
 * model's trainer from there; resumes in either phase. */
ct_status ct_train_run(const ct_config *cfg, ct_world *world);
ct_model *ct_trainer_model(ct_trainer *tr);

/* Rebuilding a model from a checkpoint: train/commands.h. */

#endif
