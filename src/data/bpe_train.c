/* bpe_train.c: the byte-level BPE trainer (see bpe_train.h): word counting over the
 * pre-tokenizer, the incremental merge loop, and writing tokenizer.json with cJSON. */
#include "data/bpe_train.h"
#include "data/bytemap.h"
#include "data/pretok.h"
#include "data/tokenizer.h"
#include <cjson/cJSON.h>
#include <string.h>

#define NONE UINT32_MAX

/* One distinct pair of adjacent symbols: its count over the corpus and the words it occurs
 * in (a list through the pool, which may name a word it has left or name one twice). */
typedef struct pair_rec {
    int64_t count;
    int32_t a, b;
    uint32_t head, last_word; /* pool index of the list; the word added last */
    uint32_t stamp;           /* merge step that last raised the count */
} pair_rec;

typedef struct pool_ent {
    uint32_t word, next;
} pool_ent;

typedef struct heap_item {
    int64_t count;
    int32_t a, b;
} heap_item;

struct ct_bpe_trainer {
    int vocab_target;
    ct_pretok *pre;
    ct_bytemap words; /* word bytes -> count (v0 low, v1 high 32 bits) */
    ct_bpe_stats st;
    /* the merge loop */
    uint32_t n_words;
    uint64_t *wcount; /* [n_words] */
    uint32_t *woff;   /* [n_words] first symbol in sym */
    uint32_t *wlen;   /* [n_words] current symbol count */
    int32_t *sym;     /* all words' symbols */
    pair_rec *pairs;  /* [n_pairs] */
    size_t n_pairs, pairs_cap;
    uint32_t *slots; /* [slot_cap] pair index + 1, 0 = empty */
    size_t slot_cap;
    pool_ent *pool;
    size_t pool_n, pool_cap;
    heap_item *heap;
    size_t n_heap, heap_cap;
    uint32_t *touched; /* pairs raised during this merge */
    size_t n_touched, touched_cap;
    uint32_t step;
    int32_t (*merges)[2]; /* [n_merges] */
    int n_merges;
    uint8_t *tok_bytes; /* token bytes, token i at tok_off[i] */
    uint32_t *tok_off;  /* [vocab + 1] */
    size_t tok_bytes_cap;
};

ct_status ct_bpe_check_vocab(long long vocab_size) {
    if (vocab_size >= CT_BPE_MIN_VOCAB && vocab_size <= CT_TOKENIZER_MAX_VOCAB) return CT_OK;
    return ct_fail(CT_EINVAL,
                   "vocabulary size %lld: expected %d (the 256 byte tokens and <|endoftext|>) to %d (the "
                   "most model.vocab_size takes; shards hold 16-bit ids up to 65536 tokens, 32-bit above)",
                   vocab_size, CT_BPE_MIN_VOCAB, CT_TOKENIZER_MAX_VOCAB);
}

ct_status ct_bpe_trainer_create(ct_bpe_trainer **out, int vocab_size) {
    *out = NULL;
    CT_TRY(ct_bpe_check_vocab(vocab_size));
    ct_bpe_trainer *t = ct_calloc(sizeof *t, "BPE trainer");
    if (!t) return CT_ENOMEM;
    t->vocab_target = vocab_size;
    ct_status s = ct_pretok_create(&t->pre);
    if (s == CT_OK) s = ct_bytemap_init(&t->words, 1u << 16);
    if (s != CT_OK) {
        ct_bpe_trainer_free(t);
        return s;
    }
    *out = t;
    return CT_OK;
}

void ct_bpe_trainer_free(ct_bpe_trainer *t) {
    if (!t) return;
    ct_pretok_free(t->pre);
    ct_bytemap_free(&t->words);
    ct_free(t->wcount);
    ct_free(t->woff);
    ct_free(t->wlen);
    ct_free(t->sym);
    ct_free(t->pairs);
    ct_free(t->slots);
    ct_free(t->pool);
    ct_free(t->heap);
    ct_free(t->touched);
    ct_free(t->merges);
    ct_free(t->tok_bytes);
    ct_free(t->tok_off);
    ct_free(t);
}

/* ---- counting -------------------------------------------------------------------------- */

