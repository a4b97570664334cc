/* gemm_choice.c: which fp32 library runs each shape class on this machine, by measurement.
 * Each class has a representative product (a d 384 layer's 1024-row forward, input and
 * weight gradients; the same at a tenth of the rows and width for the small classes; 64-cube
 * tiles on every thread at once for the tile class); both libraries run it once to warm
 * and three times timed, and the faster best time wins. About 0.2 s on 2 cores. The choice
 * is cached per machine, thread count and library versions (core's machine cache, file
 * "gemm"), so a cache from another machine, or from before a library upgrade, is ignored
 * and measured again. */
#include "core/core.h"
#include "ops/gemm.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TIMED_RUNS = 3, TILE_CALLS = 64 };

typedef struct {
    int trans_a, trans_b, M, N, K;
} class_shape;

static const class_shape shapes[CT_GEMM_CLASSES] = {
    [CT_GEMM_NN] = {0, 0, 1024, 1536, 384},     [CT_GEMM_NT] = {0, 1, 1024, 384, 1536},
    [CT_GEMM_TN] = {1, 0, 384, 1536, 1024},     [CT_GEMM_NN_SMALL] = {0, 0, 128, 768, 192},
    [CT_GEMM_NT_SMALL] = {0, 1, 128, 192, 768}, [CT_GEMM_TN_SMALL] = {1, 0, 192, 768, 128},
    [CT_GEMM_TILE] = {0, 1, 64, 64, 64},
};

static const char *class_names[CT_GEMM_CLASSES] = {"NN",       "NT",       "TN",  "NN-small",
                                                   "NT-small", "TN-small", "tile"};

const char *ct_gemm_class_name(ct_gemm_class c) { return c >= 0 && c < CT_GEMM_CLASSES ? class_names[c] : "?"; }

ct_gemm_class ct_gemm_classify(int trans_a, int trans_b, int M, int N, int K, int tile) {
    if (tile) return CT_GEMM_TILE;
    int small = 2.0 * M * N * K < CT_GEMM_SMALL_FLOPS;
    ct_gemm_class base = trans_a && !trans_b ? CT_GEMM_TN : !trans_a && trans_b ? CT_GEMM_NT : CT_GEMM_NN;
    return small ? (ct_gemm_class)(base + CT_GEMM_NN_SMALL) : base;
}

/* The operands of a class's product, filled with small values; NULL when out of memory.
 * Plain malloc on purpose: a few MiB of measurement scratch, freed before any model exists,
 * kept out of the tiers' accounting so the first run on a machine reports the same memory
 * peaks as every later one (the planner's predictions are checked against them). */
static float *operands(const class_shape *s, ct_gemm_shape *g, int copies) {
    size_t a = (size_t)s->M * s->K, b = (size_t)s->K * s->N, c = (size_t)s->M * s->N;
    float *buf = malloc((a + b + c) * sizeof *buf * (size_t)copies);
    if (!buf) return NULL;
    for (size_t i = 0; i < (a + b + c) * (size_t)copies; i++)
        buf[i] = (float)((i * 7919u) % 200u) * 0.005f - 0.5f;
    *g = (ct_gemm_shape){s->trans_a, s->trans_b,
                         s->M,       s->N,
                         s->K,       1.0f,
                         buf,        s->trans_a ? s->M : s->K,
                         buf + a,    s->trans_b ? s->K : s->N,
                         0.0f,       buf + a + b,
                         s->N};
    return buf;
}

