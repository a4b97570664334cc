/* bench_load.c: what the finite-value check costs a weights load. Writes a safetensors file
 * of M million float32 parameters (in GPT-2-like tensors of 768 x 3072) to PATH, then, with
 * the file in the page cache, times (best of 15, each mapping the file afresh) ct_safetensors_open, which verifies the
 * data checksum and scans every value for NaN/Inf in one chunked pass, against XXH64 alone
 * over the same mapped data section (what the checksum pass costs without the scan).
 * Usage: bench_load PATH [M]   (default M = 64; the file is removed afterwards) */
#include "core/core.h"
#include "train/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define ROWS 768
#define COLS 3072
#define REPS 15

static double best_open(const char *path) {
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        ct_safetensors *st;
        double t0 = ct_now();
        if (ct_safetensors_open(&st, path) != CT_OK) {
            fprintf(stderr, "bench_load: %s\n", ct_last_error());
            exit(1);
        }
        double t = ct_now() - t0;
        ct_safetensors_close(st);
        best = t < best ? t : best;
    }
    return best;
}

/* XXH64 of the data section, mapping the file afresh each time as the open does. */
static double best_hash(const char *path, uint64_t *sink) {
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        ct_mapped m;
        double t0 = ct_now();
        if (ct_map_file(&m, path) != CT_OK) exit(1);
        uint64_t hlen = 0;
        for (int i = 0; i < 8; i++) hlen |= (uint64_t)m.data[i] << (8 * i);
        *sink ^= XXH64(m.data + 8 + hlen, m.size - 8 - hlen, 0);
        ct_unmap_file(&m);
        double t = ct_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_load PATH [MILLION_PARAMS]\n");
        return 2;
    }
    size_t per = (size_t)ROWS * COLS, n = (size_t)(argc > 2 ? atof(argv[2]) : 64) * 1000000 / per;
    n = n ? n : 1;
    float *w = malloc(per * sizeof *w);
    ct_st_tensor *t = calloc(n, sizeof *t);
    char(*names)[32] = calloc(n, sizeof *names);
    for (size_t i = 0; i < per; i++) w[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "h.%zu.mlp.c_fc.weight", i);
        t[i] = (ct_st_tensor){names[i], 2, {ROWS, COLS}, w};
    }
    if (ct_safetensors_save(argv[1], t, n, NULL) != CT_OK) {
        fprintf(stderr, "bench_load: %s\n", ct_last_error());
        return 1;
    }
    uint64_t sink = 0;
    double hash = best_hash(argv[1], &sink), open = best_open(argv[1]);
    double hash2 = best_hash(argv[1], &sink);
    hash = hash2 < hash ? hash2 : hash;
    double mb = (double)(n * per * sizeof(float)) / 1e6;
    printf("%zu tensors, %.1fM params (%.0f MB), page cache warm, best of %d:\n", n, (double)(n * per) / 1e6,
           mb, REPS);
    printf("  ct_safetensors_open (checksum + finite scan): %.1f ms (%.2f GB/s)\n", open * 1e3,
           mb / open / 1e3);
    printf("  XXH64 of the data alone:                      %.1f ms (%.2f GB/s)\n", hash * 1e3,
           mb / hash / 1e3);
    printf("  the scan and the header's parsing add %.1f ms (%.0f%%)  [%llx]\n", (open - hash) * 1e3,
           100 * (open - hash) / hash, (unsigned long long)(sink & 0xf));
    unlink(argv[1]);
    free(w);
    free(t);
    free(names);
    return 0;
}
