/* sample.h: drawing tokens from a model: temperature, top-k, seeded. */
#ifndef CT_SAMPLE_H
#define CT_SAMPLE_H

#include "core/core.h"

/* Draws one id from logits[V]: temperature <= 0 means greedy (argmax); top_k <= 0 or >= V
 * means the full distribution. */
int32_t ct_sample_token(const float *logits, int V, float temperature, int top_k, ct_rng *rng);

typedef void (*ct_token_fn)(int32_t id, void *ctx);

/* Appends n_new sampled tokens after the prompt (n_prompt >= 1), calling on_token for each
 * as it is drawn. The context is the last seq_len tokens. */
ct_status ct_generate(ct_model *m, const int32_t *prompt, int n_prompt, int n_new,
                      float temperature, int top_k, ct_rng *rng, ct_token_fn on_token, void *ctx);

#endif
