/* search.c: the layouts of a world that fit: every pipeline x tensor x data split (and the
 * expert groups inside data), each ZeRO stage, the pipeline's micro-batch counts,
 * recomputation of none or all blocks, and offload chosen by the automatic policy at the
 * device's memory; pipeline stages balanced by the speed of the hardware groups they run
 * on. Each candidate is planned (plan.c) and checked against the memory; the ones that fit
 * are ranked by predicted tokens/s, and the others' reasons counted. */
#include "plan/plan_internal.h"
#include "core/core.h"
#include "spec/model_spec.h"
#include <stdio.h>
#include <string.h>

enum { MAX_REASONS = 12 };

typedef struct reasons {
    char text[MAX_REASONS][160];
    int count[MAX_REASONS], n;
    double least; /* the least memory any rejected-for-memory layout needed */
    char least_kind[32];
} reasons;

/* Counts a reason, its numbers written as N so that one kind of refusal is one line. */
static void count_reason(reasons *r, const char *why) {
    char key[160];
    size_t k = 0;
    for (const char *c = why; *c && k + 1 < sizeof key; c++) {
        int digit = *c >= '0' && *c <= '9';
        if (digit && k && key[k - 1] == 'N') continue;
        key[k++] = digit ? 'N' : *c;
    }
    key[k] = 0;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->text[i], key)) {
            r->count[i]++;
            return;
        }
    if (r->n < MAX_REASONS) {
        snprintf(r->text[r->n], sizeof r->text[r->n], "%s", key);
        r->count[r->n++] = 1;
    }
}

/* Blocks per stage in proportion to the speed of each stage's devices ("5,3"), when the
 * hardware's groups differ; "auto" otherwise. */
static void balance_stages(const ct_config *c, int world, int P, const ct_hardware *hw, char *out, size_t cap) {
    snprintf(out, cap, "auto");
    if (P == 1 || hw->n_groups == 1) return;
    double speed[CT_MAX_STAGES], total = 0.0;
    for (int s = 0; s < P; s++) total += speed[s] = ct_plan_group(hw, s * (world / P))->matmul_flops;
    int L = c->model.n_layer, given = 0, blocks[CT_MAX_STAGES];
    for (int s = 0; s < P; s++) {
        blocks[s] = (int)(L * speed[s] / total + 0.5);
        if (blocks[s] < 1) blocks[s] = 1;
        given += blocks[s];
    }
    for (int s = 0; given != L; s = (s + 1) % P) { /* settle rounding on the fastest stages first */
        int step = given < L ? 1 : -1;
        if (blocks[s] + step >= 1) blocks[s] += step, given += step;
    }
    size_t used = 0;
    for (int s = 0; s < P && used < cap; s++)
        used += (size_t)snprintf(out + used, cap - used, "%s%d", s ? "," : "", blocks[s]);
}

/* Keeps the least compute peak a refused plan's worst stage needs, and what dominates it. */
static void note_least(reasons *r, const ct_plan *p) {
    const ct_plan_stage *worst = &p->stage[0];
    for (int i = 1; i < p->n_stages; i++)
        if (p->stage[i].compute_peak > worst->compute_peak) worst = &p->stage[i];
    if (r->least == 0 || worst->compute_peak < r->least) {
        r->least = worst->compute_peak;
        snprintf(r->least_kind, sizeof r->least_kind, "%s", ct_plan_kind_name(ct_plan_dominant(worst)));
    }
}

/* Notes the least device memory a candidate needs: every block's weights and gradients and
 * all moments offloaded (what ZeRO 3 cannot place stays). */
