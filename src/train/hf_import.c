/* hf_import.c: `cetus import` (ct_hf_import, see train/commands.h): a Hugging Face GPT-2
 * directory (config.json + model.safetensors, float32) becomes a new cetus run directory
 * holding cetus.json (the run's config) and the step-0 checkpoint ckpt/step_00000000 (the
 * weights, zero AdamW moments, the Hugging Face files). Everything is checked before a byte
 * is written: the config's fields against what cetus's model computes, every tensor's
 * presence and shape against the config; the run directory is assembled under a temporary
 * name and renamed into place, so a failure leaves nothing behind. */
#include "core/core.h"
#include "model/model.h"
#include "train/commands.h"
#include "train/hf.h"
#include "train/safetensors.h"
#include "train/trainer_internal.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HF_PATH 4096

typedef struct hf_src {
    char config[HF_PATH], weights[HF_PATH]; /* DIR/config.json, DIR/model.safetensors */
    ct_safetensors *st;
    ct_model *table;    /* the one-process model of the config: names and shapes */
    const float **data; /* [tensors]: each table tensor's data in st */
    const float *zeros; /* fresh AdamW moments: the largest tensor's worth */
} hf_src;

/* ---- config.json ------------------------------------------------------------------------ */

/* Integer field key of j into *out, in [lo, hi]; a missing one is an error when required. */
static ct_status hf_int(const cJSON *j, const char *path, const char *key, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return ct_fail(CT_EINVAL, "%s: no \"%s\" (GPT-2's configs have it)", path, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d))
        return ct_fail(CT_EINVAL, "%s: \"%s\" must be a whole number from %d to %d", path, key, lo, hi);
    *out = (int)d;
    return CT_OK;
}

/* A boolean field that must be absent or have value want (what cetus's model computes). */
static ct_status hf_flag(const cJSON *j, const char *path, const char *key, int want, const char *why) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v) || (cJSON_IsBool(v) && cJSON_IsTrue(v) == want)) return CT_OK;
    return ct_fail(CT_EINVAL, "%s: \"%s\" = %s is not supported: %s", path, key,
                   cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? "true" : "false") : "(not a boolean)", why);
}

/* model_type, the activation, the LayerNorm epsilon and n_inner: cetus's GPT-2 or refused. */
static ct_status hf_check_kind(const cJSON *j, const char *path, int C) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "gpt2")))
        return ct_fail(CT_EINVAL,
                       "%s: model_type \"%s\" is not supported: cetus imports GPT-2 (model_type gpt2)", path,
                       cJSON_IsString(type) ? type->valuestring : "?");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "activation_function");
    const char *a = cJSON_IsString(act) ? act->valuestring : act ? "?" : "gelu_new";
    if (strcmp(a, "gelu_new") && strcmp(a, "gelu_pytorch_tanh") && strcmp(a, "gelu_fast"))
        return ct_fail(CT_EINVAL,
                       "%s: activation_function \"%s\" is not supported: cetus computes GELU's tanh form "
                       "(gelu_new, gelu_pytorch_tanh or gelu_fast; \"gelu\" is the erf form)",
                       path, a);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_epsilon");
    if (eps && (!cJSON_IsNumber(eps) || fabs(eps->valuedouble - 1e-5) > 1e-12))
        return ct_fail(CT_EINVAL, "%s: layer_norm_epsilon %g is not supported: cetus's LayerNorm uses 1e-05",
                       path, cJSON_IsNumber(eps) ? eps->valuedouble : NAN);
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(j, "n_inner");
    if (inner && !cJSON_IsNull(inner) && !(cJSON_IsNumber(inner) && inner->valuedouble == 4.0 * C))
        return ct_fail(CT_EINVAL,
                       "%s: n_inner must be null or 4 * n_embd = %d (cetus's MLP is 4 * d_model wide)", path,
                       4 * C);
    return CT_OK;
}

/* The flags of GPT2Config that change what the model computes. */
static ct_status hf_check_flags(const cJSON *j, const char *path) {
    CT_TRY(hf_flag(j, path, "scale_attn_weights", 1, "cetus scales attention scores by 1/sqrt(head size)"));
    CT_TRY(hf_flag(j, path, "scale_attn_by_inverse_layer_idx", 0, "cetus does not scale attention by layer"));
    CT_TRY(hf_flag(j, path, "add_cross_attention", 0, "cetus's blocks have no cross-attention"));
    return hf_flag(j, path, "is_encoder_decoder", 0, "cetus's model is a decoder only");
}

