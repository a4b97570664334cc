/* plan_report.c: a plan against the hardware (does every device and node hold what its
 * ranks need) and the plan written out: one JSON object for programs, a table for people. */
#include "plan/plan_internal.h"
#include "core/core.h"
#include "parallel/comm.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

static const char *const axis_names[CT_PA_COUNT] = {"data", "tensor", "pipeline", "expert"};

/* Host-tier and disk bytes of one rank (its stage's). */
static double rank_host(const ct_plan_stage *s) {
    return s->bytes[CT_PK_PARAMS][CT_PT_HOST] + s->bytes[CT_PK_GRADS][CT_PT_HOST] +
           s->bytes[CT_PK_MOMENTS][CT_PT_HOST];
}
static double rank_disk(const ct_plan_stage *s) {
    return s->bytes[CT_PK_PARAMS][CT_PT_DISK] + s->bytes[CT_PK_GRADS][CT_PT_DISK] +
           s->bytes[CT_PK_MOMENTS][CT_PT_DISK];
}

/* The node of device r: groups fill whole nodes of their per_node devices, in order. */
static int node_of(const ct_hardware *hw, int r, const ct_hw_group **g) {
    int node = 0, first = 0;
    if (ct_plan_one_cpu_node(hw)) {
        *g = &hw->groups[0];
        return 0;
    }
    for (int i = 0; i < hw->n_groups; i++) {
        const ct_hw_group *gr = &hw->groups[i];
        if (r < first + gr->count) {
            *g = gr;
            return node + (r - first) / gr->per_node;
        }
        node += (gr->count + gr->per_node - 1) / gr->per_node;
        first += gr->count;
    }
    *g = &hw->groups[hw->n_groups - 1];
    return node;
}

/* The most any node's ranks hold in host memory (resident, for CPU nodes whose ranks share
 * it: their whole resident peaks) and on disk; the node's group and index into *worst. */
static void node_totals(const ct_plan *p, const ct_hardware *hw, double *host, double *disk, int *worst) {
    int nodes = node_of(hw, p->world - 1, &(const ct_hw_group *){NULL}) + 1;
    double *h = ct_calloc(2 * (size_t)nodes * sizeof *h, "the planner's node totals");
    *host = *disk = 0.0;
    *worst = 0;
    if (!h) return;
    for (int r = 0; r < p->world; r++) {
        const ct_hw_group *g;
        int n = node_of(hw, r, &g);
        const ct_plan_stage *s = &p->stage[ct_plan_stage_of(p, r)];
        double compute, resident;
        ct_plan_rank_peaks(p, r, &compute, &resident);
        h[n] += g->cores > 0 ? resident : rank_host(s) + (r == 0 ? p->leader_rss : p->base_rss);
        h[nodes + n] += rank_disk(s);
    }
    for (int n = 0; n < nodes; n++) {
        if (h[n] > *host) *host = h[n], *worst = n;
        if (h[nodes + n] > *disk) *disk = h[nodes + n];
    }
    ct_free(h);
}

/* "moments 24.1 GiB, params 12.0 GiB, activations 3.2 GiB" for the compute tier. */
static void breakdown(const ct_plan_stage *s, char *buf, size_t cap) {
    size_t used = 0;
    int done[CT_PK_COUNT] = {0};
    buf[0] = 0;
    for (int i = 0; i < 3; i++) {
        int best = -1;
        for (int k = 0; k < CT_PK_COUNT; k++)
            if (!done[k] && s->bytes[k][CT_PT_COMPUTE] > 0 &&
                (best < 0 || s->bytes[k][CT_PT_COMPUTE] > s->bytes[best][CT_PT_COMPUTE]))
                best = k;
        if (best < 0 || used >= cap) break;
        done[best] = 1;
        used += (size_t)snprintf(buf + used, cap - used, "%s%s %.1f GiB", i ? ", " : "",
                                 ct_plan_kind_name((ct_plan_kind)best), s->bytes[best][CT_PT_COMPUTE] / GIB);
    }
}

