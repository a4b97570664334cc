/* gemm_bf16.c: the product with bf16 inputs and fp32 accumulation. op(A) and op(B) are
 * rounded to bf16 (round to nearest even, as the processor's conversion does) into packed
 * copies kept between calls, and oneDNN's matmul multiplies them into the fp32 C: on
 * AMX-BF16 its tile kernels, else its AVX512_BF16 dot products. alpha is the matmul's output
 * scale and beta a sum post-op onto C. Built primitives are kept by shape, the least recently
 * used replaced; M and K are padded (below). Runs on the OpenMP team; not
 * from inside a parallel region (the cache and the copies are this thread's). */
#include "core/core.h"
#include "ops/gemm.h"
#include <dnnl.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

/* CACHE_SLOTS built products kept; M and K (the dimensions that carry a batch's rows, which
 * vary from call to call in MoE experts and generation) rounded up to a multiple of PAD, so
 * that a handful of kernels serves them: oneDNN builds a kernel per shape (its AMX kernels
 * need the shape fixed; a runtime-sized matmul runs at half their rate here), and building
 * one costs far more than a small product. */
enum { CACHE_SLOTS = 64, PAD = 64 };

typedef struct built {
    int trans_a, trans_b, M, N, K, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
    unsigned long used; /* last use, for replacement */
} built;

static struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int failed; /* the engine could not be made: every call falls back */
    built slots[CACHE_SLOTS];
    unsigned long clock;
    void *a16, *b16;            /* the rounded copies, bf16 [M*K], [K*N] (padded) */
    void *c32;                  /* fp32 C of a product whose M was padded [M, N] */
    size_t a_cap, b_cap, c_cap; /* bytes */
} g16;

int ct_gemm_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") || ct_cpu_has_amx_bf16();
}

static inline uint16_t round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* n floats to bf16, 16 at a time with the processor's conversion (same rounding). */
__attribute__((target("avx512f,avx512bf16"))) static void round_row_vector(uint16_t *dst, const float *src,
                                                                           int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    for (; i < n; i++) dst[i] = round_bf16(src[i]);
}

static void round_row(uint16_t *dst, const float *src, int n, int vector) {
    if (vector) round_row_vector(dst, src, n);
    else
        for (int i = 0; i < n; i++) dst[i] = round_bf16(src[i]);
}

/* rows x cols of src (leading dimension ld) into dst [prows, pcols], the padding zero. */
static void round_matrix(uint16_t *dst, const float *src, int rows, int cols, int ld, int prows, int pcols) {
    int vector = __builtin_cpu_supports("avx512bf16");
#pragma omp parallel for schedule(static)
    for (int r = 0; r < prows; r++) {
        uint16_t *out = dst + (size_t)r * pcols;
        if (r < rows) round_row(out, src + (size_t)r * ld, cols, vector);
        memset(out + (r < rows ? cols : 0), 0, sizeof *out * (size_t)(r < rows ? pcols - cols : pcols));
    }
}

/* C rows [0, rows) of width n between the caller's C (ldc) and the scratch (row stride n). */
static void copy_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int n) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * ld_dst, src + (size_t)r * ld_src, sizeof *dst * (size_t)n);
}

/* *buf holds at least bytes (its capacity *cap, in bytes), from the project's allocator (the
 * host tier: a bf16 run's memory figures count the copies); 0 when out of memory. */
static int grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 1;
    void *p = ct_realloc(*buf, bytes, "the bf16 copies of a product's inputs");
    if (!p) return 0;
    *buf = p, *cap = bytes;
    return 1;
}

static int start_engine(void) {
    if (g16.engine || g16.failed) return !g16.failed;
    if (dnnl_engine_create(&g16.engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&g16.stream, g16.engine, dnnl_stream_default_flags) != dnnl_success) {
        g16.failed = 1;
        ct_log("cetus: oneDNN's CPU engine could not start: bf16 products run in fp32\n");
    }
    return !g16.failed;
}

static int same_shape(const built *b, const ct_gemm_shape *g) {
    return b->prim && b->trans_a == g->trans_a && b->trans_b == g->trans_b && b->M == g->M && b->N == g->N &&
           b->K == g->K && b->ldc == g->ldc && b->alpha == g->alpha && b->beta == g->beta;
}

static void release(built *b) {
    if (!b->prim) return;
    dnnl_primitive_destroy(b->prim);
    dnnl_memory_destroy(b->a);
    dnnl_memory_destroy(b->b);
    dnnl_memory_destroy(b->c);
    memset(b, 0, sizeof *b);
}

/* The attributes: alpha as the output scale, beta as a sum onto C. */
static dnnl_primitive_attr_t make_attr(float alpha, float beta) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    int ok = alpha == 1.0f || dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) == dnnl_success;
    if (ok && beta != 0.0f) {
        dnnl_post_ops_t ops = NULL;
        ok = dnnl_post_ops_create(&ops) == dnnl_success &&
             dnnl_post_ops_append_sum(ops, beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
        if (ops) dnnl_post_ops_destroy(ops);
    }
    if (!ok) dnnl_primitive_attr_destroy(attr);
    return ok ? attr : NULL;
}

