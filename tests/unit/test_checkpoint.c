/* test_checkpoint.c: the safetensors reader/writer and checkpoint directories: bit-exact
 * round trips, refusal of truncated, corrupt, misshapen and incomplete files (with the file
 * named and the destination untouched), disk-full saves, interrupted saves, "latest", and
 * streaming tensor by tensor (fetch writer, ct_ckpt_io get/put). */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include <xxhash.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static char tmp_root[64];

static void make_root(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/cetus_ckpt_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_root));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_root(void) {
    ct_files_inject_write_failure(-1);
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(char *out, const char *a, const char *b) {
    cr_assert_lt(snprintf(out, 512, "%s/%s", a, b), 512);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void assert_error_names(const char *what) {
    cr_assert(strstr(ct_last_error(), what) != NULL, "error does not name %s: %s", what, ct_last_error());
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* ---- a small model: GPT-2 names, one 4-D tensor, special float values ------------------- */

#define NT 7
typedef struct fixture {
    ct_ckpt_tensor t[NT];
    ct_ckpt_view v;
    size_t n;
} fixture;

static void fx_add(fixture *fx, const char *name, int ndim, int d0, int d1, int d2, int d3) {
    ct_ckpt_tensor *t = &fx->t[fx->v.n_tensors++];
    int d[4] = {d0, d1, d2, d3};
    t->name = name;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = d[i];
        t->numel *= (size_t)d[i];
    }
    t->offset = fx->n;
    fx->n += t->numel;
}

/* vocab = rows of wte.weight; with_adam = 0 makes a weights-only view; skip drops a tensor. */
static void fx_init(fixture *fx, int vocab, int with_adam, const char *skip) {
    memset(fx, 0, sizeof *fx);
    const char *names[NT] = {"wte.weight",           "wpe.weight",
                             "h.0.ln_1.weight",      "h.0.attn.c_attn.weight",
                             "h.0.attn.c_attn.bias", "ln_f.weight",
                             "patch.proj.weight"};
    for (int i = 0; i < NT; i++) {
        if (skip && strcmp(skip, names[i]) == 0) continue;
        if (i == 0) fx_add(fx, names[i], 2, vocab, 16, 0, 0);
        else if (i == 1)
            fx_add(fx, names[i], 2, 32, 16, 0, 0);
        else if (i == 3)
            fx_add(fx, names[i], 2, 16, 48, 0, 0);
        else if (i == 4)
            fx_add(fx, names[i], 1, 48, 0, 0, 0);
        else if (i == 6)
            fx_add(fx, names[i], 4, 4, 2, 3, 3);
        else
            fx_add(fx, names[i], 1, 16, 0, 0, 0);
    }
    fx->v.tensors = fx->t;
    fx->v.num_params = fx->n;
    fx->v.params = calloc(fx->n, sizeof(float));
    fx->v.adam_m = with_adam ? calloc(fx->n, sizeof(float)) : NULL;
    fx->v.adam_v = with_adam ? calloc(fx->n, sizeof(float)) : NULL;
}

static void fx_fill(fixture *fx, uint64_t seed) {
    ct_rng r;
    ct_rng_seed(&r, seed);
    float *bufs[3] = {fx->v.params, fx->v.adam_m, fx->v.adam_v};
    const float special[] = {-0.0f, 3.4e38f, -1.17e-38f,
                             0.0f,  1e-45f,  -3.4e38f}; /* finite: loads refuse others */
    for (int b = 0; b < 3; b++) {
        if (!bufs[b]) continue;
        for (size_t i = 0; i < fx->n; i++) bufs[b][i] = ct_rng_normal(&r);
        for (size_t i = 0; i < 6; i++) bufs[b][i * 7] = special[i];
    }
}

static void fx_poison(fixture *fx) {
    memset(fx->v.params, 0xA5, fx->n * sizeof(float));
    if (fx->v.adam_m) memset(fx->v.adam_m, 0xA5, fx->n * sizeof(float));
    if (fx->v.adam_v) memset(fx->v.adam_v, 0xA5, fx->n * sizeof(float));
}

static void fx_assert_poisoned(const fixture *fx) {
    const unsigned char *bufs[3] = {(void *)fx->v.params, (void *)fx->v.adam_m, (void *)fx->v.adam_v};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; bufs[b] && i < fx->n * sizeof(float); i++)
            cr_assert_eq(bufs[b][i], 0xA5, "buffer %d byte %zu was written by a refused load", b, i);
}

static void fx_assert_equal(const fixture *a, const fixture *b) {
    size_t bytes = a->n * sizeof(float);
    cr_assert_eq(memcmp(a->v.params, b->v.params, bytes), 0, "weights differ");
    if (a->v.adam_m && b->v.adam_m) {
        cr_assert_eq(memcmp(a->v.adam_m, b->v.adam_m, bytes), 0, "exp_avg differs");
        cr_assert_eq(memcmp(a->v.adam_v, b->v.adam_v, bytes), 0, "exp_avg_sq differs");
    }
}

static void fx_free(fixture *fx) {
    free(fx->v.params);
    free(fx->v.adam_m);
    free(fx->v.adam_v);
}

static cJSON *state_for(int step) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "step", step);
    cJSON_AddStringToObject(s, "rng", "0123456789abcdef:fedcba9876543210");
    cJSON_AddNumberToObject(s, "data_pos", 123456.5);
    cJSON *cfg = cJSON_AddObjectToObject(s, "config");
    cJSON_AddNumberToObject(cfg, "lr", 3e-4);
    cJSON_AddStringToObject(cfg, "name", "tiny \"quoted\" \xc3\xa9");
    return s;
}

/* Saves fixture (seeded) + state(step) as dir; returns the state saved. */
static void save_ok(const char *dir, fixture *fx, int step) {
    cJSON *st = state_for(step);
    ct_status s = ct_checkpoint_save(dir, &fx->v, st);
    cr_assert_eq(s, CT_OK, "save failed: %s", ct_last_error());
    cJSON_Delete(st);
}

/* Loads dir into a fresh full fixture, expecting the content of src and state step. */
static void assert_loads_as(const char *dir, const fixture *src, int step) {
    fixture got;
    fx_init(&got, 64, src->v.adam_m != NULL, NULL);
    fx_poison(&got);
    cJSON *st = NULL;
    cr_assert_eq(ct_checkpoint_load(dir, &got.v, &st), CT_OK, "load failed: %s", ct_last_error());
    fx_assert_equal(src, &got);
    cJSON *want = state_for(step);
    cr_assert(cJSON_Compare(st, want, 1), "trainer state differs: %s", cJSON_PrintUnformatted(st));
    cJSON_Delete(want);
    cJSON_Delete(st);
    fx_free(&got);
}

