/* fuzz_shard.c: fuzzes the token shard reader (src/data/shard.c, ct_shard_open).
 * Input: a mode byte, then the shard file. Mode bit 0 set: the harness first stores the
 * right XXH64 of the tokens in the header, so that mutations reach the token checks behind
 * the checksum; clear: the bytes go to the file as they are.
 * Asserts beyond "no crash, no leak": a refusal leaves a message; a shard that opens has a
 * token width of 2 or 4, a file size of exactly header + N x width, every token below the
 * vocabulary size, and (where the width is the writer's choice for that vocabulary and the
 * version the one written) ct_shard_write of its tokens gives back the file byte for byte. */
#include "fuzz.h"
#include "data/shard.h"

#define ROUND_TRIP_MAX 4096 /* tokens; longer shards skip the rewrite */

/* Writes s's tokens again and compares the file with the input. */
static void check_rewrite(const ct_shard *s, const uint8_t *data, size_t size) {
    int32_t *tokens = malloc((s->n_tokens ? s->n_tokens : 1) * sizeof *tokens);
    FUZZ_CHECK(tokens != NULL);
    for (uint64_t i = 0; i < s->n_tokens; i++) tokens[i] = ct_shard_token(s, i);
    char path[128];
    fuzz_path(path, sizeof path, "rewritten.bin");
    FUZZ_CHECK(ct_shard_write(path, tokens, s->n_tokens, s->vocab_size) == CT_OK);
    char *back;
    size_t n;
    FUZZ_CHECK(ct_read_file(path, &back, &n) == CT_OK);
    FUZZ_CHECK(n == size && memcmp(back, data, size) == 0);
    ct_free(back);
    free(tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    uint8_t *file = fuzz_shard_file(data, size, CT_SHARD_HEADER_BYTES, 32, &n);
    if (!file) return 0;
    char path[128];
    fuzz_write(path, sizeof path, "fuzz.bin", file, n);
    fuzz_clear_error();
    ct_shard s;
    if (ct_shard_open(&s, path) != CT_OK) {
        FUZZ_CHECK(ct_last_error()[0] != 0);
        free(file);
        return 0;
    }
    FUZZ_CHECK(s.bytes_per_token == 2 || s.bytes_per_token == 4);
    FUZZ_CHECK(s.map.size == CT_SHARD_HEADER_BYTES + s.n_tokens * s.bytes_per_token);
    for (uint64_t i = 0; i < s.n_tokens; i++) FUZZ_CHECK((uint32_t)ct_shard_token(&s, i) < s.vocab_size);
    uint32_t width = s.vocab_size <= 65536 ? 2 : 4;
    if (width == s.bytes_per_token && s.version == CT_SHARD_VERSION && s.n_tokens <= ROUND_TRIP_MAX)
        check_rewrite(&s, file, n);
    ct_shard_close(&s);
    free(file);
    return 0;
}
