/* tokenizer_json.c: reads a Hugging Face tokenizer.json into a ct_tokenizer. Only what
 * cetus implements is accepted: model.type "BPE" over byte-level tokens (no dropout, no
 * word prefix or suffix, no byte fallback), no normalizer, the ByteLevel pre-tokenizer
 * (add_prefix_space false, use_regex true; alone or the one step of a Sequence), a ByteLevel
 * decoder and at most a ByteLevel post-processor, added tokens that only match their text,
 * and an "<|endoftext|>" added token. Anything else is refused naming the file and the
 * field, rather than encoding differently from Hugging Face's tokenizers. */
#include "data/tokenizer_internal.h"
#include <string.h>

static const cJSON *field(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static int absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* The "type" string of a component, or "" when there is none. */
static const char *type_of(const cJSON *o) {
    const cJSON *t = field(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static ct_status unsupported(const char *path, const char *what, const char *found, const char *want) {
    return ct_fail(CT_EINVAL, "%s: %s %s is not supported (cetus reads byte-level BPE tokenizers: %s)", path,
                   what, found, want);
}

/* A flag that must be false (or absent when absent_ok). */
static ct_status flag_false(const cJSON *o, const char *key, const char *where, const char *path) {
    const cJSON *v = field(o, key);
    if (absent(v) || cJSON_IsFalse(v)) return CT_OK;
    return ct_fail(CT_EINVAL, "%s: %s.%s = true is not supported (expected false)", path, where, key);
}

static ct_status check_byte_level(const cJSON *p, const char *where, const char *path) {
    if (strcmp(type_of(p), "ByteLevel") != 0)
        return unsupported(path, where, type_of(p)[0] ? type_of(p) : "without a type",
                           "expected \"ByteLevel\"");
    const cJSON *aps = field(p, "add_prefix_space"), *re = field(p, "use_regex");
    if (!cJSON_IsFalse(aps))
        return ct_fail(CT_EINVAL, "%s: %s.add_prefix_space must be false (a leading space is not added)", path,
                       where);
    if (!absent(re) && !cJSON_IsTrue(re))
        return ct_fail(CT_EINVAL, "%s: %s.use_regex must be true (GPT-2's pre-tokenizer pattern)", path, where);
    return CT_OK;
}

static ct_status check_pre_tokenizer(const cJSON *p, const char *path) {
    if (absent(p)) return unsupported(path, "pre_tokenizer", "null", "expected ByteLevel");
    if (strcmp(type_of(p), "Sequence") != 0) return check_byte_level(p, "pre_tokenizer", path);
    const cJSON *list = field(p, "pretokenizers");
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 1)
        return unsupported(path, "pre_tokenizer", "Sequence of other than one step",
                           "expected ByteLevel alone or as the one step of a Sequence");
    return check_byte_level(list->child, "pre_tokenizer.pretokenizers[0]", path);
}

/* normalizer, pre_tokenizer, decoder and post_processor. */
static ct_status check_pipeline(const cJSON *root, const char *path) {
    const cJSON *n = field(root, "normalizer"), *d = field(root, "decoder"),
                *pp = field(root, "post_processor");
    if (!absent(n)) return unsupported(path, "normalizer", type_of(n), "expected null");
    CT_TRY(check_pre_tokenizer(field(root, "pre_tokenizer"), path));
    if (!absent(d) && strcmp(type_of(d), "ByteLevel") != 0)
        return unsupported(path, "decoder", type_of(d), "expected ByteLevel");
    if (!absent(pp) && strcmp(type_of(pp), "ByteLevel") != 0)
        return unsupported(path, "post_processor", type_of(pp), "expected ByteLevel or null");
    return CT_OK;
}

/* An empty string or null. */
static int no_text(const cJSON *v) { return absent(v) || (cJSON_IsString(v) && !v->valuestring[0]); }

static ct_status check_model(const cJSON *m, const char *path) {
    if (!cJSON_IsObject(m)) return ct_fail(CT_ECORRUPT, "%s has no \"model\" object", path);
    if (strcmp(type_of(m), "BPE") != 0)
        return unsupported(path, "model.type", type_of(m)[0] ? type_of(m) : "(none)", "expected \"BPE\"");
    if (!absent(field(m, "dropout")) &&
        !(cJSON_IsNumber(field(m, "dropout")) && field(m, "dropout")->valuedouble == 0))
        return unsupported(path, "model.dropout", "other than null", "expected null");
    if (!no_text(field(m, "continuing_subword_prefix")))
        return unsupported(path, "model.continuing_subword_prefix", "other than null", "expected null");
    if (!no_text(field(m, "end_of_word_suffix")))
        return unsupported(path, "model.end_of_word_suffix", "other than null", "expected null");
    CT_TRY(flag_false(m, "byte_fallback", "model", path));
    CT_TRY(flag_false(m, "ignore_merges", "model", path));
    if (!cJSON_IsObject(field(m, "vocab")) || !cJSON_IsArray(field(m, "merges")))
        return ct_fail(CT_ECORRUPT, "%s: model.vocab must be an object and model.merges an array", path);
    return CT_OK;
}

/* An id: an integer in [0, CT_TOKENIZER_MAX_VOCAB). */
static int id_ok(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < CT_TOKENIZER_MAX_VOCAB &&
           v->valuedouble == (double)(int)v->valuedouble;
}

/* added_tokens: each {id, content, ...} matching only its own text; counts them into *n and
 * raises *vocab past their ids. */
static ct_status check_added(const cJSON *added, int *vocab, int *n, const char *path) {
    if (!cJSON_IsArray(added)) return ct_fail(CT_ECORRUPT, "%s: added_tokens must be an array", path);
    *n = 0;
    for (const cJSON *a = added->child; a; a = a->next, ++*n) {
        const cJSON *id = field(a, "id"), *c = field(a, "content");
        if (!id_ok(id) || !cJSON_IsString(c) || !c->valuestring[0] || strlen(c->valuestring) >= 1024)
            return ct_fail(CT_ECORRUPT,
                           "%s: added_tokens[%d] must have an integer \"id\" in [0, %d) and a non-empty "
                           "\"content\" string",
                           path, *n, CT_TOKENIZER_MAX_VOCAB);
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%d]", *n);
        CT_TRY(flag_false(a, "single_word", where, path));
        CT_TRY(flag_false(a, "lstrip", where, path));
        CT_TRY(flag_false(a, "rstrip", where, path));
        if (id->valueint >= *vocab) *vocab = id->valueint + 1;
    }
    return CT_OK;
}

/* The vocabulary's size: one past the largest id of the vocab and the added tokens. */
static ct_status vocab_size(const cJSON *vocab, const cJSON *added, int *v, int *n_added, const char *path) {
    *v = 0;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        if (!id_ok(it))
            return ct_fail(CT_ECORRUPT, "%s: model.vocab[\"%.60s\"] must be an integer id in [0, %d)", path,
                           it->string ? it->string : "", CT_TOKENIZER_MAX_VOCAB);
        if (it->valueint >= *v) *v = it->valueint + 1;
    }
    return check_added(added, v, n_added, path);
}

