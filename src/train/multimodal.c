/* multimodal.c: the trainer's image + text side (see multimodal.h). */
#include "core/core.h"
#include "model/sample.h"
#include "train/multimodal.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

ct_status ct_mm_open(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    if (!strcmp(c->data.scenes, "none")) return CT_OK;
    int B = c->train.batch_size;
    CT_TRY(ct_caption_loader_open(&tr->cap_train, c->data.scenes, "train", &c->model, B, (uint64_t)c->train.seed, 1));
    CT_TRY(ct_caption_loader_open(&tr->cap_val, c->data.scenes, "val", &c->model, B, (uint64_t)c->train.seed, 0));
    size_t rows = (size_t)tr->rows, T = (size_t)ct_caption_loader_seq_len(tr->cap_train);
    size_t patch = (size_t)c->model.image.height * c->model.image.width;
    tr->cap_patches = ct_alloc(rows * patch * sizeof(float), "caption batch patches");
    tr->cap_tokens = malloc((2 * rows * T + rows) * sizeof(int32_t));
    if (!tr->cap_patches || !tr->cap_tokens) return ct_fail(CT_ENOMEM, "out of memory for caption batches");
    tr->cap_targets = tr->cap_tokens + rows * T;
    tr->cap_prefix = tr->cap_targets + rows * T;
    return CT_OK;
}

void ct_mm_free(ct_trainer *tr) {
    ct_caption_loader_free(tr->cap_train);
    ct_caption_loader_free(tr->cap_val);
    ct_free(tr->cap_patches);
    free(tr->cap_tokens);
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
    for (size_t i = 0; i < (size_t)tr->rows * (size_t)T; i++) mine += tr->cap_targets[i] >= 0;
    uint64_t all = ct_caption_loader_batch_targets(l);
    return (float)((double)mine * ct_dp_ranks(tr->dp) / (double)all);
}

ct_status ct_mm_caption_micro(ct_trainer *tr, float scale, uint64_t noise_seed, int arm, float *loss, float *aux) {
    ct_caption_loader *l = tr->cap_train;
    CT_TRY(ct_caption_loader_next_rows(l, tr->row0, tr->rows, tr->cap_patches, tr->cap_tokens, tr->cap_targets,
                                       tr->cap_prefix));
    ct_model *m = tr->model;
    CT_TRY(ct_model_set_image(m, tr->cap_patches, ct_model_image_patches(&tr->cfg.model)));
    ct_model_set_training(m, 1, noise_seed ^ ((uint64_t)tr->row0 << 40));
    int T = ct_caption_loader_seq_len(l);
    float w = rank_weight(tr, l, T);
    ct_status s = ct_model_forward(m, tr->cap_tokens, tr->cap_targets, tr->cap_prefix, tr->rows, T, loss);
    if (s == CT_OK) {
        ct_dp_arm(tr->dp, arm);
        s = ct_model_backward(m, scale * w);
        *aux = ct_model_aux_loss(m);
        *loss *= w;
    }
    ct_model_set_image(m, NULL, 0);
    return s;
}

/* Argmax hits on the caption targets of the last forward (counted over this rank's rows). */
static ct_status count_hits(ct_trainer *tr, int T, double *hits, double *targets, float *row) {
    int V = tr->cfg.model.vocab_size;
    for (int n = 0; n < tr->rows * T; n++) {
        if (tr->cap_targets[n] < 0) continue;
        CT_TRY(ct_model_logits_row(tr->model, n, row));
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        *hits += best == tr->cap_targets[n];
        *targets += 1.0;
    }
    return CT_OK;
}

/* Greedy captions of this rank's rows against their references. */
static ct_status count_exact(ct_trainer *tr, double *exact) {
    const ct_model_config *c = &tr->cfg.model;
    int max = ct_caption_max_tokens(c), rows = tr->rows;
    int32_t *out = malloc((size_t)rows * (size_t)max * sizeof *out), ref[4096];
    int *n_out = malloc((size_t)rows * sizeof *n_out);
    ct_status s = out && n_out ? CT_OK : ct_fail(CT_ENOMEM, "out of memory");
    int32_t eot = ct_caption_eot(c);
    if (s == CT_OK) s = ct_generate_captions_greedy(tr->model, tr->cap_patches, rows, eot, eot, max, out, n_out);
    for (int r = 0; s == CT_OK && r < rows; r++) {
        size_t n = ct_caption_loader_caption(tr->cap_val, tr->row0 + r, ref);
        *exact += n == (size_t)n_out[r] && !memcmp(ref, out + (size_t)r * max, n * sizeof *ref);
    }
    free(out);
    free(n_out);
    return s;
}

