/* peak.c: `cetus peak`: the machine's FLOP peak as cetus measures it (an FMA loop on every
 * CPU at once, fp32 and bf16; cached per machine), what MFU is reported against. */
#include "cli/cli.h"
#include "core/core.h"
#include <stdio.h>
#include <string.h>

int cmd_peak(int argc, char **argv) {
    int measure = 0, gflops = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: cetus peak [--measure] [--gflops]\n\n"
                "Prints the machine's fp32 and bf16 FLOP peak, every CPU at once: fused multiply-adds\n"
                "at the widest width the processor has, and bf16 dot products where it has them\n"
                "(AVX512_BF16). The figure is cached per machine (~/.cache/cetus/peak; the highest\n"
                "measurement counts, as a busy machine only lowers it); --measure times it again (on\n"
                "a quiet machine) and adds it to the cache. --gflops prints only the fp32 figure in GFLOP/s\n"
                "(for scripts). Training reports MFU against it, for the CPUs a run uses.\n");
            return 0;
        } else if (!strcmp(argv[i], "--measure")) {
            measure = 1;
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
        printf("bf16 %.1f GFLOP/s on %d CPUs (%.1f each; AVX512_BF16 dot products)\n", p.bf16 / 1e9, p.threads,
               p.bf16 / 1e9 / p.threads);
    else
        printf("bf16: no bf16 instructions on this processor\n");
    return 0;
}