/* Expects a load of dir into a poisoned full fixture to fail, naming what. */
static void assert_refused(const char *dir, const char *what) {
    fixture got;
    fx_init(&got, 64, 1, NULL);
    fx_poison(&got);
    cJSON *st = NULL;
    ct_status s = ct_checkpoint_load(dir, &got.v, &st);
    cr_assert_neq(s, CT_OK, "load of a bad checkpoint succeeded (%s)", what);
    cr_assert_null(st);
    assert_error_names(what);
    fx_assert_poisoned(&got);
    fx_free(&got);
}

/* ---- safetensors ------------------------------------------------------------------------ */

TestSuite(safetensors, .init = make_root, .fini = remove_root);
TestSuite(checkpoint, .init = make_root, .fini = remove_root);

Test(safetensors, round_trip_with_metadata) {
    char path[512];
    path_in(path, tmp_root, "a.safetensors");
    float a[6] = {1, 2, 3, 4, 5, 6}, s = -2.5f, quad[2 * 1 * 2 * 3];
    for (int i = 0; i < 12; i++) quad[i] = (float)i / 8;
    ct_st_tensor t[] = {{"a", 2, {2, 3}, a},
                        {"scalar", 0, {0}, &s},
                        {"empty", 2, {0, 5}, NULL},
                        {"quad", 4, {2, 1, 2, 3}, quad}};
    const char *meta[] = {"format", "pt", "note", "hello", NULL};
    cr_assert_eq(ct_safetensors_save(path, t, 4, meta), CT_OK, "%s", ct_last_error());

    ct_safetensors *st;
    cr_assert_eq(ct_safetensors_open(&st, path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_safetensors_count(st), 4);
    cr_assert_str_eq(ct_safetensors_name(st, 0, NULL, NULL), "a");
    cr_assert_str_eq(ct_safetensors_meta(st, "note"), "hello");
    cr_assert_not_null(ct_safetensors_meta(st, "cetus.xxh64"));
    cr_assert_null(ct_safetensors_meta(st, "nope"));
    cr_assert_null(ct_safetensors_find(st, "nope", NULL, NULL));
    int nd;
    int64_t sh[4];
    const float *p = ct_safetensors_find(st, "a", &nd, sh);
    cr_assert(nd == 2 && sh[0] == 2 && sh[1] == 3 && memcmp(p, a, sizeof a) == 0);
    p = ct_safetensors_find(st, "scalar", &nd, sh);
    cr_assert(nd == 0 && *p == -2.5f);
    p = ct_safetensors_find(st, "quad", &nd, sh);
    cr_assert(nd == 4 && sh[3] == 3 && memcmp(p, quad, sizeof quad) == 0);
    cr_assert_not_null(ct_safetensors_find(st, "empty", &nd, sh));
    cr_assert(nd == 2 && sh[0] == 0 && sh[1] == 5);
    size_t size;
    const uint8_t *b = ct_safetensors_bytes(st, &size);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    cr_assert_eq(hlen % 8, 0, "header not padded to 8");
    cr_assert_eq(size, 8 + hlen + sizeof a + sizeof s + sizeof quad);
    ct_safetensors_close(st);
}

Test(safetensors, writer_refuses_bad_input) {
    char path[512];
    path_in(path, tmp_root, "bad.safetensors");
    float x = 1;
    ct_st_tensor dup[] = {{"x", 1, {1}, &x}, {"x", 1, {1}, &x}};
    cr_assert_eq(ct_safetensors_save(path, dup, 2, NULL), CT_EINVAL);
    assert_error_names("appears twice");
    ct_st_tensor five[] = {{"x", 5, {1, 1, 1, 1}, &x}};
    cr_assert_eq(ct_safetensors_save(path, five, 1, NULL), CT_EINVAL);
    const char *meta[] = {"cetus.xxh64", "0", NULL};
    cr_assert_eq(ct_safetensors_save(path, dup, 1, meta), CT_EINVAL);
    cr_assert_neq(access(path, F_OK), 0, "a refused save left a file");
}

/* Writes a file from a header string and n data bytes (value 0x3f). */
static void craft(const char *path, const char *header, size_t pad_to, size_t data) {
    size_t k = strlen(header), n = pad_to > k ? pad_to : k;
    unsigned char *b = malloc(8 + n + data);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memset(b + 8, ' ', n);
    memcpy(b + 8, header, k);
    memset(b + 8 + n, 0x3f, data);
    write_all(path, b, 8 + n + data);
    free(b);
}

static void assert_open_refused(const char *path, const char *what) {
    ct_safetensors *st = (void *)1;
    ct_status s = ct_safetensors_open(&st, path);
    cr_assert_eq(s, CT_ECORRUPT, "accepted (%s): %s", what, ct_last_error());
    cr_assert_null(st);
    assert_error_names(path);
    assert_error_names(what);
}

Test(safetensors, reader_refuses_malformed_files) {
    char p[512];
    path_in(p, tmp_root, "m.safetensors");
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    craft(p, ok, 64, 8);
    ct_safetensors *st;
    cr_assert_eq(ct_safetensors_open(&st, p), CT_OK, "%s", ct_last_error());
    ct_safetensors_close(st);
    craft(p, "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 64, 8);
    assert_open_refused(p, "dtype F16, expected F32");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 64, 8);
    assert_open_refused(p, "needs 12");
    craft(p,
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
          128, 8);
    assert_open_refused(p, "overlaps");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 64, 8);
    assert_open_refused(p, "gap");
    craft(p, ok, 64, 12);
    assert_open_refused(p, "follow the last tensor");
    craft(p, ok, 64, 4);
    assert_open_refused(p, "truncated");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 64, 8);
    assert_open_refused(p, "not a JSON object");
    craft(p, "{\"__metadata__\":{\"k\":1}}", 64, 0);
    assert_open_refused(p, "not a string");
    craft(p,
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
          128, 8);
    assert_open_refused(p, "appears twice");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 64, 4);
    assert_open_refused(p, "dimension 0");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 64, 4);
    assert_open_refused(p, "at most 4");
    craft(p, "{}", 6, 0); /* 8 + 6 bytes: data would start misaligned */
    assert_open_refused(p, "misaligned");
    craft(p, "{\"__metadata__\":{\"cetus.xxh64\":\"0000000000000000\"}}", 64, 0);
    assert_open_refused(p, "checksum mismatch");
    write_all(p, "\xff\xff\xff\x7f\0\0\0\0{}", 10);
    assert_open_refused(p, "header length");
    write_all(p, "abc", 3);
    assert_open_refused(p, "too short");
    path_in(p, tmp_root, "missing.safetensors");
    cr_assert_eq(ct_safetensors_open(&st, p), CT_EIO);
    assert_error_names(p);
}

