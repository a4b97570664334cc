/* plan.c: one layout's plan: per pipeline stage, the bytes each kind of state takes in each
 * tier (from the table the engine builds for that stage's rank, ct_model_create_layout, and
 * the same placement and ZeRO 3 residency rules the trainer applies), the FLOPs, the bytes
 * each axis sends and the predicted seconds per step (plan_time.c). Ranks are laid out
 * pipeline x data x tensor, tensor innermost, as parallel/layout.c lays them out. */
#include "plan/plan.h"
#include "plan/plan_internal.h"
#include "core/core.h"
#include "model/model.h"
#include "model/model_comm.h"
#include "offload/policy.h"
#include "parallel/comm.h"
#include "parallel/zero3.h"
#include "train/optim.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[CT_PK_COUNT] = {"params", "grads", "moments", "activations",
                                                    "comm",   "slots", "staging", "init"};
static const char *const tier_names[CT_PT_COUNT] = {"compute", "host", "disk"};

const char *ct_plan_kind_name(ct_plan_kind k) { return k < CT_PK_COUNT ? kind_names[k] : "?"; }
const char *ct_plan_tier_name(ct_plan_tier t) { return t < CT_PT_COUNT ? tier_names[t] : "?"; }

/* The layout, batch and micro-batch checks the trainer makes, before any model. */
static ct_status plan_layout(ct_plan *p, const ct_config *c, int world) {
    ct_layout want = {c->parallel.data, c->parallel.tensor, c->parallel.pipeline, c->parallel.expert};
    CT_TRY(ct_layout_resolve(&want, world, 1, &p->layout));
    CT_TRY(ct_model_check_tensor_split(&c->model, p->layout.tensor));
    int D = p->layout.data;
    if (c->train.batch_size % D)
        return ct_fail(CT_EINVAL,
                       "train.batch_size = %d is not divisible by the %d data-parallel ranks "
                       "(parallel.data): each rank takes an equal share of every micro-batch",
                       c->train.batch_size, D);
    p->rows = c->train.batch_size / D;
    p->micro = p->layout.pipeline > 1 ? ct_config_micro_batches(c, p->rows) : 1;
    if (p->rows % p->micro)
        return ct_fail(CT_EINVAL,
                       "parallel.micro_batches = %d does not divide the %d rows each data rank takes", p->micro,
                       p->rows);
    if (c->parallel.zero == 2 && p->layout.expert > 1 && c->model.moe_every > 0)
        return ct_fail(CT_EINVAL,
                       "parallel.zero = 2 with parallel.expert = %d: not supported (use zero 1 or 3)",
                       p->layout.expert);
    p->world = world;
    p->zero = p->layout.data > 1 ? c->parallel.zero : 0;
    p->accum = c->train.grad_accum;
    p->seq_len = ct_config_train_seq_len(c);
    p->n_stages = p->layout.pipeline;
    return ct_config_stage_blocks(c, p->stage_blocks);
}

/* The table rank (stage s, tensor and expert coordinate 0) holds, with recomputation set. */
static ct_status stage_model(const ct_plan *p, const ct_config *c, int s, ct_model **out) {
    ct_model_comm lay = {.tp_rank = 0,
                         .tp_ranks = p->layout.tensor,
                         .ep_rank = 0,
                         .ep_ranks = p->layout.expert,
                         .stage = s,
                         .stages = p->layout.pipeline};
    CT_TRY(ct_model_create_layout(out, &c->model, &lay, p->layout.pipeline > 1 ? p->stage_blocks : NULL));
    int *layers = ct_alloc((size_t)c->model.n_layer * sizeof *layers, "the recomputation mask");
    ct_status st = layers ? ct_config_recompute_layers(c, layers) : CT_ENOMEM;
    if (st == CT_OK) st = ct_model_set_recompute(*out, layers);
    ct_free(layers);
    if (st != CT_OK) {
        ct_model_free(*out);
        *out = NULL;
    }
    return st;
}

