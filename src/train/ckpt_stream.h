/* ckpt_stream.h: the trainer's side of layout-free checkpoints (ckpt_stream.c): streaming
 * each tensor of a checkpoint between the ranks' pieces and the whole tensor the files
 * hold. It is handed the model, the optimizer, the data-parallel shards and the world it
 * streams over, and knows nothing else of the trainer. */
#ifndef CT_CKPT_STREAM_H
#define CT_CKPT_STREAM_H

#include "parallel/dp.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optim.h"

/* Streams a checkpoint's tensors between the ranks' pieces and the whole tensors the files
 * hold (ckpt_stream.c). */
typedef struct ct_ckpt_stream {
    const ct_config *cfg; /* the run's: its stage plan and ZeRO stage */
    ct_world *world;
    ct_model *model;      /* this rank's model: its pieces are what is streamed */
    ct_dp *dp;            /* the data ranks' shards of the moments */
    ct_adamw *opt;        /* the moments */
    int leader;           /* this rank writes the files */
    ct_model *table;      /* the one-process table: the checkpoint's tensors, in order */
    size_t n;             /* its tensors */
    int *local;           /* [n]: the index of each in this rank's model, -1 if another stage's */
    int *owner;           /* [n]: the pipeline stage that saves it */
    size_t calls;         /* gets of the save in progress */
    ct_status put_status; /* the first failure of a load's puts (they cannot return one) */
    float *full, *parts;  /* scratch: [largest tensor] each */
    ct_ckpt_io io;
} ct_ckpt_stream;

/* Streams the state of model (its moments in opt, sharded by dp under ZeRO) on world. */
ct_status ct_ckpt_stream_create(ct_ckpt_stream *cs, const ct_config *cfg, ct_world *world, ct_model *model,
                                ct_dp *dp, ct_adamw *opt);
void ct_ckpt_stream_free(ct_ckpt_stream *cs);
const ct_ckpt_io *ct_ckpt_stream_io(ct_ckpt_stream *cs);
/* Makes the gets a save left undone (every rank must take part in each tensor's
 * collectives, also when the leader's save stopped early), then rearms for the next save. */
ct_status ct_ckpt_stream_finish(ct_ckpt_stream *cs, int with_moments);

#endif
