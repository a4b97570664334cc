/* bench_moe.c: throughput of the Mixture-of-Experts layer alone (src/model/moe.h), forward +
 * backward (parameter gradients accumulated, dx computed), on random x and dy; and of the
 * dense MLP of the same active FLOPs (C -> k*F -> C, GELU, with biases: ct_matmul_forward /
 * ct_matmul_backward and ct_gelu of src/ops), the comparison a dense model would make.
 * A few warmup calls, then N timed calls; prints the median time per call, tokens/s and
 * GFLOP/s of active FLOPs, plus the median of forward and backward.
 *
 * Active FLOPs per token (multiply-add = 2): forward = router 2CE + k experts x 2 x 2CF;
 * forward + backward = 3 x that. The dense layer: 3 x 2 x 2C(kF), the same without the
 * router. The count is nominal: assignments dropped by the capacity are counted as done
 * (the dropped fraction is printed).
 *
 * Usage: bench_moe [--experts E] [--top-k K] [--d C] [--ffn F] [--capacity CF] [--dropless]
 *                  [--aux A] [--z Z] [--tokens N] [--calls N] [--warmup N] [--layer moe|dense|both]
 *                  [--threads N] [--peak GFLOPS] [--profile] [--no-pin] [--dump FILE]
 *   defaults: 8 experts, top-2 (routing topk: gates renormalised over the chosen k), C 384,
 *   F 1536, capacity factor 1.25, aux 0.01, z 0.001, 4096 tokens per call (batch 16 x 256),
 *   10 timed calls after 3 warmup calls, both layers, all cores pinned, peak 230 GFLOP/s.
 *   --profile  also times each stage of the MoE layer (route, dispatch, gather, experts,
 *              combine and their backward) by calling the stage functions of moe.h in the
 *              order ct_moe_forward / ct_moe_backward do (bench-side timers), median of the
 *              timed calls; then the router sgemms and the experts' GELU alone, on the same
 *              buffers, to split the stages that contain them.
 *   --dump FILE  runs one forward + backward and writes the configuration, inputs, parameters,
 *              outputs and gradients (float32/int32 little endian, see write_dump) for the
 *              agreement check of bench/torch_moe.py --check FILE; no timing.
 * Parameters are GPT-2 style (normal, std 0.02; biases 0); x and dy standard normal.
 * Machine-readable lines:
 *   RESULT impl=cetus layer=moe|dense tokens=N calls=N call_ms=.. tokens_per_s=.. gflops=..
 *          fwd_ms=.. bwd_ms=.. [dropped=..] */
#include "cetus.h"
#include "model/model.h"
#include "core/core.h"
#include "model/moe.h"
#include "ops/ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_util.h"

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_moe: out of memory (%zu floats)\n", n);
        exit(1);
    }
    return p;
}

static void fill_normal(ct_rng *r, float *v, size_t n, float std) {
    for (size_t i = 0; i < n; i++) v[i] = std * ct_rng_normal(r);
}

typedef struct bench_args {
    ct_moe_config moe;
    int C, N, calls, warmup, layer_moe, layer_dense, profile;
    double peak;
} bench_args;

/* ---- the MoE layer ----------------------------------------------------------------------- */

typedef struct moe_bench {
    ct_moe_params p, g;
    ct_moe_acts a;
    ct_moe_scratch s;
    float *params, *grads, *acts, *scratch, *x, *dy, *y, *dx;
} moe_bench;

