/* fuzz_safetensors.c: fuzzes the safetensors reader (src/train/safetensors.c,
 * ct_safetensors_open): the input is the whole file, length prefix, header JSON and data.
 * Asserts beyond "no crash, no leak": a refusal leaves a message; a file that opens has
 * names that ct_safetensors_find gives back with the same shape, every tensor's floats lie
 * inside the mapped data section, 4-byte aligned, and the tensors' bytes add up to exactly
 * the data section (file size - 8 - header length). Every float is read, so a reach past
 * the mapping would fault here. */
#include "fuzz.h"
#include "train/safetensors.h"

static uint64_t numel(int ndim, const int64_t *shape) {
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (uint64_t)shape[d];
    return n;
}

/* The invariants of an opened file of size bytes. */
static void check_open(const ct_safetensors *st) {
    size_t size;
    const uint8_t *bytes = ct_safetensors_bytes(st, &size);
    FUZZ_CHECK(size >= 8);
    uint64_t header = 0;
    for (int i = 0; i < 8; i++) header |= (uint64_t)bytes[i] << (8 * i);
    const uint8_t *data = bytes + 8 + header, *end = bytes + size;
    uint64_t total = 0;
    for (size_t i = 0; i < ct_safetensors_count(st); i++) {
        int ndim, ndim2;
        int64_t shape[CT_ST_MAX_DIMS], shape2[CT_ST_MAX_DIMS];
        const char *name = ct_safetensors_name(st, i, &ndim, shape);
        FUZZ_CHECK(name != NULL && ndim >= 0 && ndim <= CT_ST_MAX_DIMS);
        const float *f = ct_safetensors_find(st, name, &ndim2, shape2);
        FUZZ_CHECK(f != NULL && ndim2 == ndim && memcmp(shape, shape2, (size_t)ndim * sizeof *shape) == 0);
        uint64_t n = numel(ndim, shape);
        FUZZ_CHECK((const uint8_t *)f >= data && (uintptr_t)f % sizeof(float) == 0);
        FUZZ_CHECK(n <= (uint64_t)(end - (const uint8_t *)f) / sizeof(float));
        volatile float sink = 0;
        for (uint64_t k = 0; k < n; k++) sink += f[k];
        (void)sink;
        total += n * sizeof(float);
    }
    FUZZ_CHECK(total == (uint64_t)(end - data));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[128];
    fuzz_write(path, sizeof path, "fuzz.safetensors", data, size);
    fuzz_clear_error();
    ct_safetensors *st = NULL;
    if (ct_safetensors_open(&st, path) == CT_OK) {
        check_open(st);
        const char *sum = ct_safetensors_meta(st, CT_ST_CHECKSUM_KEY);
        FUZZ_CHECK(sum == NULL || strlen(sum) == 16);
        ct_safetensors_close(st);
    } else {
        FUZZ_CHECK(st == NULL && ct_last_error()[0] != 0);
    }
    return 0;
}