int ct_plan_fits(const ct_plan *p, const ct_hardware *hw, char *why, size_t cap) {
    double host, disk;
    int worst;
    node_totals(p, hw, &host, &disk, &worst);
    for (int r = 0; r < p->world && !ct_plan_one_cpu_node(hw); r++) { /* CPU ranks share a node: below */
        int s = ct_plan_stage_of(p, r);
        const ct_hw_group *g = ct_plan_group(hw, r);
        double compute, resident;
        ct_plan_rank_peaks(p, r, &compute, &resident);
        if (compute > g->memory_bytes) {
            char parts[256];
            breakdown(&p->stage[s], parts, sizeof parts);
            snprintf(why, cap, "rank %d (stage %d, a %s) needs %.1f GiB of its %.1f GiB device memory (%s)", r,
                     s, g->name, compute / GIB, g->memory_bytes / GIB, parts);
            return 0;
        }
    }
    const ct_hw_group *g;
    node_of(hw, 0, &g);
    double limit = g->cores > 0 ? g->memory_bytes : g->host_bytes;
    if (host > limit) {
        snprintf(why, cap, "node %d's ranks need %.1f GiB of its %.1f GiB %s memory", worst, host / GIB,
                 limit / GIB, g->cores > 0 ? "" : "host");
        return 0;
    }
    if (cap) why[0] = 0;
    return 1;
}

static cJSON *tiers_json(const ct_plan_stage *s) {
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; o && t < CT_PT_COUNT; t++) {
        cJSON *tier = cJSON_AddObjectToObject(o, ct_plan_tier_name((ct_plan_tier)t));
        for (int k = 0; tier && k < CT_PK_COUNT; k++)
            cJSON_AddNumberToObject(tier, ct_plan_kind_name((ct_plan_kind)k), s->bytes[k][t] / MIB);
    }
    return o;
}

static cJSON *stage_json(const ct_plan *p, int s) {
    const ct_plan_stage *st = &p->stage[s];
    cJSON *o = cJSON_CreateObject(), *sent, *secs;
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "stage", s);
    cJSON_AddItemToObject(o, "blocks", cJSON_CreateIntArray((int[]){st->first, st->end}, 2));
    cJSON_AddNumberToObject(o, "compute_peak_mb", st->compute_peak / MIB);
    cJSON_AddNumberToObject(o, "resident_peak_mb", st->resident_peak / MIB);
    cJSON_AddItemToObject(o, "memory_mb", tiers_json(st));
    cJSON *acts = cJSON_AddObjectToObject(o, "activations");
    if (acts) { /* one micro-batch's, by block; in_flight of them are held at once */
        cJSON_AddNumberToObject(acts, "in_flight", st->in_flight);
        cJSON_AddNumberToObject(acts, "kept_blocks", st->kept);
        cJSON_AddNumberToObject(acts, "kept_mb", st->kept_total / MIB);
        cJSON_AddNumberToObject(acts, "largest_kept_block_mb", st->kept_max / MIB);
        cJSON_AddNumberToObject(acts, "recomputed_blocks", st->recomputed);
        cJSON_AddNumberToObject(acts, "recompute_buffer_mb", st->shared / MIB);
        cJSON_AddNumberToObject(acts, "rest_mb", st->acts_rest / MIB);
    }
    cJSON_AddNumberToObject(o, "flops", st->flops);
    if ((sent = cJSON_AddObjectToObject(o, "sent_mb")))
        for (int a = 0; a < CT_PA_COUNT; a++) cJSON_AddNumberToObject(sent, axis_names[a], st->sent[a] / MIB);
    if ((secs = cJSON_AddObjectToObject(o, "seconds"))) {
        cJSON_AddNumberToObject(secs, "gemm", st->gemm_s);
        cJSON_AddNumberToObject(secs, "other", st->other_s);
        cJSON_AddNumberToObject(secs, "optimizer", st->optim_s);
        for (int a = 0; a < CT_PA_COUNT; a++) cJSON_AddNumberToObject(secs, axis_names[a], st->exposed_s[a]);
        cJSON_AddNumberToObject(secs, "zero3_gathers", st->gather_s);
        cJSON_AddNumberToObject(secs, "offload", st->offload_s);
        cJSON_AddNumberToObject(secs, "micro_batch", st->busy_s);
    }
    return o;
}

