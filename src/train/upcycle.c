/* upcycle.c: dense -> MoE checkpoint conversion ("sparse upcycling", ct_upcycle in
 * train/commands.h). */
#include "core/core.h"
#include "model/model.h"
#include "train/commands.h"
#include "train/trainer.h"
#include "train/trainer_internal.h"
#include "train/hf.h"
#include <string.h>

static ct_status check_target(const ct_config *dense, const ct_config *t) {
    const ct_model_config *d = &dense->model, *m = &t->model;
    if (d->moe_every != 0) return ct_fail(CT_EINVAL, "the input checkpoint already has MoE blocks");
    if (m->moe_every == 0)
        return ct_fail(CT_EINVAL, "model.moe_every = 0: say which blocks become MoE (e.g. model.moe_every=2)");
    if (m->n_layer != d->n_layer || m->d_model != d->d_model || m->n_head != d->n_head ||
        m->seq_len != d->seq_len || m->vocab_size != d->vocab_size)
        return ct_fail(CT_EINVAL,
                       "the target model's n_layer/d_model/n_head/seq_len/vocab_size must equal the "
                       "checkpoint's (%d/%d/%d/%d/%d)",
                       d->n_layer, d->d_model, d->n_head, d->seq_len, d->vocab_size);
    if (m->moe.d_hidden != 4 * d->d_model)
        return ct_fail(CT_EINVAL,
                       "moe.d_hidden = %d: experts are copies of the dense MLP, so it must be "
                       "4 * d_model = %d",
                       m->moe.d_hidden, 4 * d->d_model);
    return ct_model_config_check(m);
}

/* dst tensor named h.L.mlp.experts.X takes E copies of h.L.mlp.X; others copy by name. */
static ct_status copy_tensor(ct_model *moe, const ct_tensor_info *t, ct_model *dense) {
    char name[96];
    const char *experts = strstr(t->name, ".mlp.experts.");
    if (experts) snprintf(name, sizeof name, "%.*s.mlp.%s", (int)(experts - t->name), t->name, experts + 13);
    else
        snprintf(name, sizeof name, "%s", t->name);
    const ct_tensor_info *src = ct_model_find_tensor(dense, name);
    if (!src) return CT_OK; /* the router: keeps its fresh initialisation */
    size_t copies = experts ? (size_t)t->shape[0] : 1;
    CT_ASSERT(src->numel * copies == t->numel);
    for (size_t e = 0; e < copies; e++)
        memcpy(ct_model_params(moe) + t->offset + e * src->numel, ct_model_params(dense) + src->offset,
               src->numel * sizeof(float));
    return CT_OK;
}

static ct_status save_step0(ct_model *moe, const ct_config *t, const char *in_ckpt, const char *out_run_dir) {
    ct_config cfg = *t;
    snprintf(cfg.run.dir, sizeof cfg.run.dir, "%s", out_run_dir);
    size_t n = ct_model_num_tensors(moe), np = ct_model_num_params(moe);
    ct_ckpt_tensor *tensors = ct_calloc(n * sizeof *tensors, "the checkpoint table");
    float *moments = tensors ? ct_calloc(2 * np * sizeof(float), "fresh AdamW moments") : NULL;
    ct_status s = moments ? CT_OK : CT_ENOMEM;
    if (s == CT_OK) {
        ct_model_ckpt_table(moe, tensors);
        ct_ckpt_view view = {.tensors = tensors,
                             .n_tensors = n,
                             .num_params = np,
                             .params = ct_model_params(moe),
                             .adam_m = moments,
                             .adam_v = moments + np};
        cJSON *state = ct_trainer_state_json(&cfg, 0, 0, (ct_loader_pos){0, 0});
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/ckpt", out_run_dir);
        s = state ? ct_mkdirs(dir) : ct_fail(CT_ENOMEM, "out of memory building the trainer state");
        snprintf(dir, sizeof dir, "%s/ckpt/step_00000000", out_run_dir);
        char tok[4200];
        if (s == CT_OK) s = ct_hf_carry_tokenizer(in_ckpt, state, tok, sizeof tok);
        if (s == CT_OK) s = ct_hf_checkpoint_save(dir, &view, state, &cfg.model, tok[0] ? tok : NULL);
        cJSON_Delete(state);
    }
    ct_free(tensors);
    ct_free(moments);
    return s;
}

ct_status ct_upcycle(const char *in_ckpt, const ct_config *target, const char *out_run_dir) {
    ct_config dense_cfg;
    ct_model *dense = NULL, *moe = NULL;
    CT_TRY(ct_model_from_checkpoint(&dense, in_ckpt, &dense_cfg));
    ct_status s = check_target(&dense_cfg, target);
    if (s == CT_OK) s = ct_model_create(&moe, &target->model, (uint64_t)target->train.seed);
    for (size_t i = 0; s == CT_OK && i < ct_model_num_tensors(moe); i++)
        s = copy_tensor(moe, ct_model_tensor(moe, i), dense);
    if (s == CT_OK) s = save_step0(moe, target, in_ckpt, out_run_dir);
    ct_model_free(dense);
    ct_model_free(moe);
    return s;
}
