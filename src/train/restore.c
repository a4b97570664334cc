/* restore.c: rebuilding a trained model from a checkpoint directory alone (its trainer.json
 * carries the config), for generate, eval and library users (ct_model_load). */
#include "core/core.h"
#include "model/model.h"
#include "train/commands.h"
#include "train/checkpoint.h"
#include "train/trainer_internal.h"
#include "data/shard_tokenizer.h"
#include <unistd.h>
#include <cjson/cJSON.h>
#include <string.h>

void ct_model_ckpt_table(const ct_model *m, ct_ckpt_tensor *out) {
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        out[i] = (ct_ckpt_tensor){t->name,
                                  t->ndim,
                                  {t->full_shape[0], t->full_shape[1], t->full_shape[2], t->full_shape[3]},
                                  t->offset,
                                  t->full_numel};
    }
}

ct_status ct_checkpoint_read_config(const char *ckpt_dir, ct_config *out) {
    cJSON *state;
    CT_TRY(ct_checkpoint_read_state(ckpt_dir, &state));
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(state, "config");
    char *cfg_text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
    cJSON_Delete(state);
    if (!cfg_text && cfg)
        return ct_fail(CT_ENOMEM, "%s/trainer.json: out of memory reading the config", ckpt_dir);
    if (!cfg_text) return ct_fail(CT_ECORRUPT, "%s/trainer.json: no config in the trainer state", ckpt_dir);
    ct_config_defaults(out);
    ct_status s = ct_config_apply_json(out, cfg_text, ckpt_dir);
    cJSON_free(cfg_text);
    return s;
}

ct_status ct_model_check_fits(const ct_config *cfg, const char *source) {
    size_t machine = ct_runtime_memory_bytes();
    ct_model *table;
    if (!machine) return CT_OK;
    CT_TRY(ct_model_table_only(&table, &cfg->model));
    size_t params = ct_model_num_params_full(table);
    ct_model_free(table);
    int split = cfg->parallel.tensor * cfg->parallel.pipeline;
    double bytes = (double)params * sizeof(float) / (split > 0 ? split : 1);
    if (bytes <= (double)machine) return CT_OK;
    const ct_model_config *m = &cfg->model;
    char have[32];
    return ct_fail(CT_EINVAL,
                   "%s: model.n_layer = %d, model.d_model = %d, model.vocab_size = %d make %.3g parameters, "
                   "%.3g GiB of fp32 weights per rank (over parallel.tensor x parallel.pipeline = %d), more "
                   "than this machine's %s of memory",
                   source, m->n_layer, m->d_model, m->vocab_size, (double)params, bytes / (double)(1u << 30),
                   split, ct_format_bytes(machine, have, sizeof have));
}

ct_status ct_model_from_checkpoint(ct_model **out, const char *ckpt_dir, ct_config *cfg_out) {
    ct_config cfg;
    CT_TRY(ct_checkpoint_read_config(ckpt_dir, &cfg));
    char source[1100];
    snprintf(source, sizeof source, "%s/trainer.json", ckpt_dir);
    CT_TRY(ct_model_check_fits(&cfg, source));
    ct_model *m;
    CT_TRY(ct_model_create(&m, &cfg.model, 0));
    size_t n = ct_model_num_tensors(m);
    ct_ckpt_tensor *tensors = ct_calloc(n * sizeof *tensors, "the checkpoint table");
    if (!tensors) {
        ct_model_free(m);
        return CT_ENOMEM;
    }
    ct_model_ckpt_table(m, tensors);
    ct_ckpt_view view = {.tensors = tensors,
                         .n_tensors = n,
                         .num_params = ct_model_num_params(m),
                         .params = ct_model_params(m)};
    ct_status s = ct_checkpoint_load_weights(ckpt_dir, &view);
    ct_free(tensors);
    if (s != CT_OK) {
        ct_model_free(m);
        return s;
    }
    if (cfg_out) *cfg_out = cfg;
    *out = m;
    return CT_OK;
}

ct_status ct_model_load(ct_model **out, const char *path) {
    char dir[1100];
    CT_TRY(ct_checkpoint_resolve(path, dir, sizeof dir));
    return ct_model_from_checkpoint(out, dir, NULL);
}

ct_status ct_checkpoint_tokenizer_load(const char *ckpt_dir, ct_tokenizer **out) {
    char json[4096];
    CT_TRY(ct_path_format(json, sizeof json, "%s/tokenizer.json", ckpt_dir));
    return access(json, F_OK) == 0 ? ct_tokenizer_load_json(out, json) : ct_tokenizer_load_default(out);
}

ct_status ct_checkpoint_check_data_tokenizer(const char *ckpt_dir, const char *data_dir) {
    cJSON *state;
    ct_shard_tokenizer was, data;
    char where[1100], a[128], b[128];
    snprintf(where, sizeof where, "%s/trainer.json", ckpt_dir);
    CT_TRY(ct_checkpoint_read_state(ckpt_dir, &state));
    ct_status s = ct_shard_tokenizer_from_state(state, where, &was);
    cJSON_Delete(state);
    CT_TRY(s);
    CT_TRY(ct_shard_tokenizer_read(data_dir, &data));
    if (ct_shard_tokenizer_same(&was, &data)) return CT_OK;
    return ct_fail(CT_EINVAL,
                   "checkpoint %s was trained on ids of the tokenizer %s, but %s holds ids of %s: its loss "
                   "there would mean nothing",
                   ckpt_dir, ct_shard_tokenizer_describe(&was, a, sizeof a), data_dir,
                   ct_shard_tokenizer_describe(&data, b, sizeof b));
}
