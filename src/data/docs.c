/* docs.c: the document stream (docs.h): listing the inputs, the split of whole-file
 * documents, reading files through zlib (plain or gzip) in blocks, and JSONL lines. */
#include "data/docs.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define BLOCK_BYTES (1u << 20) /* one read from the (decompressed) stream */

typedef struct doc_file {
    char *path; /* as opened; "-" for standard input */
    char *rel;  /* relative to its input, without a final ".gz": what the split hashes */
    int jsonl;
    int val;       /* whole-file documents: validation */
    uint64_t size; /* on disk; 0 for standard input that is not a file */
} doc_file;

struct ct_docs {
    ct_docs_opts o;
    doc_file *f; /* [n] in reading order */
    size_t n, cap;
    size_t next;   /* the file to open next */
    doc_file *cur; /* the open file, or NULL */
    gzFile gz;
    char *blk; /* [BLOCK_BYTES] read block, blk_pos..blk_len unread */
    size_t blk_pos, blk_len;
    int eof;    /* the open file is read to its end */
    char *text; /* the current document [text_cap] */
    size_t text_cap;
    uint64_t line;       /* JSONL: the line just read */
    uint64_t threshold;  /* JSONL lines whose hash is below are validation */
    uint64_t bytes_done; /* on-disk bytes of the files finished */
    int size_unknown;    /* standard input is a pipe: no total size */
    ct_docs_counts counts;
    char origin[4200];
};

/* ---- listing the inputs ---------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Whether name ends in suffix, or in suffix followed by ".gz". */
static int named(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    if (ends_with(name, ".gz")) n -= 3;
    return n >= k && strncmp(name + n - k, suffix, k) == 0;
}

static int is_corpus_name(const char *name) {
    return named(name, ".txt") || named(name, ".rst") || named(name, ".md") || named(name, ".jsonl");
}

static int is_jsonl(const ct_docs *d, const char *name) {
    if (d->o.format != CT_DOCS_AUTO) return d->o.format == CT_DOCS_JSONL;
    return strcmp(name, CT_DOCS_STDIN) != 0 && named(name, ".jsonl");
}

static ct_status add_file(ct_docs *d, const char *path, const char *rel, uint64_t size) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        doc_file *f = ct_realloc(d->f, cap * sizeof *f, "the input file list");
        if (!f) return CT_ENOMEM;
        d->f = f;
        d->cap = cap;
    }
    doc_file *f = &d->f[d->n];
    *f = (doc_file){ct_strdup(path, "the input file list"), NULL, is_jsonl(d, path), 0, size};
    if (!f->path || !(f->rel = ct_strdup(rel, "the input file list"))) {
        ct_free(f->path);
        return CT_ENOMEM;
    }
    if (ends_with(f->rel, ".gz")) f->rel[strlen(f->rel) - 3] = 0; /* compressing keeps the split */
    d->n++;
    d->counts.files++;
    d->counts.jsonl_files += (uint64_t)f->jsonl;
    d->counts.bytes_total += size;
    return CT_OK;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) ct_free(names[i]);
    ct_free(names);
}

/* Sorted entry names of dir, without hidden ones ('.' first). */
static ct_status sorted_entries(const char *dir, char ***out, size_t *n) {
    DIR *dd = opendir(dir);
    if (!dd) return ct_fail(CT_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    size_t cap = 0;
    char **names = NULL;
    *n = 0;
    struct dirent *e;
    ct_status s = CT_OK;
    while (s == CT_OK && (e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = ct_realloc(names, cap * sizeof *p, "a directory listing");
            if (!p) {
                s = CT_ENOMEM;
                break;
            }
            names = p;
        }
        if (!(names[*n] = ct_strdup(e->d_name, "a directory listing"))) s = CT_ENOMEM;
        else
            (*n)++;
    }
    closedir(dd);
    if (s != CT_OK) {
        free_names(names, *n);
        return ct_fail_context(s, "listing %s", dir);
    }
    if (*n) qsort(names, *n, sizeof *names, cmp_name);
    *out = names;
    return CT_OK;
}

static ct_status walk_dir(ct_docs *d, const char *dir, const char *rel);

/* Adds one directory entry: recurses into real directories, adds corpus files. */
static ct_status walk_entry(ct_docs *d, const char *dir, const char *rel, const char *name) {
    char path[4096], sub[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name) >= (int)sizeof sub)
        return ct_fail(CT_EINVAL, "path too long under %s: %s", dir, name);
    struct stat st;
    if (lstat(path, &st) != 0) return ct_fail(CT_EIO, "cannot stat %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return walk_dir(d, path, sub);
    if (S_ISLNK(st.st_mode) && stat(path, &st) != 0) return CT_OK; /* dangling link */
    if (S_ISREG(st.st_mode) && is_corpus_name(name)) return add_file(d, path, sub, (uint64_t)st.st_size);
    return CT_OK; /* other files and symlinked directories */
}

static ct_status walk_dir(ct_docs *d, const char *dir, const char *rel) {
    char **names = NULL;
    size_t n = 0;
    CT_TRY(sorted_entries(dir, &names, &n));
    ct_status s = CT_OK;
    for (size_t i = 0; i < n && s == CT_OK; i++) s = walk_entry(d, dir, rel, names[i]);
    free_names(names, n);
    return s;
}

static ct_status add_stdin(ct_docs *d) {
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->f[i].path, CT_DOCS_STDIN))
            return ct_fail(CT_EINVAL, "standard input (-) is given as an input twice");
    struct stat st;
    uint64_t size = fstat(0, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    CT_TRY(add_file(d, CT_DOCS_STDIN, CT_DOCS_STDIN, size));
    d->size_unknown |= !size;
    return CT_OK;
}