static ct_status count_word(void *ctx, const uint8_t *w, size_t n) {
    ct_bpe_trainer *t = ctx;
    if (n > UINT32_MAX / 2) return ct_fail(CT_EINVAL, "cannot train on a %zu-byte word: too long", n);
    ct_bytemap_entry *e;
    CT_TRY(ct_bytemap_put(&t->words, w, n, &e));
    if (++e->v0 == 0) e->v1++;
    t->st.words++;
    return CT_OK;
}

ct_status ct_bpe_trainer_feed(ct_bpe_trainer *t, const char *text, size_t len) {
    double t0 = ct_now();
    const uint8_t *s = (const uint8_t *)text;
    t->st.bytes += len;
    t->st.documents++;
    ct_status st = ct_pretok_sanitize(t->pre, &s, &len);
    if (st == CT_OK) st = ct_pretok_split(t->pre, s, len, count_word, t);
    t->st.count_secs += ct_now() - t0;
    return st;
}

/* ---- the pair table -------------------------------------------------------------------- */

static size_t slot_of(const ct_bpe_trainer *t, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = t->slot_cap - 1;
    size_t i = (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 20) & mask;
    while (t->slots[i] && (t->pairs[t->slots[i] - 1].a != a || t->pairs[t->slots[i] - 1].b != b))
        i = (i + 1) & mask;
    return i;
}

static ct_status slots_grow(ct_bpe_trainer *t) {
    size_t cap = t->slot_cap ? 2 * t->slot_cap : 1u << 16;
    uint32_t *slots = ct_calloc(cap * sizeof *slots, "BPE pair slots");
    if (!slots) return CT_ENOMEM;
    ct_free(t->slots);
    t->slots = slots;
    t->slot_cap = cap;
    for (size_t p = 0; p < t->n_pairs; p++)
        t->slots[slot_of(t, t->pairs[p].a, t->pairs[p].b)] = (uint32_t)p + 1;
    return CT_OK;
}

/* The record of pair (a, b), created with count 0 when new. */
static ct_status pair_get(ct_bpe_trainer *t, int32_t a, int32_t b, pair_rec **out) {
    if (2 * (t->n_pairs + 1) > t->slot_cap) CT_TRY(slots_grow(t));
    size_t i = slot_of(t, a, b);
    if (!t->slots[i]) {
        CT_TRY(ct_grow((void **)&t->pairs, &t->pairs_cap, t->n_pairs + 1, t->n_pairs, sizeof *t->pairs,
                       "BPE pairs"));
        t->pairs[t->n_pairs] = (pair_rec){0, a, b, NONE, NONE, 0};
        t->slots[i] = (uint32_t)++t->n_pairs;
    }
    *out = &t->pairs[t->slots[i] - 1];
    return CT_OK;
}

static ct_status pool_add(ct_bpe_trainer *t, pair_rec *p, uint32_t w) {
    if (p->last_word == w) return CT_OK;
    CT_TRY(
        ct_grow((void **)&t->pool, &t->pool_cap, t->pool_n + 1, t->pool_n, sizeof *t->pool, "BPE pair index"));
    t->pool[t->pool_n] = (pool_ent){w, p->head};
    p->head = (uint32_t)t->pool_n++;
    p->last_word = w;
    return CT_OK;
}

/* Adds delta occurrences of (a, b) in word w (times its count); a raised pair is indexed
 * under w and remembered to be queued. */
static ct_status pair_add(ct_bpe_trainer *t, int32_t a, int32_t b, int delta, uint32_t w) {
    pair_rec *p;
    CT_TRY(pair_get(t, a, b, &p));
    p->count += delta * (int64_t)t->wcount[w];
    if (delta < 0) return CT_OK;
    uint32_t idx = (uint32_t)(p - t->pairs);
    if (p->stamp != t->step) {
        p->stamp = t->step;
        CT_TRY(ct_grow((void **)&t->touched, &t->touched_cap, t->n_touched + 1, t->n_touched,
                       sizeof *t->touched, "BPE touched pairs"));
        t->touched[t->n_touched++] = idx;
    }
    return pool_add(t, &t->pairs[idx], w);
}

/* ---- the heap: the highest count first, then the smallest (a, b) ----------------------- */

static int item_before(const heap_item *x, const heap_item *y) {
    if (x->count != y->count) return x->count > y->count;
    return x->a != y->a ? x->a < y->a : x->b < y->b;
}

