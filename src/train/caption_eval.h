/* caption_eval.h: scoring an image-captioning model on batches of scenes: the caption loss
 * (summed over caption targets, so sums from several ranks or batches divide into the exact
 * token mean), argmax token accuracy, and the exact-match rate of greedy captions. Used by
 * the trainer's evaluation and by `cetus eval`. */
#ifndef CT_CAPTION_EVAL_H
#define CT_CAPTION_EVAL_H

#include "cetus.h"
#include "data/caption_loader.h"

/* One batch of rows laid out by a caption loader. */
typedef struct ct_caption_batch {
    int rows, T, Np;
    float *patches;                     /* [rows, Np, P*P] */
    int32_t *tokens, *targets, *prefix; /* [rows, T], [rows, T], [rows] */
} ct_caption_batch;

ct_status ct_caption_batch_create(ct_caption_batch *b, const ct_caption_loader *l, const ct_model_config *cfg,
                                  int rows);
void ct_caption_batch_free(ct_caption_batch *b);
/* Fills b with rows [row0, row0 + b->rows) of l's next global batch. */
ct_status ct_caption_batch_next(ct_caption_batch *b, ct_caption_loader *l, int row0);

typedef struct ct_caption_tally {
    double loss;    /* cross-entropy summed over the caption targets */
    double targets; /* caption targets (tokens and their end-of-text) */
    double hits;    /* of those, predicted by the argmax */
    double exact;   /* greedy captions equal to the reference */
    double scenes;  /* scenes captioned greedily */
} ct_caption_tally;

/* Adds the batch b (rows [row0, ...) of l's last batch) to t: the loss and hits when score,
 * the greedy captions' matches when exact. Collective over the model's tensor ranks. */
ct_status ct_caption_tally_batch(ct_model *m, const ct_caption_loader *l, const ct_caption_batch *b, int row0,
                                 int score, int exact, ct_caption_tally *t);

#endif