ct_status ct_mm_evaluate(ct_trainer *tr, ct_caption_eval *out) {
    const ct_config *c = &tr->cfg;
    ct_caption_loader *l = tr->cap_val;
    int T = ct_caption_loader_seq_len(l), Np = ct_model_image_patches(&c->model);
    uint64_t fit = ct_caption_loader_count(l) / (uint64_t)c->train.batch_size;
    int batches = fit < (uint64_t)c->train.eval_batches ? (int)(fit ? fit : 1) : c->train.eval_batches;
    /* greedy decoding stops when every caption ended, so ranks of an expert group (which
     * must run every forward together) would fall out of step: exact match is skipped there */
    int exact_batches = ct_model_expert_ranks(tr->model) > 1 ? 0
                        : (c->train.eval_captions + c->train.batch_size - 1) / c->train.batch_size;
    float *row = malloc((size_t)c->model.vocab_size * sizeof *row);
    if (!row) return ct_fail(CT_ENOMEM, "out of memory");
    double loss_sum = 0.0, hits = 0.0, targets = 0.0, exact = 0.0, scenes = 0.0;
    ct_status s = CT_OK;
    ct_caption_loader_reset(l);
    for (int b = 0; s == CT_OK && b < (batches > exact_batches ? batches : exact_batches); b++) {
        float loss;
        s = ct_caption_loader_next_rows(l, tr->row0, tr->rows, tr->cap_patches, tr->cap_tokens, tr->cap_targets,
                                        tr->cap_prefix);
        if (s == CT_OK && b < batches) {
            s = ct_model_set_image(tr->model, tr->cap_patches, Np);
            if (s == CT_OK) s = ct_model_forward(tr->model, tr->cap_tokens, tr->cap_targets, tr->cap_prefix, tr->rows, T, &loss);
            if (s == CT_OK) s = count_hits(tr, T, &hits, &targets, row);
            loss_sum += loss * rank_weight(tr, l, T);
        }
        if (s == CT_OK && b < exact_batches) {
            s = count_exact(tr, &exact);
            scenes += tr->rows;
        }
    }
    ct_model_set_image(tr->model, NULL, 0);
    free(row);
    CT_TRY(s);
    float sums[5] = {(float)(loss_sum / batches), (float)hits, (float)targets, (float)exact, (float)scenes};
    CT_TRY(ct_dp_mean(tr->dp, &sums[0]));
    for (int k = 1; k < 5; k++) { /* counts: summed over the data ranks */
        float v = sums[k];
        CT_TRY(ct_dp_mean(tr->dp, &v));
        sums[k] = v * (float)ct_dp_ranks(tr->dp);
    }
    *out = (ct_caption_eval){sums[0], sums[2] > 0 ? sums[1] / sums[2] : 0.0f, sums[4] > 0 ? sums[3] / sums[4] : 0.0f,
                             (int)sums[4]};
    return CT_OK;
}

void ct_mm_save_state(const ct_trainer *tr, cJSON *state) {
    if (!tr->cap_train) return;
    ct_loader_pos p = ct_caption_loader_get_pos(tr->cap_train);
    char buf[32];
    cJSON *o = cJSON_AddObjectToObject(state, "captions");
    snprintf(buf, sizeof buf, "%" PRIu64, p.epoch);
    cJSON_AddStringToObject(o, "epoch", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, p.index);
    cJSON_AddStringToObject(o, "index", buf);
}

ct_status ct_mm_load_state(ct_trainer *tr, const cJSON *state, const char *where) {
    if (!tr->cap_train) return CT_OK;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(state, "captions");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "epoch"), *i = cJSON_GetObjectItemCaseSensitive(o, "index");
    ct_loader_pos p;
    if (!cJSON_IsString(e) || !cJSON_IsString(i) || sscanf(e->valuestring, "%" SCNu64, &p.epoch) != 1 ||
        sscanf(i->valuestring, "%" SCNu64, &p.index) != 1)
        return ct_fail(CT_EINVAL, "%s: the trainer state has no caption data position (was it trained without "
                       "data.scenes?)", where);
    return ct_caption_loader_set_pos(tr->cap_train, p);
}
