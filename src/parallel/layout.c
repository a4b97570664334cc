/* layout.c: the parallel layout without MPI: checking a requested layout against the
 * number of ranks (with a message listing what fits), listing the divisor layouts, and
 * mapping ranks to coordinates and group members (tensor innermost). */
#include "parallel/comm.h"
#include "core/core.h"
#include <stdio.h>
#include <string.h>

static const char *const axis_names[CT_AXIS_COUNT] = {
    "data", "tensor", "pipeline", "expert", "expert-data", "world",
};

const char *ct_axis_name(ct_axis axis) { return axis >= 0 && axis < CT_AXIS_COUNT ? axis_names[axis] : "?"; }

/* ---- naming ---------------------------------------------------------------------------- */

char *ct_layout_format(const ct_layout *l, int keys, char *buf, size_t cap) {
    const int vals[4] = {l->data, l->tensor, l->pipeline, l->expert};
    static const char *const names[4] = {"data", "tensor", "pipeline", "expert"};
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < 4 && len < cap; i++) {
        if (vals[i] == 1 && !(i == 0 && l->tensor == 1 && l->pipeline == 1)) continue;
        int k = snprintf(buf + len, cap - len, "%s%s%s=%d", len ? " x " : "", keys ? "parallel." : "", names[i],
                         vals[i]);
        if (k > 0) len += (size_t)k;
    }
    return buf;
}

int ct_layout_list(int ranks, int pipeline, ct_layout *out, int max) {
    if (ranks < 1 || pipeline < 1 || ranks % pipeline) return 0;
    int per = ranks / pipeline, n = 0;
    for (int t = 1; t <= per; t++) {
        if (per % t) continue;
        if (n < max) out[n] = (ct_layout){per / t, t, pipeline, 1};
        n++;
    }
    return n;
}

/* "layouts that fit 4 ranks: data=4, data=2 x tensor=2, tensor=4" */
static void list_fits(int ranks, int pipeline, char *buf, size_t cap) {
    ct_layout fit[64];
    if (ct_layout_list(ranks, pipeline, fit, 0) == 0) pipeline = 1;
    int n = ct_layout_list(ranks, pipeline, fit, 64);
    if (n > 64) n = 64;
    snprintf(buf, cap, "layouts that fit %d rank%s: ", ranks, ranks == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        char one[96];
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", ct_layout_format(&fit[i], 0, one, sizeof one));
    }
}

static const char *started(int ranks, int launched, char *buf, size_t cap) {
    if (launched) snprintf(buf, cap, "mpirun started %d", ranks);
    else
        snprintf(buf, cap, "the process was started without mpirun (1 rank)");
    return buf;
}

/* ---- checking -------------------------------------------------------------------------- */

static ct_status check_fields(const ct_layout *l) {
    if (l->data < 0)
        return ct_fail(CT_EINVAL,
                       "parallel.data=%d: expected >= 1, or 0 for every rank "
                       "not taken by tensor x pipeline",
                       l->data);
    const int vals[3] = {l->tensor, l->pipeline, l->expert};
    static const char *const keys[3] = {"tensor", "pipeline", "expert"};
    for (int i = 0; i < 3; i++)
        if (vals[i] < 1) return ct_fail(CT_EINVAL, "parallel.%s=%d: expected >= 1", keys[i], vals[i]);
    return CT_OK;
}

static ct_status refuse_size(const ct_layout *l, int ranks, int launched, long long need) {
    char want[160], fits[1024], how[96];
    ct_layout shown = *l;
    shown.expert = 1;
    list_fits(ranks, l->pipeline, fits, sizeof fits);
    started(ranks, launched, how, sizeof how);
    if (l->data == 0) {
        shown.data = 1;
        ct_layout_format(&shown, 1, want, sizeof want);
        return ct_fail(CT_EINVAL, "%s needs a multiple of %lld ranks but %s; %s", want, need, how, fits);
    }
    ct_layout_format(&shown, 1, want, sizeof want);
    return ct_fail(CT_EINVAL, "%s needs %lld rank%s but %s; %s", want, need, need == 1 ? "" : "s", how, fits);
}

static ct_status refuse_expert(const ct_layout *l) {
    char fits[256] = "";
    for (int e = 1; e <= l->data; e++) {
        if (l->data % e) continue;
        size_t len = strlen(fits);
        snprintf(fits + len, sizeof fits - len, "%s%d", len ? ", " : "", e);
    }
    return ct_fail(CT_EINVAL,
                   "parallel.expert=%d must divide parallel.data=%d (expert groups "
                   "are carved from the data ranks); values that fit: %s",
                   l->expert, l->data, fits);
}

ct_status ct_layout_resolve(const ct_layout *want, int ranks, int launched, ct_layout *out) {
    ct_layout l = want ? *want : (ct_layout){0, 1, 1, 1};
    CT_TRY(check_fields(&l));
    long long tp = (long long)l.tensor * l.pipeline;
    if (l.data == 0) {
        if (ranks % tp) return refuse_size(&l, ranks, launched, tp);
        l.data = (int)(ranks / tp);
    }
    long long need = tp * l.data;
    if (need != ranks) return refuse_size(&l, ranks, launched, need);
    if (l.data % l.expert) return refuse_expert(&l);
    *out = l;
    return CT_OK;
}

/* ---- coordinates ----------------------------------------------------------------------- */

void ct_layout_coords(const ct_layout *l, int rank, int c[CT_AXIS_COUNT]) {
    c[CT_AXIS_TENSOR] = rank % l->tensor;
    c[CT_AXIS_DATA] = (rank / l->tensor) % l->data;
    c[CT_AXIS_PIPELINE] = rank / (l->tensor * l->data);
    c[CT_AXIS_EXPERT] = c[CT_AXIS_DATA] % l->expert;
    c[CT_AXIS_EXPERT_DATA] = c[CT_AXIS_DATA] / l->expert;
    c[CT_AXIS_WORLD] = rank;
}

int ct_layout_axis_size(const ct_layout *l, ct_axis axis) {
    switch (axis) {
    case CT_AXIS_DATA: return l->data;
    case CT_AXIS_TENSOR: return l->tensor;
    case CT_AXIS_PIPELINE: return l->pipeline;
    case CT_AXIS_EXPERT: return l->expert;
    case CT_AXIS_EXPERT_DATA: return l->data / l->expert;
    case CT_AXIS_WORLD: return l->data * l->tensor * l->pipeline;
    case CT_AXIS_COUNT: break;
    }
    return 0;
}

int ct_layout_peer(const ct_layout *l, int rank, ct_axis axis, int coord) {
    int c[CT_AXIS_COUNT];
    ct_layout_coords(l, rank, c);
    int t = c[CT_AXIS_TENSOR], d = c[CT_AXIS_DATA], p = c[CT_AXIS_PIPELINE];
    switch (axis) {
    case CT_AXIS_DATA: d = coord; break;
    case CT_AXIS_TENSOR: t = coord; break;
    case CT_AXIS_PIPELINE: p = coord; break;
    case CT_AXIS_EXPERT: d = d / l->expert * l->expert + coord; break;
    case CT_AXIS_EXPERT_DATA: d = coord * l->expert + d % l->expert; break;
    case CT_AXIS_WORLD: return coord;
    case CT_AXIS_COUNT: break;
    }
    return (p * l->data + d) * l->tensor + t;
}
