/* safetensors.c: the safetensors writer (atomic, streamed tensor by tensor from a fetch
 * callback, with an XXH64 of the data section in __metadata__) and the validating mmap
 * reader. The format is
 * described in safetensors.h. */
#include "train/safetensors.h"
#include <cjson/cJSON.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes the host's floats as little-endian; port it for this host"
#endif

#define ST_MAX_HEADER 100000000ull /* Hugging Face's reader refuses larger headers */
#define ST_MAX_DIM (1ull << 53)    /* largest integer a JSON double holds exactly */

/* ---- shared helpers -------------------------------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *ct_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* ---- writer ---------------------------------------------------------------------------- */

/* Checks one tensor's name and shape and returns its size in bytes (data is not looked at:
 * it comes from the fetch callback). */
static ct_status tensor_bytes(const char *path, const ct_st_tensor *t, uint64_t *bytes) {
    if (!t->name) return ct_fail(CT_EINVAL, "%s: a tensor has no name", path);
    if (strcmp(t->name, "__metadata__") == 0)
        return ct_fail(CT_EINVAL, "%s: '__metadata__' cannot name a tensor", path);
    if (t->ndim < 0 || t->ndim > CT_ST_MAX_DIMS)
        return ct_fail(CT_EINVAL, "%s: tensor %s has %d dimensions, expected 0 to %d", path, t->name, t->ndim,
                       CT_ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (t->shape[i] < 0 || d > ST_MAX_DIM || (d && numel > ST_MAX_DIM / d))
            return ct_fail(CT_EINVAL, "%s: tensor %s has bad dimension %d: %" PRId64, path, t->name, i,
                           t->shape[i]);
        numel *= d;
    }
    *bytes = numel * sizeof(float);
    return CT_OK;
}

/* Refuses duplicate names among n strings (sorted copy; the input order is kept). */
static ct_status check_unique(const char *path, const char **names, size_t n) {
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return ct_fail(CT_EINVAL, "%s: tensor name %s appears twice", path, names[i]);
    return CT_OK;
}

/* Checks every tensor and returns the size of the data section. */
static ct_status check_tensors(const char *path, const ct_st_tensor *t, size_t n, uint64_t *data_bytes) {
    uint64_t bytes, total = 0;
    for (size_t i = 0; i < n; i++) {
        CT_TRY(tensor_bytes(path, &t[i], &bytes));
        total += bytes;
    }
    const char **names = ct_alloc((n ? n : 1) * sizeof *names, "tensor names");
    if (!names) return CT_ENOMEM;
    for (size_t i = 0; i < n; i++) names[i] = t[i].name;
    ct_status s = check_unique(path, names, n);
    ct_free(names);
    *data_bytes = total;
    return s;
}

/* Adds __metadata__: the caller's pairs and the data checksum. Returns 0 on failure. */
static int add_meta(const char *path, cJSON *root, const char *const *kv, uint64_t hash, ct_status *s) {
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    if (!meta) return 0;
    for (size_t i = 0; kv && kv[i]; i += 2) {
        if (!kv[i + 1] || strcmp(kv[i], CT_ST_CHECKSUM_KEY) == 0 ||
            cJSON_GetObjectItemCaseSensitive(meta, kv[i])) {
            *s = ct_fail(CT_EINVAL, "%s: metadata key %s is reserved, repeated or has no value", path, kv[i]);
            return 0;
        }
        if (!cJSON_AddStringToObject(meta, kv[i], kv[i + 1])) return 0;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, hash);
    return cJSON_AddStringToObject(meta, CT_ST_CHECKSUM_KEY, hex) != NULL;
}

/* Adds one {"dtype","shape","data_offsets"} entry; numbers are written as raw integers. */
static int add_entry(cJSON *root, const ct_st_tensor *t, uint64_t begin, uint64_t end) {
    char shape[160], offs[64];
    ct_st_shape_str(shape, sizeof shape, t->ndim, t->shape);
    snprintf(offs, sizeof offs, "[%" PRIu64 ", %" PRIu64 "]", begin, end);
    cJSON *e = cJSON_AddObjectToObject(root, t->name);
    return e && cJSON_AddStringToObject(e, "dtype", "F32") && cJSON_AddRawToObject(e, "shape", shape) &&
           cJSON_AddRawToObject(e, "data_offsets", offs);
}

