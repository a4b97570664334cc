/* trainer_internal.h: the ct_trainer struct, shared by trainer.c (state transitions) and
 * train_loop.c (the run loop and its output). */
#ifndef CT_TRAINER_INTERNAL_H
#define CT_TRAINER_INTERNAL_H

#include "data/loader.h"
#include "parallel/dp.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer.h"

struct ct_trainer {
    ct_config cfg;
    ct_world *world;  /* not owned */
    ct_dp *dp;
    int rows, row0;   /* this rank's rows of each global micro-batch */
    ct_model *model;
    ct_adamw *opt;
    ct_loader *train, *val;
    int64_t step;
    int32_t *inputs, *targets; /* [B, T] each */
    ct_ckpt_tensor *ckpt_tensors;
    ct_ckpt_view view;
    char ckpt_root[1024];
};

/* The trainer state stored in a checkpoint's trainer.json: step, optimizer step count,
 * data position (as strings: 64-bit exact) and the whole config. */
cJSON *ct_trainer_state_json(const ct_config *cfg, int64_t step, int64_t adam_steps, ct_loader_pos pos);

/* Fills out[ct_model_num_tensors(m)] with the model's table in checkpoint form. */
void ct_model_ckpt_table(const ct_model *m, ct_ckpt_tensor *out);

#endif