static ct_status list_inputs(ct_docs *d) {
    for (int i = 0; i < d->o.n_inputs; i++) {
        const char *in = d->o.inputs[i];
        if (!strcmp(in, CT_DOCS_STDIN)) {
            CT_TRY(add_stdin(d));
            continue;
        }
        struct stat st;
        if (stat(in, &st) != 0)
            return ct_fail(CT_EIO,
                           "input %s: %s (expected a text or JSONL file, a directory of *.txt, "
                           "*.rst, *.md, *.jsonl files, or - for standard input)",
                           in, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            CT_TRY(walk_dir(d, in, ""));
            continue;
        }
        const char *base = strrchr(in, '/');
        CT_TRY(add_file(d, in, base ? base + 1 : in, (uint64_t)st.st_size));
    }
    return CT_OK;
}

/* ---- the split of whole-file documents ------------------------------------------------- */

typedef struct hash_index {
    uint64_t hash;
    size_t i;
} hash_index;

static int cmp_hash_index(const void *a, const void *b) {
    const hash_index *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Marks the n_val whole-file documents with the smallest path hashes as validation. */
static ct_status split_files(ct_docs *d) {
    const char *inputs = ct_docs_inputs_name(d);
    size_t n = (size_t)(d->counts.files - d->counts.jsonl_files);
    if (d->counts.files == 0)
        return ct_fail(CT_EINVAL, "no documents (*.txt, *.rst, *.md, *.jsonl files) found in %s", inputs);
    if (d->counts.jsonl_files == 0 && n < 2)
        return ct_fail(CT_EINVAL,
                       "only 1 document (%s) found in %s: a train/validation split "
                       "needs at least 2",
                       d->f[0].path, inputs);
    if (n == 0) return CT_OK;
    size_t n_val = (size_t)llround(d->o.val_fraction * (double)n);
    if (n >= 2 && n_val < 1) n_val = 1;
    if (n >= 2 && n_val > n - 1) n_val = n - 1;
    hash_index *order = ct_alloc(n * sizeof *order, "the train/validation split");
    if (!order) return CT_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++)
        if (!d->f[i].jsonl) order[k++] = (hash_index){XXH64(d->f[i].rel, strlen(d->f[i].rel), 0), i};
    qsort(order, n, sizeof *order, cmp_hash_index);
    for (size_t i = 0; i < n_val; i++) d->f[order[i].i].val = 1;
    ct_free(order);
    return CT_OK;
}

/* ---- open / close ---------------------------------------------------------------------- */

const char *ct_docs_inputs_name(const ct_docs *d) { return d->o.n_inputs == 1 ? d->o.inputs[0] : "the inputs"; }

ct_status ct_docs_open(ct_docs **out, const ct_docs_opts *o) {
    *out = NULL;
    if (o->n_inputs < 1) return ct_fail(CT_EINVAL, "no input given");
    if (!(o->val_fraction > 0 && o->val_fraction < 1))
        return ct_fail(CT_EINVAL, "val fraction %g must be in (0, 1)", o->val_fraction);
    if (o->text_field && !o->text_field[0]) return ct_fail(CT_EINVAL, "the JSONL text field name is empty");
    ct_docs *d = ct_calloc(sizeof *d, "the document stream");
    if (!d) return CT_ENOMEM;
    d->o = *o;
    if (!d->o.text_field) d->o.text_field = CT_DOCS_DEFAULT_TEXT_FIELD;
    d->threshold = (uint64_t)ldexp(o->val_fraction, 64);
    ct_status s = list_inputs(d);
    if (s == CT_OK) s = split_files(d);
    if (s == CT_OK && !(d->blk = ct_alloc(BLOCK_BYTES, "the input read block"))) s = CT_ENOMEM;
    if (s != CT_OK) {
        ct_docs_close(d);
        return s;
    }
    *out = d;
    return CT_OK;
}