static ct_status heap_push(ct_bpe_trainer *t, heap_item it) {
    CT_TRY(ct_grow((void **)&t->heap, &t->heap_cap, t->n_heap + 1, t->n_heap, sizeof *t->heap, "BPE heap"));
    size_t i = t->n_heap++;
    while (i > 0 && item_before(&it, &t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = it;
    return CT_OK;
}

static heap_item heap_pop(ct_bpe_trainer *t) {
    heap_item top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && item_before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!item_before(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

/* Queues the pairs raised during this step at their current counts. */
static ct_status queue_touched(ct_bpe_trainer *t) {
    for (size_t i = 0; i < t->n_touched; i++) {
        const pair_rec *p = &t->pairs[t->touched[i]];
        if (p->count > 0) CT_TRY(heap_push(t, (heap_item){p->count, p->a, p->b}));
    }
    t->n_touched = 0;
    return CT_OK;
}

/* ---- the merge loop -------------------------------------------------------------------- */

/* Byte b's token id: the rank of its byte-level character (GPT-2's and Hugging Face's order). */
static void byte_ids(int32_t byte_id[256]) {
    int cp_to_byte[CT_BYTE_LEVEL_CHARS], next = 0;
    ct_byte_level_table(cp_to_byte);
    for (int c = 0; c < CT_BYTE_LEVEL_CHARS; c++)
        if (cp_to_byte[c] >= 0) byte_id[cp_to_byte[c]] = next++;
}

/* Lays the counted words out as symbol arrays. */
static ct_status words_layout(ct_bpe_trainer *t) {
    size_t n = t->words.n, total = t->words.keys_len;
    t->wcount = ct_alloc((n ? n : 1) * sizeof *t->wcount, "BPE word counts");
    t->woff = ct_alloc((n ? n : 1) * sizeof *t->woff, "BPE words");
    t->wlen = ct_alloc((n ? n : 1) * sizeof *t->wlen, "BPE words");
    t->sym = ct_alloc((total ? total : 1) * sizeof *t->sym, "BPE symbols");
    if (!t->wcount || !t->woff || !t->wlen || !t->sym) return CT_ENOMEM;
    if (total > UINT32_MAX)
        return ct_fail(CT_EINVAL, "the corpus has %zu bytes of distinct words: too many", total);
    int32_t byte_id[256];
    byte_ids(byte_id);
    uint32_t w = 0, off = 0;
    for (size_t i = 0; i < t->words.cap; i++) {
        const ct_bytemap_entry *e = &t->words.e[i];
        if (!e->used) continue;
        const uint8_t *k = ct_bytemap_key(&t->words, e);
        t->wcount[w] = ((uint64_t)e->v1 << 32) | e->v0;
        t->woff[w] = off;
        t->wlen[w] = e->len;
        for (uint32_t j = 0; j < e->len; j++) t->sym[off + j] = byte_id[k[j]];
        off += e->len;
        w++;
    }
    t->n_words = w;
    t->st.unique_words = w;
    ct_bytemap_free(&t->words); /* the symbols replace it */
    return ct_bytemap_init(&t->words, 1);
}

/* Counts every adjacent pair and queues them all. */
static ct_status pairs_init(ct_bpe_trainer *t) {
    t->step = 1;
    for (uint32_t w = 0; w < t->n_words; w++) {
        const int32_t *s = t->sym + t->woff[w];
        for (uint32_t j = 0; j + 1 < t->wlen[w]; j++) CT_TRY(pair_add(t, s[j], s[j + 1], 1, w));
    }
    return queue_touched(t);
}

/* Replaces every (a, b) in word w by c, left to right, moving the neighbours' counts. */
static ct_status merge_word(ct_bpe_trainer *t, uint32_t w, int32_t a, int32_t b, int32_t c) {
    int32_t *s = t->sym + t->woff[w];
    uint32_t n = t->wlen[w], j = 0;
    for (uint32_t i = 0; i < n;) {
        if (i + 1 >= n || s[i] != a || s[i + 1] != b) {
            s[j++] = s[i++];
            continue;
        }
        if (j > 0) {
            CT_TRY(pair_add(t, s[j - 1], a, -1, w));
            CT_TRY(pair_add(t, s[j - 1], c, 1, w));
        }
        if (i + 2 < n) {
            CT_TRY(pair_add(t, b, s[i + 2], -1, w));
            CT_TRY(pair_add(t, c, s[i + 2], 1, w));
        }
        s[j++] = c;
        i += 2;
    }
    t->wlen[w] = j;
    return CT_OK;
}

/* Token id's bytes: the byte itself, or its merge's two tokens joined. */
static ct_status token_add(ct_bpe_trainer *t, int id, const uint8_t *p, size_t n) {
    size_t at = t->tok_off[id];
    CT_TRY(ct_grow((void **)&t->tok_bytes, &t->tok_bytes_cap, at + n, at, 1, "BPE token bytes"));
    memmove(t->tok_bytes + at, p, n);
    t->tok_off[id + 1] = (uint32_t)(at + n);
    return CT_OK;
}

/* Merges the pair (a, b) into the next id everywhere it occurs. */
static ct_status merge_pair(ct_bpe_trainer *t, uint32_t pi) {
    int32_t a = t->pairs[pi].a, b = t->pairs[pi].b, c = 256 + t->n_merges;
    t->merges[t->n_merges][0] = a;
    t->merges[t->n_merges][1] = b;
    t->n_merges++;
    uint8_t joined[2 * 1024];
    size_t la = t->tok_off[a + 1] - t->tok_off[a], lb = t->tok_off[b + 1] - t->tok_off[b];
    const uint8_t *pa = la + lb <= sizeof joined ? t->tok_bytes + t->tok_off[a] : NULL;
    if (pa) {
        memcpy(joined, pa, la);
        memcpy(joined + la, t->tok_bytes + t->tok_off[b], lb);
    }
    CT_TRY(token_add(t, c, joined, pa ? la + lb : 0));
    t->step++;
    for (uint32_t e = t->pairs[pi].head; e != NONE; e = t->pool[e].next)
        CT_TRY(merge_word(t, t->pool[e].word, a, b, c));
    t->pairs[pi].count = 0;
    t->pairs[pi].head = NONE;
    return queue_touched(t);
}

#define MAX_TOKEN_BYTES 256 /* longer merges are skipped: readers cap a token's text */

/* The next pair to merge: the queue's best whose count is current; NONE when none is left. */
static uint32_t next_pair(ct_bpe_trainer *t, ct_status *s) {
    while (t->n_heap > 0) {
        heap_item it = heap_pop(t);
        size_t slot = slot_of(t, it.a, it.b);
        uint32_t pi = t->slots[slot] - 1;
        pair_rec *p = &t->pairs[pi];
        if (p->count == it.count) {
            size_t len = (t->tok_off[it.a + 1] - t->tok_off[it.a]) + (t->tok_off[it.b + 1] - t->tok_off[it.b]);
            if (len <= MAX_TOKEN_BYTES) return pi;
        } else if (p->count > 0 && p->count < it.count) { /* lowered since queued: requeue */
            *s = heap_push(t, (heap_item){p->count, it.a, it.b});
            if (*s != CT_OK) return NONE;
        } /* raised since queued: a newer entry holds the current count */
    }
    return NONE;
}

static ct_status merge_loop(ct_bpe_trainer *t) {
    int want = t->vocab_target - CT_BPE_MIN_VOCAB;
    t->merges = ct_alloc((size_t)(want ? want : 1) * sizeof *t->merges, "BPE merges");
    t->tok_off = ct_calloc(((size_t)t->vocab_target + 1) * sizeof *t->tok_off, "BPE token offsets");
    if (!t->merges || !t->tok_off) return CT_ENOMEM;
    int32_t byte_id[256];
    byte_ids(byte_id);
    for (int id = 0; id < 256; id++)
        for (int b = 0; b < 256; b++)
            if (byte_id[b] == id) CT_TRY(token_add(t, id, (const uint8_t[]){(uint8_t)b}, 1));
    CT_TRY(words_layout(t));
    CT_TRY(pairs_init(t));
    while (t->n_merges < want) {
        ct_status s = CT_OK;
        uint32_t pi = next_pair(t, &s);
        CT_TRY(s);
        if (pi == NONE) break;
        CT_TRY(merge_pair(t, pi));
    }
    return CT_OK;
}

/* ---- tokenizer.json -------------------------------------------------------------------- */

/* The byte-level string of token id as a cJSON string. */
static cJSON *token_string(const ct_bpe_trainer *t, const uint16_t *byte_to_cp, int id) {
    char buf[2 * MAX_TOKEN_BYTES + 1];
    ct_byte_level_encode(byte_to_cp, t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id], buf);
    return cJSON_CreateString(buf);
}

static void add_vocab(cJSON *v, const ct_bpe_trainer *t, const uint16_t *byte_to_cp, int vocab) {
    char buf[2 * MAX_TOKEN_BYTES + 1];
    for (int id = 0; id < vocab - 1; id++) {
        ct_byte_level_encode(byte_to_cp, t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id],
                             buf);
        cJSON_AddNumberToObject(v, buf, id);
    }
    cJSON_AddNumberToObject(v, "<|endoftext|>", vocab - 1);
}

static void add_merges(cJSON *merges, const ct_bpe_trainer *t, const uint16_t *byte_to_cp) {
    for (int i = 0; i < t->n_merges; i++) {
        cJSON *pair = cJSON_CreateArray();
        if (!cJSON_AddItemToArray(merges, pair)) {
            cJSON_Delete(pair);
            return;
        }
        for (int k = 0; k < 2; k++) {
            cJSON *tok = token_string(t, byte_to_cp, t->merges[i][k]);
            if (!cJSON_AddItemToArray(pair, tok)) cJSON_Delete(tok);
        }
    }
}

static cJSON *model_json(const ct_bpe_trainer *t, int vocab) {
    uint16_t byte_to_cp[256];
    ct_byte_level_chars(byte_to_cp);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddFalseToObject(m, "fuse_unk");
    cJSON_AddFalseToObject(m, "byte_fallback");
    cJSON_AddFalseToObject(m, "ignore_merges");
    cJSON *v = cJSON_AddObjectToObject(m, "vocab");
    if (v) add_vocab(v, t, byte_to_cp, vocab);
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    if (merges) add_merges(merges, t, byte_to_cp);
    return m;
}

/* cJSON drops what it cannot allocate: the tree is written only when all of it is there. */
static int complete(const cJSON *root, int vocab, int n_merges) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (cJSON_GetArraySize(v) != vocab || cJSON_GetArraySize(merges) != n_merges) return 0;
    for (const cJSON *p = merges->child; p; p = p->next)
        if (cJSON_GetArraySize(p) != 2) return 0;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    return cJSON_GetArraySize(root) == 9 && cJSON_GetArraySize(m) == 10 && cJSON_GetArraySize(added) == 1 &&
           cJSON_GetArraySize(added->child) == 7;
}

static cJSON *byte_level(int add_prefix_space) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "ByteLevel");
    cJSON_AddBoolToObject(p, "add_prefix_space", add_prefix_space);
    cJSON_AddTrueToObject(p, "trim_offsets");
    cJSON_AddTrueToObject(p, "use_regex");
    return p;
}

