/* fuzz_tok.h: what the tokenizer harnesses (fuzz_bpe.c, fuzz_tokenize.c) and their seeds
 * share: a tiny GPT-2-style byte-level vocabulary (the 256 byte tokens and a few merges)
 * as encoder.json and vocab.bpe text, and the checks on encoding any bytes. */
#ifndef CT_FUZZ_TOK_H
#define CT_FUZZ_TOK_H

#include "fuzz.h"
#include "cetus.h"
#include <cjson/cJSON.h>

/* Merges in rank order; each joins two earlier tokens (raw bytes). */
static const char *const fuzz_merges[][2] = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},    {" ", "t"}, {" t", "h"},          {" th", "e"},
    {"i", "n"}, {" ", "a"}, {"e", "r"},   {"\xc3", "\xa9"}, {"o", "n"}, {"\xe2\x82", "\xac"}, {"\xe2", "\x82"},
};
#define FUZZ_N_MERGES (sizeof fuzz_merges / sizeof fuzz_merges[0])

/* The UTF-8 of GPT-2's stand-in code point for byte b (printable Latin-1 bytes stand for
 * themselves, the others for 256, 257, ... in byte order) into out; returns its length. */
static inline size_t fuzz_byte_char(unsigned b, char out[3]) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    unsigned cp = b, below = 0;
    for (unsigned k = 0; !printable && k < b; k++)
        below += !((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE);
    if (!printable) cp = 256 + below;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* The byte-level spelling of the raw bytes s (NUL-terminated) into out (room for 2 x). */
static inline char *fuzz_spell(const char *s, char *out) {
    size_t n = 0;
    for (; *s; s++) n += fuzz_byte_char((unsigned char)*s, out + n);
    out[n] = 0;
    return out;
}

/* encoder.json of the tiny vocabulary (free with cJSON_free), or NULL when out of memory. */
static inline char *fuzz_tiny_encoder(void) {
    cJSON *root = cJSON_CreateObject();
    char spelled[64];
    int id = 0;
    for (unsigned b = 0; b < 256; b++) {
        spelled[fuzz_byte_char(b, spelled)] = 0;
        cJSON_AddNumberToObject(root, spelled, id++);
    }
    for (size_t m = 0; m < FUZZ_N_MERGES; m++) {
        char joined[32];
        snprintf(joined, sizeof joined, "%s%s", fuzz_merges[m][0], fuzz_merges[m][1]);
        cJSON_AddNumberToObject(root, fuzz_spell(joined, spelled), id++);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* vocab.bpe of the tiny vocabulary into out[cap]. */
static inline void fuzz_tiny_merges(char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "#version: 0.2\n");
    for (size_t m = 0; m < FUZZ_N_MERGES && n < cap; m++) {
        char a[32], b[32];
        n += (size_t)snprintf(out + n, cap - n, "%s %s\n", fuzz_spell(fuzz_merges[m][0], a),
                              fuzz_spell(fuzz_merges[m][1], b));
    }
}

/* Encodes text[0..n) with t (any bytes: invalid UTF-8 never fails) and checks the ids are
 * in the vocabulary, decoding gives valid UTF-8 that is text itself when text is valid
 * UTF-8, and encoding the decoded text gives the same ids (invalid input reads as its
 * U+FFFD-replaced text). */
static inline void fuzz_check_encode(ct_tokenizer *t, const uint8_t *text, size_t n) {
    int32_t *ids = NULL, *again = NULL;
    size_t n_ids = 0, cap = 0, n_again = 0, cap_again = 0, len;
    FUZZ_CHECK(ct_tokenizer_encode(t, (const char *)text, n, &ids, &n_ids, &cap) == CT_OK);
    FUZZ_CHECK(n_ids <= cap && (n == 0 || n_ids >= 1));
    for (size_t i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < ct_tokenizer_vocab_size(t));
    char *out;
    FUZZ_CHECK(ct_tokenizer_decode(t, ids, n_ids, &out, &len) == CT_OK);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)out, len));
    if (fuzz_utf8_valid(text, n)) FUZZ_CHECK(len == n && memcmp(out, text, n) == 0);
    FUZZ_CHECK(ct_tokenizer_encode(t, out, len, &again, &n_again, &cap_again) == CT_OK);
    FUZZ_CHECK(n_again == n_ids && (n_ids == 0 || memcmp(again, ids, n_ids * sizeof *ids) == 0));
    ct_tokenizer_free_buffer(again);
    ct_tokenizer_free_buffer(out);
    ct_tokenizer_free_buffer(ids);
}

#endif