/* Copies text into a new ct_alloc buffer padded with spaces to a multiple of 8 bytes. */
static ct_status pad_header(const char *path, const char *text, char **out, size_t *len) {
    size_t k = strlen(text), padded = (k + 7) / 8 * 8;
    char *buf = ct_alloc(padded + 1, path);
    if (!buf) return CT_ENOMEM;
    memcpy(buf, text, k);
    memset(buf + k, ' ', padded - k);
    buf[padded] = 0;
    *out = buf;
    *len = padded;
    return CT_OK;
}

/* Builds the header JSON recording data hash `hash`, space-padded to a multiple of 8 bytes;
 * *out is from ct_alloc. The hash is 16 hex digits, so the length does not depend on it. */
static ct_status build_header(const char *path, const ct_st_tensor *t, size_t n, const char *const *kv,
                              uint64_t hash, char **out, size_t *len) {
    ct_status s = CT_ENOMEM;
    cJSON *root = cJSON_CreateObject();
    int ok = root && add_meta(path, root, kv, hash, &s);
    uint64_t off = 0, bytes;
    for (size_t i = 0; ok && i < n; i++) {
        tensor_bytes(path, &t[i], &bytes); /* checked by check_tensors */
        ok = add_entry(root, &t[i], off, off + bytes);
        off += bytes;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text && s == CT_ENOMEM) return ct_fail(CT_ENOMEM, "%s: out of memory building the header", path);
    if (!text) return s;
    s = pad_header(path, text, out, len);
    cJSON_free(text);
    return s;
}

/* Writes the 8-byte length and the header. */
static ct_status write_header(ct_atomic_file *f, const char *header, size_t len) {
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (uint8_t)((uint64_t)len >> (8 * i));
    CT_TRY(ct_atomic_write(f, prefix, sizeof prefix));
    return ct_atomic_write(f, header, len);
}

/* Streams the data section: one fetch per tensor, in order, hashed as it is written. */
static ct_status stream_data(ct_atomic_file *f, const char *path, const ct_st_tensor *t, size_t n,
                             ct_st_fetch_fn fetch, void *ctx, uint64_t *hash) {
    XXH64_state_t h;
    XXH64_reset(&h, 0);
    uint64_t bytes;
    for (size_t i = 0; i < n; i++) {
        const float *data = NULL;
        CT_TRY(fetch(ctx, i, &data));
        tensor_bytes(path, &t[i], &bytes); /* checked by check_tensors */
        if (!bytes) continue;
        if (!data) return ct_fail(CT_EINVAL, "%s: tensor %s has no data", path, t[i].name);
        XXH64_update(&h, data, bytes);
        CT_TRY(ct_atomic_write(f, data, bytes));
    }
    *hash = XXH64_digest(&h);
    return CT_OK;
}

/* Replaces the placeholder header (same length) by the one recording the data hash. */
static ct_status rewrite_header(ct_atomic_file *f, const char *path, const ct_st_tensor *t, size_t n,
                                const char *const *kv, uint64_t hash, size_t len) {
    char *header = NULL;
    size_t len2 = 0;
    CT_TRY(build_header(path, t, n, kv, hash, &header, &len2));
    CT_ASSERT(len2 == len);
    ct_status s = ct_atomic_pwrite(f, 8, header, len);
    ct_free(header);
    return s;
}

/* XXH64 of the first size bytes of the temp file, read back from it. */
static ct_status hash_written(ct_atomic_file *f, const char *path, uint64_t size, uint64_t *hash) {
    enum { CHUNK = 1 << 22 };
    uint8_t *buf = ct_alloc(CHUNK, path);
    if (!buf) return CT_ENOMEM;
    XXH64_state_t h;
    XXH64_reset(&h, 0);
    ct_status s = CT_OK;
    for (uint64_t at = 0; s == CT_OK && at < size; at += CHUNK) {
        size_t k = size - at < CHUNK ? (size_t)(size - at) : CHUNK;
        s = ct_atomic_pread(f, at, buf, k);
        if (s == CT_OK) XXH64_update(&h, buf, k);
    }
    ct_free(buf);
    *hash = XXH64_digest(&h);
    return s;
}

/* Writes the whole file into f from the placeholder header (hash 0): header, data, the
 * final header in place of the placeholder; then hashes the result as it lies on disk. */