static void moe_setup(moe_bench *b, const bench_args *ba, ct_rng *r) {
    const ct_moe_config *c = &ba->moe;
    int C = ba->C, N = ba->N, E = c->n_experts, F = c->d_hidden;
    size_t np = ct_moe_params_size(c, C);
    b->params = falloc(np);
    b->grads = falloc(np);
    ct_moe_params_layout(&b->p, b->params, c, C);
    ct_moe_params_layout(&b->g, b->grads, c, C);
    fill_normal(r, b->p.router_w, (size_t)C * E, 0.02f);
    fill_normal(r, b->p.fc_w, (size_t)E * C * F, 0.02f);
    fill_normal(r, b->p.proj_w, (size_t)E * F * C, 0.02f);
    b->acts = falloc(ct_moe_acts_size(c, N, C));
    ct_moe_acts_layout(&b->a, b->acts, c, N, C);
    b->scratch = falloc(ct_moe_scratch_size(c, N, C));
    ct_moe_scratch_layout(&b->s, b->scratch, c, N, C);
    b->x = falloc((size_t)N * C);
    b->dy = falloc((size_t)N * C);
    b->y = falloc((size_t)N * C);
    b->dx = falloc((size_t)N * C);
    fill_normal(r, b->x, (size_t)N * C, 1.0f);
    fill_normal(r, b->dy, (size_t)N * C, 1.0f);
}

static void moe_free(moe_bench *b) {
    free(b->params);
    free(b->grads);
    free(b->acts);
    free(b->scratch);
    free(b->x);
    free(b->dy);
    free(b->y);
    free(b->dx);
}

/* ---- stage profile ----------------------------------------------------------------------- */

enum {
    S_ROUTE,
    S_DISPATCH,
    S_GATHER,
    S_EXPERT_FWD,
    S_COMBINE,
    S_COMBINE_BWD,
    S_EXPERT_BWD,
    S_ROUTE_BWD,
    S_SCATTER,
    S_COUNT,
    /* kernels inside the stages, timed again apart on the same buffers (not in the sum) */
    P_ROUTER_GEMM = S_COUNT,
    P_GELU_FWD,
    P_GELU_BWD,
    P_ROUTER_GEMM_BWD,
    S_ALL
};
static const char *S_NAMES[S_ALL] = {"route (router sgemm, softmax, top-k, losses)",
                                     "dispatch (capacity, priority)",
                                     "gather x -> expert rows",
                                     "experts forward (sgemm, gelu)",
                                     "combine (gate-weighted sum)",
                                     "combine backward (dout, dgate)",
                                     "experts backward (sgemm, gelu)",
                                     "route backward (dlogits, router sgemm)",
                                     "scatter-add dxe -> dx",
                                     "router sgemm (in route)",
                                     "gelu forward (in experts forward)",
                                     "gelu backward (in experts backward)",
                                     "router sgemm backward (in route backward)"};

#define TIMED(k, stmt) \
    do { \
        double t0_ = ct_now(); \
        stmt; \
        t[k] = ct_now() - t0_; \
    } while (0)

/* The stages of ct_moe_forward and ct_moe_backward, in their order, each timed. */
static void moe_staged_call(moe_bench *b, const bench_args *ba, double *t) {
    const ct_moe_config *c = &ba->moe;
    int C = ba->C, N = ba->N, F = c->d_hidden, E = c->n_experts;
    ct_moe_acts *a = &b->a;
    ct_moe_scratch *s = &b->s;
    TIMED(S_ROUTE, ct_moe_route(c, &b->p, a, b->x, N, C, 0, 1));
    TIMED(S_DISPATCH, ct_moe_dispatch(c, a, N));
    TIMED(S_GATHER, ct_moe_gather(a, a->xe, b->x, C));
    double t0 = ct_now();
    for (int e = 0; e < E; e++) {
        size_t r0 = (size_t)a->offset[e];
        ct_moe_expert_forward(&b->p, e, a->xe + r0 * C, a->h + r0 * F, a->act + r0 * F, a->out + r0 * C,
                              a->count[e], C, F);
    }
    t[S_EXPERT_FWD] = ct_now() - t0;
    TIMED(S_COMBINE, ct_moe_combine(a, b->y, C));
    TIMED(S_COMBINE_BWD, ct_moe_combine_backward(a, s->dout, s->dgate, b->dy, C));
    t0 = ct_now();
    for (int e = 0; e < E; e++) {
        size_t r0 = (size_t)a->offset[e];
        ct_moe_expert_backward(&b->p, &b->g, e, a->xe + r0 * C, a->h + r0 * F, a->act + r0 * F,
                               s->dout + r0 * C, s->dh + r0 * F, a->count[e], C, F);
    }
    t[S_EXPERT_BWD] = ct_now() - t0;
    TIMED(S_ROUTE_BWD, ct_moe_route_backward(c, &b->p, &b->g, a, s->dgate, b->x, b->dx, s, N, C, 1.0f));
    TIMED(S_SCATTER, ct_moe_scatter_add(a, b->dx, s->dout, C));
    /* the kernels again, alone (they rewrite what they wrote above, or scratch) */
    size_t RF = (size_t)a->rows * F;
    TIMED(P_ROUTER_GEMM, ct_matmul_forward(a->logits, b->x, b->p.router_w, NULL, N, C, E));
    TIMED(P_GELU_FWD, ct_gelu_forward(a->act, a->h, RF));
    TIMED(P_GELU_BWD, ct_gelu_backward(s->dh, a->h, s->dh, RF));
    TIMED(P_ROUTER_GEMM_BWD,
          ct_matmul_backward(b->dx, b->g.router_w, NULL, s->dlogits, b->x, b->p.router_w, N, C, E));
}

