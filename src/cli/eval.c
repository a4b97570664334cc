/* eval.c: `cetus eval`: validation loss and perplexity of a checkpoint over the whole
 * validation split (or N batches spread over it); for a model with image input also the
 * validation scenes' caption loss, token accuracy and exact-match rate. */
#include "cli/cli.h"
#include "train/commands.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void eval_help(void) {
    printf("usage: cetus eval [--ckpt PATH] [--data DIR] [--batches N] [--batch-size B] [--scenes DIR]\n"
           "                  [--captions N]\n\n"
           "Reports the mean validation loss and perplexity of a checkpoint; for a model with image\n"
           "input also, on the validation scenes, the caption loss, the token accuracy (argmax) and\n"
           "the exact-match rate of greedy captions.\n"
           "  --ckpt PATH     checkpoint directory or run directory (default runs/default)\n"
           "  --data DIR      token shards (default: the data.dir the checkpoint was trained on)\n"
           "  --batches N     evaluate only N batches, their windows spread evenly over the split\n"
           "                  (default: every complete batch, the whole split)\n"
           "  --batch-size B  rows per batch (default: the training micro-batch)\n"
           "  --scenes DIR    captioned scene shards (default: the data.scenes it was trained on)\n"
           "  --captions N    validation scenes to caption (default: all of them)\n");
}

/* ", 1.2345 bits per byte" into out (left empty when the tokenizer cannot be loaded). */
static void print_bits_per_byte(const char *ckpt, const char *data, const ct_config *cfg, int batches, int B,
                                double loss, char *out, size_t cap) {
    ct_tokenizer *tok;
    uint64_t bytes = 0, targets = 0;
    if (ct_checkpoint_tokenizer_load(ckpt, &tok) != CT_OK) return;
    if (ct_eval_target_bytes(data, B > 0 ? B : cfg->train.batch_size, ct_config_train_seq_len(cfg), batches,
                             tok, &bytes, &targets) == CT_OK &&
        bytes > 0)
        snprintf(out, cap, ", %.4f bits per byte", loss * (double)targets / ((double)bytes * log(2.0)));
    ct_tokenizer_free(tok);
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = "runs/default", *data = NULL, *scenes = NULL;
    int batches = 0, B = 0, captions = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            eval_help();
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cetus eval: %s needs a value (see --help)\n", argv[i]);
            return 2;
        }
        const char *k = argv[i], *v = argv[++i];
        char *end = NULL;
        if (!strcmp(k, "--ckpt")) ckpt = v;
        else if (!strcmp(k, "--data"))
            data = v;
        else if (!strcmp(k, "--batches"))
            batches = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--batch-size"))
            B = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--scenes"))
            scenes = v;
        else if (!strcmp(k, "--captions"))
            captions = (int)strtol(v, &end, 10);
        else {
            fprintf(stderr, "cetus eval: unknown option %s (see --help)\n", k);
            return 2;
        }
        if (end && (*end || end == v || strtol(v, NULL, 10) < 0)) {
            fprintf(stderr, "cetus eval: %s = '%s' is not a non-negative whole number\n", k, v);
            return 2;
        }
    }
    ct_runtime_init(0, 1);
    char dir[1100];
    ct_model *m = NULL;
    ct_config cfg;
    double loss = 0;
    long tokens = 0;
    ct_status s = ct_checkpoint_resolve(ckpt, dir, sizeof dir);
    if (s == CT_OK) s = ct_model_from_checkpoint(&m, dir, &cfg);
    if (s == CT_OK) s = ct_checkpoint_check_data_tokenizer(dir, data ? data : cfg.data.dir);
    if (s == CT_OK)
        s = ct_eval_split(m, &cfg, data ? data : cfg.data.dir, batches, B > 0 ? B : cfg.train.batch_size, &loss,
                          &tokens);
    char bpb[48] = "";
    if (s == CT_OK)
        print_bits_per_byte(dir, data ? data : cfg.data.dir, &cfg, batches, B, loss, bpb, sizeof bpb);
    if (s == CT_OK)
        printf("checkpoint %s: val loss %.4f, perplexity %.2f%s over %ld tokens\n", dir, loss, exp(loss), bpb,
               tokens);
    if (s == CT_OK && !scenes && strcmp(cfg.data.scenes, "none")) scenes = cfg.data.scenes;
    ct_caption_tally t = {0};
    if (s == CT_OK && scenes && cfg.model.image.patch == 0)
        s = ct_fail(CT_EINVAL, "--scenes %s: the model in %s has no image input (image.patch = 0)", scenes,
                    dir);
    if (s == CT_OK && scenes)
        s = ct_eval_captions(m, &cfg, scenes, captions, B > 0 ? B : cfg.train.batch_size, &t);
    ct_model_free(m);
    if (s != CT_OK) {
        fprintf(stderr, "cetus eval: error: %s\n", ct_last_error());
        return 1;
    }
    if (scenes)
        printf(
            "captions (%s, validation): loss %.4f, token accuracy %.4f, exact match %.4f (%.0f of %.0f scenes)\n",
            scenes, t.loss / t.targets, t.hits / t.targets, t.exact / t.scenes, t.exact, t.scenes);
    return 0;
}
