/* multimodal.c: the trainer's image + text side (see multimodal.h). */
#include "core/core.h"
#include "model/model.h"
#include "model/sample.h"
#include "train/caption_eval.h"
#include "train/multimodal.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

ct_status ct_mm_open(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    if (!strcmp(c->data.scenes, "none")) return CT_OK;
    int B = c->train.batch_size;
    CT_TRY(ct_caption_loader_open(&tr->cap_train, c->data.scenes, "train", &c->model, B,
                                  (uint64_t)c->train.seed, 1));
    CT_TRY(
        ct_caption_loader_open(&tr->cap_val, c->data.scenes, "val", &c->model, B, (uint64_t)c->train.seed, 0));
    CT_TRY(ct_caption_batch_create(&tr->cap, tr->cap_train, &c->model, tr->rows));
    return CT_OK;
}

void ct_mm_close(ct_trainer *tr) {
    ct_caption_loader_close(tr->cap_train);
    ct_caption_loader_close(tr->cap_val);
    ct_caption_batch_free(&tr->cap);
}

int ct_mm_is_text(const ct_trainer *tr, int micro) {
    if (!tr->cap_train) return 1;
    double r = tr->cfg.data.text_ratio;
    int64_t i = tr->step * tr->cfg.train.grad_accum + micro; /* every micro-batch of the run, in order */
    return floor((double)(i + 1) * r) > floor((double)i * r);
}

/* Captions differ in length, so data ranks hold different numbers of targets: a rank's mean
 * weighs in by its share of the global batch's targets (1 when even), which makes the
 * reduced gradient and the averaged loss those of one process over the whole batch. */
static float rank_weight(const ct_trainer *tr, const ct_caption_loader *l, int T) {
    uint64_t mine = 0;
    for (size_t i = 0; i < (size_t)tr->rows * (size_t)T; i++) mine += tr->cap.targets[i] >= 0;
    uint64_t all = ct_caption_loader_batch_targets(l);
    return (float)((double)mine * ct_dp_ranks(tr->dp) / (double)all);
}

ct_status ct_mm_caption_micro(ct_trainer *tr, float scale, uint64_t noise_seed, int arm, float *loss,
                              float *aux) {
    ct_caption_loader *l = tr->cap_train;
    CT_TRY(ct_caption_batch_next(&tr->cap, l, tr->row0));
    ct_model *m = tr->model;
    CT_TRY(ct_model_set_image(m, tr->cap.patches, tr->cap.Np));
    ct_model_set_training(m, 1, noise_seed ^ ((uint64_t)tr->row0 << 40));
    int T = ct_caption_loader_seq_len(l);
    float w = rank_weight(tr, l, T);
    ct_status s = ct_model_forward(m, tr->cap.tokens, tr->cap.targets, tr->cap.prefix, tr->rows, T, loss);
    if (s == CT_OK) {
        ct_dp_arm(tr->dp, arm);
        s = ct_model_backward(m, scale * w);
        *aux = ct_model_aux_loss(m);
        *loss *= w;
    }
    ct_model_set_image(m, NULL, 0);
    return s;
}

ct_status ct_mm_evaluate(ct_trainer *tr, ct_caption_eval *out) {
    const ct_config *c = &tr->cfg;
    ct_caption_loader *l = tr->cap_val;
    uint64_t fit = ct_caption_loader_count(l) / (uint64_t)c->train.batch_size;
    int batches = fit < (uint64_t)c->train.eval_batches ? (int)(fit ? fit : 1) : c->train.eval_batches;
    /* greedy decoding stops when every caption ended, so ranks of an expert group, or the
     * data ranks at ZeRO 3 (which gather every unit together), would fall out of step:
     * exact match is skipped there */
    int exact_batches = ct_model_expert_ranks(tr->model) > 1 || c->parallel.zero == 3
                            ? 0
                            : (c->train.eval_captions + c->train.batch_size - 1) / c->train.batch_size;
    ct_caption_tally t = {0};
    ct_caption_loader_reset(l);
    for (int b = 0; b < (batches > exact_batches ? batches : exact_batches); b++) {
        CT_TRY(ct_caption_batch_next(&tr->cap, l, tr->row0));
        CT_TRY(ct_caption_tally_batch(tr->model, l, &tr->cap, tr->row0, b < batches, b < exact_batches, &t));
    }
    float sums[5] = {(float)t.loss, (float)t.targets, (float)t.hits, (float)t.exact, (float)t.scenes};
    for (int k = 0; k < 5; k++) { /* summed over the data ranks */
        CT_TRY(ct_dp_mean(tr->dp, &sums[k]));
        sums[k] *= (float)ct_dp_ranks(tr->dp);
    }
    *out = (ct_caption_eval){sums[1] > 0 ? sums[0] / sums[1] : 0.0f, sums[1] > 0 ? sums[2] / sums[1] : 0.0f,
                             sums[4] > 0 ? sums[3] / sums[4] : 0.0f, (int)sums[4]};
    return CT_OK;
}

int ct_mm_save_state(const ct_trainer *tr, cJSON *state) {
    if (!tr->cap_train) return 1;
    ct_loader_pos p = ct_caption_loader_get_pos(tr->cap_train);
    char e[32], i[32];
    snprintf(e, sizeof e, "%" PRIu64, p.epoch);
    snprintf(i, sizeof i, "%" PRIu64, p.index);
    cJSON *o = cJSON_AddObjectToObject(state, "captions");
    return o && cJSON_AddStringToObject(o, "epoch", e) && cJSON_AddStringToObject(o, "index", i);
}

ct_status ct_mm_load_state(ct_trainer *tr, const cJSON *state, const char *where) {
    if (!tr->cap_train) return CT_OK;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(state, "captions");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "epoch"),
                *i = cJSON_GetObjectItemCaseSensitive(o, "index");
    ct_loader_pos p;
    uint64_t epoch, index;
    if (!cJSON_IsString(e) || !cJSON_IsString(i) || !ct_parse_u64(e->valuestring, UINT32_MAX, &epoch) ||
        !ct_parse_u64(i->valuestring, INT64_MAX, &index))
        return ct_fail(CT_EINVAL,
                       "%s: the trainer state has no caption data position (was it trained without "
                       "data.scenes?)",
                       where);
    p.epoch = epoch;
    p.index = index;
    return ct_caption_loader_set_pos(tr->cap_train, p);
}