/* The added tokens' ids, and EOT among them. */
static ct_status added_ids(ct_tokenizer *t, const cJSON *added, const char *path) {
    t->added = ct_alloc((size_t)(t->n_added ? t->n_added : 1) * sizeof *t->added, "added tokens");
    if (!t->added) return CT_ENOMEM;
    int k = 0;
    t->eot = -1;
    for (const cJSON *a = added->child; a; a = a->next) {
        int id = field(a, "id")->valueint;
        for (int j = 0; j < k; j++)
            if (t->added[j] == id) return ct_fail(CT_ECORRUPT, "%s: added token id %d appears twice", path, id);
        t->added[k++] = id;
        if (!strcmp(field(a, "content")->valuestring, "<|endoftext|>")) t->eot = id;
    }
    if (t->eot < 0)
        return ct_fail(CT_EINVAL, "%s has no \"<|endoftext|>\" added token: cetus separates documents with it",
                       path);
    return CT_OK;
}

/* One merge: "A B" or ["A", "B"], byte-level strings, into raw bytes a and b. */
static ct_status merge_parts(const cJSON *m, uint32_t rank, const int *cp_to_byte, uint8_t *a, long *na,
                             uint8_t *b, long *nb, const char *path) {
    char buf[2048];
    const char *sa = NULL, *sb = NULL;
    if (cJSON_IsString(m) && strlen(m->valuestring) < sizeof buf) {
        strcpy(buf, m->valuestring);
        char *sp = strchr(buf, ' ');
        if (sp && !strchr(sp + 1, ' ')) {
            *sp = 0;
            sa = buf;
            sb = sp + 1;
        }
    } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
               cJSON_IsString(m->child->next)) {
        sa = m->child->valuestring;
        sb = m->child->next->valuestring;
    }
    *na = sa && strlen(sa) < 1024 ? ct_byte_level_decode(cp_to_byte, sa, a) : -1;
    *nb = sb && strlen(sb) < 1024 ? ct_byte_level_decode(cp_to_byte, sb, b) : -1;
    if (*na <= 0 || *nb <= 0)
        return ct_fail(CT_ECORRUPT,
                       "%s: model.merges[%u] must be \"A B\" or [\"A\", \"B\"] of two byte-level tokens", path,
                       rank);
    return CT_OK;
}

