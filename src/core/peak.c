/* peak.c: the machine's FLOP peak, measured rather than assumed: every compute thread runs
 * a loop of independent fused multiply-adds at the widest width the processor has (512-bit
 * AVX-512, else 256-bit FMA, else scalar), and of bf16 dot products (vdpbf16ps) where it has
 * AVX512_BF16 and of AMX-BF16 tile products (tdpbf16ps) where the processor and the kernel
 * allow AMX (the bf16 peak is the faster of the two), for a fixed time, twice; the peak is the better run's FLOPs of all threads
 * over its wall time (a busy machine only ever lowers the figure).
 * Cached per machine (the processor's name, family, model and its logical CPUs, all of them
 * measured at once) in $XDG_CACHE_HOME/cetus/peak (else ~/.cache/cetus/peak), the highest of
 * the entries for this machine; entries of another machine, or damaged ones, are ignored. */
#define _GNU_SOURCE
#include "core.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MEASURE_SECONDS 0.1 /* per run; the best of two runs of each kind */
#define CHAINS 16           /* independent accumulators: enough to cover latency x ports */

/* A loop of `iters` rounds of one instruction on each of 16 accumulators, written out so that
 * every build (also -O1 under the sanitizers) keeps them in registers; returns their sum
 * (so the work is kept). T: the accumulator type; OP(acc, x, y): the instruction. */
#define PEAK_LOOP(NAME, TARGET, T, XT, X, Y, SET1, OP, ADD, REDUCE) \
    __attribute__((target(TARGET))) static float NAME(long iters) { \
        XT x = X, y = Y; \
        T a0 = SET1(0.0f), a1 = SET1(1.0f), a2 = SET1(2.0f), a3 = SET1(3.0f), a4 = SET1(4.0f), \
          a5 = SET1(5.0f), a6 = SET1(6.0f), a7 = SET1(7.0f), a8 = SET1(8.0f), a9 = SET1(9.0f), \
          a10 = SET1(10.0f), a11 = SET1(11.0f), a12 = SET1(12.0f), a13 = SET1(13.0f), a14 = SET1(14.0f), \
          a15 = SET1(15.0f); \
        for (long i = 0; i < iters; i++) { \
            a0 = OP(a0, x, y), a1 = OP(a1, x, y), a2 = OP(a2, x, y), a3 = OP(a3, x, y); \
            a4 = OP(a4, x, y), a5 = OP(a5, x, y), a6 = OP(a6, x, y), a7 = OP(a7, x, y); \
            a8 = OP(a8, x, y), a9 = OP(a9, x, y), a10 = OP(a10, x, y), a11 = OP(a11, x, y); \
            a12 = OP(a12, x, y), a13 = OP(a13, x, y), a14 = OP(a14, x, y), a15 = OP(a15, x, y); \
        } \
        T s = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))), \
                  ADD(ADD(ADD(a8, a9), ADD(a10, a11)), ADD(ADD(a12, a13), ADD(a14, a15)))); \
        return REDUCE(s); \
    }

static inline float scalar_fma(float a, float x, float y) { return a * x + y; }
static inline float scalar_add(float a, float b) { return a + b; }
static inline float scalar_set1(float v) { return v; }
static inline float scalar_reduce(float v) { return v; }

__attribute__((target("avx2"))) static inline float sum256(__m256 v) {
    float out[8], s = 0.0f;
    _mm256_storeu_ps(out, v);
    for (int i = 0; i < 8; i++) s += out[i];
    return s;
}

PEAK_LOOP(fma512, "avx512f", __m512, __m512, _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f), _mm512_set1_ps,
          _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps)
PEAK_LOOP(fma256, "avx2,fma", __m256, __m256, _mm256_set1_ps(0.999999f), _mm256_set1_ps(1e-7f), _mm256_set1_ps,
          _mm256_fmadd_ps, _mm256_add_ps, sum256)
PEAK_LOOP(fma_scalar, "default", float, float, 0.999999f, 1e-7f, scalar_set1, scalar_fma, scalar_add,
          scalar_reduce)
/* bf16 pairs: x = 1 and y ~ 6e-8 in every half; each lane adds x0 y0 + x1 y1 (4 FLOP) */
PEAK_LOOP(dot_bf16, "avx512f,avx512bf16", __m512, __m512bh, (__m512bh)_mm512_set1_epi16(0x3f80),
          (__m512bh)_mm512_set1_epi16(0x3380), _mm512_set1_ps, _mm512_dpbf16_ps, _mm512_add_ps,
          _mm512_reduce_add_ps)

/* AMX: four accumulator tiles of 16 x 16 fp32, each row a dot product of 32 bf16 pairs per
 * instruction (16 * 16 * 32 * 2 FLOP); the tiles' contents are bf16 ones and tiny values. */
typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} amx_config;