static void least_needed(const ct_config *c, int world, const ct_hardware *hw, ct_plan_choice *scratch,
                         reasons *r) {
    ct_config all = *c;
    snprintf(all.offload.policy, sizeof all.offload.policy, "manual");
    snprintf(all.offload.params, sizeof all.offload.params, "%s",
             c->parallel.zero == 3 ? "none" : c->offload.tier);
    snprintf(all.offload.grads, sizeof all.offload.grads, "%s",
             c->parallel.zero >= 2 ? "none" : c->offload.tier);
    snprintf(all.offload.optimizer, sizeof all.offload.optimizer, "%s", c->offload.tier);
    if (ct_plan_make_at(&scratch->plan, &all, world, hw, 0.0) == CT_OK) note_least(r, &scratch->plan);
}

/* Plans one candidate; a choice if it fits, else its reason counted. */
static int try_one(const ct_config *c, int world, const ct_hardware *hw, double budget, ct_plan_choice *out,
                   reasons *r) {
    ct_status s = ct_plan_make_at(&out->plan, c, world, hw, budget);
    char why[512];
    if (s != CT_OK) {
        const char *msg = ct_last_error();
        if (s == CT_ENOMEM && strstr(msg, "compute_budget")) {
            count_reason(r, "over device memory even with every offloadable state offloaded");
            least_needed(c, world, hw, out, r);
            return 0;
        }
        snprintf(why, sizeof why, "%.150s", msg);
        count_reason(r, why);
        return 0;
    }
    if (!ct_plan_fits(&out->plan, hw, why, sizeof why)) {
        note_least(r, &out->plan);
        count_reason(r, strstr(why, "host") ? "over host memory" : "over device memory");
        return 0;
    }
    if (!strcmp(c->offload.tier, "disk") && !strcmp(out->plan.offload, "nothing offloaded"))
        return 0; /* the same plan as with host: listed once */
    char cap_text[64] = "";
    if (budget > 0) snprintf(cap_text, sizeof cap_text, " memory.compute_budget=%.0fM", budget / (1 << 20));
    snprintf(out->keys, sizeof out->keys,
             "parallel.data=%d parallel.tensor=%d parallel.pipeline=%d parallel.expert=%d parallel.zero=%d "
             "train.batch_size=%d train.grad_accum=%d parallel.micro_batches=%d parallel.stages=%.64s "
             "memory.recompute=%.8s offload.policy=auto offload.tier=%.8s%s",
             out->plan.layout.data, out->plan.layout.tensor, out->plan.layout.pipeline, out->plan.layout.expert,
             c->parallel.zero, c->train.batch_size, c->train.grad_accum, out->plan.micro, c->parallel.stages,
             c->memory.recompute, c->offload.tier, cap_text);
    return 1;
}

/* Keeps the best `max` by tokens/s in best (sorted); n: how many it holds. */
static void keep(ct_plan_choice *best, int *n, int max, const ct_plan_choice *cand) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(best[i].keys, cand->keys)) return; /* the same settings by another path */
    int at = *n;
    while (at > 0 && best[at - 1].plan.tokens_per_s < cand->plan.tokens_per_s) at--;
    if (at >= max) return;
    int last = *n < max ? *n : max - 1;
    memmove(&best[at + 1], &best[at], (size_t)(last - at) * sizeof *best);
    best[at] = *cand;
    if (*n < max) (*n)++;
}

typedef struct search_ctx {
    const ct_hardware *hw;
    int world, max, found, tried;
    double budget;
    ct_plan_choice *best, *cand;
    reasons r;
} search_ctx;

/* The same global batch in fewer rows at once: accumulation a (a power of two dividing each
 * data rank's rows), and with pipeline stages the default micro-batch count and one per row. */
static void try_batches(search_ctx *x, ct_config *c) {
    int batch = c->train.batch_size, accum = c->train.grad_accum, D = c->parallel.data;
    for (int a = 1; a <= batch / D; a *= 2) {
        if ((batch / D) % a) break;
        c->train.batch_size = batch / a;
        c->train.grad_accum = accum * a;
        int rows = c->train.batch_size / D;
        for (int m = 0; m <= (c->parallel.pipeline > 1 && rows > 1); m++) {
            c->parallel.micro_batches = m ? rows : 0;
            x->tried++;
            if (try_one(c, x->world, x->hw, x->budget, x->cand, &x->r))
                keep(x->best, &x->found, x->max, x->cand);
        }
    }
    c->train.batch_size = batch;
    c->train.grad_accum = accum;
}

