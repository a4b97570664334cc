/* sample.h: drawing tokens from a model: temperature, top-k, seeded; text continuation and
 * captions of an image (image-prefix models). */
#ifndef CT_SAMPLE_H
#define CT_SAMPLE_H

#include "core/core.h"
#include "spec/model_spec.h"

/* Draws one id from logits[V] into *out: temperature <= 0 means greedy (argmax); top_k <= 0
 * or >= V means the full distribution. Top-k needs scratch memory (CT_ENOMEM without). */
ct_status ct_sample_token(const float *logits, int V, float temperature, int top_k, ct_rng *rng, int32_t *out);

/* Text continuation (ct_generate, seeded) is declared in include/cetus.h. */

/* Captions follow the layout of spec/model_spec.h (ct_caption_eot, ct_caption_max_tokens). */

/* Generates the caption of one image: patches [Np * P * P] (ct_image_patches). Runs the image,
 * bos and the tokens so far through the model (B = 1, the whole row again each step), draws
 * the next token with ct_sample_token (temperature 0 = greedy; rng may then be NULL), and
 * stops at eot (not stored) or after max_tokens, capped at ct_caption_max_tokens. out gets
 * the *n_out tokens (room for max_tokens). The model's image input is reset to none when it
 * returns, also on failure. */
ct_status ct_generate_caption(ct_model *m, const float *patches, int32_t bos, int32_t eot, int max_tokens,
                              float temperature, int top_k, ct_rng *rng, int32_t *out, int *n_out);

/* Greedy captions of B images at once (for evaluation): patches [B, Np, P * P]; caption b
 * goes to out + b * max_tokens, its length to n_out[b]. Each caption equals what
 * ct_generate_caption gives greedily for that image alone. */
ct_status ct_generate_captions_greedy(ct_model *m, const float *patches, int B, int32_t bos, int32_t eot,
                                      int max_tokens, int32_t *out, int *n_out);

#endif
