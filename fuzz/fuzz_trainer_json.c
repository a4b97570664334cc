/* fuzz_trainer_json.c: fuzzes the reader of a checkpoint's trainer.json
 * (src/train/checkpoint.c, ct_checkpoint_read_state: strict JSON object, format and version,
 * its own XXH64) and what resuming takes from the state it returns: the stored config
 * (ct_config_apply_json, as trainer.c's check_same_model) and the counts step, adam_steps,
 * data.epoch, data.index and captions.epoch/index (ct_parse_u64, as trainer.c and
 * multimodal.c read them).
 * Input: a mode byte, then trainer.json. Mode bit 0 set: the harness first re-signs the
 * document (parses it, stores the XXH64 of its canonical text under "xxh64" and prints it),
 * so that mutations reach past the checksum; clear: the bytes go to the file as they are.
 * Asserts beyond "no crash, no leak": a refusal leaves a message and no state; an accepted
 * file gives a state; ct_parse_u64 accepts a count exactly when it is 1..20 decimal digits
 * whose value strtoull reads (no overflow) within the field's maximum, and gives that value. */
#include "fuzz.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include <errno.h>
#include <xxhash.h>

/* The document re-signed as the checkpoint writer would, or NULL when it is not an object. */
static char *resign(const char *text, size_t n) {
    cJSON *doc = cJSON_ParseWithLength(text, n);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "xxh64");
    char *canon = cJSON_PrintUnformatted(doc);
    FUZZ_CHECK(canon != NULL);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH64(canon, strlen(canon), 0));
    cJSON_free(canon);
    FUZZ_CHECK(cJSON_AddStringToObject(doc, "xxh64", hex) != NULL);
    char *out = cJSON_Print(doc);
    cJSON_Delete(doc);
    return out;
}

/* ct_parse_u64 of item against an independent reading of the same text. */
static void check_count(const cJSON *obj, const char *key, uint64_t max) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(it)) return;
    const char *s = it->valuestring;
    size_t n = strlen(s), digits = strspn(s, "0123456789");
    errno = 0;
    unsigned long long v = n ? strtoull(s, NULL, 10) : 0;
    int want = n >= 1 && n <= 20 && digits == n && errno == 0 && v <= max;
    uint64_t got = 0;
    FUZZ_CHECK(ct_parse_u64(s, max, &got) == want);
    FUZZ_CHECK(!want || got == v);
}

static void check_state(const cJSON *state) {
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(state, "config");
    char *text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
    if (text) {
        ct_config c;
        ct_config_defaults(&c);
        fuzz_clear_error();
        FUZZ_CHECK(ct_config_apply_json(&c, text, "stored config") == CT_OK || ct_last_error()[0] != 0);
        cJSON_free(text);
    }
    check_count(state, "step", INT64_MAX);
    check_count(state, "adam_steps", INT64_MAX);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(state, "data");
    check_count(data, "epoch", UINT32_MAX);
    check_count(data, "index", INT64_MAX);
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(state, "captions");
    check_count(cap, "epoch", UINT32_MAX);
    check_count(cap, "index", INT64_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    char *signed_text = (data[0] & 1) ? resign(text, n) : NULL;
    if (signed_text) {
        text = signed_text;
        n = strlen(signed_text);
    }
    char path[128], dir[128];
    fuzz_path(dir, sizeof dir, "ckpt");
    if (access(dir, F_OK) != 0) FUZZ_CHECK(ct_mkdirs(dir) == CT_OK);
    fuzz_write(path, sizeof path, "ckpt/trainer.json", text, n);
    cJSON_free(signed_text);
    fuzz_clear_error();
    cJSON *state = NULL;
    if (ct_checkpoint_read_state(dir, &state) == CT_OK) {
        FUZZ_CHECK(state != NULL);
        check_state(state);
        cJSON_Delete(state);
    } else {
        FUZZ_CHECK(state == NULL && ct_last_error()[0] != 0);
    }
    return 0;
}
