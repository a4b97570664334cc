/* gemm.c: every matrix product of the CPU backend enters here. ct_cpu_gemm runs a product on
 * the thread team: in bf16 when the precision is bf16, else on the library chosen for its
 * shape class; ct_cpu_gemm_tile runs a small fp32 product on the calling thread inside a
 * parallel loop (attention's per-head tiles). The settings (runtime.gemm, train.precision)
 * are made between passes by ct_gemm_configure; a process that never configures gets "auto"
 * in fp32, measured at its first product. */
#include "core/core.h"
#include "ops/cpu.h"
#include "ops/gemm.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>

static struct {
    int ready;                                        /* a choice is made */
    int forced;                                       /* runtime.gemm named a library */
    int bf16;                                         /* train.precision = bf16 */
    int threads;                                      /* the team the choice was measured for */
    ct_gemm_library choice[CT_GEMM_CLASSES];          /* per class */
    double rates[CT_GEMM_CLASSES][CT_GEMM_LIBRARIES]; /* GFLOP/s measured (auto) */
} gemm;

static int parse_library(const char *name, int *forced, ct_gemm_library *lib) {
    if (!name || !strcmp(name, "auto")) return *forced = 0, 1;
    *forced = 1;
    if (!strcmp(name, "openblas")) return *lib = CT_GEMM_OPENBLAS, 1;
    if (!strcmp(name, "onednn")) return *lib = CT_GEMM_ONEDNN, 1;
    return 0;
}

ct_status ct_gemm_check(const char *library, const char *precision) {
    int forced;
    ct_gemm_library lib;
    if (!parse_library(library, &forced, &lib))
        return ct_fail(CT_EINVAL,
                       "runtime.gemm = \"%s\": allowed auto (measured on this machine), openblas or onednn",
                       library);
    if (precision && strcmp(precision, "fp32") && strcmp(precision, "bf16"))
        return ct_fail(CT_EINVAL, "train.precision = \"%s\": allowed fp32 or bf16", precision);
    if (precision && !strcmp(precision, "bf16") && !ct_gemm_bf16_supported()) {
        char key[512];
        ct_machine_key(key, sizeof key);
        return ct_fail(CT_EINVAL,
                       "train.precision = bf16: this processor (%s) has no bf16 instructions (AVX512_BF16 or "
                       "AMX-BF16); train in fp32",
                       key);
    }
    return CT_OK;
}

static ct_status configure(const char *library, const char *precision, int fresh) {
    CT_TRY(ct_gemm_check(library, precision));
    ct_gemm_library lib = CT_GEMM_OPENBLAS;
    parse_library(library, &gemm.forced, &lib);
    gemm.bf16 = precision && !strcmp(precision, "bf16");
    gemm.threads = omp_get_max_threads();
    if (gemm.forced)
        for (int c = 0; c < CT_GEMM_CLASSES; c++) gemm.choice[c] = lib;
    else
        ct_gemm_choose(gemm.choice, gemm.rates, gemm.threads, fresh);
    gemm.ready = 1;
    return CT_OK;
}

ct_status ct_gemm_configure(const char *library, const char *precision) {
    return configure(library, precision, 0);
}

void ct_gemm_measure(void) { configure("auto", "fp32", 1); }

int ct_gemm_is_bf16(void) { return gemm.bf16; }

void ct_gemm_describe(char *out, size_t cap) {
    char libs[256];
    size_t used;
    ct_gemm_libraries_id(libs, sizeof libs);
    used = (size_t)snprintf(out, cap, "%s; fp32 %s:", libs,
                            !gemm.ready   ? "not chosen yet"
                            : gemm.forced ? "set"
                                          : "measured");
    for (int c = 0; gemm.ready && c < CT_GEMM_CLASSES && used < cap; c++) {
        used += (size_t)snprintf(out + used, cap - used, " %s %s", ct_gemm_class_name(c),
                                 ct_gemm_library_name(gemm.choice[c]));
        if (!gemm.forced && used < cap)
            used += (size_t)snprintf(out + used, cap - used, " (%.0f/%.0f)", gemm.rates[c][CT_GEMM_OPENBLAS],
                                     gemm.rates[c][CT_GEMM_ONEDNN]);
    }
    if (used < cap)
        snprintf(out + used, cap - used, "; products in %s", gemm.bf16 ? "bf16 (oneDNN matmul)" : "fp32");
}

/* The library for this class; the first product of a process that never configured makes
 * the auto choice (outside a parallel region; inside one OpenBLAS runs it until then). */
static ct_gemm_library library_for(ct_gemm_class c) {
    if (!gemm.ready && !omp_in_parallel()) ct_gemm_configure("auto", "fp32");
    return gemm.ready ? gemm.choice[c] : CT_GEMM_OPENBLAS;
}

void ct_cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    ct_gemm_shape g = {trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    if (K > 0 && gemm.bf16 && ct_gemm_bf16_run(&g)) return;
    ct_gemm_library_run(library_for(ct_gemm_classify(trans_a, trans_b, M, N, K, omp_in_parallel())), &g);
}

void ct_cpu_gemm_tile(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    ct_gemm_shape g = {trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    ct_gemm_library_run(library_for(CT_GEMM_TILE), &g);
}