/* Seconds of the best of TIMED_RUNS of the product on the team (after one to warm). */
static double time_team(ct_gemm_library lib, const ct_gemm_shape *g) {
    double best = 1e30;
    for (int r = 0; r <= TIMED_RUNS; r++) {
        double t0 = ct_now();
        ct_gemm_library_run(lib, g);
        double t = ct_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    return best;
}

/* Seconds of TILE_CALLS tile products on each thread at once (each on its own operands),
 * best of TIMED_RUNS after one to warm. */
static double time_tiles(ct_gemm_library lib, const class_shape *s, int threads) {
    size_t a = (size_t)s->M * s->K, b = (size_t)s->K * s->N, c = (size_t)s->M * s->N, each = a + b + c;
    ct_gemm_shape g;
    float *buf = operands(s, &g, threads);
    if (!buf) return 1e30;
    double best = 1e30;
    for (int r = 0; r <= TIMED_RUNS; r++) {
        double t0 = ct_now();
#pragma omp parallel num_threads(threads)
        {
            ct_gemm_shape mine = g;
            float *base = buf + each * (size_t)omp_get_thread_num();
            mine.A = base, mine.B = base + a, mine.C = base + a + b;
            for (int i = 0; i < TILE_CALLS; i++) ct_gemm_library_run(lib, &mine);
        }
        double t = ct_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(buf);
    return best / TILE_CALLS;
}

static void measure(ct_gemm_library choice[CT_GEMM_CLASSES], double rates[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES],
                    int threads) {
    for (int c = 0; c < CT_GEMM_CLASSES; c++) {
        const class_shape *s = &shapes[c];
        double flops = 2.0 * s->M * s->N * s->K * (c == CT_GEMM_TILE ? threads : 1);
        ct_gemm_shape g;
        float *buf = c == CT_GEMM_TILE ? NULL : operands(s, &g, 1);
        for (int lib = 0; lib < CT_GEMM_LIBRARIES; lib++) {
            double t = c == CT_GEMM_TILE ? time_tiles(lib, s, threads) : buf ? time_team(lib, &g) : 1e30;
            rates[c][lib] = flops / t / 1e9;
        }
        free(buf);
        choice[c] = rates[c][CT_GEMM_ONEDNN] > rates[c][CT_GEMM_OPENBLAS] ? CT_GEMM_ONEDNN : CT_GEMM_OPENBLAS;
    }
}

/* "machine|threads|libraries" */
static void cache_key(char *key, size_t cap, int threads) {
    char machine[512], libs[256];
    ct_machine_key(machine, sizeof machine);
    ct_gemm_libraries_id(libs, sizeof libs);
    snprintf(key, cap, "%s|%d|%s", machine, threads, libs);
}

/* The last entry of the cache for key: "KEY\tlib rate rate" for each class; 0 if none. */
static int cache_read(FILE *f, const char *key, ct_gemm_library choice[CT_GEMM_CLASSES],
                      double rates[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES]) {
    char line[2048];
    int found = 0;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        char *tab = strrchr(line, '\t'), *p;
        if (!tab) continue;
        *tab = 0;
        if (strcmp(line, key)) continue;
        p = tab + 1;
        ct_gemm_library got[CT_GEMM_CLASSES];
        double r[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES];
        int c = 0, used = 0;
        char name[16];
        for (; c < CT_GEMM_CLASSES; c++, p += used) {
            if (sscanf(p, " %15s %lf %lf%n", name, &r[c][0], &r[c][1], &used) != 3) break;
            if (!strcmp(name, "onednn")) got[c] = CT_GEMM_ONEDNN;
            else if (!strcmp(name, "openblas"))
                got[c] = CT_GEMM_OPENBLAS;
            else
                break;
        }
        if (c < CT_GEMM_CLASSES) continue; /* damaged: ignored */
        memcpy(choice, got, sizeof got);
        memcpy(rates, r, sizeof r);
        found = 1;
    }
    return found;
}

static void cache_append(FILE *f, const char *key, const ct_gemm_library choice[CT_GEMM_CLASSES],
                         double rates[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES]) {
    fseek(f, 0, SEEK_END);
    fprintf(f, "%s\t", key);
    for (int c = 0; c < CT_GEMM_CLASSES; c++)
        fprintf(f, "%s %.1f %.1f ", ct_gemm_library_name(choice[c]), rates[c][0], rates[c][1]);
    fprintf(f, "\n");
}

void ct_gemm_choose(ct_gemm_library choice[CT_GEMM_CLASSES], double rates[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES],
                    int threads, int fresh) {
    double scratch[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES];
    if (!rates) rates = scratch;
    char key[1024];
    cache_key(key, sizeof key, threads);
    FILE *f = ct_machine_cache_open("gemm");
    if (f && !fresh && cache_read(f, key, choice, rates)) {
        ct_machine_cache_close(f);
        return;
    }
    measure(choice, rates, threads);
    if (f) cache_append(f, key, choice, rates);
    ct_machine_cache_close(f);
}
