/* trainer_internal.h: the ct_trainer struct, shared by trainer.c (state transitions) and
 * train_loop.c (the run loop and its output). */
#ifndef CT_TRAINER_INTERNAL_H
#define CT_TRAINER_INTERNAL_H

#include "data/loader.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer.h"

struct ct_trainer {
    ct_config cfg;
    ct_model *model;
    ct_adamw *opt;
    ct_loader *train, *val;
    int64_t step;
    int32_t *inputs, *targets; /* [B, T] each */
    ct_ckpt_tensor *ckpt_tensors;
    ct_ckpt_view view;
    char ckpt_root[1024];
};

/* Fills out[ct_model_num_tensors(m)] with the model's table in checkpoint form. */
void ct_model_ckpt_table(const ct_model *m, ct_ckpt_tensor *out);

#endif
