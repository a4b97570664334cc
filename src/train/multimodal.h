/* multimodal.h: the trainer's image + text side (multimodal.c): captioned scene batches
 * mixed with text batches per micro-batch (data.text_ratio), their separate losses, the
 * caption evaluation (loss, token accuracy, exact match of greedy captions) and the caption
 * loader's place in checkpoints. */
#ifndef CT_MULTIMODAL_H
#define CT_MULTIMODAL_H

#include "train/trainer_internal.h"

typedef struct ct_caption_eval {
    float loss;        /* mean cross-entropy on caption tokens (teacher forcing) */
    float token_acc;   /* share of caption targets (and the end-of-text) predicted by argmax */
    float exact_match; /* share of scenes whose greedy caption equals the reference */
    int scenes;        /* scenes the exact match was measured on */
} ct_caption_eval;

/* Opens data.scenes' train and val shards (nothing without data.scenes). */
ct_status ct_mm_open(ct_trainer *tr);
void ct_mm_close(ct_trainer *tr);
/* 1 when micro-batch `micro` of the current step is a text batch: a share data.text_ratio of
 * all micro-batches, spread evenly (always 1 without scenes). */
int ct_mm_is_text(const ct_trainer *tr, int micro);
/* One caption micro-batch: forward and backward with the image prefix; *loss is its mean
 * caption cross-entropy. arm: this micro-batch ends the step (data parallelism reduces). */
ct_status ct_mm_caption_micro(ct_trainer *tr, float scale, uint64_t noise_seed, int arm, float *loss,
                              float *aux);
/* Caption metrics over train.eval_batches validation batches (exact match over
 * train.eval_captions scenes). */
ct_status ct_mm_evaluate(ct_trainer *tr, ct_caption_eval *out);
/* The caption loader's position in the trainer state (0 when out of memory), and back. */
int ct_mm_save_state(const ct_trainer *tr, cJSON *state);
ct_status ct_mm_load_state(ct_trainer *tr, const cJSON *state, const char *where);

#endif
