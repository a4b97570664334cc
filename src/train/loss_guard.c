/* loss_guard.c: the verdict on a step whose loss or gradient norm is not finite or whose loss
 * explodes, and run.dir/anomalies.jsonl (see loss_guard.h). */
#include "train/loss_guard.h"
#include "core/core.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_name[2] = {"caption", "text"};

void ct_loss_guard_init(ct_loss_guard *g, const ct_config *c, int speak) {
    memset(g, 0, sizeof *g);
    g->skip = !strcmp(c->train.on_nonfinite, "skip");
    g->factor = c->train.loss_spike;
    g->uniform = log((double)c->model.vocab_size);
    g->speak = speak;
    const char *inject = getenv("CETUS_INJECT_NONFINITE");
    uint64_t at;
    g->inject_step = inject && ct_parse_u64(inject, INT32_MAX, &at) ? (int)at : -1;
    snprintf(g->record, sizeof g->record, "%s/anomalies.jsonl", c->run.dir);
}

/* The mean of kind k's accepted losses, or a uniform guess before any. */
static double reference(const ct_loss_guard *g, int k) {
    if (!g->count[k]) return g->uniform;
    double sum = 0.0;
    for (int i = 0; i < g->count[k]; i++) sum += g->recent[k][i];
    return sum / g->count[k];
}

static void accept(ct_loss_guard *g, const ct_guard_step *s) {
    g->skipped_in_row = 0;
    for (int k = 0; k < 2; k++) {
        if (isnan(s->kind_loss[k])) continue;
        g->recent[k][g->next[k]] = s->kind_loss[k];
        g->next[k] = (g->next[k] + 1) % CT_GUARD_WINDOW;
        if (g->count[k] < CT_GUARD_WINDOW) g->count[k]++;
    }
}

/* Describes what is wrong with the step in what (empty: nothing); *ref the reference a spike
 * was judged against (NAN: not a spike). */
static void diagnose(const ct_loss_guard *g, const ct_guard_step *s, char *what, size_t cap, double *ref) {
    *ref = NAN;
    what[0] = 0;
    if (!isfinite(s->loss) || !isfinite(s->grad_norm)) {
        snprintf(what, cap, "the training loss is %g and the gradient norm %g", (double)s->loss,
                 (double)s->grad_norm);
        return;
    }
    for (int k = 0; k < 2 && g->factor > 0; k++) {
        double r = reference(g, k);
        if (isnan(s->kind_loss[k]) || s->kind_loss[k] <= g->factor * r) continue;
        snprintf(what, cap, "the %s loss %.4g is over train.loss_spike = %g times its recent mean %.4g",
                 kind_name[k], (double)s->kind_loss[k], g->factor, r);
        *ref = r;
        return;
    }
}

/* One JSON line per refused step: what, the values and the batch's data position. */
static void record(const ct_loss_guard *g, const ct_guard_step *s, const char *what, double ref) {
    if (!g->speak) return;
    FILE *f = fopen(g->record, "a");
    if (!f) {
        ct_log("warning: cannot append to %s; the refused step %" PRId64 " is not recorded", g->record,
               s->step + 1);
        return;
    }
    char loss[32], norm[32], r[32];
    fprintf(f,
            "{\"step\": %" PRId64 ", \"action\": \"%s\", \"loss\": %s, \"grad_norm\": %s, \"reference\": %s, "
            "\"data\": {\"split\": \"train\", \"epoch\": \"%" PRIu64 "\", \"index\": \"%" PRIu64
            "\", \"windows\": %d}, \"what\": \"%s\"}\n",
            s->step + 1, g->skip ? "skip" : "stop", ct_json_number(loss, sizeof loss, s->loss, "%.9g"),
            ct_json_number(norm, sizeof norm, s->grad_norm, "%.9g"), ct_json_number(r, sizeof r, ref, "%.9g"),
            s->pos.epoch, s->pos.index, s->batch_size, what);
    fclose(f);
}

ct_status ct_loss_guard_judge(ct_loss_guard *g, ct_guard_step *s, int *skip) {
    *skip = 0;
    if (s->step + 1 == g->inject_step) s->loss = s->kind_loss[1] = NAN; /* a fault the tests inject */
    char what[256];
    double ref;
    diagnose(g, s, what, sizeof what, &ref);
    if (!what[0]) {
        accept(g, s);
        return CT_OK;
    }
    record(g, s, what, ref);
    if (!g->skip)
        return ct_fail(CT_EINVAL,
                       "step %" PRId64 ": %s; stopped (train.on_nonfinite = stop) before the update. The "
                       "batch (epoch %" PRIu64 ", window %" PRIu64 " of the training order, %d windows) is "
                       "recorded in %s. Lower train.lr or raise train.warmup_steps, or set "
                       "train.on_nonfinite=skip to drop such steps",
                       s->step + 1, what, s->pos.epoch, s->pos.index, s->batch_size, g->record);
    g->skipped++;
    if (++g->skipped_in_row >= CT_GUARD_MAX_SKIPS)
        return ct_fail(CT_EINVAL,
                       "step %" PRId64 ": %s; %d steps in a row skipped (train.on_nonfinite = skip): the "
                       "model itself has diverged, see %s; lower train.lr or resume from an earlier "
                       "checkpoint",
                       s->step + 1, what, g->skipped_in_row, g->record);
    if (g->speak)
        ct_log("warning: step %" PRId64 ": %s; its update is skipped (train.on_nonfinite = skip), the batch "
               "recorded in %s",
               s->step + 1, what, g->record);
    *skip = 1;
    return CT_OK;
}