Test(safetensors, every_truncation_and_data_flip_is_refused) {
    char p[512];
    path_in(p, tmp_root, "t.safetensors");
    float a[40];
    for (int i = 0; i < 40; i++) a[i] = (float)i * 0.5f;
    ct_st_tensor t[] = {{"a", 2, {4, 10}, a}};
    cr_assert_eq(ct_safetensors_save(p, t, 1, NULL), CT_OK);
    size_t n;
    unsigned char *orig = read_all(p, &n);
    for (size_t cut = 0; cut < n; cut++) {
        write_all(p, orig, cut);
        ct_safetensors *st;
        cr_assert_eq(ct_safetensors_open(&st, p), CT_ECORRUPT, "cut at %zu accepted", cut);
        assert_error_names(p);
    }
    size_t data0 = n - sizeof a;
    for (size_t i = data0; i < n; i++) {
        orig[i] ^= 0x10;
        write_all(p, orig, n);
        orig[i] ^= 0x10;
        assert_open_refused(p, "checksum mismatch");
    }
    free(orig);
}

/* A fetch over a table of sources: each tensor is copied into one scratch buffer that every
 * call overwrites (as a per-tensor gather would); the calls are recorded. */
typedef struct fetch_rec {
    const float *const *src;
    const size_t *numel;
    float scratch[16];
    size_t calls, order[8];
    size_t fail_at, null_at; /* fail / hand out NULL at this call (SIZE_MAX: never) */
} fetch_rec;

static ct_status rec_fetch(void *ctx, size_t i, const float **data) {
    fetch_rec *r = ctx;
    cr_assert_lt(r->calls, 8);
    r->order[r->calls] = i;
    if (r->calls == r->fail_at) {
        r->calls++;
        return ct_fail(CT_EIO, "fetch %zu failed", i);
    }
    if (r->calls++ == r->null_at) {
        *data = NULL;
        return CT_OK;
    }
    if (r->numel[i]) memcpy(r->scratch, r->src[i], r->numel[i] * sizeof(float));
    *data = r->scratch;
    return CT_OK;
}

static fetch_rec fetch_rec_for(const float *const *src, const size_t *numel) {
    fetch_rec r = {.src = src, .numel = numel, .fail_at = SIZE_MAX, .null_at = SIZE_MAX};
    return r;
}

Test(safetensors, write_fetch_streams_each_tensor_once) {
    char p[512], q[512], tmp[600];
    path_in(p, tmp_root, "f.safetensors");
    path_in(q, tmp_root, "w.safetensors");
    float a[6] = {1, 2, 3, 4, -0.0f, 1e-45f}, s = -2.5f, quad[12];
    for (int i = 0; i < 12; i++) quad[i] = (float)i / 8;
    const float *src[] = {a, &s, NULL, quad};
    const size_t numel[] = {6, 1, 0, 12};
    ct_st_tensor t[] = {{"a", 2, {2, 3}, a},
                        {"scalar", 0, {0}, &s},
                        {"empty", 2, {0, 5}, NULL},
                        {"quad", 4, {2, 1, 2, 3}, quad}};
    ct_st_tensor bare[4];
    memcpy(bare, t, sizeof t);
    for (int i = 0; i < 4; i++) bare[i].data = NULL; /* ignored by the fetch writer */
    const char *meta[] = {"format", "pt", NULL};
    fetch_rec r = fetch_rec_for(src, numel);
    uint64_t bytes = 0, hash = 0, bytes2 = 0, hash2 = 0;
    cr_assert_eq(ct_safetensors_write_fetch(p, bare, 4, meta, rec_fetch, &r, &bytes, &hash), CT_OK, "%s",
                 ct_last_error());
    cr_assert_eq(r.calls, 4);
    for (size_t i = 0; i < 4; i++) cr_assert_eq(r.order[i], i, "fetch out of order");
    /* the same bytes as the buffer writer; size and hash are the final file's */
    cr_assert_eq(ct_safetensors_write(q, t, 4, meta, &bytes2, &hash2), CT_OK);
    size_t n, n2;
    unsigned char *got = read_all(p, &n), *want = read_all(q, &n2);
    cr_assert(n == n2 && memcmp(got, want, n) == 0, "fetch and buffer writers differ");
    cr_assert(bytes == n && bytes2 == n && hash == XXH64(got, n, 0) && hash2 == hash);
    /* the header records the data section's hash, which the reader verifies */
    ct_safetensors *st;
    cr_assert_eq(ct_safetensors_open(&st, p), CT_OK, "%s", ct_last_error());
    size_t data_bytes = sizeof a + sizeof s + sizeof quad;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH64(got + n - data_bytes, data_bytes, 0));
    cr_assert_str_eq(ct_safetensors_meta(st, "cetus.xxh64"), hex);
    cr_assert_eq(memcmp(ct_safetensors_find(st, "quad", NULL, NULL), quad, sizeof quad), 0);
    cr_assert_eq(memcmp(ct_safetensors_find(st, "a", NULL, NULL), a, sizeof a), 0);
    ct_safetensors_close(st);
    /* a failing fetch returns its status and leaves the existing file alone */
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    for (size_t k = 0; k < 4; k++) {
        r = fetch_rec_for(src, numel);
        r.fail_at = k;
        cr_assert_eq(ct_safetensors_write_fetch(p, bare, 4, meta, rec_fetch, &r, NULL, NULL), CT_EIO);
        assert_error_names("failed");
        cr_assert_eq(r.calls, k + 1, "fetch called after it failed");
        cr_assert_neq(access(tmp, F_OK), 0, "a failed write left its temp file");
        free(got);
        got = read_all(p, &n2);
        cr_assert(n2 == n && memcmp(got, want, n) == 0, "a failed write changed the file");
    }
    r = fetch_rec_for(src, numel);
    r.null_at = 3;
    cr_assert_eq(ct_safetensors_write_fetch(p, bare, 4, meta, rec_fetch, &r, NULL, NULL), CT_EINVAL);
    assert_error_names("tensor quad has no data");
    free(got);
    free(want);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

Test(checkpoint, round_trip_is_bit_exact) {
    char dir[512], latest[512];
    path_in(dir, tmp_root, "ck");
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 1);
    save_ok(dir, &fx, 100);
    assert_loads_as(dir, &fx, 100);
    cJSON *st = NULL, *want = state_for(100);
    cr_assert_eq(ct_checkpoint_read_state(dir, &st), CT_OK, "%s", ct_last_error());
    cr_assert(cJSON_Compare(st, want, 1));
    cJSON_Delete(st);
    cJSON_Delete(want);
    cr_assert_eq(ct_checkpoint_latest(tmp_root, latest, sizeof latest), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(latest, dir);
    cr_assert_eq(count_entries(tmp_root), 2, "leftover temporaries next to the checkpoint");
    cr_assert_eq(count_entries(dir), 3);
    /* saving again over it replaces it and leaves nothing behind */
    fx_fill(&fx, 2);
    save_ok(dir, &fx, 200);
    assert_loads_as(dir, &fx, 200);
    cr_assert_eq(count_entries(tmp_root), 2);
    /* the model file carries Hugging Face's "format": "pt" */
    char mp[512];
    path_in(mp, dir, "model.safetensors");
    ct_safetensors *sf;
    cr_assert_eq(ct_safetensors_open(&sf, mp), CT_OK);
    cr_assert_str_eq(ct_safetensors_meta(sf, "format"), "pt");
    cr_assert_eq(ct_safetensors_count(sf), NT);
    ct_safetensors_close(sf);
    fx_free(&fx);
}

