/* tool_ckpt_reseal.c: makes a hand-edited checkpoint consistent again, so that tests can
 * reach the checks that lie past the checksums (finite values, tensor names). For each of
 * DIR/model.safetensors and DIR/optimizer.safetensors that exists it rewrites the data
 * checksum in the header ("cetus.xxh64", 16 hex digits in place), then rewrites
 * DIR/trainer.json with each file's size and XXH64 and its own checksum, as the checkpoint
 * writer does (see src/train/checkpoint.h).
 *
 * Usage: tool_ckpt_reseal DIR [FILE TENSOR INDEX VALUE]
 *   before resealing, stores the float VALUE ("nan", "inf", "-inf" or a number) at flat
 *   INDEX of TENSOR in DIR/FILE (e.g. model.safetensors wte.weight 3 nan)
 * Exits 0 when done, 1 with a message otherwise. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct poke {
    const char *file, *tensor;
    long index;
    float value;
} poke;

static int die(const char *msg, const char *what) {
    fprintf(stderr, "tool_ckpt_reseal: %s: %s\n", what, msg);
    exit(1);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (!b || fread(b, 1, *n, f) != *n) die("cannot read", path);
    fclose(f);
    b[*n] = 0;
    return b;
}

static void spill(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) die("cannot write", path);
}

/* Stores p->value into the named tensor of the safetensors bytes b (header of hlen bytes). */
static void apply_poke(unsigned char *b, size_t hlen, size_t n, const poke *p) {
    cJSON *h = cJSON_ParseWithLength((const char *)b + 8, hlen);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, p->tensor);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(off)) die("no such tensor", p->tensor);
    size_t at = 8 + hlen + (size_t)off->child->valuedouble + 4 * (size_t)p->index;
    if (p->index < 0 || at + 4 > 8 + hlen + (size_t)off->child->next->valuedouble || at + 4 > n)
        die("index outside the tensor", p->tensor);
    memcpy(b + at, &p->value, 4);
    cJSON_Delete(h);
}

/* Reseals one safetensors file in place; its size and XXH64 go into rec. */
static int reseal_st(const char *path, const poke *p, const char *fname, cJSON *rec) {
    size_t n;
    unsigned char *b = slurp(path, &n);
    if (!b) return 0;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    if (n < 8 || hlen > n - 8) die("bad header length", path);
    if (p && !strcmp(p->file, fname)) apply_poke(b, (size_t)hlen, n, p);
    char *key = strstr((char *)b + 8, "\"cetus.xxh64\":\"");
    if (!key || key + 15 + 16 > (char *)b + 8 + hlen) die("no cetus.xxh64 in the header", path);
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH64(b + 8 + hlen, n - 8 - hlen, 0));
    memcpy(key + 15, hex, 16);
    spill(path, b, n);
    snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH64(b, n, 0));
    cJSON_ReplaceItemInObjectCaseSensitive(rec, "bytes", cJSON_CreateNumber((double)n));
    cJSON_ReplaceItemInObjectCaseSensitive(rec, "xxh64", cJSON_CreateString(hex));
    free(b);
    return 1;
}

static void reseal_trainer(const char *dir, cJSON *doc) {
    char path[4096], hex[17];
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "xxh64");
    char *canon = cJSON_PrintUnformatted(doc);
    snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH64(canon, strlen(canon), 0));
    cJSON_AddStringToObject(doc, "xxh64", hex);
    char *text = cJSON_Print(doc);
    snprintf(path, sizeof path, "%s/trainer.json", dir);
    size_t k = strlen(text);
    text = realloc(text, k + 2);
    text[k] = '\n';
    spill(path, text, k + 1);
    cJSON_free(canon);
    free(text);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 6) {
        fprintf(stderr, "usage: tool_ckpt_reseal DIR [FILE TENSOR INDEX VALUE]\n");
        return 2;
    }
    poke pk = {0}, *p = NULL;
    if (argc == 6) {
        pk = (poke){argv[2], argv[3], strtol(argv[4], NULL, 10), strtof(argv[5], NULL)};
        p = &pk;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer.json", argv[1]);
    size_t n;
    char *text = (char *)slurp(path, &n);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    cJSON *files = cJSON_GetObjectItemCaseSensitive(doc, "files");
    if (!cJSON_IsObject(files)) die("not a checkpoint's trainer.json", path);
    const char *names[] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        cJSON *rec = cJSON_GetObjectItemCaseSensitive(files, names[i]);
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        if (rec && !reseal_st(path, p, names[i], rec)) die("cannot open", path);
    }
    reseal_trainer(argv[1], doc);
    cJSON_Delete(doc);
    free(text);
    return 0;
}