/* The model config of the parsed config.json j; *tied: tie_word_embeddings (default true). */
static ct_status hf_model_config(const cJSON *j, const char *path, ct_model_config *mc, int *tied) {
    const int big = 1 << 24;
    CT_TRY(hf_int(j, path, "n_layer", 1, 4096, &mc->n_layer));
    CT_TRY(hf_int(j, path, "n_embd", 1, big, &mc->d_model));
    CT_TRY(hf_int(j, path, "n_head", 1, big, &mc->n_head));
    CT_TRY(hf_int(j, path, "vocab_size", 1, big, &mc->vocab_size));
    const char *pos = cJSON_GetObjectItemCaseSensitive(j, "n_positions") ? "n_positions" : "n_ctx";
    CT_TRY(hf_int(j, path, pos, 1, 1 << 20, &mc->seq_len));
    CT_TRY(hf_check_kind(j, path, mc->d_model));
    CT_TRY(hf_check_flags(j, path));
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    *tied = !cJSON_IsFalse(tie);
    ct_status s = ct_model_config_check(mc);
    return s == CT_OK ? s : ct_fail_context(s, "%s", path);
}

/* The run config of DIR/config.json: cetus's defaults with the model it describes. */
static ct_status hf_read_config(const hf_src *src, const char *run_dir, ct_config *cfg, int *tied) {
    char *text;
    size_t n;
    CT_TRY(ct_read_file(src->config, &text, &n));
    cJSON *j = cJSON_ParseWithLength(text, n);
    ct_free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ct_fail(CT_EINVAL, "%s: not a JSON object", src->config);
    }
    ct_config_defaults(cfg);
    ct_status s = hf_model_config(j, src->config, &cfg->model, tied);
    cJSON_Delete(j);
    if (s == CT_OK) s = ct_path_format(cfg->run.dir, sizeof cfg->run.dir, "%s", run_dir);
    if (s == CT_OK) s = ct_config_validate(cfg);
    return s == CT_OK ? ct_model_check_fits(cfg, src->config) : s;
}

/* ---- model.safetensors ------------------------------------------------------------------ */

/* Tensor name of st, stored as is or under the "transformer." prefix of GPT2LMHeadModel. */
static const float *hf_find(const ct_safetensors *st, const char *name, int *ndim, int64_t shape[4]) {
    char full[256];
    const float *d = ct_safetensors_find(st, name, ndim, shape);
    if (d || (size_t)snprintf(full, sizeof full, "transformer.%s", name) >= sizeof full) return d;
    return ct_safetensors_find(st, full, ndim, shape);
}

/* Every tensor of the model is in the file with the shape the config implies. */
static ct_status hf_match(hf_src *src) {
    for (size_t i = 0; i < ct_model_num_tensors(src->table); i++) {
        const ct_tensor_info *t = ct_model_tensor(src->table, i);
        int64_t want[4], got[4];
        int ndim;
        char a[128], b[128];
        for (int d = 0; d < 4; d++) want[d] = d < t->ndim ? t->full_shape[d] : 1;
        src->data[i] = hf_find(src->st, t->name, &ndim, got);
        if (!src->data[i])
            return ct_fail(CT_EINVAL, "%s: tensor %s is missing (config.json implies shape %s)", src->weights,
                           t->name, ct_st_shape_str(a, sizeof a, t->ndim, want));
        if (ndim != t->ndim || memcmp(got, want, sizeof got))
            return ct_fail(CT_EINVAL, "%s: tensor %s has shape %s, config.json implies %s", src->weights,
                           t->name, ct_st_shape_str(a, sizeof a, ndim, got),
                           ct_st_shape_str(b, sizeof b, t->ndim, want));
    }
    return CT_OK;
}

/* The attention's causal-mask buffers some exports hold ("h.N.attn.bias", "h.N.attn.masked_bias"). */
static int mask_buffer(const char *name) {
    int layer, end = 0;
    char rest[32];
    if (sscanf(name, "h.%d.attn.%31[a-z_]%n", &layer, rest, &end) != 2 || name[end]) return 0;
    return !strcmp(rest, "bias") || !strcmp(rest, "masked_bias");
}

