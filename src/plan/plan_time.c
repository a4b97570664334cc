/* plan_time.c: the planner's time model. Per stage and micro-batch: every GEMM the blocks,
 * attention and the head run (forward once, backward twice the work and attention's scores
 * once more, recomputed blocks one more forward) at the rate the hardware gives for its
 * shape, the memory-bound work (norms, GELU, residuals, loss; attention's softmax works on
 * tiles in cache) at the memory bandwidth, and the collectives each axis runs as rings over
 * the link between the ranks of that axis (in a node or across nodes). What the engine
 * overlaps: gradient reductions behind backward, ZeRO 3 gathers and offload prefetch one
 * unit ahead of the compute; tensor all-reduces, expert all-to-alls and the parameter gather
 * after the optimizer step are waited for. The step is the slowest stage's micro-batches
 * through the schedule: (micro + stages - 1) of them (the bubble). */
#include "plan/plan_internal.h"
#include "core/core.h"
#include "model/model.h"
#include <math.h>
#include <string.h>

/* What a stage's ranks run on: its hardware group, and the share of a node's cores and
 * memory bandwidth one rank gets where ranks share a CPU node. */
typedef struct device {
    const ct_hw_group *g;
    double share;                 /* of the measured rates this rank sees */
    int serial;                   /* a CPU node: messages, gathers and copies take the cores compute runs on,
                   * so nothing overlaps */
    double disk_read, disk_write; /* the rank's disk rates: the page cache's (memory) when the
                                   * node's disk-held state fits in half its memory */
} device;

static device stage_device(const ct_plan *p, const ct_config *c, const ct_hardware *hw, int s) {
    device d = {ct_plan_stage_slowest(p, hw, s), 1.0, 0, 0.0, 0.0};
    if (d.g->cores > 0) { /* the rates were measured on all cores; a rank gets its threads' share */
        int on_node = p->world;
        double threads = c->runtime.threads > 0 ? c->runtime.threads : (double)d.g->cores / on_node;
        double cores = (double)d.g->cores / on_node;
        d.share = (threads < cores ? threads : cores) / d.g->cores;
        d.serial = 1;
    }
    const ct_plan_stage *st = &p->stage[s];
    double disk = 0.0;
    for (int k = 0; k < CT_PK_COUNT; k++) disk += st->bytes[k][CT_PT_DISK];
    int on_node = d.g->cores > 0 ? p->world : (p->world < d.g->per_node ? p->world : d.g->per_node);
    int cached = disk * on_node <= d.g->host_bytes / 2;
    d.disk_read = (cached ? d.g->memory_bw : d.g->disk_read_bw) * d.share;
    d.disk_write = (cached ? d.g->memory_bw : d.g->disk_write_bw) * d.share;
    return d;
}

/* Seconds of one [m, k] x [k, n] product (2mnk FLOPs) on d; adds the FLOPs to *flops. */
static double gemm_s(device d, double m, double n, double k, double *flops) {
    if (m < 1 || n < 1 || k < 1) return 0.0;
    double f = 2.0 * m * n * k;
    *flops += f;
    return f / (ct_hw_gemm_flops(d.g, (int)fmin(m, 1 << 30), (int)fmin(n, 1 << 30), (int)fmin(k, 1 << 30)) *
                d.share);
}

/* One ring collective over g ranks moving `bytes` per rank in `steps` latency-bound steps. */
static double ring_s(double bytes, double steps, double bw, double latency) {
    return bytes / bw + steps * latency;
}

/* The link between the ranks of an axis whose members are `stride` apart, g of them: in a
 * node when they all are. */
static void axis_link(const device *d, int stride, int g, double *bw, double *lat) {
    int intra = g <= 1 || d->g->cores > 0 || (long long)stride * g <= d->g->per_node;
    *bw = intra ? d->g->intra_bw : d->g->inter_bw;
    *lat = intra ? d->g->intra_latency : d->g->inter_latency;
}

