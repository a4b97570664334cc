/* shard.c: writing and validating token shard files (format in shard.h). */
#include "data/shard.h"
#include <inttypes.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define CHUNK_TOKENS 65536

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Packs tokens[0..n) little-endian, width bytes each, into out. */
static void pack_tokens(uint8_t *out, const int32_t *tokens, size_t n, uint32_t width) {
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)tokens[i];
        for (uint32_t b = 0; b < width; b++) out[i * width + b] = (uint8_t)(v >> (8 * b));
    }
}

/* The version-2 checksum of tokens[0..n) packed at width, then the header's first bytes. */
static uint64_t packed_checksum(uint8_t *buf, const int32_t *tokens, size_t n, uint32_t width,
                                const uint8_t *header) {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    for (size_t i = 0; i < n; i += CHUNK_TOKENS) {
        size_t k = n - i < CHUNK_TOKENS ? n - i : CHUNK_TOKENS;
        pack_tokens(buf, tokens + i, k, width);
        XXH64_update(&st, buf, k * width);
    }
    XXH64_update(&st, header, CT_SHARD_HASHED_HEADER);
    return XXH64_digest(&st);
}

static ct_status write_body(ct_atomic_file *f, uint8_t *buf, const int32_t *tokens, size_t n, uint32_t vocab,
                            uint32_t width) {
    uint8_t h[CT_SHARD_HEADER_BYTES] = {0};
    memcpy(h, CT_SHARD_MAGIC, 8);
    put_u32(h + 8, CT_SHARD_VERSION);
    put_u32(h + 12, width);
    put_u64(h + 16, n);
    put_u32(h + 24, vocab);
    put_u64(h + 32, packed_checksum(buf, tokens, n, width, h));
    CT_TRY(ct_atomic_write(f, h, sizeof h));
    for (size_t i = 0; i < n; i += CHUNK_TOKENS) {
        size_t k = n - i < CHUNK_TOKENS ? n - i : CHUNK_TOKENS;
        pack_tokens(buf, tokens + i, k, width);
        CT_TRY(ct_atomic_write(f, buf, k * width));
    }
    return CT_OK;
}

ct_status ct_shard_write(const char *path, const int32_t *tokens, size_t n, uint32_t vocab_size) {
    if (vocab_size == 0) return ct_fail(CT_EINVAL, "cannot write %s: vocab size must be > 0", path);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= vocab_size)
            return ct_fail(CT_EINVAL,
                           "cannot write %s: token %d at position %zu is outside the "
                           "vocabulary [0, %u)",
                           path, tokens[i], i, vocab_size);
    uint32_t width = vocab_size <= 65536 ? 2 : 4;
    uint8_t *buf = ct_alloc((size_t)CHUNK_TOKENS * width, "shard write buffer");
    if (!buf) return CT_ENOMEM;
    ct_atomic_file *f;
    ct_status s = ct_atomic_open(&f, path);
    if (s == CT_OK) {
        s = write_body(f, buf, tokens, n, vocab_size, width);
        if (s == CT_OK) s = ct_atomic_commit(f);
        else
            ct_atomic_abort(f);
    }
    ct_free(buf);
    return s;
}