static void moe_profile(moe_bench *b, const bench_args *ba, double call_median) {
    int reps = ba->calls;
    double *per = malloc(sizeof(double) * S_ALL * (size_t)reps), t[S_ALL], med[S_ALL];
    if (!per) exit(1);
    moe_staged_call(b, ba, t); /* warm */
    for (int r = 0; r < reps; r++) {
        moe_staged_call(b, ba, t);
        for (int k = 0; k < S_ALL; k++) per[(size_t)k * reps + r] = t[k];
    }
    const ct_moe_config *c = &ba->moe;
    double C = ba->C, E = c->n_experts, F = c->d_hidden, rows = b->a.rows, N = ba->N;
    double flops[S_ALL] = {0};
    flops[S_ROUTE] = 2.0 * N * C * E;
    flops[S_ROUTE_BWD] = 4.0 * N * C * E;
    flops[S_EXPERT_FWD] = 4.0 * rows * C * F; /* the rows actually computed */
    flops[S_EXPERT_BWD] = 8.0 * rows * C * F;
    flops[P_ROUTER_GEMM] = flops[S_ROUTE];
    flops[P_ROUTER_GEMM_BWD] = flops[S_ROUTE_BWD];
    double total = 0.0;
    for (int k = 0; k < S_ALL; k++) {
        med[k] = median(per + (size_t)k * reps, reps);
        if (k < S_COUNT) total += med[k];
    }
    printf("stage profile (median of %d calls, bench-side timers; %d expert rows computed):\n", reps,
           b->a.rows);
    printf("  %-46s %8s %6s %8s\n", "stage", "ms/call", "share", "GFLOP/s");
    for (int k = 0; k < S_COUNT; k++) {
        printf("  %-46s %8.2f %5.1f%%", S_NAMES[k], 1e3 * med[k], 100.0 * med[k] / total);
        if (flops[k] > 0) printf(" %8.1f", flops[k] / med[k] * 1e-9);
        printf("\n");
    }
    printf("  %-46s %8.2f (the timed call: %.2f ms)\n", "sum", 1e3 * total, 1e3 * call_median);
    printf("kernels inside the stages, timed apart on the same buffers:\n");
    for (int k = S_COUNT; k < S_ALL; k++) {
        printf("  %-46s %8.2f %5.1f%%", S_NAMES[k], 1e3 * med[k], 100.0 * med[k] / total);
        if (flops[k] > 0) printf(" %8.1f", flops[k] / med[k] * 1e-9);
        printf("\n");
    }
    free(per);
}

/* ---- dump for the agreement check --------------------------------------------------------- */

static void put(FILE *f, const void *v, size_t n) {
    if (fwrite(v, 4, n, f) != n) {
        perror("bench_moe: write");
        exit(1);
    }
}

/* Layout: int32 [N, C, E, F, k, dropless, capacity, rows]; float32 [capacity_factor,
 * aux_coef, z_coef]; x [N,C], dy [N,C], router_w [C,E], fc_w [E,C,F], fc_b [E,F],
 * proj_w [E,F,C], proj_b [E,C]; y [N,C], float32 [loss, aux, z]; int32 expert [N,k],
 * row [N,k]; dx [N,C], grad router_w, fc_w, fc_b, proj_w, proj_b. */
