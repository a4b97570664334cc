/* fuzz_bpe.c: fuzzes the BPE file readers (src/data/tokenizer.c, ct_tokenizer_load:
 * encoder.json's token -> id object and vocab.bpe's merge lines), then encoding with what
 * they loaded.
 * Input: encoder.json, a NUL byte, vocab.bpe, a NUL byte, then text to encode (any bytes);
 * missing parts are empty files / no text.
 * Asserts beyond "no crash, no leak": a refusal leaves a message and no tokenizer; a
 * tokenizer that loads has at least the 256 byte tokens, and encoding the text gives ids
 * below its vocabulary whose decoding is valid UTF-8, the text itself when that is valid
 * UTF-8, and encodes to the same ids again (fuzz_check_encode). */
#include "fuzz_tok.h"

/* The next part of data[*at..size) up to a NUL byte (or the end); *at moves past the NUL. */
static size_t next_part(const uint8_t *data, size_t size, size_t *at) {
    size_t start = *at;
    const uint8_t *nul = memchr(data + start, 0, size - start);
    size_t end = nul ? (size_t)(nul - data) : size;
    *at = nul ? end + 1 : size;
    return end - start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t at = 0;
    size_t enc_n = next_part(data, size, &at), enc_at = 0;
    size_t bpe_at = at, bpe_n = next_part(data, size, &at);
    char enc[128], bpe[128];
    fuzz_write(enc, sizeof enc, "encoder.json", data + enc_at, enc_n);
    fuzz_write(bpe, sizeof bpe, "vocab.bpe", data + bpe_at, bpe_n);
    fuzz_clear_error();
    ct_tokenizer *t = NULL;
    if (ct_tokenizer_load(&t, enc, bpe) != CT_OK) {
        FUZZ_CHECK(t == NULL && ct_last_error()[0] != 0);
        return 0;
    }
    FUZZ_CHECK(ct_tokenizer_vocab_size(t) >= 256);
    fuzz_check_encode(t, data + at, size - at);
    ct_tokenizer_free(t);
    return 0;
}