static ct_status write_body(ct_atomic_file *f, const char *path, const ct_st_tensor *t, size_t n,
                            const char *const *kv, const char *header, size_t len, ct_st_fetch_fn fetch,
                            void *ctx, uint64_t total, uint64_t *file_hash) {
    uint64_t data_hash = 0;
    CT_TRY(write_header(f, header, len));
    CT_TRY(stream_data(f, path, t, n, fetch, ctx, &data_hash));
    CT_TRY(rewrite_header(f, path, t, n, kv, data_hash, len));
    return hash_written(f, path, 8 + len + total, file_hash);
}

ct_status ct_safetensors_write_fetch(const char *path, const ct_st_tensor *tensors, size_t n,
                                     const char *const *meta_kv, ct_st_fetch_fn fetch, void *ctx,
                                     uint64_t *file_bytes, uint64_t *file_xxh64) {
    uint64_t total = 0, hash = 0;
    CT_TRY(check_tensors(path, tensors, n, &total));
    char *header = NULL;
    size_t len = 0;
    CT_TRY(build_header(path, tensors, n, meta_kv, 0, &header, &len));
    ct_atomic_file *f;
    ct_status s = ct_atomic_open(&f, path);
    if (s == CT_OK) {
        s = write_body(f, path, tensors, n, meta_kv, header, len, fetch, ctx, total, &hash);
        if (s == CT_OK) s = ct_atomic_commit(f);
        else
            ct_atomic_abort(f);
    }
    ct_free(header);
    if (s != CT_OK) return s;
    if (file_bytes) *file_bytes = 8 + len + total;
    if (file_xxh64) *file_xxh64 = hash;
    return CT_OK;
}

static ct_status fetch_own_data(void *ctx, size_t i, const float **data) {
    *data = ((const ct_st_tensor *)ctx)[i].data;
    return CT_OK;
}

ct_status ct_safetensors_write(const char *path, const ct_st_tensor *tensors, size_t n,
                               const char *const *meta_kv, uint64_t *file_bytes, uint64_t *file_xxh64) {
    return ct_safetensors_write_fetch(path, tensors, n, meta_kv, fetch_own_data, (void *)tensors, file_bytes,
                                      file_xxh64);
}

ct_status ct_safetensors_save(const char *path, const ct_st_tensor *tensors, size_t n,
                              const char *const *meta_kv) {
    return ct_safetensors_write(path, tensors, n, meta_kv, NULL, NULL);
}

/* ---- reader ---------------------------------------------------------------------------- */

typedef struct st_entry {
    const char *name; /* inside the parsed header */
    int ndim;
    int64_t shape[CT_ST_MAX_DIMS];
    uint64_t begin, end; /* bytes into the data section */
} st_entry;

struct ct_safetensors {
    char *path;
    ct_mapped map;
    cJSON *header;
    const cJSON *meta;
    st_entry *entries;        /* in data order */
    const st_entry **by_name; /* entries sorted by name, for bsearch */
    size_t n;
    const uint8_t *data; /* the data section */
    uint64_t data_size;
};

/* A JSON number that is a non-negative integer <= 2^53. */
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= (double)ST_MAX_DIM) || (double)(uint64_t)d != d) return 0;
    *v = (uint64_t)d;
    return 1;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Reads the length prefix and parses the header JSON. */
static ct_status parse_prefix(ct_safetensors *st) {
    const char *path = st->path;
    size_t size = st->map.size;
    if (size < 8)
        return ct_fail(CT_ECORRUPT,
                       "%s: file is %zu bytes, too short for the 8-byte header "
                       "length (truncated or not a safetensors file)",
                       path, size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)st->map.data[i] << (8 * i);
    if (n > size - 8 || n > ST_MAX_HEADER || n < 2)
        return ct_fail(CT_ECORRUPT,
                       "%s: header length %" PRIu64 " does not fit: the file has "
                       "%zu bytes after the length field, the limit is %llu (truncated or not "
                       "a safetensors file)",
                       path, n, size - 8, ST_MAX_HEADER);
    if ((8 + n) % 4 != 0)
        return ct_fail(CT_ECORRUPT,
                       "%s: header length %" PRIu64 " leaves the data section "
                       "misaligned for float32, expected a multiple of 4",
                       path, n);
    const char *text = (const char *)st->map.data + 8, *end = NULL;
    if (text[0] != '{') return ct_fail(CT_ECORRUPT, "%s: header does not start with '{'", path);
    st->header = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!st->header || !cJSON_IsObject(st->header))
        return ct_fail(CT_ECORRUPT,
                       "%s: header is not a JSON object (error near byte %td of "
                       "%" PRIu64 ")",
                       path, end ? end - text : 0, n);
    for (; end < text + n; end++)
        if (!is_json_space(*end))
            return ct_fail(CT_ECORRUPT,
                           "%s: unexpected byte 0x%02x after the header JSON at "
                           "byte %td",
                           path, (unsigned char)*end, end - text);
    st->data = st->map.data + 8 + n;
    st->data_size = size - 8 - n;
    return CT_OK;
}