static cJSON *tokenizer_json(const ct_bpe_trainer *t, int vocab) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens"), *eot = cJSON_CreateObject();
    cJSON_AddItemToArray(added, eot);
    cJSON_AddNumberToObject(eot, "id", vocab - 1);
    cJSON_AddStringToObject(eot, "content", "<|endoftext|>");
    cJSON_AddFalseToObject(eot, "single_word");
    cJSON_AddFalseToObject(eot, "lstrip");
    cJSON_AddFalseToObject(eot, "rstrip");
    cJSON_AddFalseToObject(eot, "normalized");
    cJSON_AddTrueToObject(eot, "special");
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", byte_level(0));
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", byte_level(1));
    cJSON_AddItemToObject(root, "model", model_json(t, vocab));
    return root;
}

static ct_status write_json(const ct_bpe_trainer *t, int vocab, const char *path) {
    cJSON *root = tokenizer_json(t, vocab);
    char *text = root && complete(root, vocab, t->n_merges) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return ct_fail(CT_ENOMEM, "out of memory writing %s", path);
    ct_status s = ct_atomic_write_file(path, text, strlen(text));
    cJSON_free(text);
    return s;
}

ct_status ct_bpe_trainer_finish(ct_bpe_trainer *t, const char *path, ct_bpe_stats *st) {
    double t0 = ct_now();
    CT_TRY(merge_loop(t));
    int vocab = t->n_merges + CT_BPE_MIN_VOCAB;
    CT_TRY(write_json(t, vocab, path));
    t->st.vocab = vocab;
    t->st.merges = t->n_merges;
    t->st.merge_secs = ct_now() - t0;
    if (st) *st = t->st;
    return CT_OK;
}
