/* import.c: `cetus import DIR [--out RUN_DIR]`: a Hugging Face GPT-2 directory (config.json +
 * model.safetensors) becomes a new cetus run directory that `cetus train` continues and
 * `cetus eval` / `generate` read. */
#include "cli/cli.h"
#include "train/commands.h"
#include <stdio.h>
#include <string.h>

static void import_help(void) {
    printf("usage: cetus import DIR [--out RUN_DIR]\n\n"
           "Reads a Hugging Face GPT-2 directory DIR (config.json and a float32 model.safetensors, as\n"
           "transformers saves GPT2LMHeadModel; the checkpoints cetus writes are such directories too)\n"
           "into the new run directory RUN_DIR (default runs/<name of DIR>): RUN_DIR/cetus.json, the run's\n"
           "config, and the step-0 checkpoint RUN_DIR/ckpt/step_00000000 with fresh AdamW state.\n"
           "Every tensor is checked against the config first; a config cetus's model does not compute\n"
           "(an activation other than GELU's tanh form, another layer norm epsilon or MLP width, scaled\n"
           "or cross attention, an untied head) is refused, naming the field. Continue training with:\n"
           "  cetus train -c RUN_DIR/cetus.json data.dir=DATA [key=value ...]\n");
}

static int parse_args(int argc, char **argv, const char **in, const char **out) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cetus import: --out needs a directory (see --help)\n");
                return 2;
            }
            *out = argv[++i];
        } else if (*in || argv[i][0] == '-') {
            fprintf(stderr, "cetus import: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        } else {
            *in = argv[i];
        }
    }
    if (!*in) {
        fprintf(stderr, "cetus import: needs DIR, a Hugging Face GPT-2 directory (see --help)\n");
        return 2;
    }
    return 0;
}

/* runs/<last component of in> into out. */
static int default_out(const char *in, char *out, size_t cap) {
    size_t n = strlen(in);
    while (n > 1 && in[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && in[b - 1] != '/') b--;
    if (n == b || (n - b == 1 && in[b] == '.') || (n - b == 2 && !strncmp(in + b, "..", 2))) {
        fprintf(stderr, "cetus import: name the run directory with --out (DIR '%s' has no name of its own)\n",
                in);
        return 2;
    }
    if ((size_t)snprintf(out, cap, "runs/%.*s", (int)(n - b), in + b) >= cap) {
        fprintf(stderr, "cetus import: DIR '%s' is too long\n", in);
        return 2;
    }
    return 0;
}

int cmd_import(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            import_help();
            return 0;
        }
    const char *in = NULL, *out = NULL;
    char run[1100];
    int rc = parse_args(argc, argv, &in, &out);
    if (!rc && !out && !(rc = default_out(in, run, sizeof run))) out = run;
    if (rc) return rc;
    ct_runtime_init(0, 1);
    ct_import_result r;
    ct_status s = ct_hf_import(in, out, &r);
    if (s != CT_OK) {
        fprintf(stderr, "cetus import: error: %s\n", ct_last_error());
        return s == CT_EINVAL ? 2 : 1;
    }
    const ct_model_config *m = &r.cfg.model;
    printf("imported %s into %s: GPT-2 with %d layers, d_model %d, %d heads, context %d, vocabulary %d "
           "(%zu tensors, %zu parameters)\n"
           "continue with: cetus train -c %s/cetus.json data.dir=DATA\n",
           in, r.ckpt, m->n_layer, m->d_model, m->n_head, m->seq_len, m->vocab_size, r.tensors, r.params, out);
    return 0;
}
