/* caption_loader.h: batches of captioned scenes (the shards `cetus prepare --scenes` writes)
 * laid out for an image-prefix model. A row of T = Np + 1 + max_tokens positions holds
 *   [0, Np)          the image's patches (ct_image_patches; their tokens are 0)
 *   Np               BOS (the end-of-text id, as captioning starts: ct_caption_eot)
 *   Np + 1 + j       caption token j (j < n), then end-of-text padding
 * targets: caption token j at position Np + j, end-of-text at Np + n, -1 elsewhere; the
 * prefix-LM mask covers the image and BOS (prefix Np + 1). Epochs visit every scene once in a
 * permutation of (seed, epoch) when shuffling, in order otherwise; the position (epoch,
 * index) is all the state, as for the text loader. */
#ifndef CT_CAPTION_LOADER_H
#define CT_CAPTION_LOADER_H

#include "data/loader.h"

typedef struct ct_caption_loader ct_caption_loader;

/* Opens DIR/scenes_<split>.bin for a model of config cfg, B rows per global batch. Refuses,
 * naming the file: a canvas other than image.height x image.width, a model without image
 * input, captions (plus the image and BOS) longer than model.seq_len, a vocabulary larger
 * than the model's. */
ct_status ct_caption_loader_open(ct_caption_loader **out, const char *dir, const char *split,
                                 const ct_model_config *cfg, int B, uint64_t seed, int shuffle);
void ct_caption_loader_close(ct_caption_loader *l);
/* Positions per row (T above). */
int ct_caption_loader_seq_len(const ct_caption_loader *l);
uint64_t ct_caption_loader_count(const ct_caption_loader *l);
/* Rows [row0, row0 + nrows) of the next global batch (this rank's slice; the position
 * advances by the whole batch): patches [nrows, Np, P*P], tokens and targets [nrows, T],
 * prefix [nrows]. */
ct_status ct_caption_loader_next_rows(ct_caption_loader *l, int row0, int nrows, float *patches,
                                      int32_t *tokens, int32_t *targets, int32_t *prefix);
ct_loader_pos ct_caption_loader_get_pos(const ct_caption_loader *l);
ct_status ct_caption_loader_set_pos(ct_caption_loader *l, ct_loader_pos pos);
void ct_caption_loader_reset(ct_caption_loader *l);
/* Targets (caption tokens and their end-of-text) in the whole last global batch: what a
 * loss over the batch divides by, whichever rank holds which rows. */
uint64_t ct_caption_loader_batch_targets(const ct_caption_loader *l);
/* The reference caption of the scene at row `row` of the last batch (tokens, count). */
size_t ct_caption_loader_caption(const ct_caption_loader *l, int row, int32_t *tokens);

#endif