/* Floats of this stage's table split over the expert ranks. */
static double expert_floats(const ct_model *m) {
    double n = 0.0;
    for (size_t i = 0; i < ct_model_num_tensors(m); i++)
        if (ct_model_tensor(m, i)->split_expert) n += (double)ct_model_tensor(m, i)->numel;
    return n;
}

/* Experts each token goes to. */
static double route_k(const ct_moe_config *m) {
    return m->routing == CT_MOE_TOP1 ? 1.0 : m->routing == CT_MOE_TOP2 ? 2.0 : (double)m->top_k;
}

/* One block's forward on a micro-batch of N = Bm * T tokens: GEMM seconds, FLOPs and the
 * bytes of memory-bound work. *rescore: the seconds of the attention scores that backward
 * computes again (the fused attention keeps no probabilities), beyond twice the forward. */
static double block_forward(const ct_config *c, const ct_plan *p, device d, int moe, double Bm, double *flops,
                            double *bytes, double *rescore) {
    double T = p->seq_len, N = Bm * T, C = c->model.d_model, Tp = p->layout.tensor;
    double H = c->model.n_head / Tp, hs = C / c->model.n_head, s = 0.0, uncounted = 0.0;
    s += gemm_s(d, N, 3 * C / Tp, C, flops);
    s += Bm * H * (gemm_s(d, T, T / 2, hs, flops) + gemm_s(d, T, hs, T / 2, flops)); /* causal: half */
    *rescore = Bm * H * gemm_s(d, T, T / 2, hs, &uncounted); /* hardware work, not model FLOPs */
    s += gemm_s(d, N, C, C / Tp, flops);
    if (!moe) {
        s += gemm_s(d, N, 4 * C / Tp, C, flops) + gemm_s(d, N, C, 4 * C / Tp, flops);
    } else {
        double E = c->model.moe.n_experts, Ep = p->layout.expert, F = c->model.moe.d_hidden;
        double k = route_k(&c->model.moe);
        double rows = Ep * N * k / E; /* balanced: each local expert's rows from the group */
        s += gemm_s(d, N, E, C, flops);
        double one = 0.0; /* every local expert runs the same two products */
        s += (E / Ep) * (gemm_s(d, rows, F, C, &one) + gemm_s(d, rows, C, F, &one));
        *flops += (E / Ep) * one;
        *bytes += N * k * 4.0 * C * sizeof(float); /* gathering rows to and from the experts */
    }
    *bytes += N * 18.0 * C * sizeof(float); /* attention's score tiles stay in cache: nothing in T */
    return s;
}