/* The ranks the moments and ZeRO slices are spread over: the data ranks, or with experts
 * spread the ranks holding the same experts. */
static int shard_ranks(const ct_plan *p, const ct_config *c) {
    if (p->layout.expert > 1 && c->model.moe_every > 0) return p->layout.data / p->layout.expert;
    return p->layout.data;
}

/* Activation bytes on the compute tier in a step, and the trainer's margin for buffers
 * beside them: the micro-batches in flight on this stage each hold their own. */
static double acts_bytes(ct_plan *p, const ct_config *c, const ct_model *m, int s, const int *layers) {
    int P = p->layout.pipeline, slots = 1, B = p->rows / p->micro;
    if (P > 1) slots = !strcmp(c->parallel.schedule, "gpipe") || P - s > p->micro ? p->micro : P - s;
    ct_plan_stage *st = &p->stage[s];
    double one = (double)ct_model_acts_bytes_for(m, B, p->seq_len);
    st->kept = st->recomputed = 0;
    st->kept_total = st->kept_max = st->shared = 0.0;
    for (int l = st->first; l < st->end; l++) {
        double b = (double)ct_model_block_acts_bytes(m, l, B, p->seq_len);
        if (layers[l]) st->recomputed++, st->shared = b > st->shared ? b : st->shared;
        else
            st->kept++, st->kept_total += b, st->kept_max = b > st->kept_max ? b : st->kept_max;
    }
    st->acts_rest = one - st->kept_total - st->shared;
    st->in_flight = slots;
    return one * slots;
}

/* Floats of m's state placed at each tier by a placement (units [n_layer + 2]); the largest
 * offloaded unit into *most. */
static void placed_floats(const ct_model *m, const ct_place *units, double *tier, size_t *most) {
    int L = ct_model_get_config(m)->n_layer;
    ct_place_range ranges[CT_PLAN_MAX_UNITS];
    int n = L + 2 <= CT_PLAN_MAX_UNITS ? ct_offload_ranges(m, units, ranges) : 0;
    double off[CT_PT_COUNT] = {0};
    *most = 0;
    for (int i = 0; i < n; i++) {
        off[ranges[i].place == CT_PLACE_DISK ? CT_PT_DISK : CT_PT_HOST] += (double)ranges[i].n;
        if (ranges[i].n > *most) *most = ranges[i].n;
    }
    tier[CT_PT_COMPUTE] = (double)ct_model_num_params(m) - off[CT_PT_HOST] - off[CT_PT_DISK];
    tier[CT_PT_HOST] = off[CT_PT_HOST];
    tier[CT_PT_DISK] = off[CT_PT_DISK];
}

/* Where the stage's weights, gradients and moments go: offload.* as given, or the
 * automatic policy at the compute budget (or the device's memory when searching). */
static ct_status placement(const ct_plan *p, const ct_config *c, const ct_model *m, double fixed,
                           double sharded, double budget, ct_place *units) {
    int L = c->model.n_layer;
    ct_place *params = units, *grads = units + L + 2, *opt = grads + L + 2;
    if (strcmp(c->offload.policy, "auto")) {
        CT_TRY(ct_offload_parse(c->offload.params, "offload.params", L, 1, params));
        CT_TRY(ct_offload_parse(c->offload.grads, "offload.grads", L, 1, grads));
        return ct_offload_parse(c->offload.optimizer, "offload.optimizer", L, 0, opt);
    }
    ct_place tier = !strcmp(c->offload.tier, "disk") ? CT_PLACE_DISK : CT_PLACE_HOST;
    double share = p->zero ? 1.0 / shard_ranks(p, c) : 1.0;
    size_t predicted, b = budget > 0 && budget < 1e19 ? (size_t)budget : SIZE_MAX;
    CT_TRY(ct_offload_auto(m, b, (size_t)fixed, (size_t)sharded, share, tier, params, grads, opt, &predicted));
    if (p->zero == 2)
        for (int u = 0; u < L + 2; u++) grads[u] = CT_PLACE_COMPUTE;
    return CT_OK;
}

