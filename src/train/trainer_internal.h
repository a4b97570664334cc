/* trainer_internal.h: the ct_trainer struct, shared by trainer.c (state transitions) and
 * train_loop.c (the run loop and its output). */
#ifndef CT_TRAINER_INTERNAL_H
#define CT_TRAINER_INTERNAL_H

#include "data/caption_loader.h"
#include "train/caption_eval.h"
#include "data/loader.h"
#include "data/shard_tokenizer.h"
#include "parallel/dp.h"
#include "train/checkpoint.h"
#include "train/ckpt_stream.h"
#include "train/loss_guard.h"
#include "train/optim.h"
#include "train/pipeline.h"
#include "train/trainer.h"

struct ct_trainer {
    ct_config cfg;
    ct_world *world; /* not owned */
    ct_dp *dp;
    int rows, row0; /* this rank's rows of each global micro-batch */
    ct_model *model;
    ct_pipe *pipe;    /* pipeline stages: the schedule; NULL with one stage */
    float *pipe_busy; /* [stages]: each stage's computing time in the last step's schedule */
    ct_adamw *opt;
    ct_store *store;       /* the disk tier's file, when state is placed there */
    ct_place *plan;        /* [3][n_layer + 2]: each unit's weights, gradients and moments */
    size_t predicted_peak; /* the automatic policy's prediction of the compute tier's peak */
    size_t sharded_bytes;  /* ZeRO 3: parameters and gradients resident at most (0: not sharded) */
    ct_loader *train, *val;
    ct_shard_tokenizer tokenizer; /* what data.dir's shards were tokenized with */
    int64_t step;
    int32_t *inputs, *targets; /* [B, T] each */
    ct_ckpt_tensor *ckpt_tensors;
    ct_ckpt_view view;
    ct_ckpt_stream stream;
    char ckpt_root[1024];
    ct_caption_loader *cap_train, *cap_val; /* data.scenes (NULL: text only) */
    ct_caption_batch cap;                   /* this rank's rows of a caption batch */
    char ckpt_prefix[24];                   /* checkpoint names: "step_" (the pseudo phase: "pseudo_step_") */
    int64_t stop_step;                      /* end the run here (the pseudo phase's delink.step); 0: none */
    ct_loss_guard guard;                    /* train.on_nonfinite: the verdict on each step */
};

/* The trainer state stored in a checkpoint's trainer.json: step, optimizer step count,
 * data position (as strings: 64-bit exact) and the whole config; NULL when out of memory. */
cJSON *ct_trainer_state_json(const ct_config *cfg, int64_t step, int64_t adam_steps, ct_loader_pos pos);

/* Fills out[ct_model_num_tensors(m)] with the model's table in checkpoint form: whole
 * (logical) shapes; offsets into m's buffer, which only a one-rank model's flat view may
 * use. */
void ct_model_ckpt_table(const ct_model *m, ct_ckpt_tensor *out);

/* Refuses, before any allocation, a model whose weights alone (one rank's share: the whole
 * model over tensor x pipeline ranks) exceed this machine's memory, naming source (the file
 * or "the config") and the model keys that size it. */
ct_status ct_model_check_fits(const ct_config *cfg, const char *source);

#endif