__attribute__((target("amx-tile,amx-bf16"))) static float amx_bf16(long iters) {
    amx_config cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.bytes_per_row[t] = 64;
    uint16_t a[16 * 32], b[16 * 32];
    float c[16 * 16];
    for (int i = 0; i < 16 * 32; i++) a[i] = 0x3f80, b[i] = 0x3380;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, 64);
    _tile_release();
    return c[0];
}

/* Linux gives a process the AMX tile state only when asked (arch_prctl, since 5.16). */
static int amx_allowed(void) {
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    if (!ct_cpu_has_amx_bf16()) return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

typedef float (*peak_loop)(long iters);

/* FLOP/s of `threads` threads each running loop (flops_per_iter per round) for about
 * MEASURE_SECONDS; the result is kept from being optimised away through *sink. */
static double run_loop(peak_loop loop, double flops_per_iter, int threads, volatile float *sink) {
    long rounds = 1 << 12;
    double one = 0.0;
    while (rounds < (1L << 40)) { /* one thread's run long enough to time */
        double t0 = ct_now();
        *sink += loop(rounds);
        if ((one = ct_now() - t0) > 0.01) break;
        rounds *= 4;
    }
    rounds = (long)((double)rounds * MEASURE_SECONDS / (one > 1e-9 ? one : 1e-9)) + 1;
    float part = 0.0f;
    double t0 = ct_now();
#pragma omp parallel num_threads(threads) reduction(+ : part)
    part += loop(rounds);
    double wall = ct_now() - t0;
    *sink += part;
    return flops_per_iter * (double)rounds * threads / wall;
}

/* Reads the cached peak for key from f; 0 when there is none that matches. */
static int cache_read(FILE *f, const char *key, ct_peak *out) {
    char line[1024];
    int ok = 0;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        char *tab = strrchr(line, '\t');
        ct_peak p = {0};
        if (!tab || sscanf(tab + 1, "%d %lf %lf %15s", &p.threads, &p.fp32, &p.bf16, p.width) != 4) continue;
        *tab = 0;
        if (strcmp(line, key) || p.threads < 1 || !(p.fp32 > 0) || !(p.bf16 >= 0)) continue;
        if (!ok) *out = p;
        else { /* a busy machine only lowers a figure: the highest of each wins */
            if (p.fp32 > out->fp32) out->fp32 = p.fp32;
            if (p.bf16 > out->bf16) out->bf16 = p.bf16;
        }
        ok = 1;
    }
    return ok;
}

void ct_peak_measure(ct_peak *out, int threads) {
    volatile float sink = 0.0f;
    __builtin_cpu_init();
    memset(out, 0, sizeof *out);
    out->threads = threads > 0 ? threads : 1;
    if (__builtin_cpu_supports("avx512f")) {
        out->fp32 = run_loop(fma512, CHAINS * 32.0, out->threads, &sink);
        out->fp32 = fmax(out->fp32, run_loop(fma512, CHAINS * 32.0, out->threads, &sink));
        snprintf(out->width, sizeof out->width, "avx512");
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        out->fp32 = run_loop(fma256, CHAINS * 16.0, out->threads, &sink);
        out->fp32 = fmax(out->fp32, run_loop(fma256, CHAINS * 16.0, out->threads, &sink));
        snprintf(out->width, sizeof out->width, "avx2");
    } else {
        out->fp32 = run_loop(fma_scalar, CHAINS * 2.0, out->threads, &sink);
        snprintf(out->width, sizeof out->width, "scalar");
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"))
        out->bf16 = fmax(run_loop(dot_bf16, CHAINS * 64.0, out->threads, &sink),
                         run_loop(dot_bf16, CHAINS * 64.0, out->threads, &sink));
    if (amx_allowed())
        out->bf16 = fmax(out->bf16, fmax(run_loop(amx_bf16, 4 * 16 * 16 * 32 * 2.0, out->threads, &sink),
                                         run_loop(amx_bf16, 4 * 16 * 16 * 32 * 2.0, out->threads, &sink)));
}

/* Opens the peak cache, locked; NULL when there is none. */
static FILE *cache_open(char *key, size_t cap) {
    ct_machine_key(key, cap);
    return ct_machine_cache_open("peak");
}

static void cache_close(FILE *f, const char *key, const ct_peak *add) {
    if (!f) return;
    if (add) {
        fseek(f, 0, SEEK_END);
        fprintf(f, "%s\t%d %.6g %.6g %s\n", key, add->threads, add->fp32, add->bf16, add->width);
    }
    ct_machine_cache_close(f);
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void ct_peak_get(ct_peak *out) {
    char key[512];
    FILE *f = cache_open(key, sizeof key);
    if (f && cache_read(f, key, out)) {
        cache_close(f, key, NULL);
        return;
    }
    ct_peak_measure(out, online_cpus());
    cache_close(f, key, out);
}

void ct_peak_record(ct_peak *out) {
    char key[512];
    FILE *f = cache_open(key, sizeof key);
    ct_peak now;
    ct_peak_measure(&now, online_cpus());
    cache_close(f, key, &now);
    *out = now;
}