/* Sends per step of each axis and the seconds they leave exposed; fills st. */
static void stage_comm(ct_plan *p, const ct_config *c, const ct_model *m, int s, device d, double pass_s,
                       double bwd_s) {
    ct_plan_stage *st = &p->stage[s];
    double F = sizeof(float), N = (double)(p->rows / p->micro) * p->seq_len, C = c->model.d_model;
    double passes = (double)p->micro * p->accum, n = (double)ct_model_num_params(m), bw, lat;
    int blocks = st->end - st->first, D = p->layout.data, Tp = p->layout.tensor, Ep = p->layout.expert;
    /* tensor: two all-reduces of [N, C] per block each way (and per recomputed forward), one
     * at the embedding, two at the head */
    if (Tp > 1) {
        double sums = 4.0 * blocks + 2.0 * st->recomputed + (s == 0) + 2.0 * (s == p->n_stages - 1);
        double each = 2.0 * (Tp - 1) / Tp * N * C * F;
        axis_link(&d, 1, Tp, &bw, &lat);
        st->sent[CT_PA_TENSOR] = sums * each * passes;
        st->exposed_s[CT_PA_TENSOR] = sums * passes * ring_s(each, 2.0 * (Tp - 1), bw, lat);
    }
    /* expert: each MoE layer's dispatch and combine, forward and backward */
    if (Ep > 1 && c->model.moe_every > 0) {
        int moe = 0;
        for (int l = st->first; l < st->end; l++) moe += ct_model_layer_is_moe(&c->model, l);
        double k = route_k(&c->model.moe);
        double each = (Ep - 1.0) / Ep * N * k * C * F;
        axis_link(&d, Tp, Ep, &bw, &lat);
        st->sent[CT_PA_EXPERT] = 4.0 * moe * each * passes;
        st->exposed_s[CT_PA_EXPERT] = 4.0 * moe * passes * ring_s(each, Ep - 1.0, bw, lat);
    }
    /* pipeline: the boundary activations forward and their gradients back */
    if (p->n_stages > 1) {
        double sends = (s < p->n_stages - 1) + (s > 0);
        axis_link(&d, D * Tp, 2, &bw, &lat);
        st->sent[CT_PA_PIPELINE] = sends * N * C * F * passes;
        st->exposed_s[CT_PA_PIPELINE] = sends * passes * ring_s(N * C * F, 1.0, bw, lat);
    }
    if (D <= 1) return;
    /* data: the gradients reduced (behind the last backward), the parameters gathered */
    double ne = expert_floats(m), De = D / (Ep > 1 && c->model.moe_every > 0 ? Ep : 1);
    axis_link(&d, Tp, D, &bw, &lat);
    double fd = (D - 1.0) / D * (n - ne) * F + (De > 1 ? (De - 1.0) / De * ne * F : 0.0);
    double reduce = (p->zero >= 2 ? 1.0 : 2.0) * fd, gather = p->zero == 1 || p->zero == 2 ? fd : 0.0;
    double reduce_s = ring_s(reduce, 2.0 * (D - 1) * (blocks + 2), bw, lat);
    st->sent[CT_PA_DATA] = reduce + gather;
    double hidden = d.serial ? 0.0 : 0.9 * bwd_s;
    st->exposed_s[CT_PA_DATA] = fmax(reduce_s - hidden, reduce_s / (blocks + 2)) +
                                ring_s(gather, D - 1.0, bw, lat);
    if (p->zero == 3) { /* every pass gathers every unit, one ahead of the compute */
        double per_pass = fd, g_s = ring_s(per_pass, (D - 1.0) * (blocks + 2), bw, lat);
        double kept = (double)c->parallel.zero_keep / (blocks + 2);
        st->sent[CT_PA_DATA] += per_pass * passes * (2.0 - kept);
        /* a gathered unit lands on pages given back after its last use: written afresh */
        double faults = per_pass / (d.g->memory_bw * d.share);
        st->gather_s = passes * (2.0 - kept) *
                       (d.serial ? g_s + faults : g_s / (blocks + 2) + fmax(0.0, g_s + faults - pass_s / 2));
    }
}

/* Offloaded weights and gradients: the seconds their transfers leave exposed per step (one
 * block ahead of the compute; on a CPU node all of them). Moments: optim_s. */
static void stage_offload(ct_plan *p, int s, device d, double pass_s) {
    ct_plan_stage *st = &p->stage[s];
    const ct_hw_group *g = d.g;
    double host = st->bytes[CT_PK_PARAMS][CT_PT_HOST], disk = st->bytes[CT_PK_PARAMS][CT_PT_DISK];
    double ghost = st->bytes[CT_PK_GRADS][CT_PT_HOST], gdisk = st->bytes[CT_PK_GRADS][CT_PT_DISK];
    double hbw = g->host_bw * d.share, rbw = d.disk_read, wbw = d.disk_write;
    double move = 2.0 * (host / hbw + disk / rbw) + ghost / hbw + gdisk / wbw + gdisk / rbw;
    double passes = (double)p->micro * p->accum;
    st->offload_s = d.serial ? passes * move
                             : passes * fmax(0.0, move - pass_s) +
                                   (move > 0 ? move / (st->end - st->first + 1) : 0.0);
}

/* The optimizer step's seconds: AdamW reads weights, gradients and moments and writes
 * weights and moments (memory-bound), and moves host and disk moments to it and back. */