static void write_dump(const char *path, moe_bench *b, const bench_args *ba, float loss) {
    const ct_moe_config *c = &ba->moe;
    int C = ba->C, N = ba->N, E = c->n_experts, F = c->d_hidden, k = c->top_k;
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    int32_t hdr[8] = {N, C, E, F, k, c->dropless, b->a.capacity, b->a.rows};
    float fh[3] = {c->capacity_factor, c->aux_coef, c->z_coef};
    put(f, hdr, 8);
    put(f, fh, 3);
    put(f, b->x, (size_t)N * C);
    put(f, b->dy, (size_t)N * C);
    put(f, b->params, ct_moe_params_size(c, C));
    put(f, b->y, (size_t)N * C);
    float l3[3] = {loss, b->a.aux, b->a.z};
    put(f, l3, 3);
    put(f, b->a.expert, (size_t)N * k);
    put(f, b->a.row, (size_t)N * k);
    put(f, b->dx, (size_t)N * C);
    put(f, b->grads, ct_moe_params_size(c, C));
    (void)E;
    (void)F;
    if (fclose(f)) {
        perror(path);
        exit(1);
    }
}

/* ---- timing ------------------------------------------------------------------------------- */

static double report(const char *layer, const bench_args *ba, double *tc, double *tf, double *tb,
                     double flops_tok, const char *extra) {
    double call = median(tc, ba->calls), fwd = median(tf, ba->calls), bwd = median(tb, ba->calls);
    double tps = ba->N / call;
    printf("median of %d calls (%s): %.2f ms/call (forward %.2f, backward %.2f), %.0f tokens/s, "
           "%.1f GFLOP/s, %.1f%% of peak\n",
           ba->calls, layer, 1e3 * call, 1e3 * fwd, 1e3 * bwd, tps, flops_tok * tps * 1e-9,
           100.0 * flops_tok * tps * 1e-9 / ba->peak);
    printf("RESULT impl=cetus layer=%s tokens=%d calls=%d call_ms=%.3f tokens_per_s=%.1f gflops=%.2f "
           "fwd_ms=%.3f bwd_ms=%.3f%s\n",
           layer, ba->N, ba->calls, 1e3 * call, tps, flops_tok * tps * 1e-9, 1e3 * fwd, 1e3 * bwd, extra);
    fflush(stdout);
    return call;
}