static void add_summary(cJSON *o, const ct_plan *p) {
    char lay[128];
    cJSON_AddNumberToObject(o, "world", p->world);
    cJSON_AddStringToObject(o, "layout", ct_layout_format(&p->layout, 0, lay, sizeof lay));
    cJSON_AddNumberToObject(o, "data", p->layout.data);
    cJSON_AddNumberToObject(o, "tensor", p->layout.tensor);
    cJSON_AddNumberToObject(o, "pipeline", p->layout.pipeline);
    cJSON_AddNumberToObject(o, "expert", p->layout.expert);
    cJSON_AddNumberToObject(o, "zero", p->zero);
    cJSON_AddNumberToObject(o, "micro_batches", p->micro);
    cJSON_AddNumberToObject(o, "grad_accum", p->accum);
    cJSON_AddNumberToObject(o, "recomputed_blocks", p->recomputed);
    cJSON_AddStringToObject(o, "offload", p->offload);
    cJSON_AddNumberToObject(o, "params", p->params_total);
    cJSON_AddNumberToObject(o, "tokens_per_step", p->tokens_per_step);
    cJSON_AddNumberToObject(o, "flops_per_step", p->flops_per_step);
    cJSON_AddNumberToObject(o, "step_s", p->step_s);
    cJSON_AddNumberToObject(o, "tokens_per_s", p->tokens_per_s);
    cJSON_AddNumberToObject(o, "bubble", p->bubble);
    cJSON_AddNumberToObject(o, "mfu", p->mfu);
    cJSON_AddNumberToObject(o, "base_rss_mb", p->base_rss / MIB);
}

char *ct_plan_json(const ct_plan *p, const ct_hardware *hw) {
    cJSON *o = cJSON_CreateObject(), *stages, *ranks;
    if (!o) return NULL;
    add_summary(o, p);
    if (hw) {
        double host, disk;
        int worst;
        char why[512];
        node_totals(p, hw, &host, &disk, &worst);
        cJSON_AddNumberToObject(o, "host_per_node_mb", host / MIB);
        cJSON_AddNumberToObject(o, "disk_per_node_mb", disk / MIB);
        cJSON_AddBoolToObject(o, "fits", ct_plan_fits(p, hw, why, sizeof why));
        if (why[0]) cJSON_AddStringToObject(o, "why", why);
    }
    if ((stages = cJSON_AddArrayToObject(o, "stages")))
        for (int s = 0; s < p->n_stages; s++) cJSON_AddItemToArray(stages, stage_json(p, s));
    if ((ranks = cJSON_AddArrayToObject(o, "ranks")))
        for (int r = 0; r < p->world; r++) {
            double compute, resident;
            ct_plan_rank_peaks(p, r, &compute, &resident);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "rank", r);
            cJSON_AddNumberToObject(e, "stage", ct_plan_stage_of(p, r));
            cJSON_AddNumberToObject(e, "compute_peak_mb", compute / MIB);
            cJSON_AddNumberToObject(e, "resident_peak_mb", resident / MIB);
            cJSON_AddItemToArray(ranks, e);
        }
    char *text = cJSON_Print(o), *out = text ? ct_strdup(text, "the plan's JSON") : NULL;
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* "1.23 GiB" / "456.7 MiB" / "12.0 KiB" */
static const char *human(double bytes, char *buf, size_t cap) {
    if (bytes >= 1024.0 * GIB) snprintf(buf, cap, "%.2f TiB", bytes / (1024.0 * GIB));
    else if (bytes >= GIB)
        snprintf(buf, cap, "%.2f GiB", bytes / GIB);
    else
        snprintf(buf, cap, "%.1f MiB", bytes / MIB);
    return buf;
}

