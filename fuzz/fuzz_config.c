/* fuzz_config.c: fuzzes the run configuration reader (src/train/config.c): a JSON document
 * (ct_config_apply_json), then key=value overrides (ct_config_apply_override), then the
 * cross-key checks (ct_config_validate).
 * Input: the JSON text up to the first NUL byte; after it, one override per line.
 * Asserts beyond "no crash, no leak": every refusal leaves a message; a configuration that
 * validates survives a round trip: ct_config_json of it, read back onto the defaults,
 * validates again and prints the same JSON. */
#include "fuzz.h"
#include "train/config.h"

/* The configuration printed as JSON and read back gives the same configuration. */
static void check_round_trip(const ct_config *c) {
    cJSON *a = ct_config_json(c);
    FUZZ_CHECK(a != NULL);
    char *text = cJSON_PrintUnformatted(a);
    FUZZ_CHECK(text != NULL);
    ct_config back;
    ct_config_defaults(&back);
    FUZZ_CHECK(ct_config_apply_json(&back, text, "round trip") == CT_OK);
    FUZZ_CHECK(ct_config_validate(&back) == CT_OK);
    cJSON *b = ct_config_json(&back);
    FUZZ_CHECK(b != NULL && cJSON_Compare(a, b, 1));
    cJSON_Delete(b);
    cJSON_free(text);
    cJSON_Delete(a);
}

/* Applies the overrides in lines[0..n) (one per '\n'); stops at the first refusal. */
static ct_status apply_overrides(ct_config *c, char *lines, size_t n) {
    ct_status s = CT_OK;
    for (char *at = lines, *end = lines + n; s == CT_OK && at < end;) {
        char *nl = memchr(at, '\n', (size_t)(end - at));
        if (nl) *nl = 0;
        s = ct_config_apply_override(c, at);
        at = nl ? nl + 1 : end;
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t json_len = strnlen(buf, size);
    ct_config c;
    ct_config_defaults(&c);
    fuzz_clear_error();
    ct_status s = ct_config_apply_json(&c, buf, "fuzz.json");
    if (s == CT_OK && json_len < size) s = apply_overrides(&c, buf + json_len + 1, size - json_len - 1);
    if (s == CT_OK) s = ct_config_validate(&c);
    if (s == CT_OK) check_round_trip(&c);
    else
        FUZZ_CHECK(ct_last_error()[0] != 0);
    free(buf);
    return 0;
}