static double run_moe(const bench_args *ba, const char *dump) {
    const ct_moe_config *c = &ba->moe;
    int C = ba->C, N = ba->N, E = c->n_experts, F = c->d_hidden, k = c->top_k;
    ct_rng r;
    ct_rng_seed(&r, 1337);
    moe_bench b;
    moe_setup(&b, ba, &r);
    double flops_tok = 3.0 * (2.0 * C * E + k * 4.0 * C * F);
    printf("moe: %d experts, top-%d (gates renormalised), d %d, ffn %d, %s, aux %g, z %g; "
           "%d tokens/call; %.2fM parameters; %.4f GFLOP/token (fwd+bwd, active)\n",
           E, k, C, F, c->dropless ? "dropless" : "capacity factor", c->aux_coef, c->z_coef, N,
           (double)ct_moe_params_size(c, C) / 1e6, flops_tok * 1e-9);
    if (!c->dropless)
        printf("moe: capacity factor %g: %d rows per expert\n", c->capacity_factor, ct_moe_capacity(c, N));
    if (dump) {
        ct_moe_stats st;
        float loss = ct_moe_forward(c, &b.p, &b.a, b.x, b.y, N, C, 0, 1, &st);
        ct_moe_backward(c, &b.p, &b.g, &b.a, b.x, b.dy, b.dx, &b.s, N, C, 1.0f);
        write_dump(dump, &b, ba, loss);
        printf("dump %s: loss %.6f (aux %.6f, z %.6f), dropped %.4f, capacity %d, rows %d\n", dump, loss,
               st.aux, st.z, st.dropped, st.capacity, b.a.rows);
        moe_free(&b);
        return 0.0;
    }
    int n = ba->calls;
    double *tc = malloc(sizeof(double) * 3 * (size_t)n), dropped_sum = 0.0;
    if (!tc) exit(1);
    double *tf = tc + n, *tb = tf + n;
    for (int s = 0; s < ba->warmup + n; s++) {
        ct_moe_stats st;
        double t0 = ct_now();
        float loss = ct_moe_forward(c, &b.p, &b.a, b.x, b.y, N, C, 0, 1, &st);
        double t1 = ct_now();
        ct_moe_backward(c, &b.p, &b.g, &b.a, b.x, b.dy, b.dx, &b.s, N, C, 1.0f);
        double t2 = ct_now();
        int warm = s < ba->warmup;
        printf("%s moe call %2d: %8.2f ms (forward %.2f, backward %.2f)  loss %.5f  dropped %.4f\n",
               warm ? "warmup" : "timed ", warm ? s + 1 : s - ba->warmup + 1, 1e3 * (t2 - t0), 1e3 * (t1 - t0),
               1e3 * (t2 - t1), loss, st.dropped);
        if (!warm) {
            tc[s - ba->warmup] = t2 - t0;
            tf[s - ba->warmup] = t1 - t0;
            tb[s - ba->warmup] = t2 - t1;
            dropped_sum += st.dropped;
        }
    }
    char extra[64];
    snprintf(extra, sizeof extra, " dropped=%.4f", dropped_sum / n);
    double call = report("moe", ba, tc, tf, tb, flops_tok, extra);
    if (ba->profile) moe_profile(&b, ba, call);
    free(tc);
    moe_free(&b);
    return call;
}

/* ---- the dense MLP of the same active FLOPs ------------------------------------------------ */