static void print_stage(const ct_plan *p, int s, FILE *out) {
    const ct_plan_stage *st = &p->stage[s];
    char a[32], b[32], c[32];
    char blocks[48];
    if (st->end - st->first == 1) snprintf(blocks, sizeof blocks, "block %d", st->first);
    else
        snprintf(blocks, sizeof blocks, "blocks %d-%d", st->first, st->end - 1);
    int ranks = p->layout.data * p->layout.tensor;
    fprintf(out, "stage %d (%s, %d rank%s): compute peak %s, resident peak %s\n", s, blocks, ranks,
            ranks == 1 ? "" : "s", human(st->compute_peak, a, sizeof a), human(st->resident_peak, b, sizeof b));
    fprintf(out, "  %-12s %12s %12s %12s\n", "", "compute", "host", "disk");
    for (int k = 0; k < CT_PK_COUNT; k++) {
        if (!st->bytes[k][0] && !st->bytes[k][1] && !st->bytes[k][2]) continue;
        fprintf(out, "  %-12s %12s %12s %12s\n", ct_plan_kind_name((ct_plan_kind)k),
                human(st->bytes[k][0], a, sizeof a), human(st->bytes[k][1], b, sizeof b),
                human(st->bytes[k][2], c, sizeof c));
    }
    fprintf(out,
            "  activations of a micro-batch (%g held at once): %d kept blocks %s (largest %s), %d recomputed "
            "in one %s buffer, inputs, head and scratch %s\n",
            st->in_flight, st->kept, human(st->kept_total, a, sizeof a), human(st->kept_max, b, sizeof b),
            st->recomputed, human(st->shared, c, sizeof c), human(st->acts_rest, (char[32]){0}, 32));
    fprintf(out, "  work per step %.3g FLOP; sent per step: data %s, tensor %s, pipeline %s, expert %s\n",
            st->flops, human(st->sent[0], a, sizeof a), human(st->sent[1], b, sizeof b),
            human(st->sent[2], c, sizeof c), human(st->sent[3], (char[32]){0}, 32));
    fprintf(out,
            "  seconds per step: GEMMs %.3g, other %.3g, optimizer %.3g; exposed: data %.3g, tensor %.3g, "
            "pipeline %.3g, expert %.3g, ZeRO 3 gathers %.3g, offload %.3g\n",
            st->gemm_s, st->other_s, st->optim_s, st->exposed_s[0], st->exposed_s[1], st->exposed_s[2],
            st->exposed_s[3], st->gather_s, st->offload_s);
}

void ct_plan_print(const ct_plan *p, const ct_hardware *hw, FILE *out) {
    char lay[128], a[32], b[32];
    fprintf(
        out,
        "plan: %.4g parameters on %d rank%s, %s, ZeRO %d, %d micro-batch%s x %d accumulated, %d blocks recomputed\n",
        p->params_total, p->world, p->world == 1 ? "" : "s", ct_layout_format(&p->layout, 0, lay, sizeof lay),
        p->zero, p->micro, p->micro == 1 ? "" : "es", p->accum, p->recomputed);
    fprintf(out, "offload: %s\n", p->offload);
    for (int s = 0; s < p->n_stages; s++) print_stage(p, s, out);
    if (!hw) return;
    double host, disk;
    int worst;
    char why[512];
    node_totals(p, hw, &host, &disk, &worst);
    fprintf(out, "per node: host memory %s, disk %s\n", human(host, a, sizeof a), human(disk, b, sizeof b));
    fprintf(out, "step: %.4g s predicted (%.4g tokens/s, %.1f%% of the matmul rate, pipeline bubble %.0f%%)\n",
            p->step_s, p->tokens_per_s, 100.0 * p->mfu, 100.0 * p->bubble);
    if (!ct_plan_fits(p, hw, why, sizeof why)) fprintf(out, "does not fit: %s\n", why);
    else
        fprintf(out, "fits %s\n", hw->name);
}
