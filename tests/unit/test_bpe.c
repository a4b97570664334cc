/* test_bpe.c: the byte-level BPE trainer (src/data/bpe_train.c) and the tokenizer.json
 * reader (src/data/tokenizer_json.c): merges worked out by hand on tiny corpora (counts,
 * then the smallest pair on ties), the file read back encoding with them, <|endoftext|>,
 * determinism, a corpus that runs out of pairs, and refusals: vocabulary sizes out of range
 * and tokenizer.json files of what cetus does not implement. */
#define TMPDIR_TEMPLATE "/tmp/cetus_bpe_XXXXXX"
#include "tmpdir.h"
#include "data/bpe_train.h"
#include "data/tokenizer.h"
#include <cjson/cJSON.h>

TestSuite(bpe, .init = make_tmpdir, .fini = cleanup);

/* Trains a vocab_size tokenizer on docs (NULL-terminated) into tmpdir/name. */
static void train(const char *const *docs, int vocab_size, const char *name, ct_bpe_stats *st) {
    ct_bpe_trainer *t;
    cr_assert_eq(ct_bpe_trainer_create(&t, vocab_size), CT_OK, "%s", ct_last_error());
    for (; *docs; docs++)
        cr_assert_eq(ct_bpe_trainer_feed(t, *docs, strlen(*docs)), CT_OK, "%s", ct_last_error());
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    cr_assert_eq(ct_bpe_trainer_finish(t, path, st), CT_OK, "%s", ct_last_error());
    ct_bpe_trainer_free(t);
}

static ct_tokenizer *load(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    ct_tokenizer *tok = NULL;
    cr_assert_eq(ct_tokenizer_load_json(&tok, path), CT_OK, "%s", ct_last_error());
    return tok;
}

/* Encodes s, compares with want[0..n) (when want is not NULL) and checks that the ids decode back to s. */
static void expect_ids(ct_tokenizer *tok, const char *s, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t got = 0, cap = 0, len;
    cr_assert_eq(ct_tokenizer_encode(tok, s, strlen(s), &ids, &got, &cap), CT_OK, "%s", ct_last_error());
    if (want) cr_assert_eq(got, n, "\"%s\": %zu ids, expected %zu", s, got, n);
    for (size_t i = 0; want && i < n; i++)
        cr_assert_eq(ids[i], want[i], "\"%s\": id %zu is %d, expected %d", s, i, ids[i], want[i]);
    char *back;
    cr_assert_eq(ct_tokenizer_decode(tok, ids, got, &back, &len), CT_OK, "%s", ct_last_error());
    cr_assert(len == strlen(s) && !memcmp(back, s, len), "\"%s\" decodes to \"%s\"", s, back);
    ct_free(back);
    ct_free(ids);
}
#define EXPECT(tok, s, ...) \
    do { \
        const int32_t w_[] = {__VA_ARGS__}; \
        expect_ids(tok, s, w_, sizeof w_ / sizeof w_[0]); \
    } while (0)

/* Byte ids follow the byte-level characters: 'a' (0x61) is 64, 'b' 65, 'c' 66, 'd' 67 and the
 * space (U+0120 'Ġ') 220, as in GPT-2. */
#define A 64
#define B 65
#define C 66
#define D 67
#define SP 220

/* "ab ab ab": words "ab" x1 and " ab" x2. (a, b) occurs 3 times -> 256; then (' ', ab) twice
 * -> 257; EOT is 258. */
Test(bpe, merges_the_most_frequent_pair_first) {
    const char *docs[] = {"ab ab", " ab", NULL};
    ct_bpe_stats st;
    train(docs, 259, "t.json", &st);
    cr_assert_eq(st.vocab, 259);
    cr_assert_eq(st.merges, 2);
    cr_assert_eq(st.unique_words, 2);
    cr_assert_eq(st.words, 3);
    ct_tokenizer *tok = load("t.json");
    cr_assert_eq(ct_tokenizer_vocab_size(tok), 259);
    cr_assert_eq(ct_tokenizer_eot(tok), 258);
    EXPECT(tok, "ab ab", 256, 257);
    EXPECT(tok, "ba a b", B, A, SP, A, SP, B);
    EXPECT(tok, "x<|endoftext|> ab<|endoftext|>", 'x' - 0x21, 258, 257, 258);
    ct_tokenizer_free(tok);
}

