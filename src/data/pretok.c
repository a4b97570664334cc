/* pretok.c: GPT-2's pre-tokenizer over PCRE2 (UTF + JIT), UTF-8 sanitising, and the
 * byte-level alphabet (see pretok.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/pretok.h"
#include "data/bytemap.h"
#include <pcre2.h>
#include <string.h>

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

struct ct_pretok {
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    int jit;
    uint8_t *clean; /* UTF-8 sanitised copy of the input when it was invalid */
    size_t clean_cap;
};

static ct_status compile_pattern(ct_pretok *t) {
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

ct_status ct_pretok_create(ct_pretok **out) {
    *out = NULL;
    ct_pretok *p = ct_calloc(sizeof *p, "pre-tokenizer");
    if (!p) return CT_ENOMEM;
    ct_status s = compile_pattern(p);
    if (s != CT_OK) {
        ct_pretok_free(p);
        return s;
    }
    *out = p;
    return CT_OK;
}

void ct_pretok_free(ct_pretok *p) {
    if (!p) return;
    pcre2_match_data_free(p->md);
    pcre2_match_context_free(p->mctx);
    pcre2_jit_stack_free(p->jstack);
    pcre2_code_free(p->re);
    ct_free(p->clean);
    ct_free(p);
}

/* ---- UTF-8 ----------------------------------------------------------------------------- */

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

ct_status ct_pretok_sanitize(ct_pretok *t, const uint8_t **text, size_t *len) {
    const uint8_t *s = *text;
    size_t n = *len, i = 0;
    while (i < n && s[i] < 0x80) i++;
    while (i < n) {
        long l = utf8_check(s + i, n - i);
        if (l < 0) break;
        i += (size_t)l;
    }
    if (i == n) return CT_OK;
    CT_TRY(ct_grow((void **)&t->clean, &t->clean_cap, 3 * n, 0, 1, "UTF-8 sanitised text"));
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

/* ---- splitting ------------------------------------------------------------------------- */

static int next_match(ct_pretok *t, const uint8_t *s, size_t n, size_t pos) {
    if (t->jit) return pcre2_jit_match(t->re, s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
    return pcre2_match(t->re, s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
}

ct_status ct_pretok_split(ct_pretok *t, const uint8_t *s, size_t len, ct_pretok_fn fn, void *ctx) {
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
        size_t a = ov[0], b = ov[1];
        CT_TRY(fn(ctx, s + a, b - a));
        pos = b;
    }
    return CT_OK;
}

/* ---- the byte-level alphabet ----------------------------------------------------------- */

void ct_byte_level_table(int cp_to_byte[CT_BYTE_LEVEL_CHARS]) {
    for (int c = 0; c < CT_BYTE_LEVEL_CHARS; c++) cp_to_byte[c] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_to_byte[printable ? b : 256 + n++] = b;
    }
}

void ct_byte_level_chars(uint16_t byte_to_cp[256]) {
    int cp_to_byte[CT_BYTE_LEVEL_CHARS];
    ct_byte_level_table(cp_to_byte);
    for (int c = 0; c < CT_BYTE_LEVEL_CHARS; c++)
        if (cp_to_byte[c] >= 0) byte_to_cp[cp_to_byte[c]] = (uint16_t)c;
}

/* Decodes one code point below U+0800 from valid UTF-8 at s (n bytes left); returns its
 * length or 0 (byte-level characters are all below U+0144). */
static int utf8_cp(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n >= 1 && s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3F);
        return 2;
    }
    return 0;
}

long ct_byte_level_decode(const int cp_to_byte[CT_BYTE_LEVEL_CHARS], const char *s, uint8_t *out) {
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    long k = 0;
    while (n > 0) {
        uint32_t cp;
        int l = utf8_cp(p, n, &cp);
        if (l == 0 || cp >= CT_BYTE_LEVEL_CHARS || cp_to_byte[cp] < 0) return -1;
        out[k++] = (uint8_t)cp_to_byte[cp];
        p += l;
        n -= (size_t)l;
    }
    return k;
}

size_t ct_byte_level_encode(const uint16_t byte_to_cp[256], const uint8_t *b, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t c = byte_to_cp[b[i]];
        if (c < 0x80) out[o++] = (char)c;
        else {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = 0;
    return o;
}
