/* mpi_check.h: what the MPI check tools (tool_tp_check, tool_ep_check) share: ending every
 * rank with a message when a check fails, and the relative difference of two arrays. Set
 * W to the tools' world before the first check. */
#ifndef CT_TESTS_MPI_CHECK_H
#define CT_TESTS_MPI_CHECK_H

#include "core/core.h"
#include "parallel/comm.h"
#include <math.h>
#include <stdio.h>

static ct_world *W;

static void check(int ok, const char *what) {
    if (ok) return;
    char msg[512];
    snprintf(msg, sizeof msg, "check failed: %s", what);
    ct_world_abort(W, 1, msg);
}

static void ok_or_abort(ct_status s, const char *what) {
    if (s == CT_OK) return;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", what, ct_last_error());
    ct_world_abort(W, 1, msg);
}

/* max |a - b| / max |b| over n floats */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return d / scale;
}

#endif