static ct_status load_merges(ct_tokenizer *t, const cJSON *merges, const char *path) {
    CT_TRY(ct_tok_pairs_alloc(t, (size_t)cJSON_GetArraySize(merges)));
    int cp_to_byte[CT_BYTE_LEVEL_CHARS];
    ct_byte_level_table(cp_to_byte);
    uint8_t a[1024], b[1024];
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        long na, nb;
        CT_TRY(merge_parts(m, rank, cp_to_byte, a, &na, b, &nb, path));
        ct_tok_merge_hash(t, a, (size_t)na, b, (size_t)nb);
        CT_TRY(ct_tok_merge_add(t, a, (size_t)na, b, (size_t)nb, rank, path));
    }
    return CT_OK;
}

static ct_status load_root(ct_tokenizer *t, const cJSON *root, const char *path) {
    if (!cJSON_IsObject(root))
        return ct_fail(CT_ECORRUPT, "cannot parse %s: expected a tokenizer.json object", path);
    const cJSON *m = field(root, "model"), *added = field(root, "added_tokens");
    CT_TRY(check_model(m, path));
    CT_TRY(check_pipeline(root, path));
    const cJSON *vocab = field(m, "vocab");
    CT_TRY(vocab_size(vocab, added, &t->vocab, &t->n_added, path));
    if (t->vocab < 257)
        return ct_fail(CT_ECORRUPT, "%s has %d tokens: expected the 256 byte tokens and <|endoftext|> at least",
                       path, t->vocab);
    CT_TRY(added_ids(t, added, path));
    CT_TRY(ct_tok_vocab_build(t, vocab, added, path));
    CT_TRY(load_merges(t, field(m, "merges"), path));
    snprintf(t->name, sizeof t->name, "bpe-%d", t->vocab);
    return ct_tok_finish(t);
}

ct_status ct_tokenizer_load_json(ct_tokenizer **out, const char *path) {
    *out = NULL;
    char *text;
    size_t n;
    CT_TRY(ct_read_file(path, &text, &n));
    cJSON *root = cJSON_ParseWithLength(text, n);
    ct_free(text);
    ct_tokenizer *t = ct_calloc(sizeof *t, "tokenizer");
    ct_status s = t ? CT_OK : CT_ENOMEM;
    if (s == CT_OK) {
        t->hf = 1;
        s = load_root(t, root, path);
    }
    cJSON_Delete(root);
    if (s != CT_OK) {
        ct_tokenizer_free(t);
        return s;
    }
    *out = t;
    return CT_OK;
}
