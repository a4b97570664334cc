/* bytemap.c: the byte-string hash map (linear probing, XXH3 hashes, keys in one arena) and
 * the growable array helper of bytemap.h. */
#include "data/bytemap.h"
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

ct_status ct_grow(void **buf, size_t *cap, size_t need, size_t keep, size_t elem, const char *what) {
    if (need <= *cap) return CT_OK;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) ncap *= 2;
    void *p = ct_alloc(ncap * elem, what);
    if (!p) return CT_ENOMEM;
    if (*buf && keep) memcpy(p, *buf, keep * elem);
    ct_free(*buf);
    *buf = p;
    *cap = ncap;
    return CT_OK;
}

static uint64_t hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

ct_status ct_bytemap_init(ct_bytemap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->e = ct_calloc(cap * sizeof *m->e, "tokenizer hash map");
    if (!m->e) return CT_ENOMEM;
    m->cap = cap;
    return CT_OK;
}

void ct_bytemap_free(ct_bytemap *m) {
    ct_free(m->e);
    ct_free(m->keys);
    memset(m, 0, sizeof *m);
}

void ct_bytemap_clear(ct_bytemap *m) {
    memset(m->e, 0, m->cap * sizeof *m->e);
    m->n = 0;
    m->keys_len = 0;
}

/* Slot holding key, or the empty slot where it would go. */
static ct_bytemap_entry *slot(const ct_bytemap *m, const void *key, size_t len, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ct_bytemap_entry *e = &m->e[i];
        if (!e->used) return e;
        if (e->hash == h && e->len == len && memcmp(m->keys + e->off, key, len) == 0) return e;
    }
}

const ct_bytemap_entry *ct_bytemap_get(const ct_bytemap *m, const void *key, size_t len) {
    const ct_bytemap_entry *e = slot(m, key, len, hash_bytes(key, len));
    return e->used ? e : NULL;
}

static ct_status rehash(ct_bytemap *m) {
    ct_bytemap old = *m;
    m->e = ct_calloc(2 * old.cap * sizeof *m->e, "tokenizer hash map");
    if (!m->e) {
        m->e = old.e;
        return CT_ENOMEM;
    }
    m->cap = 2 * old.cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.e[i].used) continue;
        ct_bytemap_entry *s = slot(m, old.keys + old.e[i].off, old.e[i].len, old.e[i].hash);
        *s = old.e[i];
    }
    ct_free(old.e);
    return CT_OK;
}

ct_status ct_bytemap_put(ct_bytemap *m, const void *key, size_t len, ct_bytemap_entry **out) {
    if (2 * (m->n + 1) > m->cap) CT_TRY(rehash(m));
    uint64_t h = hash_bytes(key, len);
    ct_bytemap_entry *e = slot(m, key, len, h);
    if (!e->used) {
        CT_TRY(ct_grow((void **)&m->keys, &m->keys_cap, m->keys_len + len, m->keys_len, 1, "tokenizer keys"));
        memcpy(m->keys + m->keys_len, key, len);
        *e = (ct_bytemap_entry){h, m->keys_len, (uint32_t)len, 1, 0, 0};
        m->keys_len += len;
        m->n++;
    }
    *out = e;
    return CT_OK;
}