/* "ab cd": every pair occurs once; ties go to the smallest (left id, right id): (a, b) = (64, 65)
 * -> 256, then (c, d) -> 257, then (' ', cd) = (220, 257) -> 258; (' ', c) is gone by then. */
Test(bpe, ties_go_to_the_smallest_pair) {
    const char *docs[] = {"ab cd", NULL};
    train(docs, 260, "t.json", NULL);
    ct_tokenizer *tok = load("t.json");
    EXPECT(tok, "ab cd", 256, 258);
    EXPECT(tok, "cd ab", 257, SP, 256);
    EXPECT(tok, " c", SP, C);
    ct_tokenizer_free(tok);
}

/* "aaaa": one word; (a, a) x3 -> 256 = "aa" (merged left to right: aa aa), then (aa, aa)
 * -> 257. */
Test(bpe, overlapping_pairs_merge_left_to_right) {
    const char *docs[] = {"aaaa", NULL};
    ct_bpe_stats st;
    train(docs, 1000, "t.json", &st);
    cr_assert_eq(st.merges, 2, "the corpus holds two merges, not %d", st.merges);
    cr_assert_eq(st.vocab, 259);
    ct_tokenizer *tok = load("t.json");
    cr_assert_eq(ct_tokenizer_vocab_size(tok), 259);
    EXPECT(tok, "aaaa", 257);
    EXPECT(tok, "aaaaa", 257, A);
    EXPECT(tok, "aaa", 256, A);
    ct_tokenizer_free(tok);
}

static char *slurp(const char *name) {
    char path[256], *text;
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    cr_assert_eq(ct_read_file(path, &text, NULL), CT_OK, "%s", ct_last_error());
    return text;
}

Test(bpe, trains_the_same_file_every_time) {
    const char *docs[] = {"the cat sat on the mat; the dog sat on the log.",
                          "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac 12345 \t\n  x", "invalid \xff\xfe utf-8", NULL};
    train(docs, 300, "a.json", NULL);
    train(docs, 300, "b.json", NULL);
    char *a = slurp("a.json"), *b = slurp("b.json");
    cr_assert_str_eq(a, b);
    ct_free(a);
    ct_free(b);
    ct_tokenizer *ta = load("a.json"), *tb = load("b.json");
    cr_assert_eq(ct_tokenizer_hash(ta), ct_tokenizer_hash(tb));
    cr_assert_str_eq(ct_tokenizer_name(ta), "bpe-300");
    expect_ids(ta, "the cat sat on the mat; caf\xc3\xa9 \xe6\x97\xa5 <|endoftext|>", NULL, 0);
    ct_tokenizer_free(ta);
    ct_tokenizer_free(tb);
}

Test(bpe, refuses_vocabulary_sizes_out_of_range) {
    ct_bpe_trainer *t = NULL;
    int bad[] = {0, 255, 256, CT_TOKENIZER_MAX_VOCAB + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(ct_bpe_trainer_create(&t, bad[i]), CT_EINVAL, "vocabulary %d accepted", bad[i]);
        cr_assert_null(t);
        cr_assert(strstr(ct_last_error(), "vocabulary size"), "%s", ct_last_error());
    }
    cr_assert_eq(ct_bpe_trainer_create(&t, 257), CT_OK, "%s", ct_last_error());
    ct_bpe_trainer_free(t);
}

/* Writes root to tmpdir/name (filling path) and frees it. */
static void write_tree(cJSON *root, const char *name, char *path, size_t cap) {
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(out, f);
    fclose(f);
    cJSON_free(out);
}

