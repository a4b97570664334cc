/* pretok.h: what every byte-level BPE here shares before the merges: GPT-2's pre-tokenizer
 * (its regex with JavaScript's \s and Unicode 17 classes, compiled once with PCRE2 + JIT),
 * the WHATWG replacement of invalid UTF-8 by U+FFFD, and the byte-level alphabet that maps
 * each byte to a printable character (GPT-2's bytes_to_unicode, also Hugging Face's
 * ByteLevel). A ct_pretok owns match scratch: one per thread. */
#ifndef CT_PRETOK_H
#define CT_PRETOK_H

#include "core/core.h"

typedef struct ct_pretok ct_pretok;

ct_status ct_pretok_create(ct_pretok **out);
void ct_pretok_free(ct_pretok *p);

/* If text[0..*len) is not valid UTF-8, points *text at a copy owned by p (valid until the
 * next call) with each maximal invalid subsequence replaced by U+FFFD, and updates *len. */
ct_status ct_pretok_sanitize(ct_pretok *p, const uint8_t **text, size_t *len);

/* Splits valid UTF-8 text into GPT-2's pre-tokens, calling fn for each in order; stops at
 * the first status fn returns other than CT_OK and returns it. */
typedef ct_status (*ct_pretok_fn)(void *ctx, const uint8_t *word, size_t n);
ct_status ct_pretok_split(ct_pretok *p, const uint8_t *text, size_t len, ct_pretok_fn fn, void *ctx);

/* The byte-level alphabet: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. cp_to_byte[c] is the byte of character c (-1: not one). */
#define CT_BYTE_LEVEL_CHARS 0x144
void ct_byte_level_table(int cp_to_byte[CT_BYTE_LEVEL_CHARS]);
/* The character of each byte (inverse of the table above). */
void ct_byte_level_chars(uint16_t byte_to_cp[256]);
/* Converts a byte-level token string (NUL-terminated UTF-8) to raw bytes in out (room for
 * strlen(s) bytes); returns the byte count or -1 if a character is not a byte character. */
long ct_byte_level_decode(const int cp_to_byte[CT_BYTE_LEVEL_CHARS], const char *s, uint8_t *out);
/* Writes raw bytes b[0..n) as a NUL-terminated byte-level string into out (room for 2n + 1
 * bytes); returns its length. */
size_t ct_byte_level_encode(const uint16_t byte_to_cp[256], const uint8_t *b, size_t n, char *out);

#endif /* CT_PRETOK_H */
