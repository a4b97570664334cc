/* gemm_lib.c: one fp32 row-major product on a named library: OpenBLAS cblas_sgemm, or
 * oneDNN's dnnl_sgemm (row-major too, its own AVX-512 kernels). Either
 * uses the OpenMP team, or one thread when called inside a parallel region. */
#include "ops/gemm.h"
#include <cblas.h>
#include <dnnl.h>
#include <stdio.h>
#include <string.h>

const char *ct_gemm_library_name(ct_gemm_library lib) { return lib == CT_GEMM_ONEDNN ? "onednn" : "openblas"; }

void ct_gemm_library_run(ct_gemm_library lib, const ct_gemm_shape *g) {
    if (lib == CT_GEMM_ONEDNN) {
        dnnl_sgemm(g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->M, g->N, g->K, g->alpha, g->A, g->lda,
                   g->B, g->ldb, g->beta, g->C, g->ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C, g->ldc);
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    default: return "other";
    }
}

void ct_gemm_libraries_id(char *out, size_t cap) {
    char config[256];
    snprintf(config, sizeof config, "%s", openblas_get_config());
    char *space = strchr(config, ' '), *next = space ? strchr(space + 1, ' ') : NULL;
    if (next) *next = 0; /* "OpenBLAS 0.3.21" */
    const dnnl_version_t *v = dnnl_version();
    snprintf(out, cap, "%s (%s) | oneDNN %d.%d.%d (%s)", config, openblas_get_corename(), v->major, v->minor,
             v->patch, isa_name(dnnl_get_effective_cpu_isa()));
}
