/* shard_tokenizer.h: which tokenizer a data directory's token shards need, from the record
 * `cetus prepare` writes into its meta.json ("tokenizer": {name, hash, vocab_size, and "file"
 * when a BPE was trained beside the shards}), and the same record in a checkpoint's
 * trainer.json ("tokenizer": {name, hash}), so that a model is never scored on, resumed
 * with or decoded by another tokenizer's ids. A directory without meta.json, or an older
 * meta.json naming the tokenizer by a plain string, means GPT-2's (hash not recorded). */
#ifndef CT_SHARD_TOKENIZER_H
#define CT_SHARD_TOKENIZER_H

#include "core/core.h"
#include "data/tokenizer.h"
#include <cjson/cJSON.h>

typedef struct ct_shard_tokenizer {
    char name[64];   /* "gpt2", "bpe-8192" */
    char hash[17];   /* 16 hex digits of ct_tokenizer_hash; "" when not recorded */
    char file[4096]; /* the trained tokenizer.json beside the shards; "" for GPT-2's */
} ct_shard_tokenizer;

/* Reads dir/meta.json's record into *out (GPT-2's when there is none). A meta.json that does
 * not parse, or a record of the wrong types, is CT_ECORRUPT naming the file. */
ct_status ct_shard_tokenizer_read(const char *dir, ct_shard_tokenizer *out);
/* The record of a loaded tokenizer (file: the path it was loaded from, or NULL). */
void ct_shard_tokenizer_of(const ct_tokenizer *t, const char *file, ct_shard_tokenizer *out);
/* Loads the tokenizer a record names: its file, or GPT-2's from $CETUS_DATA. */
ct_status ct_shard_tokenizer_load(const ct_shard_tokenizer *st, ct_tokenizer **out);
/* 1 when a and b are the same tokenizer: the same hash when both have one, else the same
 * name. */
int ct_shard_tokenizer_same(const ct_shard_tokenizer *a, const ct_shard_tokenizer *b);
/* "bpe-8192 (hash 0123456789abcdef)" or "gpt2" into buf, for messages. */
const char *ct_shard_tokenizer_describe(const ct_shard_tokenizer *st, char *buf, size_t cap);

/* The record as a JSON object {"name", "hash"} (NULL when out of memory), and read back from
 * a checkpoint's trainer state: an absent record (a checkpoint older than the record) is
 * GPT-2's. */
cJSON *ct_shard_tokenizer_json(const ct_shard_tokenizer *st);
ct_status ct_shard_tokenizer_from_state(const cJSON *state, const char *where, ct_shard_tokenizer *out);

#endif /* CT_SHARD_TOKENIZER_H */