static void run_dense(const bench_args *ba) {
    int C = ba->C, N = ba->N, H = ba->moe.top_k * ba->moe.d_hidden;
    ct_rng r;
    ct_rng_seed(&r, 7331);
    size_t CH = (size_t)C * H, NC = (size_t)N * C, NH = (size_t)N * H;
    float *w1 = falloc(CH), *b1 = falloc(H), *w2 = falloc(CH), *b2 = falloc(C);
    float *dw1 = falloc(CH), *db1 = falloc(H), *dw2 = falloc(CH), *db2 = falloc(C);
    float *x = falloc(NC), *dy = falloc(NC), *y = falloc(NC), *dx = falloc(NC);
    float *h = falloc(NH), *act = falloc(NH), *dh = falloc(NH);
    fill_normal(&r, w1, CH, 0.02f);
    fill_normal(&r, w2, CH, 0.02f);
    fill_normal(&r, x, NC, 1.0f);
    fill_normal(&r, dy, NC, 1.0f);
    double flops_tok = 3.0 * 4.0 * C * (double)H;
    printf("dense: d %d, hidden %d (= top_k x ffn), gelu, biases; %d tokens/call; "
           "%.4f GFLOP/token (fwd+bwd)\n",
           C, H, N, flops_tok * 1e-9);
    int n = ba->calls;
    double *tc = malloc(sizeof(double) * 3 * (size_t)n);
    if (!tc) exit(1);
    double *tf = tc + n, *tb = tf + n;
    for (int s = 0; s < ba->warmup + n; s++) {
        double t0 = ct_now();
        ct_matmul_forward(h, x, w1, b1, N, C, H);
        ct_gelu_forward(act, h, NH);
        ct_matmul_forward(y, act, w2, b2, N, H, C);
        double t1 = ct_now();
        ct_matmul_backward(dh, dw2, db2, dy, act, w2, N, H, C);
        ct_gelu_backward(dh, h, dh, NH);
        ct_matmul_backward(dx, dw1, db1, dh, x, w1, N, C, H);
        double t2 = ct_now();
        int warm = s < ba->warmup;
        printf("%s dense call %2d: %8.2f ms (forward %.2f, backward %.2f)\n", warm ? "warmup" : "timed ",
               warm ? s + 1 : s - ba->warmup + 1, 1e3 * (t2 - t0), 1e3 * (t1 - t0), 1e3 * (t2 - t1));
        if (!warm) {
            tc[s - ba->warmup] = t2 - t0;
            tf[s - ba->warmup] = t1 - t0;
            tb[s - ba->warmup] = t2 - t1;
        }
    }
    report("dense", ba, tc, tf, tb, flops_tok, "");
    free(tc);
    free(w1);
    free(b1);
    free(w2);
    free(b2);
    free(dw1);
    free(db1);
    free(dw2);
    free(db2);
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(h);
    free(act);
    free(dh);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_moe [--experts E] [--top-k K] [--d C] [--ffn F] [--capacity CF] [--dropless]\n"
            "                 [--aux A] [--z Z] [--tokens N] [--calls N] [--warmup N]\n"
            "                 [--layer moe|dense|both] [--threads N] [--peak GFLOPS] [--profile]\n"
            "                 [--no-pin] [--dump FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    bench_args ba = {.moe = {.n_experts = 8,
                             .top_k = 2,
                             .d_hidden = 1536,
                             .routing = CT_MOE_TOPK,
                             .capacity_factor = 1.25f,
                             .dropless = 0,
                             .aux_coef = 0.01f,
                             .z_coef = 0.001f,
                             .router_noise = 0.0f},
                     .C = 384,
                     .N = 4096,
                     .calls = 10,
                     .warmup = 3,
                     .layer_moe = 1,
                     .layer_dense = 1,
                     .profile = 0,
                     .peak = 230.0};
    int threads = 0, pin = 1;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile")) {
            ba.profile = 1;
            continue;
        }
        if (!strcmp(a, "--no-pin")) {
            pin = 0;
            continue;
        }
        if (!strcmp(a, "--dropless")) {
            ba.moe.dropless = 1;
            continue;
        }
        if (!v) usage();
        if (!strcmp(a, "--experts")) ba.moe.n_experts = atoi(v);
        else if (!strcmp(a, "--top-k"))
            ba.moe.top_k = atoi(v);
        else if (!strcmp(a, "--d"))
            ba.C = atoi(v);
        else if (!strcmp(a, "--ffn"))
            ba.moe.d_hidden = atoi(v);
        else if (!strcmp(a, "--capacity"))
            ba.moe.capacity_factor = (float)atof(v);
        else if (!strcmp(a, "--aux"))
            ba.moe.aux_coef = (float)atof(v);
        else if (!strcmp(a, "--z"))
            ba.moe.z_coef = (float)atof(v);
        else if (!strcmp(a, "--tokens"))
            ba.N = atoi(v);
        else if (!strcmp(a, "--calls"))
            ba.calls = atoi(v);
        else if (!strcmp(a, "--warmup"))
            ba.warmup = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--peak"))
            ba.peak = atof(v);
        else if (!strcmp(a, "--dump"))
            dump = v;
        else if (!strcmp(a, "--layer")) {
            ba.layer_moe = !strcmp(v, "moe") || !strcmp(v, "both");
            ba.layer_dense = !strcmp(v, "dense") || !strcmp(v, "both");
            if (!ba.layer_moe && !ba.layer_dense) usage();
        } else
            usage();
        i++;
    }
    if (ba.N < 1 || ba.C < 1 || ba.calls < 1 || ba.warmup < 0 || ba.peak <= 0) usage();
    if (ct_moe_config_check(&ba.moe, ba.C) != CT_OK) {
        fprintf(stderr, "bench_moe: %s\n", ct_last_error());
        return 2;
    }
    ct_runtime_init(threads, pin);
    printf("bench_moe: %d threads%s; peak %.0f GFLOP/s\n", ct_runtime_threads(), pin ? " pinned" : "", ba.peak);
    if (dump) {
        run_moe(&ba, dump);
        return 0;
    }
    if (ba.layer_moe) run_moe(&ba, NULL);
    if (ba.layer_dense) run_dense(&ba);
    return 0;
}
