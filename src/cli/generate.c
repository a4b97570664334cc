/* generate.c: `cetus generate`: samples text from a checkpoint. Also home of the checkpoint
 * argument resolution shared with eval. */
#include "cli/cli.h"
#include "core/core.h"
#include "data/tokenizer.h"
#include "model/sample.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_resolve_checkpoint(const char *arg, char *out, size_t cap) {
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/trainer.json", arg);
    if (access(probe, F_OK) == 0) { snprintf(out, cap, "%s", arg); return 0; }
    snprintf(probe, sizeof probe, "%s/ckpt", arg);
    if (access(probe, F_OK) == 0 && ct_checkpoint_latest(probe, out, cap) == CT_OK) return 0;
    if (ct_checkpoint_latest(arg, out, cap) == CT_OK) return 0;
    ct_fail(CT_EIO, "%s is not a checkpoint, a run directory or a checkpoint directory with a 'latest' "
            "pointer (train first: cetus train)", arg);
    return -1;
}

typedef struct gen_args {
    const char *ckpt, *prompt;
    int tokens, top_k;
    float temperature;
    long long seed;
} gen_args;

static void generate_help(void) {
    printf("usage: cetus generate [--ckpt PATH] [--prompt TEXT] [--tokens N] [--temperature T]\n"
           "                      [--top-k K] [--seed S]\n\n"
           "Samples a continuation of the prompt from a checkpoint.\n"
           "  --ckpt PATH        checkpoint directory or run directory (default runs/default)\n"
           "  --prompt TEXT      text to continue (default: start of a document)\n"
           "  --tokens N         tokens to generate (default 200)\n"
           "  --temperature T    sampling temperature, 0 = greedy (default 0.8)\n"
           "  --top-k K          sample among the K most likely tokens, 0 = all (default 40)\n"
           "  --seed S           random seed (default 1)\n");
}

static int parse_gen_args(int argc, char **argv, gen_args *a) {
    *a = (gen_args){"runs/default", NULL, 200, 40, 0.8f, 1};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "--help") || !strcmp(k, "-h")) { generate_help(); return 1; }
        if (i + 1 >= argc) { fprintf(stderr, "cetus generate: %s needs a value (see --help)\n", k); return 2; }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(k, "--ckpt")) a->ckpt = v;
        else if (!strcmp(k, "--prompt")) a->prompt = v;
        else if (!strcmp(k, "--tokens")) a->tokens = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--top-k")) a->top_k = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--temperature")) a->temperature = strtof(v, &end);
        else if (!strcmp(k, "--seed")) a->seed = strtoll(v, &end, 10);
        else { fprintf(stderr, "cetus generate: unknown option %s (see --help)\n", k); return 2; }
        if (end && (*end || end == v)) { fprintf(stderr, "cetus generate: %s = '%s' is not a number\n", k, v); return 2; }
    }
    if (a->tokens < 1 || a->top_k < 0 || a->temperature < 0) {
        fprintf(stderr, "cetus generate: --tokens must be >= 1, --top-k >= 0, --temperature >= 0\n");
        return 2;
    }
    return 0;
}

static void emit(int32_t id, void *ctx) {
    char *text;
    size_t len;
    if (ct_tokenizer_decode(ctx, &id, 1, &text, &len) == CT_OK) {
        fwrite(text, 1, len, stdout);
        ct_free(text);
        fflush(stdout);
    }
}

int cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_gen_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    char dir[1100];
    ct_model *m = NULL;
    ct_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    ct_runtime_init(0, 1);
    ct_status s = cli_resolve_checkpoint(a.ckpt, dir, sizeof dir) == 0 ? CT_OK : CT_EIO;
    if (s == CT_OK) s = ct_model_from_checkpoint(&m, dir, NULL);
    if (s == CT_OK) s = ct_tokenizer_load_default(&tok);
    if (s == CT_OK && a.prompt) s = ct_tokenizer_encode(tok, a.prompt, strlen(a.prompt), &ids, &n, &cap);
    if (s == CT_OK && n == 0) {
        ids = ct_alloc(sizeof(int32_t), "prompt");
        if (ids) { ids[0] = CT_TOKEN_EOT; n = 1; } else s = CT_ENOMEM;
    }
    if (s == CT_OK) {
        if (a.prompt) fputs(a.prompt, stdout);
        ct_rng rng;
        ct_rng_seed(&rng, (uint64_t)a.seed);
        s = ct_generate(m, ids, (int)n, a.tokens, a.temperature, a.top_k, &rng, emit, tok);
        printf("\n");
    }
    ct_free(ids);
    if (tok) ct_tokenizer_free(tok);
    ct_model_free(m);
    if (s != CT_OK) { fprintf(stderr, "cetus generate: error: %s\n", ct_last_error()); return 1; }
    return 0;
}