/* Pipeline boundary buffers (four of a micro-batch's [B, T, C]), the tied embedding's sum
 * piece, and the trainer's margin. */
static double comm_bytes(const ct_plan *p, const ct_config *c) {
    double margin = 4.0 * (1 << 20);
    if (p->layout.pipeline == 1) return margin;
    double boundary = (double)(p->rows / p->micro) * p->seq_len * c->model.d_model;
    double tied = (double)c->model.vocab_size / p->layout.tensor * c->model.d_model;
    return margin + 4.0 * boundary * sizeof(float) + (tied < (1 << 20) ? tied : (1 << 20)) * sizeof(float);
}

/* The moments' placement over the stage's flat buffer as runs of one tier (ZeRO 1 and 2
 * shard the buffer contiguously, so each rank's share of each tier follows from them). */
static void moment_runs(ct_plan_stage *st, const ct_model *m, const ct_place *units) {
    ct_place_range ranges[CT_PLAN_MAX_UNITS];
    int n = ct_offload_ranges(m, units, ranges), runs = 0;
    double at = 0.0, total = (double)ct_model_num_params(m);
    st->params_n = total;
    for (int i = 0; i <= n && runs >= 0; i++) {
        double lo = i < n ? (double)ranges[i].lo : total;
        unsigned char tier = i < n && ranges[i].place == CT_PLACE_DISK ? CT_PT_DISK : CT_PT_HOST;
        if (lo > at) { /* the compute-tier gap before it */
            if (runs == CT_PLAN_OPT_RUNS) runs = -1;
            else
                st->opt_lo[runs] = at, st->opt_n[runs] = lo - at, st->opt_tier[runs++] = CT_PT_COMPUTE;
        }
        if (i == n || runs < 0) break;
        if (runs == CT_PLAN_OPT_RUNS) runs = -1;
        else
            st->opt_lo[runs] = lo, st->opt_n[runs] = (double)ranges[i].n, st->opt_tier[runs++] = tier;
        at = lo + (double)ranges[i].n;
    }
    st->n_opt = runs;
}