Test(checkpoint, truncated_files_are_refused) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "ck");
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 3);
    save_ok(dir, &fx, 1);
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer.json"};
    for (int f = 0; f < 3; f++) {
        path_in(p, dir, files[f]);
        size_t n;
        unsigned char *orig = read_all(p, &n);
        /* trainer.json without its final newline is still the same content */
        size_t cuts[] = {0, 1, 7, 8, 9, 64, n / 3, n / 2, n - 5, f == 2 ? n - 2 : n - 1};
        for (int c = 0; c < 10; c++) {
            write_all(p, orig, cuts[c]);
            assert_refused(dir, files[f]);
        }
        write_all(p, orig, n);
        free(orig);
    }
    assert_loads_as(dir, &fx, 1);
    fx_free(&fx);
}

/* Flips each byte at i = start, start + step, ... < end (low bit) and expects refusal. */
static void flip_range(const char *dir, const char *file, size_t start, size_t end, size_t step,
                       int skip_space) {
    char p[512];
    path_in(p, dir, file);
    size_t n;
    unsigned char *b = read_all(p, &n);
    if (end > n) end = n;
    for (size_t i = start; i < end; i += step) {
        if (skip_space && b[i] <= ' ') continue; /* JSON whitespace: same content */
        b[i] ^= 1;
        write_all(p, b, n);
        b[i] ^= 1;
        assert_refused(dir, file);
    }
    write_all(p, b, n);
    free(b);
}

Test(checkpoint, flipped_bytes_are_refused) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "ck");
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 4);
    save_ok(dir, &fx, 7);
    path_in(p, dir, "model.safetensors");
    size_t n;
    free(read_all(p, &n));
    size_t header_end = n - fx.n * sizeof(float);
    flip_range(dir, "model.safetensors", 0, header_end, 1, 0);  /* every header byte */
    flip_range(dir, "model.safetensors", header_end, n, 61, 0); /* data bytes */
    flip_range(dir, "optimizer.safetensors", 0, SIZE_MAX, 97, 0);
    flip_range(dir, "trainer.json", 0, SIZE_MAX, 1, 1); /* every non-blank byte */
    assert_loads_as(dir, &fx, 7);
    char tj[512];
    path_in(tj, dir, "trainer.json");
    unsigned char *b = read_all(tj, &n);
    char *digit = strstr((char *)b, "\"step\":\t7");
    cr_assert_not_null(digit);
    digit[8] = '8';
    write_all(tj, b, n);
    cJSON *st = NULL;
    cr_assert_eq(ct_checkpoint_read_state(dir, &st), CT_ECORRUPT);
    cr_assert_null(st);
    assert_error_names("trainer.json: checksum mismatch");
    free(b);
    fx_free(&fx);
}

Test(checkpoint, wrong_shape_names_tensor_and_shapes) {
    char dir[512];
    path_in(dir, tmp_root, "ck");
    fixture small, got;
    fx_init(&small, 50, 1, NULL); /* an embedding with fewer rows than the model's 64 */
    fx_fill(&small, 5);
    save_ok(dir, &small, 1);
    fx_init(&got, 64, 1, NULL);
    fx_poison(&got);
    cr_assert_eq(ct_checkpoint_load(dir, &got.v, NULL), CT_ECORRUPT);
    assert_error_names("model.safetensors: tensor wte.weight has shape [50, 16], expected [64, 16]");
    fx_assert_poisoned(&got);
    cr_assert_eq(ct_checkpoint_load_weights(dir, &got.v), CT_ECORRUPT);
    assert_error_names("wte.weight");
    fx_assert_poisoned(&got);
    fx_free(&small);
    fx_free(&got);
}

Test(checkpoint, missing_and_extra_tensors_are_refused) {
    char dir[512];
    path_in(dir, tmp_root, "ck");
    fixture part, full;
    fx_init(&part, 64, 1, "ln_f.weight");
    fx_fill(&part, 6);
    save_ok(dir, &part, 1);
    assert_refused(dir, "model.safetensors: tensor ln_f.weight is missing (expected shape [16])");
    fx_init(&full, 64, 1, NULL);
    fx_fill(&full, 6);
    save_ok(dir, &full, 1);
    fx_poison(&part);
    cr_assert_eq(ct_checkpoint_load(dir, &part.v, NULL), CT_ECORRUPT);
    assert_error_names("model.safetensors: unexpected tensor ln_f.weight");
    fx_assert_poisoned(&part);
    fx_free(&part);
    fx_free(&full);
}

Test(checkpoint, missing_files_are_refused) {
    char dir[512], p[512], q[512];
    path_in(dir, tmp_root, "ck");
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 7);
    save_ok(dir, &fx, 1);
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer.json"};
    for (int f = 0; f < 3; f++) {
        path_in(p, dir, files[f]);
        path_in(q, tmp_root, "aside");
        cr_assert_eq(rename(p, q), 0);
        assert_refused(dir, files[f]);
        cr_assert_eq(rename(q, p), 0);
    }
    /* the weights alone load without the optimizer file */
    path_in(p, dir, "optimizer.safetensors");
    cr_assert_eq(unlink(p), 0);
    fixture got;
    fx_init(&got, 64, 1, NULL);
    fx_poison(&got);
    cr_assert_eq(ct_checkpoint_load_weights(dir, &got.v), CT_OK, "%s", ct_last_error());
    cr_assert_eq(memcmp(got.v.params, fx.v.params, fx.n * sizeof(float)), 0);
    path_in(p, tmp_root, "nothing");
    assert_refused(p, "nothing does not exist");
    fx_free(&fx);
    fx_free(&got);
}

Test(checkpoint, weights_only_checkpoint) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "w");
    fixture fx, got;
    fx_init(&fx, 64, 0, NULL);
    fx_fill(&fx, 8);
    save_ok(dir, &fx, 3);
    path_in(p, dir, "optimizer.safetensors");
    cr_assert_neq(access(p, F_OK), 0, "a weights-only save wrote optimizer state");
    assert_refused(dir, "no record of optimizer.safetensors");
    assert_loads_as(dir, &fx, 3);
    /* a bare .safetensors file loads as weights */
    path_in(p, dir, "model.safetensors");
    fx_init(&got, 64, 0, NULL);
    fx_poison(&got);
    cr_assert_eq(ct_checkpoint_load_weights(p, &got.v), CT_OK, "%s", ct_last_error());
    fx_assert_equal(&fx, &got);
    fx_free(&fx);
    fx_free(&got);
}

