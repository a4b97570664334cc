/* gemm.h: the CPU backend's matrix products, inside ops. One row-major product
 *   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C     (op: as stored, or transposed)
 * runs on OpenBLAS sgemm or oneDNN, the library chosen per shape class by timing both on this
 * machine (gemm_choice.c, cached per machine), or in bf16 (gemm_bf16.c: inputs rounded to
 * bf16, products accumulated in fp32, C stays fp32) when the precision is bf16.
 * Files: gemm_lib.c runs one product on a named library; gemm_bf16.c the bf16 product;
 * gemm_choice.c measures and caches the choice; gemm.c is the entry (ct_cpu_gemm and the
 * single-thread tile product) and the configuration. */
#ifndef CT_GEMM_H
#define CT_GEMM_H

#include "cetus.h"
#include "ops/ops.h"
#include <signal.h>

/* The fp32 libraries. */
typedef enum { CT_GEMM_OPENBLAS, CT_GEMM_ONEDNN, CT_GEMM_LIBRARIES } ct_gemm_library;

/* Shape classes a library is chosen for: the transpose pattern (NN: a layer's forward, NT:
 * its input gradient, TN: its weight gradient) of large (>= CT_GEMM_SMALL_FLOPS) and small
 * products on the whole thread team, and tiles: small products one thread runs inside a
 * parallel loop (attention's per-head products). */
typedef enum {
    CT_GEMM_NN,
    CT_GEMM_NT,
    CT_GEMM_TN,
    CT_GEMM_NN_SMALL,
    CT_GEMM_NT_SMALL,
    CT_GEMM_TN_SMALL,
    CT_GEMM_TILE,
    CT_GEMM_CLASSES
} ct_gemm_class;
#define CT_GEMM_SMALL_FLOPS 64e6

typedef struct ct_gemm_shape {
    int trans_a, trans_b, M, N, K;
    float alpha;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    float beta;
    float *C;
    int ldc;
} ct_gemm_shape;

/* gemm.c: a small fp32 product on the calling thread, from inside a parallel loop (the
 * class "tile"); ct_cpu_gemm (cpu.h) is the team's. */
void ct_cpu_gemm_tile(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);

/* gemm_lib.c */
const char *ct_gemm_library_name(ct_gemm_library lib);
void ct_gemm_library_run(ct_gemm_library lib, const ct_gemm_shape *g);
/* Holds the stop signals on the calling thread while a oneDNN call runs (see gemm_lib.c),
 * then restores the mask it saved in *before. */
void ct_gemm_signals_hold(sigset_t *before);
void ct_gemm_signals_release(const sigset_t *before);
/* "OpenBLAS 0.3.21 (Haswell) | oneDNN 2.6.3 (avx512_core_amx)": what a cached choice is
 * valid for, besides the machine. */
void ct_gemm_libraries_id(char *out, size_t cap);

/* gemm_bf16.c: 1 when this processor has bf16 instructions (AVX512_BF16 or AMX-BF16). */
int ct_gemm_bf16_supported(void);
/* The product with bf16 inputs and fp32 accumulation; 0 when it could not run (memory for the
 * rounded copies, or oneDNN refused the shape): the caller runs it in fp32. Not from inside
 * a parallel region. */
int ct_gemm_bf16_run(const ct_gemm_shape *g);

/* gemm_choice.c: the library for each class, measured on this machine for `threads` threads
 * (about 0.2 s, each class timed on both libraries) or read from the machine's cache (not
 * when fresh: then measured and appended, the last entry counting); the rates measured
 * (GFLOP/s, [class][library]) when rates is not NULL. */
void ct_gemm_choose(ct_gemm_library choice[CT_GEMM_CLASSES], double rates[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES],
                    int threads, int fresh);
const char *ct_gemm_class_name(ct_gemm_class c);
ct_gemm_class ct_gemm_classify(int trans_a, int trans_b, int M, int N, int K, int tile);

#endif