/* Builds the matmul for g's shape into b: A packed [M,K] (or [K,M] when transposed), B [K,N]
 * (or [N,K]), C [M,N] with row stride ldc. */
static int build(built *b, const ct_gemm_shape *g) {
    dnnl_memory_desc_t ad, bd, cd;
    dnnl_dims_t a_dims = {g->M, g->K}, b_dims = {g->K, g->N}, c_dims = {g->M, g->N};
    dnnl_dims_t a_str = {g->trans_a ? 1 : g->K, g->trans_a ? g->M : 1};
    dnnl_dims_t b_str = {g->trans_b ? 1 : g->N, g->trans_b ? g->K : 1};
    dnnl_dims_t c_str = {g->ldc, 1};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = make_attr(g->alpha, g->beta);
    int ok = attr && dnnl_memory_desc_init_by_strides(&ad, 2, a_dims, dnnl_bf16, a_str) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&bd, 2, b_dims, dnnl_bf16, b_str) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&cd, 2, c_dims, dnnl_f32, c_str) == dnnl_success &&
             dnnl_matmul_desc_init(&desc, &ad, &bd, NULL, &cd) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &desc, attr, g16.engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&b->prim, pd) == dnnl_success;
    if (ok) {
        ok = dnnl_memory_create(&b->a, &ad, g16.engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&b->b, &bd, g16.engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&b->c, &cd, g16.engine, DNNL_MEMORY_NONE) == dnnl_success;
        if (!ok) release(b);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) return 0;
    b->trans_a = g->trans_a, b->trans_b = g->trans_b, b->M = g->M, b->N = g->N, b->K = g->K;
    b->ldc = g->ldc, b->alpha = g->alpha, b->beta = g->beta;
    return 1;
}

/* The built matmul for g's shape, built now if none is kept; NULL if oneDNN refused it. */
static built *find(const ct_gemm_shape *g) {
    built *oldest = &g16.slots[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        built *b = &g16.slots[i];
        if (same_shape(b, g)) return b;
        if (b->used < oldest->used) oldest = b;
    }
    release(oldest);
    return build(oldest, g) ? oldest : NULL;
}

static int round_up(int n) { return (n + PAD - 1) / PAD * PAD; }

/* The product on the padded shape p (M and K rounded up: zero rows and columns in the
 * rounded copies; C through a scratch when M grew). */
static int run_padded(const ct_gemm_shape *g, const ct_gemm_shape *p) {
    size_t a_n = (size_t)p->M * p->K, b_n = (size_t)p->K * p->N, c_n = p->M != g->M ? (size_t)p->M * p->N : 0;
    if (!grow(&g16.a16, &g16.a_cap, a_n * 2) || !grow(&g16.b16, &g16.b_cap, b_n * 2) ||
        (c_n && !grow(&g16.c32, &g16.c_cap, c_n * sizeof(float))))
        return 0;
    built *b = find(p);
    if (!b) return 0;
    b->used = ++g16.clock;
    if (g->trans_a) round_matrix(g16.a16, g->A, g->K, g->M, g->lda, p->K, p->M);
    else
        round_matrix(g16.a16, g->A, g->M, g->K, g->lda, p->M, p->K);
    if (g->trans_b) round_matrix(g16.b16, g->B, g->N, g->K, g->ldb, p->N, p->K);
    else
        round_matrix(g16.b16, g->B, g->K, g->N, g->ldb, p->K, p->N);
    float *c = c_n ? g16.c32 : g->C;
    if (c_n && g->beta != 0.0f) copy_rows(c, (size_t)p->N, g->C, (size_t)g->ldc, g->M, g->N);
    dnnl_memory_set_data_handle(b->a, g16.a16);
    dnnl_memory_set_data_handle(b->b, g16.b16);
    dnnl_memory_set_data_handle(b->c, c);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, b->a}, {DNNL_ARG_WEIGHTS, b->b}, {DNNL_ARG_DST, b->c}};
    sigset_t before;
    ct_gemm_signals_hold(&before);
    int ok = dnnl_primitive_execute(b->prim, g16.stream, 3, args) == dnnl_success &&
             dnnl_stream_wait(g16.stream) == dnnl_success;
    ct_gemm_signals_release(&before);
    if (!ok) return 0;
    if (c_n) copy_rows(g->C, (size_t)g->ldc, c, (size_t)p->N, g->M, g->N);
    return 1;
}

int ct_gemm_bf16_run(const ct_gemm_shape *g) {
    if (omp_in_parallel() || !start_engine()) return 0;
    ct_gemm_shape p = *g; /* M and K rounded up: rows that vary (MoE experts) share kernels */
    p.M = round_up(g->M), p.K = round_up(g->K);
    if (p.M != g->M) p.ldc = g->N;
    return run_padded(g, &p);
}