Test(checkpoint, non_finite_weights_and_moments_are_refused_naming_the_tensor) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "nan");
    fixture fx, got;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 9);
    const ct_ckpt_tensor *attn = &fx.t[3]; /* h.0.attn.c_attn.weight [16, 48] */
    fx.v.params[attn->offset + 100] = NAN; /* a diverged run saves whatever it holds */
    save_ok(dir, &fx, 5);
    path_in(p, dir, "model.safetensors");
    assert_refused(dir, p);
    assert_error_names("tensor h.0.attn.c_attn.weight holds a non-finite value (NaN) at flat index 100");
    fx_init(&got, 64, 0, NULL);
    fx_poison(&got);
    cr_assert_neq(ct_checkpoint_load_weights(dir, &got.v), CT_OK, "weights with a NaN loaded");
    assert_error_names("h.0.attn.c_attn.weight");
    fx_assert_poisoned(&got);
    /* the moments too: an Inf in exp_avg_sq fails a resume but not a weights-only load */
    fx.v.params[attn->offset + 100] = 0.5f;
    fx.v.adam_v[fx.t[0].offset + 7] = -INFINITY;
    save_ok(dir, &fx, 6);
    path_in(p, dir, "optimizer.safetensors");
    assert_refused(dir, p);
    assert_error_names("tensor wte.weight.exp_avg_sq holds a non-finite value (-Inf) at flat index 7");
    cr_assert_eq(ct_checkpoint_load_weights(dir, &got.v), CT_OK, "%s", ct_last_error());
    cr_assert_eq(got.v.params[attn->offset + 100], 0.5f);
    fx_free(&fx);
    fx_free(&got);
}

static void counting_put(void *ctx, size_t i, int b, const float *data) {
    (void)i, (void)b, (void)data;
    (*(int *)ctx)++;
}

Test(checkpoint, check_verifies_without_handing_anything_over) {
    char dir[512], w[512];
    path_in(dir, tmp_root, "chk");
    path_in(w, tmp_root, "weights");
    fixture fx, bare;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 10);
    save_ok(dir, &fx, 1);
    fx_free(&fx);
    fx_init(&fx, 64, 0, NULL);
    fx_fill(&fx, 11);
    save_ok(w, &fx, 2);
    int puts = 0, has_optim = -1;
    ct_ckpt_io io = {NULL, counting_put, &puts};
    fx_init(&bare, 64, 0, NULL);
    bare.v.io = &io;
    bare.v.moments = 0;
    cr_assert_eq(ct_checkpoint_check(dir, &bare.v, &has_optim), CT_OK, "%s", ct_last_error());
    cr_assert_eq(has_optim, 1, "the optimizer file was not checked");
    cr_assert_eq(ct_checkpoint_check(w, &bare.v, &has_optim), CT_OK, "%s", ct_last_error());
    cr_assert_eq(has_optim, 0);
    cr_assert_eq(puts, 0, "a check handed tensors over");
    fx_free(&fx);
    fx_init(&fx, 32, 0, NULL); /* another vocabulary: wte.weight's shape differs */
    fx.v.io = &io;
    cr_assert_eq(ct_checkpoint_check(dir, &fx.v, &has_optim), CT_ECORRUPT);
    assert_error_names("wte.weight has shape [64, 16], expected [32, 16]");
    path_in(w, tmp_root, "nowhere");
    cr_assert_eq(ct_checkpoint_check(w, &bare.v, &has_optim), CT_EIO, "a missing checkpoint passed");
    assert_error_names(w);
    fx_free(&fx);
    fx_free(&bare);
}

/* Two full fixtures (weights and moments) with different contents: seed and seed + 1. */
static void fx_pair(fixture *a, fixture *b, int seed) {
    fx_init(a, 64, 1, NULL);
    fx_init(b, 64, 1, NULL);
    fx_fill(a, seed);
    fx_fill(b, seed + 1);
}

Test(checkpoint, disk_full_keeps_the_previous_checkpoint) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "ck");
    fixture a, b;
    fx_pair(&a, &b, 9);
    save_ok(dir, &a, 1);
    size_t total = 0, n;
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer.json"};
    for (int f = 0; f < 3; f++) {
        path_in(p, dir, files[f]);
        free(read_all(p, &n));
        total += n;
    }
    long long offsets[] = {0,
                           1,
                           7,
                           8,
                           9,
                           100,
                           (long long)total / 4,
                           (long long)total / 2,
                           (long long)total - 300,
                           (long long)total - 1};
    for (int k = 0; k < 10; k++) {
        ct_files_inject_write_failure(offsets[k]);
        cJSON *st = state_for(2);
        ct_status s = ct_checkpoint_save(dir, &b.v, st);
        cJSON_Delete(st);
        ct_files_inject_write_failure(-1);
        cr_assert_eq(s, CT_EIO, "save with a full disk at byte %lld succeeded", offsets[k]);
        assert_error_names("No space left on device");
        assert_error_names(dir);
        assert_loads_as(dir, &a, 1);
        cr_assert_eq(count_entries(tmp_root), 2, "a failed save left files behind (%lld)", offsets[k]);
    }
    /* with room for the three files but not the pointer, the new checkpoint is complete */
    ct_files_inject_write_failure((long long)total);
    cJSON *st = state_for(2);
    cr_assert_eq(ct_checkpoint_save(dir, &b.v, st), CT_EIO);
    ct_files_inject_write_failure(-1);
    cJSON_Delete(st);
    assert_error_names("latest");
    assert_loads_as(dir, &b, 2);
    fx_free(&a);
    fx_free(&b);
}

Test(checkpoint, interrupted_swap_is_recovered) {
    char dir[512], other[512], old[512], tmp[512], latest[512];
    path_in(dir, tmp_root, "ck");
    path_in(other, tmp_root, "other");
    path_in(old, tmp_root, "ck.old-123");
    path_in(tmp, tmp_root, "ck.tmp-124");
    fixture a, b, c;
    fx_init(&a, 64, 1, NULL);
    fx_init(&b, 64, 1, NULL);
    fx_init(&c, 64, 1, NULL);
    fx_fill(&a, 11);
    fx_fill(&b, 12);
    fx_fill(&c, 13);
    save_ok(dir, &a, 1);
    save_ok(other, &b, 2);
    /* the process died after moving the old one aside, before moving the new one in */
    cr_assert_eq(rename(dir, old), 0);
    cr_assert_eq(rename(other, tmp), 0);
    assert_loads_as(dir, &b, 2);
    /* an incomplete new copy (no trainer.json) is ignored: the old one is found */
    path_in(latest, tmp, "trainer.json");
    cr_assert_eq(unlink(latest), 0);
    assert_loads_as(dir, &a, 1);
    char ptr[512], out[512];
    path_in(ptr, tmp_root, "latest");
    write_all(ptr, "ck\n", 3);
    cr_assert_eq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(out, dir);
    /* the next save puts a checkpoint in place and removes the leftovers */
    save_ok(dir, &c, 3);
    assert_loads_as(dir, &c, 3);
    cr_assert_neq(access(old, F_OK), 0);
    cr_assert_neq(access(tmp, F_OK), 0);
    cr_assert_eq(count_entries(tmp_root), 2);
    fx_free(&a);
    fx_free(&b);
    fx_free(&c);
}

