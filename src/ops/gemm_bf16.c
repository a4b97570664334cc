/* gemm_bf16.c: the product with bf16 inputs and fp32 accumulation. op(A) and op(B) are
 * rounded to bf16 (round to nearest even, as the processor's conversion does) into packed
 * copies kept between calls, and oneDNN's matmul multiplies them into the fp32 C: on
 * AMX-BF16 its tile kernels, else its AVX512_BF16 dot products. alpha is the matmul's output
 * scale and beta a sum post-op onto C. Built primitives are kept by shape (oneDNN builds one
 * in tens of microseconds), the least recently used replaced. Runs on the OpenMP team; not
 * from inside a parallel region (the cache and the copies are this thread's). */
#include "core/core.h"
#include "ops/gemm.h"
#include <dnnl.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { CACHE_SLOTS = 64 };

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
    uint16_t *a16, *b16; /* the rounded copies [M*K], [K*N] */
    size_t a_cap, b_cap;
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

/* rows x cols of src (leading dimension ld) into the packed dst [rows, cols]. */
static void round_matrix(uint16_t *dst, const float *src, int rows, int cols, int ld) {
    int vector = __builtin_cpu_supports("avx512bf16");
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) round_row(dst + (size_t)r * cols, src + (size_t)r * ld, cols, vector);
}

static int grow(uint16_t **buf, size_t *cap, size_t n) {
    if (n <= *cap) return 1;
    uint16_t *p = realloc(*buf, n * sizeof *p);
    if (!p) return 0;
    *buf = p, *cap = n;
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

int ct_gemm_bf16_run(const ct_gemm_shape *g) {
    if (omp_in_parallel() || !start_engine()) return 0;
    size_t a_n = (size_t)g->M * g->K, b_n = (size_t)g->K * g->N;
    if (!grow(&g16.a16, &g16.a_cap, a_n) || !grow(&g16.b16, &g16.b_cap, b_n)) return 0;
    built *b = find(g);
    if (!b) return 0;
    b->used = ++g16.clock;
    round_matrix(g16.a16, g->A, g->trans_a ? g->K : g->M, g->trans_a ? g->M : g->K, g->lda);
    round_matrix(g16.b16, g->B, g->trans_b ? g->N : g->K, g->trans_b ? g->K : g->N, g->ldb);
    dnnl_memory_set_data_handle(b->a, g16.a16);
    dnnl_memory_set_data_handle(b->b, g16.b16);
    dnnl_memory_set_data_handle(b->c, g->C);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, b->a}, {DNNL_ARG_WEIGHTS, b->b}, {DNNL_ARG_DST, b->c}};
    if (dnnl_primitive_execute(b->prim, g16.stream, 3, args) != dnnl_success) return 0;
    return dnnl_stream_wait(g16.stream) == dnnl_success;
}