/* lm_head.weight, when present: the head cetus ties to wte must be wte. */
static ct_status hf_check_head(const hf_src *src, int tied) {
    int ndim;
    int64_t shape[4];
    const float *head = hf_find(src->st, "lm_head.weight", &ndim, shape);
    const ct_tensor_info *wte = ct_model_find_tensor(src->table, "wte.weight");
    if (!head && tied) return CT_OK;
    if (!head)
        return ct_fail(CT_EINVAL,
                       "%s: tie_word_embeddings is false and there is no lm_head.weight (cetus ties the "
                       "head to wte)",
                       src->weights);
    if (ndim != 2 || shape[0] != wte->full_shape[0] || shape[1] != wte->full_shape[1] ||
        memcmp(head, src->data[0], wte->full_numel * sizeof(float)))
        return ct_fail(CT_EINVAL,
                       "%s: lm_head.weight is not wte.weight: cetus ties the output head to the token "
                       "embeddings (tie_word_embeddings)",
                       src->weights);
    return CT_OK;
}

/* Nothing in the file but the model's tensors, lm_head.weight and mask buffers. */
static ct_status hf_no_extra(const hf_src *src) {
    for (size_t i = 0; i < ct_safetensors_count(src->st); i++) {
        const char *name = ct_safetensors_name(src->st, i, NULL, NULL);
        const char *bare = strncmp(name, "transformer.", 12) ? name : name + 12;
        if (ct_model_find_tensor(src->table, bare) || !strcmp(bare, "lm_head.weight") || mask_buffer(bare))
            continue;
        return ct_fail(CT_EINVAL,
                       "%s: unexpected tensor %s (a GPT-2 of config.json's n_layer %d has no such tensor)",
                       src->weights, name, ct_model_get_config(src->table)->n_layer);
    }
    return CT_OK;
}

/* Opens and checks the weights against cfg's model; wte must come first in the table. */
static ct_status hf_open_weights(hf_src *src, const ct_config *cfg, int tied) {
    CT_TRY(ct_model_table_only(&src->table, &cfg->model));
    size_t n = ct_model_num_tensors(src->table), most = 1;
    CT_ASSERT(n > 0 && !strcmp(ct_model_tensor(src->table, 0)->name, "wte.weight"));
    for (size_t i = 0; i < n; i++)
        if (ct_model_tensor(src->table, i)->full_numel > most)
            most = ct_model_tensor(src->table, i)->full_numel;
    src->data = ct_calloc(n * sizeof *src->data, "the imported tensors");
    if (!src->data) return CT_ENOMEM;
    ct_status s = ct_safetensors_open(&src->st, src->weights);
    if (s != CT_OK) return ct_fail_context(s, "cetus import reads float32 safetensors");
    CT_TRY(hf_match(src));
    CT_TRY(hf_check_head(src, tied));
    CT_TRY(hf_no_extra(src));
    src->zeros = ct_calloc(most * sizeof(float), "fresh AdamW moments");
    return src->zeros ? CT_OK : CT_ENOMEM;
}

static void hf_src_free(hf_src *src) {
    ct_safetensors_close(src->st);
    ct_model_free(src->table);
    ct_free(src->data);
    ct_free((void *)src->zeros);
}

/* ---- the run directory ------------------------------------------------------------------ */

static ct_status hf_get(void *ctx, size_t i, int b, const float **data) {
    const hf_src *src = ctx;
    *data = b == 0 ? src->data[i] : src->zeros;
    return CT_OK;
}

/* dir/cetus.json: the run's config, for `cetus train -c`. */
static ct_status write_run_config(const char *dir, const ct_config *cfg) {
    char path[HF_PATH];
    CT_TRY(ct_path_format(path, sizeof path, "%s/cetus.json", dir));
    cJSON *j = ct_config_json(cfg);
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return ct_fail(CT_ENOMEM, "out of memory writing %s", path);
    ct_atomic_file *f;
    ct_status s = ct_atomic_open(&f, path);
    if (s == CT_OK && (s = ct_atomic_write(f, text, strlen(text))) != CT_OK) ct_atomic_abort(f);
    else if (s == CT_OK)
        s = ct_atomic_commit(f);
    cJSON_free(text);
    return s;
}