Test(checkpoint, killed_saves_leave_a_complete_checkpoint) {
    char dir[512], out[512];
    path_in(dir, tmp_root, "ck");
    fixture a, b;
    fx_init(&a, 64, 1, NULL);
    fx_init(&b, 64, 1, NULL);
    fx_fill(&a, 15);
    fx_fill(&b, 16);
    save_ok(dir, &a, 1);
    for (int k = 0; k < 40; k++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) { /* saves a and b alternately until killed */
            for (int i = k;; i++) {
                cJSON *st = state_for(i % 2 ? 1 : 2);
                ct_checkpoint_save(dir, i % 2 ? &a.v : &b.v, st);
                cJSON_Delete(st);
            }
        }
        struct timespec ts = {0, 1000000L * (k * 37 % 60 + 1)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_eq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_OK, "%s", ct_last_error());
        fixture got;
        fx_init(&got, 64, 1, NULL);
        cJSON *st = NULL;
        cr_assert_eq(ct_checkpoint_load(dir, &got.v, &st), CT_OK, "kill %d: %s", k, ct_last_error());
        int step = (int)cJSON_GetObjectItem(st, "step")->valuedouble;
        fx_assert_equal(step == 1 ? &a : &b, &got);
        cJSON_Delete(st);
        fx_free(&got);
    }
    fx_free(&a);
    fx_free(&b);
}

Test(checkpoint, refuses_to_replace_a_foreign_directory) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "precious");
    cr_assert_eq(mkdir(dir, 0755), 0);
    path_in(p, dir, "notes.txt");
    write_all(p, "keep me", 7);
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    cr_assert_eq(ct_checkpoint_save(dir, &fx.v, NULL), CT_EINVAL);
    assert_error_names("is not a checkpoint");
    cr_assert_eq(access(p, F_OK), 0);
    cr_assert_eq(ct_checkpoint_save(tmp_root, &fx.v, NULL), CT_EINVAL);
    assert_error_names("is not a checkpoint");
    cr_assert_eq(ct_checkpoint_save("/", &fx.v, NULL), CT_EINVAL);
    cr_assert_eq(ct_checkpoint_save(".", &fx.v, NULL), CT_EINVAL);
    cr_assert_eq(access(p, F_OK), 0);
    fx_free(&fx);
}

Test(checkpoint, latest_pointer) {
    char d1[512], d2[512], p[512], out[512];
    path_in(d1, tmp_root, "step_1");
    path_in(d2, tmp_root, "step_2");
    path_in(p, tmp_root, "latest");
    cr_assert_eq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_EIO);
    assert_error_names(p);
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 14);
    save_ok(d1, &fx, 1);
    cr_assert_eq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_OK);
    cr_assert_str_eq(out, d1);
    save_ok(d2, &fx, 2);
    cr_assert_eq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_OK);
    cr_assert_str_eq(out, d2);
    assert_loads_as(out, &fx, 2);
    cr_assert_eq(ct_checkpoint_latest(tmp_root, out, 8), CT_EINVAL);
    write_all(p, "../etc\n", 7);
    cr_assert_eq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_ECORRUPT);
    assert_error_names(p);
    write_all(p, "step_9\n", 7);
    cr_assert_neq(ct_checkpoint_latest(tmp_root, out, sizeof out), CT_OK);
    assert_error_names("step_9");
    fx_free(&fx);
}

/* ---- tensor-by-tensor io ---------------------------------------------------------------- */

static float *fx_buffer(const fixture *fx, int b) {
    return b == 0 ? fx->v.params : b == 1 ? fx->v.adam_m : fx->v.adam_v;
}

/* An io over fixtures: get hands out src's tensors through one scratch buffer that every
 * call overwrites (as a gather of one tensor would), put copies into dst's buffers; both
 * record their calls. */
typedef struct io_rec {
    ct_ckpt_io io;
    const fixture *src;
    fixture *dst;
    float *scratch;
    size_t calls, order[3 * NT][2], fail_at;
    int seen[NT][3];
} io_rec;

static void rec_call(io_rec *r, size_t i, int b) {
    cr_assert_lt(r->calls, 3 * NT, "more than one call per (tensor, buffer)");
    cr_assert(i < NT && b >= 0 && b < 3);
    r->order[r->calls][0] = i;
    r->order[r->calls][1] = (size_t)b;
    r->seen[i][b]++;
    r->calls++;
}

static ct_status rec_get(void *ctx, size_t i, int b, const float **data) {
    io_rec *r = ctx;
    rec_call(r, i, b);
    if (r->calls - 1 == r->fail_at) return ct_fail(CT_EIO, "gather of tensor %zu failed", i);
    const ct_ckpt_tensor *t = &r->src->t[i];
    memcpy(r->scratch, fx_buffer(r->src, b) + t->offset, t->numel * sizeof(float));
    *data = r->scratch;
    return CT_OK;
}

static void rec_put(void *ctx, size_t i, int b, const float *data) {
    io_rec *r = ctx;
    rec_call(r, i, b);
    const ct_ckpt_tensor *t = &r->dst->t[i];
    memcpy(fx_buffer(r->dst, b) + t->offset, data, t->numel * sizeof(float));
}

/* Starts r (calls zeroed) and returns a view of fx's tensor table that moves data only
 * through r: no buffers, no num_params. */
static ct_ckpt_view io_view(io_rec *r, const fixture *src, fixture *dst, int moments) {
    free(r->scratch);
    memset(r, 0, sizeof *r);
    r->io = (ct_ckpt_io){rec_get, rec_put, r};
    r->src = src;
    r->dst = dst;
    r->scratch = calloc(src ? src->n : 1, sizeof(float));
    r->fail_at = SIZE_MAX;
    const fixture *fx = src ? src : dst;
    return (ct_ckpt_view){fx->t, fx->v.n_tensors, 0, NULL, NULL, NULL, &r->io, moments, NULL, 0};
}

