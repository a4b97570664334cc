/* bytemap.h: an open-addressing hash map from byte strings to two u32 values (the
 * tokenizer's vocabulary and word cache, the BPE trainer's word counts), and a growable
 * array helper. Keys are copied into one arena; entries are never removed one by one. */
#ifndef CT_BYTEMAP_H
#define CT_BYTEMAP_H

#include "core/core.h"

typedef struct ct_bytemap_entry {
    uint64_t hash;
    uint64_t off; /* key bytes at keys + off */
    uint32_t len;
    uint32_t used;
    uint32_t v0, v1;
} ct_bytemap_entry;

typedef struct ct_bytemap {
    ct_bytemap_entry *e; /* [cap], cap a power of two, at most half full */
    size_t cap, n;
    uint8_t *keys;
    size_t keys_len, keys_cap;
} ct_bytemap;

ct_status ct_bytemap_init(ct_bytemap *m, size_t cap); /* cap a power of two */
void ct_bytemap_free(ct_bytemap *m);
void ct_bytemap_clear(ct_bytemap *m);
const ct_bytemap_entry *ct_bytemap_get(const ct_bytemap *m, const void *key, size_t len);
/* Finds or inserts key; *out points at its entry (new entries have v0 = v1 = 0) until the
 * next insertion. */
ct_status ct_bytemap_put(ct_bytemap *m, const void *key, size_t len, ct_bytemap_entry **out);
static inline const uint8_t *ct_bytemap_key(const ct_bytemap *m, const ct_bytemap_entry *e) {
    return m->keys + e->off;
}

/* Ensures *buf (elements of elem bytes, *cap allocated) holds at least need elements,
 * keeping the first keep elements; what names the buffer in an out-of-memory message. */
ct_status ct_grow(void **buf, size_t *cap, size_t need, size_t keep, size_t elem, const char *what);

#endif /* CT_BYTEMAP_H */