/* The step-0 checkpoint dir/ckpt/step_00000000 of the imported weights. */
static ct_status write_step0(const char *dir, hf_src *src, const ct_config *cfg, const char *from) {
    size_t n = ct_model_num_tensors(src->table);
    char path[HF_PATH];
    CT_TRY(ct_path_format(path, sizeof path, "%s/ckpt", dir));
    CT_TRY(ct_mkdirs(path));
    CT_TRY(ct_path_format(path, sizeof path, "%s/ckpt/step_00000000", dir));
    ct_ckpt_tensor *tensors = ct_calloc(n * sizeof *tensors, "the checkpoint table");
    cJSON *state = ct_trainer_state_json(cfg, 0, 0, (ct_loader_pos){0, 0});
    ct_status s = tensors && state ? CT_OK
                                   : ct_fail(CT_ENOMEM, "out of memory building the checkpoint of %s", from);
    if (s == CT_OK && !cJSON_AddStringToObject(state, "imported_from", from))
        s = ct_fail(CT_ENOMEM, "out of memory building the checkpoint of %s", from);
    if (s == CT_OK) {
        ct_model_ckpt_table(src->table, tensors);
        ct_ckpt_io io = {hf_get, NULL, src};
        ct_ckpt_view v = {.tensors = tensors, .n_tensors = n, .io = &io, .moments = 1};
        s = ct_hf_checkpoint_save(path, &v, state, &cfg->model, NULL);
    }
    cJSON_Delete(state);
    ct_free(tensors);
    return s;
}

/* Removes what write_run left in the temporary directory dir. */
static void remove_partial(const char *dir) {
    static const char *const files[] = {"ckpt/latest", "ckpt/latest.tmp", "cetus.json", "cetus.json.tmp"};
    char path[HF_PATH];
    if (ct_path_format(path, sizeof path, "%s/ckpt/step_00000000", dir) == CT_OK) ct_checkpoint_remove(path);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (ct_path_format(path, sizeof path, "%s/%s", dir, files[i]) == CT_OK) unlink(path);
    if (ct_path_format(path, sizeof path, "%s/ckpt", dir) == CT_OK) rmdir(path);
    rmdir(dir);
}

/* The whole run directory under a temporary name, renamed to run_dir once complete. */
static ct_status write_run(const char *run_dir, hf_src *src, const ct_config *cfg, const char *from) {
    char tmp[HF_PATH];
    CT_TRY(ct_path_format(tmp, sizeof tmp, "%s.import-%ld", run_dir, (long)getpid()));
    remove_partial(tmp);
    ct_status s = ct_mkdirs(tmp);
    if (s == CT_OK) s = write_run_config(tmp, cfg);
    if (s == CT_OK) s = write_step0(tmp, src, cfg, from);
    if (s == CT_OK && rename(tmp, run_dir) != 0)
        s = ct_fail(CT_EIO, "cannot rename %s to %s: %s", tmp, run_dir, strerror(errno));
    if (s != CT_OK) remove_partial(tmp);
    return s;
}

ct_status ct_hf_import(const char *hf_dir, const char *run_dir, ct_import_result *out) {
    memset(out, 0, sizeof *out);
    if (access(run_dir, F_OK) == 0)
        return ct_fail(CT_EINVAL, "import: %s exists; the output must be a new run directory", run_dir);
    hf_src src = {.st = NULL};
    int tied = 1;
    ct_status s = ct_path_format(src.config, sizeof src.config, "%s/config.json", hf_dir);
    if (s == CT_OK) s = ct_path_format(src.weights, sizeof src.weights, "%s/model.safetensors", hf_dir);
    if (s == CT_OK) s = hf_read_config(&src, run_dir, &out->cfg, &tied);
    if (s == CT_OK) s = hf_open_weights(&src, &out->cfg, tied);
    if (s == CT_OK) s = write_run(run_dir, &src, &out->cfg, hf_dir);
    if (s == CT_OK) {
        out->tensors = ct_model_num_tensors(src.table);
        out->params = ct_model_num_params_full(src.table);
        s = ct_path_format(out->ckpt, sizeof out->ckpt, "%s/ckpt/step_00000000", run_dir);
    }
    hf_src_free(&src);
    return s;
}