/* The calls were exactly b = 0..nbuf-1 in turn, i = 0..NT-1 within each. */
static void assert_order(const io_rec *r, int nbuf) {
    cr_assert_eq(r->calls, (size_t)nbuf * NT, "%zu calls, expected %d", r->calls, nbuf * NT);
    for (size_t k = 0; k < r->calls; k++)
        cr_assert(r->order[k][0] == k % NT && r->order[k][1] == k / NT, "call %zu was (i %zu, b %zu)", k,
                  r->order[k][0], r->order[k][1]);
}

static void assert_same_file(const char *d1, const char *d2, const char *file) {
    char p[512], q[512];
    path_in(p, d1, file);
    path_in(q, d2, file);
    size_t n, m;
    unsigned char *a = read_all(p, &n), *b = read_all(q, &m);
    cr_assert(n == m && memcmp(a, b, n) == 0, "%s differs between %s and %s", file, d1, d2);
    free(a);
    free(b);
}

Test(checkpoint, io_save_matches_the_flat_save) {
    char flat[512], viaio[512], p[512];
    path_in(flat, tmp_root, "flat");
    path_in(viaio, tmp_root, "io");
    fixture fx;
    io_rec r = {.scratch = NULL};
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer.json"};
    for (int adam = 1; adam >= 0; adam--) {
        fx_init(&fx, 64, adam, NULL);
        fx_fill(&fx, 20 + (uint64_t)adam);
        save_ok(flat, &fx, 5);
        ct_ckpt_view v = io_view(&r, &fx, NULL, adam);
        cJSON *st = state_for(5);
        cr_assert_eq(ct_checkpoint_save(viaio, &v, st), CT_OK, "%s", ct_last_error());
        cJSON_Delete(st);
        assert_order(&r, adam ? 3 : 1);
        assert_same_file(flat, viaio, files[0]);
        assert_same_file(flat, viaio, files[2]);
        path_in(p, viaio, files[1]);
        if (adam) assert_same_file(flat, viaio, files[1]);
        else
            cr_assert_neq(access(p, F_OK), 0, "a weights-only io save wrote optimizer state");
        assert_loads_as(viaio, &fx, 5);
        fx_free(&fx);
    }
    free(r.scratch);
}

Test(checkpoint, io_load_puts_each_tensor_once) {
    char dir[512], p[512];
    path_in(dir, tmp_root, "ck");
    fixture fx, got;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 30);
    save_ok(dir, &fx, 9);
    fx_init(&got, 64, 1, NULL);
    fx_poison(&got);
    io_rec r = {.scratch = NULL};
    ct_ckpt_view v = io_view(&r, NULL, &got, 1);
    cJSON *st = NULL, *want = state_for(9);
    cr_assert_eq(ct_checkpoint_load(dir, &v, &st), CT_OK, "%s", ct_last_error());
    assert_order(&r, 3);
    for (int i = 0; i < NT; i++)
        for (int b = 0; b < 3; b++) cr_assert_eq(r.seen[i][b], 1);
    fx_assert_equal(&fx, &got);
    cr_assert(cJSON_Compare(st, want, 1));
    cJSON_Delete(st);
    cJSON_Delete(want);
    /* weights only: from the directory and from the bare file, b = 0 only */
    path_in(p, dir, "model.safetensors");
    const char *sources[] = {dir, p};
    for (int k = 0; k < 2; k++) {
        fx_poison(&got);
        v = io_view(&r, NULL, &got, 1);
        cr_assert_eq(ct_checkpoint_load_weights(sources[k], &v), CT_OK, "%s", ct_last_error());
        assert_order(&r, 1);
        cr_assert_eq(memcmp(got.v.params, fx.v.params, fx.n * sizeof(float)), 0);
    }
    /* a corrupt file: no put at all */
    const char *bad[] = {"optimizer.safetensors", "model.safetensors"};
    for (int k = 0; k < 2; k++) {
        path_in(p, dir, bad[k]);
        size_t n;
        unsigned char *b = read_all(p, &n);
        b[n - 3] ^= 0x40;
        write_all(p, b, n);
        v = io_view(&r, NULL, &got, 1);
        cr_assert_eq(ct_checkpoint_load(dir, &v, &st), CT_ECORRUPT);
        assert_error_names(bad[k]);
        cr_assert_eq(r.calls, 0, "a refused load called put");
        cr_assert_null(st);
        if (k == 1) {
            cr_assert_neq(ct_checkpoint_load_weights(dir, &v), CT_OK);
            cr_assert_neq(ct_checkpoint_load_weights(p, &v), CT_OK);
            assert_error_names("checksum mismatch");
            cr_assert_eq(r.calls, 0, "a refused weights load called put");
        }
        b[n - 3] ^= 0x40;
        write_all(p, b, n);
        free(b);
    }
    /* the views' checks still apply: a numel that does not match the shape */
    fx.t[2].numel++;
    v = io_view(&r, NULL, &fx, 1);
    cr_assert_eq(ct_checkpoint_load(dir, &v, NULL), CT_EINVAL);
    assert_error_names("h.0.ln_1.weight");
    cr_assert_eq(r.calls, 0);
    fx.t[2].numel--;
    free(r.scratch);
    fx_free(&fx);
    fx_free(&got);
}

Test(checkpoint, failing_get_keeps_the_previous_checkpoint) {
    char dir[512], foreign[512];
    path_in(dir, tmp_root, "ck");
    fixture a, b;
    fx_pair(&a, &b, 40);
    save_ok(dir, &a, 1);
    io_rec r = {.scratch = NULL};
    size_t fail_at[] = {0, 3, NT - 1, NT, 2 * NT + 1, 3 * NT - 1};
    for (int k = 0; k < 6; k++) {
        ct_ckpt_view v = io_view(&r, &b, NULL, 1);
        r.fail_at = fail_at[k];
        cJSON *st = state_for(2);
        cr_assert_eq(ct_checkpoint_save(dir, &v, st), CT_EIO);
        cJSON_Delete(st);
        assert_error_names("gather of tensor");
        assert_error_names(dir);
        cr_assert_eq(r.calls, fail_at[k] + 1, "get called after it failed (%zu)", fail_at[k]);
        assert_loads_as(dir, &a, 1);
        cr_assert_eq(count_entries(tmp_root), 2, "a failed save left files behind");
    }
    /* a save refused before the first get makes none */
    path_in(foreign, tmp_root, "foreign");
    cr_assert_eq(mkdir(foreign, 0755), 0);
    ct_ckpt_view v = io_view(&r, &b, NULL, 1);
    cr_assert_eq(ct_checkpoint_save(foreign, &v, NULL), CT_EINVAL);
    cr_assert_eq(r.calls, 0);
    cr_assert_eq(rmdir(foreign), 0);
    v = io_view(&r, &b, NULL, 1);
    cJSON *st = state_for(2);
    cr_assert_eq(ct_checkpoint_save(dir, &v, st), CT_OK, "%s", ct_last_error());
    cJSON_Delete(st);
    assert_loads_as(dir, &b, 2);
    free(r.scratch);
    fx_free(&a);
    fx_free(&b);
}

