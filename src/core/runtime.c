/* runtime.c: compute threads. One OpenMP team serves both our loops and OpenBLAS (the
 * OpenMP build), so the two never oversubscribe the cores; threads are pinned on request. */
#define _GNU_SOURCE
#include "core.h"
#include <omp.h>
#include <sched.h>
#include <unistd.h>

static int n_threads = 1;

static void pin_current_thread(int cpu) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    int count = CPU_COUNT(&allowed), seen = 0;
    for (int c = 0; c < CPU_SETSIZE && count > 0; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        if (seen++ == cpu % count) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

int ct_runtime_cores(void) {
    cpu_set_t allowed;
    int n = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed)
                                                                : (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

size_t ct_runtime_memory_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : 0;
}

void ct_runtime_init(int threads, int pin) {
    if (threads <= 0) threads = ct_runtime_cores();
    n_threads = threads;
    omp_set_dynamic(0);
    omp_set_num_threads(threads);
    if (!pin) return;
#pragma omp parallel num_threads(threads)
    pin_current_thread(omp_get_thread_num());
}

int ct_runtime_threads(void) { return n_threads; }