/* Checks the header fields and the file size against them. */
static ct_status check_header(ct_shard *s, const char *path) {
    const uint8_t *h = s->map.data;
    size_t size = s->map.size;
    if (size < CT_SHARD_HEADER_BYTES)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated: %zu bytes, expected at least the %u-byte "
                       "shard header",
                       path, size, CT_SHARD_HEADER_BYTES);
    if (memcmp(h, CT_SHARD_MAGIC, 8) != 0)
        return ct_fail(CT_ECORRUPT, "%s is not a token shard: bad magic (expected \"%s\")", path,
                       CT_SHARD_MAGIC);
    s->version = get_u32(h + 8);
    if (s->version != CT_SHARD_VERSION && s->version != CT_SHARD_VERSION_V1)
        return ct_fail(CT_ECORRUPT, "%s has unknown shard version %u (expected %u, or the older %u)", path,
                       s->version, CT_SHARD_VERSION, CT_SHARD_VERSION_V1);
    s->bytes_per_token = get_u32(h + 12);
    s->n_tokens = get_u64(h + 16);
    s->vocab_size = get_u32(h + 24);
    if (s->bytes_per_token != 2 && s->bytes_per_token != 4)
        return ct_fail(CT_ECORRUPT, "%s has %u bytes per token (expected 2 or 4)", path, s->bytes_per_token);
    if (s->vocab_size == 0 || (s->bytes_per_token == 2 && s->vocab_size > 65536) || get_u32(h + 28) != 0)
        return ct_fail(CT_ECORRUPT,
                       "%s has a bad header: vocab size %u with %u bytes per token, "
                       "reserved field %u (expected 0)",
                       path, s->vocab_size, s->bytes_per_token, get_u32(h + 28));
    uint64_t body = size - CT_SHARD_HEADER_BYTES;
    if (s->n_tokens > body / s->bytes_per_token || body != s->n_tokens * s->bytes_per_token)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated or padded: %zu bytes, expected %u + %" PRIu64 " tokens x %u bytes",
                       path, size, CT_SHARD_HEADER_BYTES, s->n_tokens, s->bytes_per_token);
    return CT_OK;
}

/* The stored checksum's scope: the tokens, then (version 2) the header's first bytes. */
static uint64_t stored_scope_hash(const ct_shard *s) {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    XXH64_update(&st, s->tokens, s->n_tokens * s->bytes_per_token);
    if (s->version != CT_SHARD_VERSION_V1) XXH64_update(&st, s->map.data, CT_SHARD_HASHED_HEADER);
    return XXH64_digest(&st);
}

static ct_status check_tokens(const ct_shard *s, const char *path) {
    uint64_t want = get_u64(s->map.data + 32);
    uint64_t got = stored_scope_hash(s);
    if (got != want)
        return ct_fail(CT_ECORRUPT,
                       "%s is corrupt: %s checksum %016" PRIx64 " does not match "
                       "the header's %016" PRIx64,
                       path, s->version == CT_SHARD_VERSION_V1 ? "token" : "header and token", got, want);
    for (uint64_t i = 0; i < s->n_tokens; i++) {
        int32_t t = ct_shard_token(s, i);
        if (t < 0 || (uint32_t)t >= s->vocab_size)
            return ct_fail(CT_ECORRUPT,
                           "%s is corrupt: token %u at position %" PRIu64 " is not below the vocab size %u",
                           path, (uint32_t)t, i, s->vocab_size);
    }
    return CT_OK;
}

/* Says once per process that version-1 shards are read with their header unchecked. */
static void note_old_version(const char *path) {
    static int noted;
    if (noted) return;
    noted = 1;
    ct_log("note: %s is a version-1 token shard: its header is not covered by its checksum "
           "(re-run `cetus prepare` to upgrade it to version %u)",
           path, CT_SHARD_VERSION);
}

ct_status ct_shard_open(ct_shard *s, const char *path) {
    memset(s, 0, sizeof *s);
    CT_TRY(ct_map_file(&s->map, path));
    ct_status st = (s->path = ct_strdup(path, "the shard's path")) ? check_header(s, path) : CT_ENOMEM;
    if (st == CT_OK) {
        s->tokens = s->map.data + CT_SHARD_HEADER_BYTES;
        st = check_tokens(s, path);
    }
    if (st == CT_OK && s->version == CT_SHARD_VERSION_V1) note_old_version(path);
    if (st != CT_OK) ct_shard_close(s);
    return st;
}

void ct_shard_close(ct_shard *s) {
    ct_unmap_file(&s->map);
    ct_free(s->path);
    memset(s, 0, sizeof *s);
}
