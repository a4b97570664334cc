/* cpu.h: the CPU backend's kernels (OpenBLAS sgemm, OpenMP loops), one ct_cpu_<op> for each
 * op of backend.h's list, with its signature and the meaning ops.h gives ct_<op>. They call
 * each other directly, never through the current backend. ct_backend_cpu (backend_cpu.c)
 * is their table. */
#ifndef CT_CPU_H
#define CT_CPU_H

#include "ops/backend.h"

#define CT_CPU_DECLARE(ret, op, params, args) ret ct_cpu_##op params;
CT_BACKEND_OPS(CT_CPU_DECLARE)
#undef CT_CPU_DECLARE

#endif