static double optim_s(const ct_plan_stage *st, device d) {
    double mc = st->bytes[CT_PK_MOMENTS][CT_PT_COMPUTE], mh = st->bytes[CT_PK_MOMENTS][CT_PT_HOST],
           md = st->bytes[CT_PK_MOMENTS][CT_PT_DISK];
    double owned = (mc + mh + md) / 2.0, hbw = d.g->host_bw * d.share;
    double rbw = d.disk_read, wbw = d.disk_write;
    return owned * 7.0 / (d.g->memory_bw * d.share) + (d.g->cores > 0 ? 0.0 : 2.0 * mh / hbw) + md / rbw +
           md / wbw;
}

void ct_plan_stage_work(ct_plan *p, const ct_config *c, const ct_model *m, int s, const ct_hardware *hw) {
    ct_plan_stage *st = &p->stage[s];
    if (!hw) return;
    device d = stage_device(p, c, hw, s);
    double Bm = (double)(p->rows / p->micro), N = Bm * p->seq_len, C = c->model.d_model;
    double V = (double)c->model.vocab_size / p->layout.tensor, flops = 0.0, bytes = 0.0, fwd = 0.0, rec = 0.0;
    double rescore = 0.0; /* backward's extra GEMM seconds */
    int layers[CT_PLAN_MAX_UNITS];
    if (ct_config_recompute_layers(c, layers) != CT_OK) memset(layers, 0, sizeof layers);
    for (int l = st->first; l < st->end; l++) {
        double f = 0.0, b = 0.0, r = 0.0;
        double t = block_forward(c, p, d, ct_model_layer_is_moe(&c->model, l), Bm, &f, &b, &r);
        fwd += t;
        rescore += r;
        flops += 3.0 * f;
        bytes += 3.0 * b;
        if (layers[l]) rec += t, flops += f, bytes += b;
    }
    if (s == p->n_stages - 1) {
        double f = 0.0, t = gemm_s(d, N, V, C, &f);
        fwd += t;
        flops += 3.0 * f;
        bytes += 4.0 * N * V * sizeof(float);
    }
    if (s == 0) bytes += 3.0 * N * C * sizeof(float);
    double mem_bw = d.g->memory_bw * d.share, passes = (double)p->micro * p->accum;
    st->gemm_s = passes * (3.0 * fwd + rescore + rec);
    st->other_s = passes * bytes / mem_bw;
    st->flops = passes * flops;
    double pass_s = 3.0 * fwd + rescore + rec + bytes / mem_bw, bwd_s = pass_s * 2.0 / 3.0;
    stage_comm(p, c, m, s, d, pass_s, bwd_s);
    stage_offload(p, s, d, pass_s);
    st->optim_s = optim_s(st, d);
    st->busy_s = pass_s + (st->exposed_s[CT_PA_TENSOR] + st->exposed_s[CT_PA_EXPERT] +
                           st->exposed_s[CT_PA_PIPELINE] + st->gather_s + st->offload_s) /
                              passes;
}

void ct_plan_time(ct_plan *p, const ct_config *c, const ct_hardware *hw) {
    double slowest = 0.0, after = 0.0, flops = 0.0, peak = 0.0;
    int per_stage = p->layout.data * p->layout.tensor, P = p->n_stages;
    for (int s = 0; s < P; s++) {
        ct_plan_stage *st = &p->stage[s];
        slowest = fmax(slowest, st->busy_s);
        after = fmax(after, st->optim_s + st->exposed_s[CT_PA_DATA]);
        flops += st->flops * per_stage;
        if (hw)
            for (int r = 0; r < per_stage; r++) peak += ct_plan_group(hw, s * per_stage + r)->matmul_flops;
    }
    double units = (double)p->micro * p->accum;
    p->bubble = P > 1 ? (P - 1.0) / (p->micro + P - 1.0) : 0.0;
    p->step_s = (P > 1 ? (p->micro + P - 1.0) * p->accum : units) * slowest + after;
    p->tokens_per_step = (double)c->train.batch_size * c->train.grad_accum * p->seq_len;
    p->flops_per_step = flops;
    p->tokens_per_s = p->step_s > 0 ? p->tokens_per_step / p->step_s : 0.0;
    p->mfu = p->step_s > 0 && peak > 0 ? flops / p->step_s / peak : 0.0;
}
