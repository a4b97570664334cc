/* peak.c: `cetus peak`: the machine's FLOP peak as cetus measures it (an FMA loop on every
 * CPU at once, fp32 and bf16; cached per machine), what MFU is reported against, and the
 * matrix-product library chosen for each shape class (--gemm). */
#include "cli/cli.h"
#include "core/core.h"
#include "ops/ops.h"
#include <stdio.h>
#include <string.h>

int cmd_peak(int argc, char **argv) {
    int measure = 0, gflops = 0, gemm = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: cetus peak [--measure] [--gflops] [--gemm]\n\n"
                "Prints the machine's fp32 and bf16 FLOP peak, every CPU at once: fused multiply-adds\n"
                "at the widest width the processor has, and bf16 dot products (AVX512_BF16) or AMX-BF16\n"
                "tile products where it has them, whichever is faster. The figure is cached per machine (~/.cache/cetus/peak; the highest\n"
                "measurement counts, as a busy machine only lowers it); --measure times it again (on\n"
                "a quiet machine) and adds it to the cache. --gflops prints only the fp32 figure in GFLOP/s\n"
                "(for scripts). Training reports MFU against it, for the CPUs a run uses.\n"
                "--gemm also prints the library (OpenBLAS or oneDNN) each class of matrix product runs on\n"
                "under runtime.gemm = auto, with both libraries' GFLOP/s (cached per machine in\n"
                "~/.cache/cetus/gemm; with --measure timed again).\n");
            return 0;
        } else if (!strcmp(argv[i], "--measure")) {
            measure = 1;
        } else if (!strcmp(argv[i], "--gemm")) {
            gemm = 1;
        } else if (!strcmp(argv[i], "--gflops")) {
            gflops = 1;
        } else {
            fprintf(stderr, "cetus peak: unknown option '%s' (see cetus peak --help)\n", argv[i]);
            return 2;
        }
    }
    ct_peak p;
    if (measure) ct_peak_record(&p);
    else
        ct_peak_get(&p);
    if (gflops) {
        printf("%.1f\n", p.fp32 / 1e9);
        return 0;
    }
    printf("fp32 %.1f GFLOP/s on %d CPUs (%.1f each; %s fused multiply-adds)\n", p.fp32 / 1e9, p.threads,
           p.fp32 / 1e9 / p.threads, p.width);
    if (p.bf16 > 0)
        printf(
            "bf16 %.1f GFLOP/s on %d CPUs (%.1f each; the faster of AVX512_BF16 dot products and AMX-BF16 tiles)\n",
            p.bf16 / 1e9, p.threads, p.bf16 / 1e9 / p.threads);
    else
        printf("bf16: no bf16 instructions on this processor\n");
    if (gemm) {
        char d[768];
        if (measure) ct_gemm_measure();
        else
            ct_gemm_configure("auto", "fp32");
        ct_gemm_describe(d, sizeof d);
        printf("products: %s\n", d);
    }
    return 0;
}