/* ---- resuming a run's checkpoint directory ---------------------------------------------- */

/* A pid that no longer runs: a child that has exited and been reaped. */
static long dead_pid(void) {
    pid_t c = fork();
    if (c == 0) _exit(0);
    cr_assert(c > 0);
    waitpid(c, NULL, 0);
    return (long)c;
}

Test(checkpoint, resume_without_latest_or_checkpoints_starts_fresh) {
    char out[512], ckpt[512];
    int found = 1;
    path_in(ckpt, tmp_root, "no_such_dir");
    cr_assert_eq(ct_checkpoint_find_resume(ckpt, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_eq(found, 0);
    found = 1; /* an empty ckpt directory: the first save never finished */
    cr_assert_eq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_eq(found, 0);
}

Test(checkpoint, resume_picks_the_newest_complete_checkpoint) {
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 3);
    char a[512], b[512], c[512], out[512], ptr[512];
    int found = 0;
    path_in(a, tmp_root, "step_00000010");
    path_in(b, tmp_root, "step_00000020");
    path_in(c, tmp_root, "step_00000030");
    save_ok(a, &fx, 10);
    save_ok(b, &fx, 20);
    cr_assert_eq(mkdir(c, 0755), 0); /* a later directory without trainer.json: not complete */
    path_in(ptr, tmp_root, "latest");
    cr_assert_eq(unlink(ptr), 0); /* the second save died before writing the pointer */
    cr_assert_eq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_eq(found, 1);
    cr_assert_str_eq(out, b);
    write_all(ptr, "step_00000010\n", 14); /* the pointer still names the one before */
    cr_assert_eq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(out, b, "resumed from %s", out);
    write_all(ptr, "step_00000030\n", 14); /* a pointer is taken as it names: the load refuses */
    cr_assert_eq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(out, c);
    assert_refused(out, "trainer.json");
    write_all(ptr, "step_00000099\n", 14); /* to nothing: refused, naming the pointer */
    cr_assert_neq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK);
    assert_error_names("step_00000099");
    fx_free(&fx);
}

Test(checkpoint, resume_clears_what_killed_saves_left) {
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 4);
    char a[512], out[512], name[600], path[600];
    int found = 0;
    long dead = dead_pid();
    path_in(a, tmp_root, "step_00000010");
    save_ok(a, &fx, 10);
    /* dead processes' leftovers: a half-written save of a step that exists, a swap's old
     * copy, a removal's, and a complete save of a step whose directory is missing */
    const char *gone[] = {"step_00000010.tmp-%ld", "step_00000010.old-%ld", "step_00000005.del-%ld"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, gone[i], dead);
        path_in(path, tmp_root, name);
        cr_assert_eq(mkdir(path, 0755), 0);
        char file[700];
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        write_all(file, "x", 1);
    }
    snprintf(name, sizeof name, "step_00000020.tmp-%ld", dead);
    path_in(path, tmp_root, name);
    save_ok(path, &fx, 20); /* complete, but step_00000020 itself is missing: kept */
    char ptr[512];
    path_in(ptr, tmp_root, "latest");
    write_all(ptr, "step_00000010\n", 14);
    snprintf(name, sizeof name, "step_00000010.tmp-%ld", (long)getpid()); /* a live process's */
    char live[600];
    path_in(live, tmp_root, name);
    cr_assert_eq(mkdir(live, 0755), 0);
    int before = count_entries(tmp_root);
    cr_assert_eq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_eq(count_entries(tmp_root), before - 3, "%d entries left of %d", count_entries(tmp_root), before);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "the complete save of a missing step was removed");
    cr_assert_eq(stat(live, &st), 0, "a running process's save was removed");
    cr_assert_str_eq(out, a);
    fx_free(&fx);
}

Test(checkpoint, removal_moves_the_checkpoint_out_of_the_way_first) {
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 5);
    char a[512], b[512], out[512];
    int found = 0;
    path_in(a, tmp_root, "step_00000010");
    path_in(b, tmp_root, "step_00000020");
    save_ok(a, &fx, 10);
    save_ok(b, &fx, 20);
    int before = count_entries(tmp_root);
    ct_checkpoint_remove(a);
    struct stat st;
    cr_assert_neq(stat(a, &st), 0);
    cr_assert_eq(count_entries(tmp_root), before - 1, "something of the removed checkpoint is left");
    cr_assert_eq(ct_checkpoint_find_resume(tmp_root, 1, out, sizeof out, &found), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(out, b);
    fx_free(&fx);
}

Test(checkpoint, bytes_after_the_trainer_state_are_refused) {
    fixture fx;
    fx_init(&fx, 64, 1, NULL);
    fx_fill(&fx, 6);
    char a[512], path[600];
    path_in(a, tmp_root, "step_00000010");
    save_ok(a, &fx, 10);
    snprintf(path, sizeof path, "%s/trainer.json", a);
    size_t n;
    unsigned char *text = read_all(path, &n);
    char *junk = malloc(n + 16);
    memcpy(junk, text, n);
    memcpy(junk + n, "\n{\"step\": 1}\n", 13); /* the tree (and its checksum) is unchanged */
    write_all(path, junk, n + 13);
    assert_refused(a, "bytes after the JSON object");
    memcpy(junk + n, " \t\r\n", 4); /* trailing white space alone is fine */
    write_all(path, junk, n + 4);
    assert_loads_as(a, &fx, 10);
    free(junk);
    free(text);
    fx_free(&fx);
}

/* A stored config naming a model larger than the machine is refused before any allocation,
 * naming trainer.json and the keys that size the model. */
Test(checkpoint, a_stored_model_too_large_names_the_file_and_fields) {
    fixture fx;
    fx_init(&fx, 64, 0, NULL);
    fx_fill(&fx, 7);
    char dir[512];
    path_in(dir, tmp_root, "step_00000001");
    cJSON *st = cJSON_CreateObject(), *cfg = cJSON_AddObjectToObject(st, "config");
    cJSON *model = cJSON_AddObjectToObject(cfg, "model");
    cJSON_AddNumberToObject(model, "n_layer", 1000);
    cJSON_AddNumberToObject(model, "d_model", 65536);
    cr_assert_eq(ct_checkpoint_save(dir, &fx.v, st), CT_OK, "%s", ct_last_error());
    cJSON_Delete(st);
    ct_model *m = NULL;
    cr_assert_eq(ct_model_load(&m, dir), CT_EINVAL, "%s", ct_last_error());
    cr_assert_null(m);
    const char *e = ct_last_error();
    cr_assert(strstr(e, "step_00000001/trainer.json") && strstr(e, "model.d_model = 65536") &&
                  strstr(e, "model.n_layer = 1000") && strstr(e, "more than this machine's"),
              "%s", e);
    fx_free(&fx);
}