static void try_options(search_ctx *x, ct_config *c) {
    static const char *const recompute[2] = {"none", "all"};
    int D = c->parallel.data;
    for (int z = 0; z <= 3; z++) {
        if (D == 1 && z > 0) continue;
        c->parallel.zero = z;
        for (int rc = 0; rc < 2; rc++) {
            snprintf(c->memory.recompute, sizeof c->memory.recompute, "%s", recompute[rc]);
            try_batches(x, c);
        }
    }
}

int ct_plan_search(const ct_config *cfg, int world, const ct_hardware *hw, double memory_limit,
                   ct_plan_choice *best, int max, char *rejected, size_t cap) {
    ct_hardware local = *hw;
    if (memory_limit > 0)
        for (int g = 0; g < local.n_groups; g++) local.groups[g].memory_bytes = memory_limit;
    if (!ct_plan_one_cpu_node(&local) && ct_hw_devices(&local) < world)
        return ct_fail(CT_EINVAL, "the hardware (%s) has %d devices but the world is %d ranks", hw->name,
                       ct_hw_devices(hw), world),
               -1;
    const ct_hw_group *g0 = &local.groups[0];
    int on_node = ct_plan_one_cpu_node(&local) ? world : (world < g0->per_node ? world : g0->per_node);
    double budget = g0->cores > 0 ? (g0->memory_bytes / on_node - g0->leader_rss) : 0.0; /* 0: each device's */
    ct_config *c = ct_alloc(sizeof *c, "the search's config");
    ct_plan_choice *cand = ct_alloc(sizeof *cand, "the search's candidate");
    search_ctx x = {.hw = &local, .world = world, .max = max, .budget = budget, .best = best, .cand = cand};
    int n_found = 0;
    if (!c || !cand) {
        ct_free(c);
        ct_free(cand);
        return -1;
    }
    for (int P = 1; P <= world && P <= cfg->model.n_layer && P <= CT_MAX_STAGES; P++) {
        if (world % P) continue;
        for (int T = 1; T <= world / P; T++) {
            if ((world / P) % T) continue;
            int D = world / P / T;
            for (int E = 1; E <= D; E++) {
                if (D % E || (E > 1 && (cfg->model.moe_every == 0 || cfg->model.moe.n_experts % E))) continue;
                *c = *cfg;
                c->parallel.pipeline = P, c->parallel.tensor = T, c->parallel.data = D, c->parallel.expert = E;
                snprintf(c->offload.policy, sizeof c->offload.policy, "auto");
                balance_stages(c, world, P, &local, c->parallel.stages, sizeof c->parallel.stages);
                for (int tier = 0; tier < 2; tier++) { /* offload to host memory, or to disk */
                    snprintf(c->offload.tier, sizeof c->offload.tier, "%s", tier ? "disk" : "host");
                    x.found = n_found;
                    try_options(&x, c);
                    n_found = x.found;
                }
            }
        }
    }
    size_t used = 0;
    rejected[0] = 0;
    for (int i = 0; i < x.r.n && used < cap; i++)
        used += (size_t)snprintf(rejected + used, cap - used, "%s%d: %s", i ? "; " : "", x.r.count[i],
                                 x.r.text[i]);
    if (x.r.least > 0 && used < cap)
        snprintf(rejected + used, cap - used,
                 "; the least device memory any layout needed: %.1f GiB (mostly %s)",
                 x.r.least / (1024.0 * 1024 * 1024), x.r.least_kind);
    ct_free(c);
    ct_free(cand);
    return n_found;
}
