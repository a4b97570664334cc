/* shard_tokenizer.c: the tokenizer record of a data directory (meta.json) and of a
 * checkpoint (trainer.json): reading, comparing, loading (see shard_tokenizer.h). */
#include "data/shard_tokenizer.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void set_gpt2(ct_shard_tokenizer *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "gpt2");
}

/* Fills out from a record object {name, hash[, file]}; file is taken relative to dir. */
static ct_status from_record(const cJSON *rec, const char *dir, const char *where, ct_shard_tokenizer *out) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(rec, "name"),
                *hash = cJSON_GetObjectItemCaseSensitive(rec, "hash"),
                *file = cJSON_GetObjectItemCaseSensitive(rec, "file");
    if (!cJSON_IsString(name) || (hash && !cJSON_IsString(hash)) || (file && !cJSON_IsString(file)) ||
        strlen(name->valuestring) >= sizeof out->name ||
        (hash && strlen(hash->valuestring) >= sizeof out->hash))
        return ct_fail(CT_ECORRUPT, "%s: the \"tokenizer\" record needs a string name and hash", where);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name->valuestring);
    if (hash) snprintf(out->hash, sizeof out->hash, "%s", hash->valuestring);
    if (file && dir) {
        if (strchr(file->valuestring, '/'))
            return ct_fail(CT_ECORRUPT, "%s: the tokenizer file '%s' must lie beside the shards", where,
                           file->valuestring);
        CT_TRY(ct_path_format(out->file, sizeof out->file, "%s/%s", dir, file->valuestring));
    }
    return CT_OK;
}

ct_status ct_shard_tokenizer_read(const char *dir, ct_shard_tokenizer *out) {
    char path[4096];
    struct stat sb;
    set_gpt2(out);
    CT_TRY(ct_path_format(path, sizeof path, "%s/meta.json", dir));
    if (stat(path, &sb) != 0) return CT_OK; /* shards written without one: GPT-2's */
    char *text;
    size_t n;
    CT_TRY(ct_read_file(path, &text, &n));
    cJSON *root = cJSON_ParseWithLength(text, n);
    ct_free(text);
    if (!root) return ct_fail(CT_ECORRUPT, "%s is not valid JSON", path);
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    ct_status s = cJSON_IsObject(rec) ? from_record(rec, dir, path, out) : CT_OK; /* a string: GPT-2's */
    cJSON_Delete(root);
    return s;
}

void ct_shard_tokenizer_of(const ct_tokenizer *t, const char *file, ct_shard_tokenizer *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", ct_tokenizer_name(t));
    snprintf(out->hash, sizeof out->hash, "%016llx", (unsigned long long)ct_tokenizer_hash(t));
    if (file) snprintf(out->file, sizeof out->file, "%s", file);
}

ct_status ct_shard_tokenizer_load(const ct_shard_tokenizer *st, ct_tokenizer **out) {
    return st->file[0] ? ct_tokenizer_load_json(out, st->file) : ct_tokenizer_load_default(out);
}

int ct_shard_tokenizer_same(const ct_shard_tokenizer *a, const ct_shard_tokenizer *b) {
    if (a->hash[0] && b->hash[0]) return strcmp(a->hash, b->hash) == 0;
    return strcmp(a->name, b->name) == 0;
}

const char *ct_shard_tokenizer_describe(const ct_shard_tokenizer *st, char *buf, size_t cap) {
    if (st->hash[0]) snprintf(buf, cap, "%s (hash %s)", st->name, st->hash);
    else
        snprintf(buf, cap, "%s", st->name);
    return buf;
}

cJSON *ct_shard_tokenizer_json(const ct_shard_tokenizer *st) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "name", st->name) &&
        (!st->hash[0] || cJSON_AddStringToObject(o, "hash", st->hash)))
        return o;
    cJSON_Delete(o);
    return NULL;
}

ct_status ct_shard_tokenizer_from_state(const cJSON *state, const char *where, ct_shard_tokenizer *out) {
    set_gpt2(out);
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(state, "tokenizer");
    return rec ? from_record(rec, NULL, where, out) : CT_OK;
}