/* Writes a trained file with one field replaced by json (NULL: removed) and expects the
 * reader to refuse it with a message holding want. */
static void expect_refused(const char *obj, const char *key, const char *json, ct_status code,
                           const char *want) {
    char *text = slurp("t.json");
    cJSON *root = cJSON_Parse(text);
    ct_free(text);
    cJSON *o = obj ? cJSON_GetObjectItemCaseSensitive(root, obj) : root;
    if (json) cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_Parse(json));
    else
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    char path[256];
    write_tree(root, "bad.json", path, sizeof path);
    ct_tokenizer *tok = NULL;
    cr_assert_eq(ct_tokenizer_load_json(&tok, path), code, "%s.%s = %s: %s", obj ? obj : "", key, json,
                 ct_last_error());
    cr_assert_null(tok);
    cr_assert(strstr(ct_last_error(), want) && strstr(ct_last_error(), path), "%s", ct_last_error());
}

Test(bpe, refuses_tokenizers_it_does_not_implement) {
    const char *docs[] = {"ab ab ab", NULL};
    train(docs, 259, "t.json", NULL);
    expect_refused("model", "type", "\"WordPiece\"", CT_EINVAL, "model.type WordPiece");
    expect_refused("model", "type", "\"Unigram\"", CT_EINVAL, "model.type Unigram");
    expect_refused(NULL, "normalizer", "{\"type\": \"NFC\"}", CT_EINVAL, "normalizer NFC");
    expect_refused(NULL, "pre_tokenizer", "{\"type\": \"Whitespace\"}", CT_EINVAL, "pre_tokenizer Whitespace");
    expect_refused(NULL, "pre_tokenizer", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", CT_EINVAL,
                   "add_prefix_space");
    expect_refused(NULL, "decoder", "{\"type\": \"WordPiece\"}", CT_EINVAL, "decoder WordPiece");
    expect_refused(NULL, "post_processor", "{\"type\": \"TemplateProcessing\"}", CT_EINVAL, "post_processor");
    expect_refused("model", "byte_fallback", "true", CT_EINVAL, "model.byte_fallback");
    expect_refused(NULL, "added_tokens", "[]", CT_EINVAL, "<|endoftext|>");
    expect_refused(NULL, "added_tokens", "[{\"id\": 258, \"content\": \"<|endoftext|>\", \"lstrip\": true}]",
                   CT_EINVAL, "added_tokens[0].lstrip");
    expect_refused("model", "merges", "[[\"a\", \"q\"]]", CT_ECORRUPT, "merged token");
    expect_refused("model", "merges", "[\"a b c\"]", CT_ECORRUPT, "model.merges[0]");
    expect_refused("model", "vocab", "{\"a\": 0}", CT_ECORRUPT, "no token with id 1");
    expect_refused(NULL, "model", NULL, CT_ECORRUPT, "no \"model\"");
}

/* A Sequence holding only ByteLevel and merges as "A B" strings read the same as the trained
 * file. */
Test(bpe, reads_the_other_spellings) {
    const char *docs[] = {"ab ab ab", NULL};
    train(docs, 259, "t.json", NULL);
    char *text = slurp("t.json");
    cJSON *root = cJSON_Parse(text);
    ct_free(text);
    cJSON_ReplaceItemInObjectCaseSensitive(
        root, "pre_tokenizer",
        cJSON_Parse(
            "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\", \"add_prefix_space\": "
            "false, \"use_regex\": true}]}"));
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges",
                                           cJSON_Parse("[\"a b\", \"\xc4\xa0 ab\"]"));
    char path[256];
    write_tree(root, "seq.json", path, sizeof path);
    ct_tokenizer *a = load("t.json"), *b = load("seq.json");
    cr_assert_eq(ct_tokenizer_hash(a), ct_tokenizer_hash(b));
    EXPECT(b, "ab ab", 256, 257);
    ct_tokenizer_free(a);
    ct_tokenizer_free(b);
}