static void close_file(ct_docs *d) {
    if (d->gz) gzclose(d->gz);
    d->gz = NULL;
    if (d->cur) d->bytes_done += d->cur->size;
    d->cur = NULL;
}

void ct_docs_close(ct_docs *d) {
    if (!d) return;
    close_file(d);
    for (size_t i = 0; i < d->n; i++) {
        ct_free(d->f[i].path);
        ct_free(d->f[i].rel);
    }
    ct_free(d->f);
    ct_free(d->blk);
    ct_free(d->text);
    ct_free(d);
}

void ct_docs_counts_get(const ct_docs *d, ct_docs_counts *c) {
    *c = d->counts;
    c->bytes_read = d->bytes_done;
    if (d->gz) {
        z_off_t off = gzoffset(d->gz);
        if (off > 0) c->bytes_read += (uint64_t)off;
    }
    if (d->size_unknown) c->bytes_total = 0;
}

/* ---- reading blocks -------------------------------------------------------------------- */

static const char *shown_path(const doc_file *f) {
    return strcmp(f->path, CT_DOCS_STDIN) ? f->path : "standard input";
}

static ct_status open_file(ct_docs *d, doc_file *f) {
    int fd = strcmp(f->path, CT_DOCS_STDIN) ? open(f->path, O_RDONLY | O_CLOEXEC) : dup(0);
    if (fd < 0) return ct_fail(CT_EIO, "cannot open %s: %s", shown_path(f), strerror(errno));
    d->gz = gzdopen(fd, "rb");
    if (!d->gz) {
        close(fd);
        return ct_fail(CT_ENOMEM, "out of memory opening %s", shown_path(f));
    }
    gzbuffer(d->gz, 256u << 10);
    d->cur = f;
    d->blk_pos = d->blk_len = 0;
    d->eof = 0;
    d->line = 0;
    return CT_OK;
}

/* Refills the block; at the end of the file sets eof. A damaged or truncated gzip stream
 * and read errors are CT_EIO naming the file. */
static ct_status fill_block(ct_docs *d) {
    d->blk_pos = 0;
    int got = gzread(d->gz, d->blk, BLOCK_BYTES);
    int err = Z_OK;
    const char *msg = got <= 0 ? gzerror(d->gz, &err) : NULL;
    if (got < 0 || (got == 0 && err != Z_OK)) {
        d->blk_len = 0;
        return ct_fail(CT_EIO, "reading %s: %s", shown_path(d->cur),
                       err == Z_ERRNO       ? strerror(errno)
                       : err == Z_BUF_ERROR ? "the gzip stream is truncated"
                                            : msg);
    }
    d->blk_len = (size_t)got;
    d->eof = got == 0;
    return CT_OK;
}

/* Makes room for need bytes and a NUL in the document buffer, keeping its first keep. */
static ct_status text_room(ct_docs *d, size_t need) {
    if (need + 1 <= d->text_cap) return CT_OK;
    size_t cap = d->text_cap ? d->text_cap : 1u << 16;
    while (cap < need + 1) cap *= 2;
    char *p = ct_realloc(d->text, cap, "a document's text");
    if (!p) return ct_fail_context(CT_ENOMEM, "reading %s", shown_path(d->cur));
    d->text = p;
    d->text_cap = cap;
    return CT_OK;
}

static ct_status append(ct_docs *d, size_t *len, const char *p, size_t n) {
    CT_TRY(text_room(d, *len + n));
    memcpy(d->text + *len, p, n);
    *len += n;
    d->text[*len] = 0;
    return CT_OK;
}

/* The whole open file as one document. */
static ct_status read_whole(ct_docs *d, size_t *len) {
    *len = 0;
    CT_TRY(text_room(d, 0));
    d->text[0] = 0;
    while (!d->eof) {
        CT_TRY(append(d, len, d->blk + d->blk_pos, d->blk_len - d->blk_pos));
        CT_TRY(fill_block(d));
    }
    return CT_OK;
}

/* The next line of the open file without its '\n' into d->text; *got = 0 at the end. */
static ct_status read_line(ct_docs *d, size_t *len, int *got) {
    *len = 0;
    *got = 0;
    CT_TRY(text_room(d, 0));
    d->text[0] = 0;
    for (;;) {
        if (d->blk_pos == d->blk_len) {
            if (d->eof) return CT_OK;
            CT_TRY(fill_block(d));
            continue;
        }
        const char *p = d->blk + d->blk_pos;
        size_t avail = d->blk_len - d->blk_pos;
        const char *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        CT_TRY(append(d, len, p, take));
        *got = 1;
        d->blk_pos += take + (nl != NULL);
        if (nl) return CT_OK;
    }
}

