/* ckpt_verify.c: checking a checkpoint without building a model, for `cetus verify`: the
 * tensor table its stored config implies (names and shapes only, no parameter memory) is
 * held against both safetensors files by the load's own checks (see train/commands.h). */
#include "core/core.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/commands.h"
#include "train/trainer_internal.h"
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

static void no_put(void *ctx, size_t i, int b, const float *data) { (void)ctx, (void)i, (void)b, (void)data; }

/* The trainer state's "step" (a decimal string or a number) into out; "" when absent. */
static ct_status read_step(const char *dir, char *out, size_t cap) {
    cJSON *state;
    CT_TRY(ct_checkpoint_read_state(dir, &state));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(state, "step");
    out[0] = 0;
    if (cJSON_IsString(st)) snprintf(out, cap, "%s", st->valuestring);
    else if (cJSON_IsNumber(st))
        snprintf(out, cap, "%.0f", st->valuedouble);
    cJSON_Delete(state);
    return CT_OK;
}

/* Checks dir against table (the one-process model of its config). */
static ct_status check_against(const char *dir, const ct_model *table, ct_ckpt_report *r) {
    size_t n = ct_model_num_tensors(table);
    ct_ckpt_tensor *tensors = ct_calloc((n ? n : 1) * sizeof *tensors, "the checkpoint table");
    if (!tensors) return CT_ENOMEM;
    ct_model_ckpt_table(table, tensors);
    ct_ckpt_io io = {NULL, no_put, NULL};
    ct_ckpt_view v = {.tensors = tensors, .n_tensors = n, .io = &io, .moments = 1};
    ct_status s = ct_checkpoint_check(dir, &v, &r->optimizer);
    r->tensors = n;
    r->params = ct_model_num_params_full(table);
    ct_free(tensors);
    return s;
}

ct_status ct_checkpoint_verify(const char *dir, ct_ckpt_report *r) {
    memset(r, 0, sizeof *r);
    char probe[4096];
    struct stat st;
    CT_TRY(ct_path_format(probe, sizeof probe, "%s/trainer.json", dir));
    if (stat(probe, &st) != 0)
        return ct_fail(CT_ECORRUPT, "%s is missing (written last: a save that did not finish?)", probe);
    ct_config cfg;
    CT_TRY(ct_checkpoint_read_config(dir, &cfg));
    CT_TRY(read_step(dir, r->step, sizeof r->step));
    ct_model *table;
    CT_TRY(ct_model_table_only(&table, &cfg.model));
    ct_status s = check_against(dir, table, r);
    ct_model_free(table);
    return s;
}

ct_status ct_checkpoint_latest_name(const char *root, char *name, size_t cap) {
    char path[4096];
    CT_TRY(ct_checkpoint_latest(root, path, sizeof path));
    const char *base = strrchr(path, '/');
    return ct_path_format(name, cap, "%s", base ? base + 1 : path);
}
