/* fuzz_scenes.c: fuzzes the scene shard reader (src/data/scenes.c, ct_scene_shard_open and
 * the record accessors).
 * Input: a mode byte, then the shard file. Mode bit 0 set: the harness first stores the
 * right XXH64 of the records in the header, so that mutations reach the record checks
 * behind the checksum; clear: the bytes go to the file as they are.
 * Asserts beyond "no crash, no leak": a refusal leaves a message; a shard that opens is
 * exactly header + N records long, and every record has a caption of at most max_tokens
 * tokens below the vocabulary, 1..4 items with labels 0..19 in distinct increasing cells,
 * for which ct_scene_caption writes a caption. Every pixel is read. */
#include "fuzz.h"
#include "data/scenes.h"

static void check_record(const ct_scene_shard *s, uint64_t i, int32_t *tokens) {
    const uint8_t *px = ct_scene_shard_pixels(s, i);
    volatile unsigned sum = 0;
    for (size_t k = 0; k < (size_t)s->height * s->width; k++) sum += px[k];
    (void)sum;
    size_t n = ct_scene_shard_caption(s, i, tokens);
    FUZZ_CHECK(n <= s->max_tokens);
    for (size_t k = 0; k < n; k++) FUZZ_CHECK(tokens[k] >= 0 && (uint32_t)tokens[k] < s->vocab_size);
    uint8_t labels[CT_SCENE_MAX_ITEMS], cells[CT_SCENE_MAX_ITEMS];
    int items = ct_scene_shard_items(s, i, labels, cells);
    FUZZ_CHECK(items >= 1 && items <= CT_SCENE_MAX_ITEMS);
    for (int k = 0; k < items; k++) {
        FUZZ_CHECK(labels[k] < CT_SCENE_LABELS && cells[k] < 4);
        FUZZ_CHECK(k == 0 || cells[k] > cells[k - 1]);
    }
    char caption[CT_SCENE_CAPTION_CAP];
    FUZZ_CHECK(ct_scene_caption(items, labels, cells, caption, sizeof caption) == CT_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    uint8_t *file = fuzz_shard_file(data, size, CT_SCENE_HEADER_BYTES, 40, &n);
    if (!file) return 0;
    char path[128];
    fuzz_write(path, sizeof path, "fuzz.bin", file, n);
    free(file);
    fuzz_clear_error();
    ct_scene_shard s;
    if (ct_scene_shard_open(&s, path) != CT_OK) {
        FUZZ_CHECK(ct_last_error()[0] != 0);
        return 0;
    }
    FUZZ_CHECK(s.map.size == CT_SCENE_HEADER_BYTES + s.count * s.record_bytes);
    int32_t *tokens = malloc((s.max_tokens ? s.max_tokens : 1) * sizeof *tokens);
    FUZZ_CHECK(tokens != NULL);
    for (uint64_t i = 0; i < s.count; i++) check_record(&s, i, tokens);
    free(tokens);
    ct_scene_shard_close(&s);
    return 0;
}