/* ---- JSONL lines ----------------------------------------------------------------------- */

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static const char *json_kind(const cJSON *v) {
    return cJSON_IsArray(v)    ? "an array"
           : cJSON_IsString(v) ? "a string"
           : cJSON_IsNumber(v) ? "a number"
           : cJSON_IsBool(v)   ? "a boolean"
           : cJSON_IsNull(v)   ? "null"
                               : "an object";
}

/* Parses line (len bytes) as a JSONL document: the parsed root (the caller deletes it) with
 * *text its field's string, or NULL with what is wrong written into why. */
static cJSON *line_parse(const ct_docs *d, const char *line, size_t len, char *why, size_t cap,
                         const char **text) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!root) {
        size_t at = end && end >= line && end <= line + len ? (size_t)(end - line) + 1 : 1;
        snprintf(why, cap, "not valid JSON (at byte %zu)", at);
        return NULL;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, d->o.text_field);
    const char *f = d->o.text_field;
    if (!blank(end, len - (size_t)(end - line)))
        snprintf(why, cap, "text after the JSON value (at byte %zu)", (size_t)(end - line) + 1);
    else if (!cJSON_IsObject(root))
        snprintf(why, cap, "%s, expected a JSON object with a string field \"%s\"", json_kind(root), f);
    else if (!v)
        snprintf(why, cap, "no field \"%s\" (--text-field names the field to read)", f);
    else if (!cJSON_IsString(v))
        snprintf(why, cap, "field \"%s\" is %s, expected a string", f, json_kind(v));
    else {
        *text = v->valuestring;
        return root;
    }
    cJSON_Delete(root);
    return NULL;
}

/* Reads lines of the open JSONL file until a document; *got = 0 at the end of the file. */
static ct_status next_line_doc(ct_docs *d, ct_doc *doc, int *got) {
    for (;;) {
        size_t len;
        CT_TRY(read_line(d, &len, got));
        if (!*got) return CT_OK;
        d->line++;
        if (blank(d->text, len)) continue;
        char why[256];
        const char *text = NULL;
        snprintf(d->origin, sizeof d->origin, "%s:%llu", shown_path(d->cur), (unsigned long long)d->line);
        cJSON *root = line_parse(d, d->text, len, why, sizeof why, &text);
        if (!root) {
            if (!d->o.skip_bad)
                return ct_fail(CT_EINVAL, "%s: %s; --skip-bad skips malformed lines", d->origin, why);
            if (d->o.report && d->counts.skipped < CT_DOCS_SKIPS_SHOWN)
                ct_log("prepare: skipping %s: %s", d->origin, why);
            d->counts.skipped++;
            continue;
        }
        size_t n = strlen(text);
        ct_status s = text_room(d, n);
        if (s == CT_OK) memcpy(d->text, text, n + 1);
        cJSON_Delete(root);
        CT_TRY(s);
        char key[4200];
        int k = snprintf(key, sizeof key, "%s:%llu", d->cur->rel, (unsigned long long)d->line);
        *doc = (ct_doc){d->text, n, d->origin, XXH64(key, (size_t)k, 0) < d->threshold};
        return CT_OK;
    }
}

/* ---- the stream ------------------------------------------------------------------------ */

static ct_status check_splits(const ct_docs *d) {
    const uint64_t *n = d->counts.documents;
    if (n[0] && n[1]) return CT_OK;
    return ct_fail(CT_EINVAL,
                   "%s: %llu training and %llu validation documents: each split needs at least "
                   "one (%llu malformed lines skipped); change --val-fraction (%g) or add documents",
                   ct_docs_inputs_name(d), (unsigned long long)n[0], (unsigned long long)n[1],
                   (unsigned long long)d->counts.skipped, d->o.val_fraction);
}

ct_status ct_docs_next(ct_docs *d, ct_doc *doc, int *got) {
    *got = 0;
    for (;;) {
        if (!d->cur) {
            if (d->next == d->n) return check_splits(d);
            CT_TRY(open_file(d, &d->f[d->next++]));
        }
        if (d->cur->jsonl) {
            CT_TRY(next_line_doc(d, doc, got));
        } else {
            size_t len;
            CT_TRY(read_whole(d, &len));
            snprintf(d->origin, sizeof d->origin, "%s", shown_path(d->cur));
            *doc = (ct_doc){d->text, len, d->origin, d->cur->val};
            *got = 1;
            close_file(d);
        }
        if (*got) {
            d->counts.documents[doc->val]++;
            return CT_OK;
        }
        close_file(d);
    }
}