/* Sizes one stage's memory: what the trainer allocates for rank (s, data 0, tensor 0). */
static ct_status stage_memory(ct_plan *p, const ct_config *c, const ct_model *m, int s, double budget) {
    ct_plan_stage *st = &p->stage[s];
    int L = c->model.n_layer, layers[CT_PLAN_MAX_UNITS];
    if (L > CT_PLAN_MAX_UNITS - 2)
        return ct_fail(CT_EINVAL, "model.n_layer = %d: the planner takes at most %d", L, CT_PLAN_MAX_UNITS - 2);
    CT_TRY(ct_config_recompute_layers(c, layers));
    double F = sizeof(float), n = (double)ct_model_num_params(m), fixed = acts_bytes(p, c, m, s, layers);
    double comm = comm_bytes(p, c), sharded = 0.0;
    size_t zp = 0, zg = 0;
    int D = p->layout.data, De = shard_ranks(p, c);
    p->shard_ranks = De;
    if (p->zero >= 2) ct_zero3_resident(m, D, De, c->parallel.zero_keep, p->accum, &zp, &zg);
    if (p->zero == 3) sharded = ((double)zp + (double)zg) * F;
    ct_place units[3 * CT_PLAN_MAX_UNITS];
    CT_TRY(placement(p, c, m, fixed + comm, sharded, budget, units));
    double pt[CT_PT_COUNT], gt[CT_PT_COUNT], ot[CT_PT_COUNT];
    size_t pmost, gmost, omost;
    placed_floats(m, units, pt, &pmost);
    placed_floats(m, units + L + 2, gt, &gmost);
    placed_floats(m, units + 2 * (L + 2), ot, &omost);
    moment_runs(st, m, units + 2 * (L + 2));
    double share = p->zero ? 1.0 / De : 1.0;
    memset(st->bytes, 0, sizeof st->bytes);
    for (int t = 0; t < CT_PT_COUNT; t++) {
        st->bytes[CT_PK_PARAMS][t] = pt[t] * F;
        st->bytes[CT_PK_GRADS][t] = gt[t] * F;
        st->bytes[CT_PK_MOMENTS][t] = 2.0 * ot[t] * F * share;
    }
    if (p->zero == 3) { /* slices plus the units gathered at once, on the compute tier */
        st->bytes[CT_PK_PARAMS][CT_PT_COMPUTE] = (double)zp * F;
        st->bytes[CT_PK_GRADS][CT_PT_COMPUTE] = (double)zg * F;
        st->bytes[CT_PK_PARAMS][CT_PT_HOST] = st->bytes[CT_PK_GRADS][CT_PT_HOST] = 0.0;
    }
    st->bytes[CT_PK_ACTS][CT_PT_COMPUTE] = fixed;
    st->bytes[CT_PK_COMM][CT_PT_COMPUTE] = comm;
    st->bytes[CT_PK_SLOTS][CT_PT_COMPUTE] = ((pt[CT_PT_HOST] + pt[CT_PT_DISK] > 0 ? 2.0 * (double)pmost : 0.0) +
                                             (gt[CT_PT_HOST] + gt[CT_PT_DISK] > 0 ? (double)gmost : 0.0)) *
                                            F;
    if (ot[CT_PT_DISK] > 0) /* two staging buffers of a piece of m and of v each */
        st->bytes[CT_PK_STAGING][CT_PT_HOST] = 4.0 * F *
                                               (double)(omost < CT_ADAMW_PIECE ? omost : CT_ADAMW_PIECE);
    double compute = 0.0;
    for (int k = 0; k < CT_PK_COUNT; k++) compute += st->bytes[k][CT_PT_COMPUTE];
    st->compute_peak = compute;
    /* resident: the host tier, and the disk-held weights and gradients, whose file pages the
     * passes map in until the step ends; ZeRO 2 gives the reduced gradients' pages back (the
     * tier still counts them) */
    double resident = compute + st->bytes[CT_PK_PARAMS][CT_PT_HOST] + st->bytes[CT_PK_GRADS][CT_PT_HOST] +
                      st->bytes[CT_PK_MOMENTS][CT_PT_HOST] + st->bytes[CT_PK_STAGING][CT_PT_HOST] +
                      st->bytes[CT_PK_PARAMS][CT_PT_DISK] + st->bytes[CT_PK_GRADS][CT_PT_DISK];
    if (p->zero == 2) resident -= st->bytes[CT_PK_GRADS][CT_PT_COMPUTE] - (double)zg * F;
    /* initialisation draws the stage's whole parameters (and the largest whole tensor) first */
    double largest = 0.0;
    for (size_t i = 0; i < ct_model_num_tensors(m); i++)
        if ((double)ct_model_tensor(m, i)->full_numel > largest)
            largest = (double)ct_model_tensor(m, i)->full_numel;
    double init = (n + largest) * F;
    st->bytes[CT_PK_INIT][CT_PT_HOST] = init;
    st->resident_peak = p->base_rss + (resident > init ? resident : init);
    ct_offload_describe(L, units, units + L + 2, units + 2 * (L + 2), p->offload, sizeof p->offload);
    return CT_OK;
}

