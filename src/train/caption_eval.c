/* caption_eval.c: scoring captions (see caption_eval.h). */
#include "core/core.h"
#include "model/model.h"
#include "model/sample.h"
#include "train/caption_eval.h"
#include <string.h>

ct_status ct_caption_batch_create(ct_caption_batch *b, const ct_caption_loader *l, const ct_model_config *cfg,
                                  int rows) {
    memset(b, 0, sizeof *b);
    b->rows = rows;
    b->T = ct_caption_loader_seq_len(l);
    b->Np = ct_model_image_patches(cfg);
    size_t px = (size_t)cfg->image.height * cfg->image.width, T = (size_t)b->T;
    if (!(b->patches = ct_alloc((size_t)rows * px * sizeof(float), "caption batch patches")) ||
        !(b->tokens = ct_alloc((2 * (size_t)rows * T + (size_t)rows) * sizeof(int32_t),
                               "caption batch tokens"))) {
        ct_caption_batch_free(b);
        return CT_ENOMEM;
    }
    b->targets = b->tokens + (size_t)rows * T;
    b->prefix = b->targets + (size_t)rows * T;
    return CT_OK;
}

void ct_caption_batch_free(ct_caption_batch *b) {
    ct_free(b->patches);
    ct_free(b->tokens);
    memset(b, 0, sizeof *b);
}

ct_status ct_caption_batch_next(ct_caption_batch *b, ct_caption_loader *l, int row0) {
    return ct_caption_loader_next_rows(l, row0, b->rows, b->patches, b->tokens, b->targets, b->prefix);
}

/* Loss and argmax hits of a teacher-forced forward over the batch. */
static ct_status score(ct_model *m, const ct_caption_batch *b, ct_caption_tally *t) {
    int V = ct_model_get_config(m)->vocab_size;
    float loss = 0.0f, *row = ct_alloc((size_t)V * sizeof *row, "caption scoring logits");
    if (!row) return CT_ENOMEM;
    double targets = 0.0;
    ct_status s = ct_model_set_image(m, b->patches, b->Np);
    if (s == CT_OK) s = ct_model_forward(m, b->tokens, b->targets, b->prefix, b->rows, b->T, &loss);
    for (int n = 0; s == CT_OK && n < b->rows * b->T; n++) {
        if (b->targets[n] < 0) continue;
        s = ct_model_logits_row(m, n, row);
        int best = 0;
        for (int v = 1; s == CT_OK && v < V; v++)
            if (row[v] > row[best]) best = v;
        t->hits += best == b->targets[n];
        targets += 1.0;
    }
    ct_model_set_image(m, NULL, 0);
    ct_free(row);
    t->loss += (double)loss * targets;
    t->targets += targets;
    return s;
}

/* Greedy captions of the batch's rows against their references. */
static ct_status match(ct_model *m, const ct_caption_loader *l, const ct_caption_batch *b, int row0,
                       ct_caption_tally *t) {
    const ct_model_config *c = ct_model_get_config(m);
    int max = ct_caption_max_tokens(c);
    int32_t *out = ct_alloc((size_t)b->rows * (size_t)max * sizeof *out, "greedy captions"), ref[4096];
    int *n_out = out ? ct_alloc((size_t)b->rows * sizeof *n_out, "greedy captions") : NULL;
    ct_status s = n_out ? CT_OK : CT_ENOMEM;
    int32_t eot = ct_caption_eot(c);
    if (s == CT_OK) s = ct_generate_captions_greedy(m, b->patches, b->rows, eot, eot, max, out, n_out);
    for (int r = 0; s == CT_OK && r < b->rows; r++) {
        size_t n = ct_caption_loader_caption(l, row0 + r, ref);
        t->exact += n == (size_t)n_out[r] && !memcmp(ref, out + (size_t)r * max, n * sizeof *ref);
        t->scenes += 1.0;
    }
    ct_free(out);
    ct_free(n_out);
    return s;
}

ct_status ct_caption_tally_batch(ct_model *m, const ct_caption_loader *l, const ct_caption_batch *b, int row0,
                                 int do_score, int do_exact, ct_caption_tally *t) {
    if (do_score) CT_TRY(score(m, b, t));
    if (do_exact) CT_TRY(match(m, l, b, row0, t));
    return CT_OK;
}
