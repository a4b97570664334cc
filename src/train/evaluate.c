/* evaluate.c: scoring a model on held-out data for `cetus eval`: the mean loss over the
 * validation split's batches, and the caption metrics over the validation scenes (see
 * train/commands.h). Progress goes to stderr when it is a terminal. */
#include "core/core.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "train/commands.h"
#include <stdio.h>
#include <unistd.h>

ct_status ct_eval_split(ct_model *m, const ct_config *cfg, const char *data, int batches, int B, double *loss,
                        long *tokens) {
    ct_loader *val;
    int T = ct_config_train_seq_len(cfg);
    CT_TRY(ct_loader_open(&val, data, "val", B, T, 0, 0));
    if (ct_loader_check_vocab(val, cfg->model.vocab_size) != CT_OK) {
        ct_loader_close(val);
        return CT_EINVAL;
    }
    long available = (long)(ct_loader_num_windows(val) / (uint64_t)B);
    if (available < 1) available = 1;
    if (batches <= 0 || batches > available) batches = (int)available;
    ct_status s = ct_loader_spread(val, (uint64_t)batches * (uint64_t)B);            /* spread over the split */
    int32_t *in = ct_alloc(sizeof(int32_t) * 2 * (size_t)B * T, "evaluation batch"); /* [B*T] inputs, targets */
    double sum = 0.0;
    int tty = isatty(STDERR_FILENO);
    if (s == CT_OK && !in) s = CT_ENOMEM;
    for (int i = 0; i < batches && s == CT_OK; i++) {
        float l = 0.0f;
        int32_t *tg = in + (size_t)B * T;
        s = ct_loader_next(val, in, tg);
        if (s == CT_OK) s = ct_model_forward(m, in, tg, NULL, B, T, &l);
        sum += l;
        if (tty) fprintf(stderr, "\reval: batch %d/%d", i + 1, batches);
    }
    if (tty) fprintf(stderr, "\n");
    uint64_t windows = ct_loader_num_windows(val), scored = (uint64_t)batches * (uint64_t)B;
    ct_free(in);
    ct_loader_close(val);
    *loss = sum / batches;
    *tokens = (long)((scored < windows ? scored : windows) * (uint64_t)T); /* distinct windows */
    return s;
}

ct_status ct_eval_target_bytes(const char *data, int B, int T, int batches, const ct_tokenizer *tok,
                               uint64_t *bytes, uint64_t *targets) {
    ct_loader *val;
    CT_TRY(ct_loader_open(&val, data, "val", B, T, 0, 0));
    uint64_t fit = ct_loader_num_windows(val) / (uint64_t)B;
    if (batches <= 0 || (uint64_t)batches > fit) batches = fit ? (int)fit : 1;
    int32_t *in = ct_alloc(sizeof(int32_t) * 2 * (size_t)B * T, "evaluation batch"); /* [B*T] inputs, targets */
    ct_status s = in ? ct_loader_spread(val, (uint64_t)batches * (uint64_t)B) : CT_ENOMEM;
    int32_t eot = ct_tokenizer_eot(tok);
    *bytes = *targets = 0;
    for (int i = 0; i < batches && s == CT_OK; i++) {
        int32_t *tg = in + (size_t)B * T;
        s = ct_loader_next(val, in, tg);
        for (size_t k = 0; s == CT_OK && k < (size_t)B * T; k++) {
            size_t len = 0;
            if (tg[k] != eot && !ct_tokenizer_token(tok, tg[k], &len)) len = 0; /* padding ids: no text */
            *bytes += len;
        }
        *targets += (uint64_t)B * (uint64_t)T;
    }
    ct_free(in);
    ct_loader_close(val);
    return s;
}

ct_status ct_eval_captions(ct_model *m, const ct_config *cfg, const char *scenes, int captions, int B,
                           ct_caption_tally *t) {
    ct_caption_loader *l;
    ct_caption_batch b;
    CT_TRY(ct_caption_loader_open(&l, scenes, "val", &cfg->model, B, 0, 0));
    uint64_t n = ct_caption_loader_count(l);
    if (captions > 0 && (uint64_t)captions < n) n = (uint64_t)captions;
    ct_status s = ct_caption_batch_create(&b, l, &cfg->model, B);
    int tty = isatty(STDERR_FILENO);
    for (uint64_t done = 0; s == CT_OK && done < n; done += (uint64_t)B) {
        s = ct_caption_batch_next(&b, l, 0);
        if (s == CT_OK) s = ct_caption_tally_batch(m, l, &b, 0, 1, 1, t);
        if (tty)
            fprintf(stderr, "\reval: %llu/%llu scenes", (unsigned long long)(done + (uint64_t)B),
                    (unsigned long long)n);
    }
    if (tty) fprintf(stderr, "\n");
    ct_caption_batch_free(&b);
    ct_caption_loader_close(l);
    return s;
}
