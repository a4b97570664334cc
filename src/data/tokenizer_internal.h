/* tokenizer_internal.h: the tokenizer's state, shared by the two files that fill it:
 * tokenizer.c (GPT-2's encoder.json + vocab.bpe, the merges, encoding, decoding) and
 * tokenizer_json.c (reading a Hugging Face tokenizer.json). Nothing else includes it. */
#ifndef CT_TOKENIZER_INTERNAL_H
#define CT_TOKENIZER_INTERNAL_H

#include "data/tokenizer.h"
#include "data/bytemap.h"
#include "data/pretok.h"
#include <cjson/cJSON.h>

typedef struct ct_tok_pair {
    uint64_t key;
    uint32_t rank, merged;
} ct_tok_pair;

struct ct_tokenizer {
    int vocab;
    int32_t eot;          /* id of <|endoftext|> */
    int hf;               /* 1: Hugging Face semantics (tokenizer.json), 0: gpt-3-encoder's */
    uint64_t hash;        /* identity: see ct_tokenizer_hash */
    uint64_t merges_hash; /* XXH64 of the merges in rank order, as loaded */
    char name[64];        /* "gpt2" or "bpe-<vocab>" */
    uint8_t *tok_bytes;   /* all tokens' raw bytes */
    uint32_t *tok_off;    /* [vocab + 1] */
    uint8_t *is_added;    /* [vocab] 1: an added token (matched in text before BPE) */
    int32_t *added;       /* [n_added] ids of the added tokens */
    size_t *added_next;   /* [n_added] encode scratch: next occurrence in the text */
    int n_added;
    ct_bytemap by_bytes;  /* raw bytes -> id (v0), added tokens excluded */
    int32_t byte_id[256]; /* id of each single-byte token */
    ct_tok_pair *pairs;   /* [pair_cap] */
    size_t pair_cap;
    ct_pretok *pre;
    ct_bytemap cache; /* word bytes -> (offset v0, count v1) into cache_ids */
    int32_t *cache_ids;
    size_t cache_len, cache_cap;
    int32_t *sym; /* BPE scratch (see bpe_state), sized for scratch_cap bytes */
    uint32_t *nxt;
    int32_t *prv;
    struct bpe_item *heap, *round;
    size_t scratch_cap;
};

/* Lays out the vocabulary: vocab (a JSON object of byte-level token -> id) and, when not
 * NULL, added (Hugging Face added_tokens, already checked: objects with a numeric "id" and a
 * string "content", whose raw text is the token) into tok_bytes / tok_off / is_added, for
 * t->vocab ids that must each be defined exactly once; then indexes them (by_bytes,
 * byte_id). path names the file in messages. */
ct_status ct_tok_vocab_build(ct_tokenizer *t, const cJSON *vocab, const cJSON *added, const char *path);
/* Allocates the pair table for n merges (empty). */
ct_status ct_tok_pairs_alloc(ct_tokenizer *t, size_t n);
/* Records merge rank (a, b) -> the token a + b (raw bytes); each must be in the vocabulary. */
ct_status ct_tok_merge_add(ct_tokenizer *t, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
                           uint32_t rank, const char *path);
/* Chains merge (a, b) into merges_hash (the merges in rank order make the identity). */
void ct_tok_merge_hash(ct_tokenizer *t, const uint8_t *a, size_t na, const uint8_t *b, size_t nb);
/* Finishes a loaded tokenizer: the pre-tokenizer, the cache, the identity hash. */
ct_status ct_tok_finish(ct_tokenizer *t);

#endif /* CT_TOKENIZER_INTERNAL_H */
