/* shard.h: token shard files. Layout (little-endian, 40-byte header, then the tokens):
 *   off  0  char[8]  magic "CETUSTOK"
 *   off  8  u32      version (2; 1 is still read, see below)
 *   off 12  u32      bytes per token (2 when vocab <= 65536, else 4)
 *   off 16  u64      token count N
 *   off 24  u32      vocab size V (every token < V)
 *   off 28  u32      reserved, 0
 *   off 32  u64      XXH64 (seed 0) of the N * bytes-per-token token bytes followed by the
 *                    header's bytes 0..31, so every header field is covered too
 *   off 40  tokens   [N] u16 or u32
 * Version 1 (before the header was covered) hashed the token bytes alone; such shards still
 * open, with a one-time note that their header is unchecked (`cetus prepare` rewrites them
 * as version 2). Written atomically (temp file, fsync, rename); opened memory-mapped and
 * fully validated. */
#ifndef CT_SHARD_H
#define CT_SHARD_H

#include "core/core.h"

#define CT_SHARD_MAGIC "CETUSTOK"
#define CT_SHARD_VERSION 2u        /* written */
#define CT_SHARD_VERSION_V1 1u     /* still read: header outside the checksum */
#define CT_SHARD_HASHED_HEADER 32u /* header bytes under the checksum (version 2) */
#define CT_SHARD_HEADER_BYTES 40u

typedef struct ct_shard {
    ct_mapped map;
    const uint8_t *tokens; /* map.data + header */
    uint64_t n_tokens;
    uint32_t vocab_size;
    uint32_t bytes_per_token; /* 2 or 4 */
    uint32_t version;         /* 1 or 2 */
    char *path;               /* as opened, for messages */
} ct_shard;

/* Writes tokens[0..n) (each in [0, vocab_size)) to path. */
ct_status ct_shard_write(const char *path, const int32_t *tokens, size_t n, uint32_t vocab_size);

/* Maps path and checks magic, version, token width, size (header + N * width), checksum
 * (of the header too, version 2) and that every token is < vocab size; any failure is
 * CT_ECORRUPT (CT_EIO if unreadable) with a message naming the file and the problem. A
 * version-1 shard opens with a note on stderr (once per process). Close with
 * ct_shard_close. */
ct_status ct_shard_open(ct_shard *s, const char *path);
void ct_shard_close(ct_shard *s);

static inline int32_t ct_shard_token(const ct_shard *s, uint64_t i) {
    const uint8_t *p = s->tokens + i * s->bytes_per_token;
    if (s->bytes_per_token == 2) return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8));
    return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

#endif /* CT_SHARD_H */
