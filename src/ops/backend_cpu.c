/* backend_cpu.c: the CPU backend: the table of the ct_cpu_* kernels, and its copy between
 * tiers (both are host memory here). */
#include "ops/cpu.h"
#include <string.h>

void ct_cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

const ct_backend ct_backend_cpu = {.name = "cpu",
#define CT_CPU_ENTRY(ret, op, params, args) .op = ct_cpu_##op,
                                   CT_BACKEND_OPS(CT_CPU_ENTRY)
#undef CT_CPU_ENTRY
};