static ct_status parse_meta(ct_safetensors *st, const cJSON *m) {
    if (st->meta) return ct_fail(CT_ECORRUPT, "%s: __metadata__ appears twice", st->path);
    if (!cJSON_IsObject(m)) return ct_fail(CT_ECORRUPT, "%s: __metadata__ is not an object", st->path);
    for (const cJSON *kv = m->child; kv; kv = kv->next)
        if (!cJSON_IsString(kv))
            return ct_fail(CT_ECORRUPT, "%s: __metadata__ value of %s is not a string", st->path, kv->string);
    st->meta = m;
    return CT_OK;
}

static ct_status parse_shape(const char *path, const cJSON *j, st_entry *e) {
    int n = cJSON_GetArraySize(j);
    if (!cJSON_IsArray(j) || n > CT_ST_MAX_DIMS)
        return ct_fail(CT_ECORRUPT,
                       "%s: tensor %s: shape is not an array of at most %d "
                       "dimensions",
                       path, e->name, CT_ST_MAX_DIMS);
    e->ndim = n;
    for (int i = 0; i < CT_ST_MAX_DIMS; i++) e->shape[i] = 1;
    int i = 0;
    for (const cJSON *d = j->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return ct_fail(CT_ECORRUPT,
                           "%s: tensor %s: dimension %d is not a non-negative "
                           "integer",
                           path, e->name, i);
        e->shape[i] = (int64_t)v;
    }
    return CT_OK;
}

/* Bytes prod(shape) * 4, or UINT64_MAX when that overflows. */
static uint64_t entry_bytes(const st_entry *e) {
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        uint64_t d = (uint64_t)e->shape[i];
        if (d && numel > ST_MAX_DIM / d) return UINT64_MAX;
        numel *= d;
    }
    return numel * sizeof(float);
}

static ct_status parse_offsets(const ct_safetensors *st, const cJSON *j, st_entry *e) {
    const char *path = st->path;
    if (cJSON_GetArraySize(j) != 2 || !cJSON_IsArray(j) || !json_uint(j->child, &e->begin) ||
        !json_uint(j->child->next, &e->end) || e->begin > e->end)
        return ct_fail(CT_ECORRUPT,
                       "%s: tensor %s: data_offsets is not [begin, end] with "
                       "begin <= end",
                       path, e->name);
    if (e->end > st->data_size)
        return ct_fail(CT_ECORRUPT,
                       "%s: tensor %s ends at byte %" PRIu64 " of the data section "
                       "but the file holds only %" PRIu64 " data bytes (truncated?)",
                       path, e->name, e->end, st->data_size);
    char sh[160];
    uint64_t want = entry_bytes(e);
    if (want != e->end - e->begin)
        return ct_fail(CT_ECORRUPT,
                       "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] hold "
                       "%" PRIu64 " bytes but F32 shape %s needs %" PRIu64,
                       path, e->name, e->begin, e->end, e->end - e->begin,
                       ct_st_shape_str(sh, sizeof sh, e->ndim, e->shape), want);
    return CT_OK;
}

static ct_status parse_entry(const ct_safetensors *st, const cJSON *j, st_entry *e) {
    e->name = j->string;
    if (!cJSON_IsObject(j))
        return ct_fail(CT_ECORRUPT, "%s: tensor %s: entry is not an object", st->path, e->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!cJSON_IsString(dt)) return ct_fail(CT_ECORRUPT, "%s: tensor %s has no dtype", st->path, e->name);
    if (strcmp(dt->valuestring, "F32") != 0)
        return ct_fail(CT_ECORRUPT, "%s: tensor %s has dtype %s, expected F32", st->path, e->name,
                       dt->valuestring);
    CT_TRY(parse_shape(st->path, cJSON_GetObjectItemCaseSensitive(j, "shape"), e));
    return parse_offsets(st, cJSON_GetObjectItemCaseSensitive(j, "data_offsets"), e);
}

