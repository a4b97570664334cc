/* mpi_check.h: what the MPI check tools (tool_tp_check, tool_ep_check) share: ending every
 * rank with a message when a check fails, and the relative difference of two arrays. Set
 * W to the tools' world before the first check. */
#ifndef CT_TESTS_MPI_CHECK_H
#define CT_TESTS_MPI_CHECK_H

#include "core/core.h"
#include "parallel/comm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static ct_world *W;

static inline void check(int ok, const char *what) {
    if (ok) return;
    char msg[512];
    snprintf(msg, sizeof msg, "check failed: %s", what);
    ct_world_abort(W, 1, msg);
}

static inline void ok_or_abort(ct_status s, const char *what) {
    if (s == CT_OK) return;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", what, ct_last_error());
    ct_world_abort(W, 1, msg);
}

/* max |a - b| / max |b| over n floats */
static inline double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return d / scale;
}

/* Checks that got [n] is within tol of want (rel_diff); returns the difference. */
static inline double check_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    double d = rel_diff(got, want, n);
    char msg[256];
    snprintf(msg, sizeof msg, "%s differs by %.3g", what, d);
    check(d <= tol, msg);
    return d;
}

/* Starts one thread and the world with every launched rank on `axis` (tensor, pipeline, or
 * expert: then as many data ranks); returns the tolerance argv[1], or def. */
static inline double check_init(int argc, char **argv, ct_axis axis, double def) {
    ct_runtime_init(1, 0);
    int p = ct_launch_size() > 0 ? ct_launch_size() : 1;
    ct_layout want = {axis == CT_AXIS_EXPERT ? p : 1, axis == CT_AXIS_TENSOR ? p : 1,
                      axis == CT_AXIS_PIPELINE ? p : 1, axis == CT_AXIS_EXPERT ? p : 1};
    ok_or_abort(ct_world_create(&W, &want), "world");
    return argc > 1 ? atof(argv[1]) : def;
}

/* The small models the checks run: dense, and the same with MoE in every second block. */
static inline void check_models(ct_model_config *dense, ct_model_config *moe, int n_layer) {
    *dense = (ct_model_config){.n_layer = n_layer, .d_model = 32, .n_head = 4, .seq_len = 16, .vocab_size = 96};
    *moe = *dense;
    moe->moe_every = 2;
    moe->moe = (ct_moe_config){.n_experts = 4,
                               .top_k = 2,
                               .d_hidden = 48,
                               .routing = CT_MOE_TOP2,
                               .capacity_factor = 1.25f,
                               .aux_coef = 0.01f,
                               .z_coef = 0.001f,
                               .router_noise = 0.1f};
}

#endif
