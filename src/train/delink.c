/* delink.c: Pseudo-to-Real on checkpoints (ct_delink_checkpoint, see cetus.h): the pseudo
 * model's weights and moments are read whole and verified; the real checkpoint is streamed
 * out tensor by tensor, each block's tensors pointing at the shared ones they copy. */
#include "core/core.h"
#include "model/model.h"
#include "spec/model_spec.h"
#include "train/commands.h"
#include "train/trainer.h"
#include "train/trainer_internal.h"
#include "train/hf.h"
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct delink_src {
    const float *state[3]; /* the pseudo model's weights, exp_avg, exp_avg_sq (flat) */
    const float *zeros;    /* reset moments: the largest tensor's worth */
    const size_t *from;    /* [real tensors]: the pseudo offset each one copies */
} delink_src;

static ct_status get_tensor(void *ctx, size_t i, int b, const float **data) {
    const delink_src *d = ctx;
    *data = b > 0 && d->zeros ? d->zeros : d->state[b] + d->from[i];
    return CT_OK;
}

/* The pseudo checkpoint's state whole: weights and, unless reset, moments. */
static ct_status read_pseudo(const char *dir, const ct_model *table, int reset, float **state) {
    size_t n = ct_model_num_tensors(table), np = ct_model_num_params_full(table);
    ct_ckpt_tensor *tensors = ct_calloc((n ? n : 1) * sizeof *tensors, "the pseudo checkpoint's table");
    if (!tensors) return CT_ENOMEM;
    *state = ct_alloc_in(CT_TIER_HOST, (reset ? 1 : 3) * (np ? np : 1) * sizeof(float),
                         "the pseudo model's state");
    if (!*state) {
        ct_free(tensors);
        return CT_ENOMEM;
    }
    ct_model_ckpt_table(table, tensors);
    ct_ckpt_view v = {.tensors = tensors,
                      .n_tensors = n,
                      .num_params = np,
                      .params = *state,
                      .adam_m = reset ? NULL : *state + np,
                      .adam_v = reset ? NULL : *state + 2 * np};
    ct_status s = reset ? ct_checkpoint_load_weights(dir, &v) : ct_checkpoint_load(dir, &v, NULL);
    ct_free(tensors);
    return s;
}

