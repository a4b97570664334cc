/* generate.c: `cetus generate`: samples text from a checkpoint, or captions an image file
 * with an image-prefix model. */
#include "cli/cli.h"
#include "core/core.h"
#include "data/image_io.h"
#include "data/tokenizer.h"
#include "model/sample.h"
#include "train/commands.h"
#include <stdlib.h>
#include <string.h>

typedef struct gen_args {
    const char *ckpt, *prompt, *image;
    int tokens, top_k, temperature_set;
    float temperature;
    long long seed;
} gen_args;

static void generate_help(void) {
    printf("usage: cetus generate [--ckpt PATH] [--prompt TEXT | --image FILE] [--tokens N]\n"
           "                      [--temperature T] [--top-k K] [--seed S]\n\n"
           "Samples a continuation of the prompt from a checkpoint, or with --image the caption of\n"
           "an image (models trained with image.patch > 0), printed on one line.\n"
           "  --ckpt PATH        checkpoint directory or run directory (default runs/default)\n"
           "  --prompt TEXT      text to continue (default: start of a document)\n"
           "  --image FILE       caption this PNG or PGM image (any size: it is converted to gray and\n"
           "                     stretched to the model's image.width x image.height); the caption\n"
           "                     starts from the image alone, so --prompt is refused with it\n"
           "  --tokens N         tokens to generate (default 200; a caption also stops at the\n"
           "                     end-of-text token or when the model's context is full)\n"
           "  --temperature T    sampling temperature, 0 = greedy (default 0.8; 0 with --image)\n"
           "  --top-k K          sample among the K most likely tokens, 0 = all (default 40)\n"
           "  --seed S           random seed (default 1)\n");
}

static int parse_gen_args(int argc, char **argv, gen_args *a) {
    *a = (gen_args){"runs/default", NULL, NULL, 200, 40, 0, 0.8f, 1};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
            generate_help();
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cetus generate: %s needs a value (see --help)\n", k);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(k, "--ckpt")) a->ckpt = v;
        else if (!strcmp(k, "--prompt"))
            a->prompt = v;
        else if (!strcmp(k, "--image"))
            a->image = v;
        else if (!strcmp(k, "--tokens"))
            a->tokens = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--top-k"))
            a->top_k = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--temperature")) {
            a->temperature = strtof(v, &end);
            a->temperature_set = 1;
        } else if (!strcmp(k, "--seed"))
            a->seed = strtoll(v, &end, 10);
        else {
            fprintf(stderr, "cetus generate: unknown option %s (see --help)\n", k);
            return 2;
        }
        if (end && (*end || end == v)) {
            fprintf(stderr, "cetus generate: %s = '%s' is not a number\n", k, v);
            return 2;
        }
    }
    if (a->tokens < 1 || a->top_k < 0 || a->temperature < 0) {
        fprintf(stderr, "cetus generate: --tokens must be >= 1, --top-k >= 0, --temperature >= 0\n");
        return 2;
    }
    if (a->image && a->prompt) {
        fprintf(stderr, "cetus generate: --image and --prompt cannot be combined: a caption is generated "
                        "from the image alone\n");
        return 2;
    }
    if (a->image && !a->temperature_set) a->temperature = 0.0f;
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

static ct_status generate_text(ct_model *m, ct_tokenizer *tok, const gen_args *a) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    ct_status s = a->prompt ? ct_tokenizer_encode(tok, a->prompt, strlen(a->prompt), &ids, &n, &cap) : CT_OK;
    if (s == CT_OK && n == 0) {
        ids = ct_alloc(sizeof(int32_t), "prompt");
        if (ids) {
            ids[0] = ct_tokenizer_eot(tok);
            n = 1;
        } else
            s = CT_ENOMEM;
    }
    if (s == CT_OK) {
        if (a->prompt) fputs(a->prompt, stdout);
        s = ct_generate(m, ids, (int)n, a->tokens, a->temperature, a->top_k, (uint64_t)a->seed, emit, tok);
        printf("\n");
    }
    ct_free(ids);
    return s;
}

/* The model's input for an image file: loaded, stretched to the canvas, cut into patches
 * (*out [height * width] floats, from ct_alloc). */
static ct_status load_image_patches(const ct_model_config *c, const char *path, float **out) {
    ct_image img, fit = {0};
    CT_TRY(ct_image_load(path, &img));
    ct_status s = ct_image_resize(&img, c->image.width, c->image.height, &fit);
    size_t n = (size_t)c->image.width * (size_t)c->image.height;
    float *pixels = s == CT_OK ? ct_alloc(sizeof(float) * n, path) : NULL;
    *out = pixels ? ct_alloc(sizeof(float) * n, path) : NULL;
    if (s == CT_OK && !*out) s = CT_ENOMEM;
    if (s == CT_OK) {
        ct_image_to_float(&fit, pixels);
        ct_image_patches(c, pixels, *out);
    }
    ct_free(pixels);
    if (s != CT_OK) {
        ct_free(*out);
        *out = NULL;
    }
    ct_image_free(&fit);
    ct_image_free(&img);
    return s;
}

/* Prints the caption's text on one line (line breaks inside it become spaces; ids the
 * tokenizer does not know are skipped, as in text generation). */
static void print_caption(const ct_tokenizer *tok, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *text = ct_tokenizer_token(tok, ids[i], &len);
        for (size_t j = 0; text && j < len; j++) putchar(text[j] == '\n' || text[j] == '\r' ? ' ' : text[j]);
    }
    printf("\n");
}

static ct_status generate_caption(ct_model *m, ct_tokenizer *tok, const gen_args *a) {
    ct_rng rng;
    ct_rng_seed(&rng, (uint64_t)a->seed);
    const ct_model_config *c = ct_model_get_config(m);
    float *patches = NULL;
    int32_t *ids = ct_alloc(sizeof(int32_t) * (size_t)a->tokens, "caption tokens");
    int n = 0;
    if (!ids) return CT_ENOMEM;
    ct_status s = load_image_patches(c, a->image, &patches);
    int32_t eot = ct_caption_eot(c);
    if (s == CT_OK)
        s = ct_generate_caption(m, patches, eot, eot, a->tokens, a->temperature, a->top_k, &rng, ids, &n);
    if (s == CT_OK) print_caption(tok, ids, n);
    ct_free(patches);
    ct_free(ids);
    return s;
}

int cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_gen_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    char dir[1100];
    ct_model *m = NULL;
    ct_tokenizer *tok = NULL;
    ct_runtime_init(0, 1);
    ct_status s = ct_checkpoint_resolve(a.ckpt, dir, sizeof dir);
    if (s == CT_OK) s = ct_model_from_checkpoint(&m, dir, NULL);
    if (s == CT_OK && a.image && ct_model_get_config(m)->image.patch <= 0)
        s = ct_fail(CT_EINVAL,
                    "--image %s: the model in %s has no image input (image.patch = 0); captions need "
                    "a checkpoint trained with image.patch > 0",
                    a.image, dir);
    if (s == CT_OK) s = ct_checkpoint_tokenizer_load(dir, &tok);
    if (s == CT_OK) s = a.image ? generate_caption(m, tok, &a) : generate_text(m, tok, &a);
    if (tok) ct_tokenizer_free(tok);
    ct_model_free(m);
    if (s != CT_OK) {
        fprintf(stderr, "cetus generate: error: %s\n", ct_last_error());
        return 1;
    }
    return 0;
}
