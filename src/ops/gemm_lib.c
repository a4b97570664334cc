/* gemm_lib.c: one fp32 row-major product on a named library: OpenBLAS cblas_sgemm, or
 * oneDNN's dnnl_sgemm (row-major too, its own AVX-512 kernels). Either
 * uses the OpenMP team, or one thread when called inside a parallel region. */
#include "ops/gemm.h"
#include <cblas.h>
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

const char *ct_gemm_library_name(ct_gemm_library lib) { return lib == CT_GEMM_ONEDNN ? "onednn" : "openblas"; }

/* A stop signal (SIGTERM, SIGINT, SIGUSR1: the trainer's preemption) that interrupts a
 * oneDNN 2.6 product on its thread was seen to corrupt the heap (glibc aborts in oneDNN's
 * free, about one stop in two when the head's products ran on oneDNN); no such failure with
 * the signals held. So they are held on the calling thread while oneDNN runs and delivered
 * when it returns, which the trainer only looks at between steps anyway. */
void ct_gemm_signals_hold(sigset_t *before) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop, before);
}

void ct_gemm_signals_release(const sigset_t *before) { pthread_sigmask(SIG_SETMASK, before, NULL); }

void ct_gemm_library_run(ct_gemm_library lib, const ct_gemm_shape *g) {
    if (lib == CT_GEMM_ONEDNN) {
        sigset_t before;
        ct_gemm_signals_hold(&before);
        dnnl_sgemm(g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->M, g->N, g->K, g->alpha, g->A, g->lda,
                   g->B, g->ldb, g->beta, g->C, g->ldc);
        ct_gemm_signals_release(&before);
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