/* Replaces (or adds) item key of obj; 0 when item is NULL (out of memory) or not taken. */
static int put_item(cJSON *obj, const char *key, cJSON *item) {
    if (!item) return 0;
    if (cJSON_GetObjectItemCaseSensitive(obj, key) ? cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)
                                                   : cJSON_AddItemToObject(obj, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

/* The stored trainer state with the real model's config, the step count reset if asked,
 * and where it came from, into *out. */
static ct_status real_state(const char *in, const ct_config *real, int layers, int reset, cJSON **out) {
    cJSON *stored = NULL, *from;
    CT_TRY(ct_checkpoint_read_state(in, &stored));
    int ok = put_item(stored, "config", ct_config_json(real));
    ok = ok && (!reset || put_item(stored, "adam_steps", cJSON_CreateString("0")));
    ok = ok && (from = cJSON_AddObjectToObject(stored, "delinked_from")) &&
         cJSON_AddStringToObject(from, "checkpoint", in) && cJSON_AddNumberToObject(from, "layers", layers) &&
         cJSON_AddStringToObject(from, "optimizer", reset ? "reset" : "carry");
    if (!ok) {
        cJSON_Delete(stored);
        return ct_fail(CT_ENOMEM, "%s: out of memory building the delinked trainer state", in);
    }
    *out = stored;
    return CT_OK;
}

/* Writes the real checkpoint, each tensor streamed from the pseudo one it copies. */
static ct_status write_real(const char *in, const char *out, const ct_config *pc, const ct_config *rc,
                            const ct_model *ptable, const float *state, int reset) {
    ct_model *rtable;
    CT_TRY(ct_model_table_only(&rtable, &rc->model));
    size_t n = ct_model_num_tensors(rtable), np = ct_model_num_params_full(ptable), most = 1;
    ct_ckpt_tensor *tensors = ct_calloc((n ? n : 1) * sizeof *tensors, "the real checkpoint's table");
    size_t *from = tensors ? ct_calloc((n ? n : 1) * sizeof *from, "the real checkpoint's table") : NULL;
    ct_status s = from ? CT_OK : CT_ENOMEM;
    for (size_t i = 0; s == CT_OK && i < n; i++) {
        const ct_tensor_info *t = ct_model_tensor(rtable, i), *src;
        char name[96];
        s = ct_delink_source_name(&pc->model, rc->model.n_layer, t->name, name, sizeof name);
        if (s == CT_OK && !(src = ct_model_find_tensor(ptable, name)))
            s = ct_fail(CT_ECORRUPT, "%s has no tensor %s", in, name);
        if (s == CT_OK) from[i] = src->offset;
        if (t->full_numel > most) most = t->full_numel;
    }
    float *zeros = s == CT_OK && reset ? ct_calloc(most * sizeof(float), "zero moments") : NULL;
    if (s == CT_OK && reset && !zeros) s = CT_ENOMEM;
    cJSON *st = NULL;
    if (s == CT_OK) s = real_state(in, rc, rc->model.n_layer, reset, &st);
    if (s == CT_OK) {
        ct_model_ckpt_table(rtable, tensors);
        delink_src src = {{state, reset ? NULL : state + np, reset ? NULL : state + 2 * np}, zeros, from};
        ct_ckpt_io io = {get_tensor, NULL, &src};
        ct_ckpt_view v = {.tensors = tensors, .n_tensors = n, .io = &io, .moments = 1};
        char tok[4200];
        s = ct_hf_carry_tokenizer(in, st, tok, sizeof tok);
        if (s == CT_OK) s = ct_hf_checkpoint_save(out, &v, st, &rc->model, tok[0] ? tok : NULL);
    }
    cJSON_Delete(st);
    ct_free(zeros);
    ct_free(tensors);
    ct_free(from);
    ct_model_free(rtable);
    return s;
}

ct_status ct_delink_checkpoint(const char *in, const char *out, int layers, const char *optimizer) {
    if (!optimizer || (strcmp(optimizer, "carry") && strcmp(optimizer, "reset")))
        return ct_fail(CT_EINVAL, "delink: optimizer \"%s\": allowed \"carry\" or \"reset\"",
                       optimizer ? optimizer : "");
    int reset = !strcmp(optimizer, "reset");
    if (access(out, F_OK) == 0)
        return ct_fail(CT_EINVAL, "delink: %s exists; the output must be a new checkpoint directory", out);
    ct_config pc, rc;
    ct_model_config real;
    CT_TRY(ct_checkpoint_read_config(in, &pc));
    ct_status s = ct_model_delink_config(&pc.model, layers, &real);
    if (s != CT_OK) return ct_fail_context(s, "delink %s", in);
    rc = pc;
    rc.model = real;
    rc.delink.step = rc.delink.layers = 0; /* done: the real model trains on */
    if (!reset) {
        char path[1200];
        snprintf(path, sizeof path, "%s/optimizer.safetensors", in);
        if (access(path, R_OK) != 0)
            return ct_fail(CT_EINVAL, "delink: %s holds no optimizer state to carry (%s); use optimizer reset",
                           in, path);
    }
    ct_model *ptable;
    CT_TRY(ct_model_table_only(&ptable, &pc.model));
    float *state = NULL;
    s = read_pseudo(in, ptable, reset, &state);
    if (s == CT_OK) s = write_real(in, out, &pc, &rc, ptable, state, reset);
    ct_free(state);
    ct_model_free(ptable);
    return s;
}

ct_status ct_delink_into_run(const char *in_ckpt, const char *run_dir, int layers, const char *optimizer,
                             ct_delink_result *out) {
    cJSON *state = NULL;
    ct_config cfg;
    uint64_t step = 0;
    char dir[1300];
    CT_TRY(ct_checkpoint_read_config(in_ckpt, &cfg));
    CT_TRY(ct_checkpoint_read_state(in_ckpt, &state));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(state, "step");
    ct_status s = CT_OK;
    if (!cJSON_IsString(st) || !ct_parse_u64(st->valuestring, INT64_MAX, &step))
        s = ct_fail(CT_ECORRUPT, "%s/trainer.json: no step (a whole number) in the trainer state", in_ckpt);
    cJSON_Delete(state);
    if (s == CT_OK) s = ct_path_format(dir, sizeof dir, "%s/ckpt", run_dir);
    if (s == CT_OK) s = ct_mkdirs(dir);
    if (s == CT_OK) s = ct_path_format(out->ckpt, sizeof out->ckpt, "%s/ckpt/step_%08" PRIu64, run_dir, step);
    if (s == CT_OK) s = ct_delink_checkpoint(in_ckpt, out->ckpt, layers, optimizer);
    if (s != CT_OK) return s;
    out->pseudo_layers = cfg.model.n_layer;
    out->weight_sets = ct_model_unique_blocks(&cfg.model);
    out->layers = layers ? layers : cfg.model.n_layer;
    return CT_OK;
}