ct_status ct_plan_make_at(ct_plan *p, const ct_config *c, int world, const ct_hardware *hw, double budget) {
    memset(p, 0, sizeof *p);
    p->base_rss = hw ? hw->groups[0].base_rss : 0.0;
    p->leader_rss = hw && hw->groups[0].leader_rss > p->base_rss ? hw->groups[0].leader_rss : p->base_rss;
    CT_TRY(plan_layout(p, c, world));
    if (hw && !ct_plan_one_cpu_node(hw) && ct_hw_devices(hw) < world)
        return ct_fail(CT_EINVAL, "the hardware (%s) has %d devices but the world is %d ranks", hw->name,
                       ct_hw_devices(hw), world);
    int layers[CT_PLAN_MAX_UNITS];
    if (c->model.n_layer <= CT_PLAN_MAX_UNITS && ct_config_recompute_layers(c, layers) == CT_OK)
        for (int l = 0; l < c->model.n_layer; l++) p->recomputed += layers[l] != 0;
    size_t cfg_budget = 0;
    CT_TRY(ct_config_compute_budget(c, &cfg_budget));
    if (budget <= 0 && cfg_budget) budget = (double)cfg_budget;

    ct_model *whole;
    CT_TRY(ct_model_table_only(&whole, &c->model));
    p->params_total = (double)ct_model_num_params_full(whole);
    ct_model_free(whole);
    for (int s = 0; s < p->n_stages; s++) {
        ct_model *m;
        CT_TRY(stage_model(p, c, s, &m));
        ct_model_stage_layers(m, &p->stage[s].first, &p->stage[s].end);

        double fit = budget; /* else the automatic policy fits the stage's smallest device */
        if (fit <= 0 && hw && !ct_plan_one_cpu_node(hw)) fit = ct_plan_stage_memory(p, hw, s) - p->base_rss;
        ct_status st = stage_memory(p, c, m, s, fit);
        if (st == CT_OK) ct_plan_stage_work(p, c, m, s, hw);
        ct_model_free(m);
        CT_TRY(st);
    }
    ct_plan_time(p, c, hw);
    return CT_OK;
}

ct_status ct_plan_make(ct_plan *p, const ct_config *c, int world, const ct_hardware *hw) {
    return ct_plan_make_at(p, c, world, hw, 0.0);
}

/* [lo, lo + n) of an even split of total over p parts: part c (as parallel/ splits). */
static void even_part(double total, int parts, int c, double *lo, double *n) {
    double base = floor(total / parts), extra = total - base * parts;
    *n = base + (c < extra);
    *lo = base * c + (c < extra ? c : extra);
}

void ct_plan_rank_peaks(const ct_plan *p, int rank, double *compute, double *resident) {
    const ct_plan_stage *st = &p->stage[ct_plan_stage_of(p, rank)];
    *compute = st->compute_peak;
    *resident = st->resident_peak + (rank == 0 ? p->leader_rss - p->base_rss : 0.0);
    int De = p->shard_ranks;
    if ((p->zero != 1 && p->zero != 2) || st->n_opt <= 0 || De <= 1) return;
    int T = p->layout.tensor, d = (rank % (p->layout.data * T)) / T;
    int coord = p->layout.data == De ? d : d / (p->layout.data / De); /* the expert-data axis */
    double lo, n, mine[CT_PT_COUNT] = {0}, F = sizeof(float);
    even_part(st->params_n, De, coord, &lo, &n);
    for (int i = 0; i < st->n_opt; i++) {
        double a = fmax(lo, st->opt_lo[i]), e = fmin(lo + n, st->opt_lo[i] + st->opt_n[i]);
        if (e > a) mine[st->opt_tier[i]] += 2.0 * (e - a) * F;
    }
    *compute += mine[CT_PT_COMPUTE] - st->bytes[CT_PK_MOMENTS][CT_PT_COMPUTE];
    *resident += mine[CT_PT_COMPUTE] + mine[CT_PT_HOST] - st->bytes[CT_PK_MOMENTS][CT_PT_COMPUTE] -
                 st->bytes[CT_PK_MOMENTS][CT_PT_HOST];
}

ct_plan_kind ct_plan_dominant(const ct_plan_stage *s) {
    ct_plan_kind best = CT_PK_PARAMS;
    for (int k = 0; k < CT_PK_COUNT; k++)
        if (s->bytes[k][CT_PT_COMPUTE] > s->bytes[best][CT_PT_COMPUTE]) best = (ct_plan_kind)k;
    return best;
}