static ct_status parse_entries(ct_safetensors *st) {
    size_t n = 0;
    for (const cJSON *j = st->header->child; j; j = j->next) n++;
    st->entries = ct_calloc((n ? n : 1) * sizeof *st->entries, st->path);
    st->by_name = ct_calloc((n ? n : 1) * sizeof *st->by_name, st->path);
    if (!st->entries || !st->by_name) return CT_ENOMEM;
    for (const cJSON *j = st->header->child; j; j = j->next) {
        if (strcmp(j->string, "__metadata__") == 0) CT_TRY(parse_meta(st, j));
        else
            CT_TRY(parse_entry(st, j, &st->entries[st->n++]));
    }
    return CT_OK;
}

static int cmp_offsets(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Sorts entries into data order; they must tile the data section exactly. */
static ct_status check_layout(ct_safetensors *st) {
    qsort(st->entries, st->n, sizeof *st->entries, cmp_offsets);
    uint64_t at = 0;
    for (size_t i = 0; i < st->n; i++) {
        const st_entry *e = &st->entries[i];
        if (e->begin != at)
            return ct_fail(CT_ECORRUPT,
                           "%s: tensor %s starts at data byte %" PRIu64 ", expected "
                           "%" PRIu64 " (%s %s)",
                           st->path, e->name, e->begin, at, e->begin < at ? "overlaps" : "gap after",
                           i ? st->entries[i - 1].name : "the header");
        at = e->end;
    }
    if (at != st->data_size)
        return ct_fail(CT_ECORRUPT,
                       "%s: file is %zu bytes, expected %" PRIu64 ": %" PRIu64 " bytes follow the last tensor",
                       st->path, st->map.size, st->map.size - (st->data_size - at), st->data_size - at);
    return CT_OK;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

static int cmp_key_entry(const void *key, const void *elem) {
    return strcmp(key, (*(const st_entry *const *)elem)->name);
}

static ct_status index_names(ct_safetensors *st) {
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = &st->entries[i];
    qsort(st->by_name, st->n, sizeof *st->by_name, cmp_entry_name);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
            return ct_fail(CT_ECORRUPT, "%s: tensor %s appears twice in the header", st->path,
                           st->by_name[i]->name);
    return CT_OK;
}

/* The first index in w[0..n) whose float is NaN or +-Inf, or n: a max over the magnitudes'
 * bits (one vectorised pass), then a search only when it finds one. */
static size_t first_nonfinite(const uint32_t *w, size_t n) {
    uint32_t most = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t m = w[i] & 0x7fffffffu;
        most = m > most ? m : most;
    }
    if (most < 0x7f800000u) return n;
    size_t i = 0;
    while ((w[i] & 0x7f800000u) != 0x7f800000u) i++;
    return i;
}

/* The data pass: hashes the data section (when hash is set) and finds the first tensor
 * holding a NaN or Inf (*bad, at flat index *at), chunk by chunk, so each chunk is hashed
 * and scanned while it is in cache. */
typedef struct data_scan {
    XXH64_state_t *hash;
    const st_entry *bad;
    uint64_t at;
} data_scan;

static void scan_entry(const ct_safetensors *st, const st_entry *e, data_scan *d) {
    enum { CHUNK = 1 << 16 }; /* bytes */
    for (uint64_t off = e->begin; off < e->end; off += CHUNK) {
        size_t k = (size_t)(e->end - off < CHUNK ? e->end - off : CHUNK);
        if (d->hash) XXH64_update(d->hash, st->data + off, k);
        if (d->bad) continue;
        size_t i = first_nonfinite((const uint32_t *)(const void *)(st->data + off), k / 4);
        if (i < k / 4) {
            d->bad = e;
            d->at = (off - e->begin) / 4 + i;
        }
    }
}

static ct_status nonfinite_error(const ct_safetensors *st, const data_scan *d) {
    const float *x = (const float *)(const void *)(st->data + d->bad->begin);
    char sh[160];
    return ct_fail(CT_ECORRUPT,
                   "%s: tensor %s holds a non-finite value (%s) at flat index %" PRIu64
                   " of shape %s (NaN and Inf are refused)",
                   st->path, d->bad->name,
                   isnan(x[d->at]) ? "NaN"
                   : x[d->at] > 0  ? "+Inf"
                                   : "-Inf",
                   d->at, ct_st_shape_str(sh, sizeof sh, d->bad->ndim, d->bad->shape));
}

/* One pass over the data section: the recorded checksum (when present) and finite values. A
 * checksum mismatch is reported first: a damaged byte is the likelier cause of a NaN. */
static ct_status check_data(const ct_safetensors *st) {
    const char *rec = ct_safetensors_meta(st, CT_ST_CHECKSUM_KEY);
    char *end = NULL;
    unsigned long long want = rec ? strtoull(rec, &end, 16) : 0;
    if (rec && (strlen(rec) != 16 || *end))
        return ct_fail(CT_ECORRUPT, "%s: checksum %s in the header is not 16 hex digits", st->path, rec);
    XXH64_state_t h;
    XXH64_reset(&h, 0);
    data_scan d = {.hash = rec ? &h : NULL, .bad = NULL};
    for (size_t i = 0; i < st->n; i++) scan_entry(st, &st->entries[i], &d);
    uint64_t got = XXH64_digest(&h);
    if (rec && got != want)
        return ct_fail(CT_ECORRUPT,
                       "%s: data checksum mismatch: the data hashes to %016" PRIx64
                       ", the header records %s (corrupt file)",
                       st->path, got, rec);
    return d.bad ? nonfinite_error(st, &d) : CT_OK;
}

ct_status ct_safetensors_open(ct_safetensors **out, const char *path) {
    *out = NULL;
    ct_safetensors *st = ct_calloc(sizeof *st, path);
    if (!st) return CT_ENOMEM;
    if (!(st->path = ct_strdup(path, path))) {
        ct_free(st);
        return CT_ENOMEM;
    }
    ct_status s = ct_map_file(&st->map, path);
    if (s == CT_OK) s = parse_prefix(st);
    if (s == CT_OK) s = parse_entries(st);
    if (s == CT_OK) s = check_layout(st);
    if (s == CT_OK) s = index_names(st);
    if (s == CT_OK) s = check_data(st);
    if (s != CT_OK) {
        ct_safetensors_close(st);
        return s;
    }
    *out = st;
    return CT_OK;
}

void ct_safetensors_close(ct_safetensors *st) {
    if (!st) return;
    cJSON_Delete(st->header);
    ct_unmap_file(&st->map);
    ct_free(st->entries);
    ct_free(st->by_name);
    ct_free(st->path);
    ct_free(st);
}

/* ---- accessors ------------------------------------------------------------------------- */

const char *ct_safetensors_path(const ct_safetensors *st) { return st->path; }
size_t ct_safetensors_count(const ct_safetensors *st) { return st->n; }

static void copy_shape(const st_entry *e, int *ndim, int64_t *shape) {
    if (ndim) *ndim = e->ndim;
    if (shape) memcpy(shape, e->shape, sizeof e->shape);
}

const char *ct_safetensors_name(const ct_safetensors *st, size_t i, int *ndim, int64_t shape[CT_ST_MAX_DIMS]) {
    CT_ASSERT(i < st->n);
    copy_shape(&st->entries[i], ndim, shape);
    return st->entries[i].name;
}

const float *ct_safetensors_find(const ct_safetensors *st, const char *name, int *ndim,
                                 int64_t shape[CT_ST_MAX_DIMS]) {
    const st_entry *const *hit = bsearch(name, st->by_name, st->n, sizeof *st->by_name, cmp_key_entry);
    if (!hit) return NULL;
    copy_shape(*hit, ndim, shape);
    return (const float *)(const void *)(st->data + (*hit)->begin);
}

const char *ct_safetensors_meta(const ct_safetensors *st, const char *key) {
    const cJSON *v = st->meta ? cJSON_GetObjectItemCaseSensitive(st->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const uint8_t *ct_safetensors_bytes(const ct_safetensors *st, size_t *size) {
    if (size) *size = st->map.size;
    return st->map.data;
}
