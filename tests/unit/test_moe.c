/* test_moe.c: the MoE layer (src/model/moe.h): configuration checks and their messages, the
 * capacity formula, every gradient (router, gates, experts, aux and z losses, input) against
 * central finite differences with the routing held fixed, for every routing and both
 * capacity modes; GShard drop priority on a hand-built routing; dropless; prototype groups;
 * the loss_scale on the aux/z gradients; closed-form losses; router noise; determinism.
 * The independent PyTorch comparison is tests/e2e/t_moe_reference.sh. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "model/model.h"
#include "model/moe.h"
#include <math.h>
#include <string.h>

enum { N = 24, C = 8, E = 6, F = 12 };

typedef struct layer {
    ct_moe_config cfg;
    int n, c;
    float *pbuf, *gbuf, *abuf, *sbuf;
    ct_moe_params p, g;
    ct_moe_acts a;
    ct_moe_scratch s;
} layer;

static void layer_init(layer *L, const ct_moe_config *cfg, int n, int c, uint64_t seed) {
    cr_assert_eq(ct_moe_config_check(cfg, c), CT_OK, "%s", ct_last_error());
    L->cfg = *cfg;
    L->n = n;
    L->c = c;
    size_t np = ct_moe_params_size(cfg, c);
    L->pbuf = ct_alloc(sizeof(float) * np, "params");
    L->gbuf = ct_calloc(sizeof(float) * np, "grads");
    L->abuf = ct_alloc(sizeof(float) * ct_moe_acts_size(cfg, n, c), "acts");
    L->sbuf = ct_alloc(sizeof(float) * ct_moe_scratch_size(cfg, n, c), "scratch");
    cr_assert(L->pbuf && L->gbuf && L->abuf && L->sbuf);
    ct_moe_params_layout(&L->p, L->pbuf, cfg, c);
    ct_moe_params_layout(&L->g, L->gbuf, cfg, c);
    ct_moe_acts_layout(&L->a, L->abuf, cfg, n, c);
    ct_moe_scratch_layout(&L->s, L->sbuf, cfg, n, c);
    ct_rng r;
    ct_rng_seed(&r, seed);
    float scale[CT_MOE_TENSORS] = {0.6f, 0.4f, 0.2f, 0.3f, 0.2f};
    float *t[CT_MOE_TENSORS] = {L->p.router_w, L->p.fc_w, L->p.fc_b, L->p.proj_w, L->p.proj_b};
    float *end[CT_MOE_TENSORS] = {L->p.fc_w, L->p.fc_b, L->p.proj_w, L->p.proj_b, L->pbuf + np};
    for (int i = 0; i < CT_MOE_TENSORS; i++)
        for (float *v = t[i]; v < end[i]; v++) *v = scale[i] * ct_rng_normal(&r);
}

static void layer_free(layer *L) {
    ct_free(L->pbuf);
    ct_free(L->gbuf);
    ct_free(L->abuf);
    ct_free(L->sbuf);
}

static void fill(float *v, size_t n, uint64_t seed) {
    ct_rng r;
    ct_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) v[i] = ct_rng_normal(&r);
}

static ct_moe_config base_cfg(ct_moe_routing routing, int k, int dropless) {
    ct_moe_config c = {.n_experts = E,
                       .top_k = k,
                       .d_hidden = F,
                       .routing = routing,
                       .capacity_factor = 0.75f,
                       .dropless = dropless,
                       .aux_coef = 0.3f,
                       .z_coef = 0.05f};
    return c;
}

/* Two threads, so the parallel loops run split even on one core. */
static void setup(void) { ct_runtime_init(2, 0); }
TestSuite(moe, .init = setup);

/* ---- configuration --------------------------------------------------------------------- */

static void expect_bad(ct_moe_config c, const char *want1, const char *want2) {
    cr_assert_eq(ct_moe_config_check(&c, C), CT_EINVAL, "accepted; wanted '%s'", want1);
    cr_assert(strstr(ct_last_error(), want1), "message '%s' lacks '%s'", ct_last_error(), want1);
    cr_assert(strstr(ct_last_error(), want2), "message '%s' lacks '%s'", ct_last_error(), want2);
}

Test(moe, config_check_names_the_key_and_what_fits) {
    ct_moe_config ok = base_cfg(CT_MOE_TOP2, 2, 0), c;
    cr_assert_eq(ct_moe_config_check(&ok, C), CT_OK, "%s", ct_last_error());
    c = ok;
    c.top_k = 0;
    expect_bad(c, "moe.top_k=0", ">= 1");
    c = ok;
    c.routing = CT_MOE_TOPK;
    c.n_experts = 2;
    c.top_k = 3;
    expect_bad(c, "moe.n_experts=2 is smaller than moe.top_k=3", "moe.n_experts >= 3");
    c = ok;
    c.capacity_factor = 0.0f;
    expect_bad(c, "moe.capacity_factor=0", "moe.dropless");
    c = ok;
    c.capacity_factor = -1.5f;
    expect_bad(c, "moe.capacity_factor=-1.5", "> 0");
    c = ok;
    c.capacity_factor = NAN;
    expect_bad(c, "moe.capacity_factor=nan", "> 0");
    c = ok;
    c.capacity_factor = 0.0f;
    c.dropless = 1;
    cr_assert_eq(ct_moe_config_check(&c, C), CT_OK, "dropless ignores the factor");
    c = ok;
    c.routing = CT_MOE_PROTOTYPE;
    c.top_k = 4;
    expect_bad(c, "moe.top_k=4 prototypes do not divide moe.n_experts=6", "{1, 2, 3, 6}");
    c = ok;
    c.aux_coef = -0.1f;
    expect_bad(c, "moe.aux_coef=-0.1", ">= 0");
    c = ok;
    c.z_coef = -1e-3f;
    expect_bad(c, "moe.z_coef=-0.001", ">= 0");
    c = ok;
    c.router_noise = -1.0f;
    expect_bad(c, "moe.router_noise=-1", ">= 0");
    c = ok;
    c.routing = CT_MOE_TOP1;
    expect_bad(c, "moe.top_k=2", "moe.routing=top1");
    c = ok;
    c.top_k = 3;
    expect_bad(c, "moe.top_k=3", "moe.routing=top2");
    c = ok;
    c.d_hidden = 0;
    expect_bad(c, "moe.d_hidden=0", ">= 1");
    ct_moe_routing r;
    cr_assert_eq(ct_moe_routing_parse("prototype", &r), CT_OK);
    cr_assert_eq(r, CT_MOE_PROTOTYPE);
    cr_assert_str_eq(ct_moe_routing_name(CT_MOE_TOP2), "top2");
    cr_assert_eq(ct_moe_routing_parse("top5", &r), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "moe.routing=\"top5\"") && strstr(ct_last_error(), "topk"), "%s",
              ct_last_error());
}

Test(moe, capacity_formula) {
    ct_moe_config c = base_cfg(CT_MOE_TOP2, 2, 0);
    c.capacity_factor = 1.25f;
    cr_assert_eq(ct_moe_capacity(&c, 24), 10); /* ceil(1.25 * 24 * 2 / 6) */
    cr_assert_eq(ct_moe_rows_max(&c, 24), 48); /* min(N k, E cap) */
    c.capacity_factor = 0.75f;
    cr_assert_eq(ct_moe_capacity(&c, 10), 3); /* ceil(2.5) */
    cr_assert_eq(ct_moe_rows_max(&c, 10), 18);
    c.capacity_factor = 100.0f;
    cr_assert_eq(ct_moe_capacity(&c, 10), 10); /* never more than N */
    c.routing = CT_MOE_PROTOTYPE;
    c.capacity_factor = 1.0f;                 /* groups of E/k = 3 */
    cr_assert_eq(ct_moe_capacity(&c, 24), 8); /* ceil(24 / 3) */
    c.dropless = 1;
    cr_assert_eq(ct_moe_capacity(&c, 24), 24);
    cr_assert_eq(ct_moe_rows_max(&c, 24), 48);
}

/* ---- finite differences ---------------------------------------------------------------- */

static float x_in[N * C], w_out[N * C], y_out[N * C], dx_out[N * C];

/* L = sum(y * w) + aux_coef * aux + z_coef * z, accumulated in double. */
static double objective(layer *L, const float *x) {
    float loss = ct_moe_forward(&L->cfg, &L->p, &L->a, x, y_out, L->n, L->c, 77, 1, NULL);
    double s = loss;
    for (int i = 0; i < L->n * L->c; i++) s += (double)y_out[i] * w_out[i];
    return s;
}

typedef struct routing_snapshot {
    int32_t expert[N * 3], row[N * 3];
} routing_snapshot;

static void snapshot(const layer *L, routing_snapshot *s) {
    size_t nk = (size_t)L->n * L->cfg.top_k;
    memcpy(s->expert, L->a.expert, sizeof(int32_t) * nk);
    memcpy(s->row, L->a.row, sizeof(int32_t) * nk);
}

static int same_routing(const layer *L, const routing_snapshot *s) {
    size_t nk = (size_t)L->n * L->cfg.top_k;
    return !memcmp(s->expert, L->a.expert, sizeof(int32_t) * nk) &&
           !memcmp(s->row, L->a.row, sizeof(int32_t) * nk);
}

/* Checks sampled entries of v (n floats, gradient grad) by central differences; entries
 * whose perturbation changes the routing are skipped (routing held fixed) and counted. */
static int check_entries(layer *L, const char *name, float *v, const float *grad, size_t n,
                         const routing_snapshot *snap, ct_rng *r, float *x) {
    const float eps = 1e-2f;
    int skipped = 0;
    for (int s = 0; s < 8; s++) {
        size_t i = ct_rng_below(r, n);
        float saved = v[i];
        v[i] = saved + eps;
        double lp = objective(L, x);
        int fixed = same_routing(L, snap);
        v[i] = saved - eps;
        double lm = objective(L, x);
        fixed &= same_routing(L, snap);
        v[i] = saved;
        if (!fixed) {
            skipped++;
            continue;
        }
        double num = (lp - lm) / (2.0 * eps);
        cr_assert(fabs(grad[i] - num) <= 2e-3 + 1e-2 * fabs(num), "%s %s[%zu]: analytic %g numeric %g",
                  ct_moe_routing_name(L->cfg.routing), name, i, (double)grad[i], num);
    }
    return skipped;
}

static void check_fd(ct_moe_routing routing, int k, int dropless) {
    ct_moe_config cfg = base_cfg(routing, k, dropless);
    cfg.aux_coef = 1.0f; /* large enough that a wrong aux or z gradient shows */
    cfg.z_coef = 0.1f;
    cfg.router_noise = 0.3f; /* noise is a constant shift of the logits for fixed seed */
    layer L;
    layer_init(&L, &cfg, N, C, 11 + (uint64_t)k);
    fill(x_in, N * C, 5);
    fill(w_out, N * C, 6);
    ct_moe_stats st;
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 77, 1, &st);
    cr_assert(dropless ? st.dropped == 0.0f : st.dropped > 0.0f, "dropped %g", (double)st.dropped);
    routing_snapshot snap;
    snapshot(&L, &snap);
    ct_moe_backward(&cfg, &L.p, &L.g, &L.a, x_in, w_out, dx_out, &L.s, N, C, 1.0f);
    size_t CF = (size_t)C * F;
    ct_rng r;
    ct_rng_seed(&r, 3);
    int skipped = 0;
    skipped += check_entries(&L, "router_w", L.p.router_w, L.g.router_w, (size_t)C * E, &snap, &r, x_in);
    skipped += check_entries(&L, "fc_w", L.p.fc_w, L.g.fc_w, E * CF, &snap, &r, x_in);
    skipped += check_entries(&L, "fc_b", L.p.fc_b, L.g.fc_b, (size_t)E * F, &snap, &r, x_in);
    skipped += check_entries(&L, "proj_w", L.p.proj_w, L.g.proj_w, E * CF, &snap, &r, x_in);
    skipped += check_entries(&L, "proj_b", L.p.proj_b, L.g.proj_b, (size_t)E * C, &snap, &r, x_in);
    skipped += check_entries(&L, "x", x_in, dx_out, (size_t)N * C, &snap, &r, x_in);
    cr_assert(skipped <= 6, "%d of 48 entries changed the routing", skipped);
    layer_free(&L);
}

Test(moe, fd_top1_capacity) { check_fd(CT_MOE_TOP1, 1, 0); }
Test(moe, fd_top1_dropless) { check_fd(CT_MOE_TOP1, 1, 1); }
Test(moe, fd_top2_capacity) { check_fd(CT_MOE_TOP2, 2, 0); }
Test(moe, fd_top2_dropless) { check_fd(CT_MOE_TOP2, 2, 1); }
Test(moe, fd_top3_capacity) { check_fd(CT_MOE_TOPK, 3, 0); }
Test(moe, fd_top3_dropless) { check_fd(CT_MOE_TOPK, 3, 1); }
Test(moe, fd_prototype2_capacity) { check_fd(CT_MOE_PROTOTYPE, 2, 0); }
Test(moe, fd_prototype2_dropless) { check_fd(CT_MOE_PROTOTYPE, 2, 1); }
Test(moe, fd_prototype3_capacity) { check_fd(CT_MOE_PROTOTYPE, 3, 0); }

/* ---- routing, capacity and priority ---------------------------------------------------- */

/* out[C] = gelu(x fc_w[e] + fc_b[e]) proj_w[e] + proj_b[e], token by token in double. */
static void naive_expert(const layer *L, int e, const float *x, double *out) {
    int c = L->c, f = L->cfg.d_hidden;
    const float *fw = L->p.fc_w + (size_t)e * c * f, *pw = L->p.proj_w + (size_t)e * f * c;
    for (int o = 0; o < c; o++) out[o] = L->p.proj_b[(size_t)e * c + o];
    for (int j = 0; j < f; j++) {
        double h = L->p.fc_b[(size_t)e * f + j];
        for (int i = 0; i < c; i++) h += (double)x[i] * fw[(size_t)i * f + j];
        double gl = 0.5 * h * (1.0 + tanh(0.7978845608028654 * (h + 0.044715 * h * h * h)));
        for (int o = 0; o < c; o++) out[o] += gl * pw[(size_t)j * c + o];
    }
}

/* y of every token against the token-by-token sum of its kept assignments. */
static void check_combine(const layer *L, const float *x, const float *y) {
    int c = L->c, k = L->cfg.top_k;
    for (int n = 0; n < L->n; n++) {
        double acc[16] = {0}, o[16];
        for (int j = 0; j < k; j++) {
            size_t i = (size_t)n * k + j;
            if (L->a.row[i] < 0) continue;
            naive_expert(L, L->a.expert[i], x + (size_t)n * c, o);
            for (int ch = 0; ch < c; ch++) acc[ch] += L->a.gate[i] * o[ch];
        }
        for (int ch = 0; ch < c; ch++)
            cr_assert(fabs(y[(size_t)n * c + ch] - acc[ch]) <= 1e-5 * (1.0 + fabs(acc[ch])),
                      "y[%d,%d] = %g, per-token %g", n, ch, (double)y[(size_t)n * c + ch], acc[ch]);
    }
}

Test(moe, gshard_priority_drops_later_choices_first) {
    enum { NE = 5, NT = 6 };
    ct_moe_config cfg = {.n_experts = NE,
                         .top_k = 2,
                         .d_hidden = 4,
                         .routing = CT_MOE_TOP2,
                         .capacity_factor = 0.5f,
                         .aux_coef = 0.01f,
                         .z_coef = 0.001f};
    layer L;
    layer_init(&L, &cfg, NT, NE, 9);
    for (int i = 0; i < NE * NE; i++) L.p.router_w[i] = i % (NE + 1) == 0 ? 10.0f : 0.0f;
    /* logits = 10 x: first and second choice per token */
    float x[NT * NE] = {0.5f, 1.0f, -1,   -1,   -1,  /* t0: e1, e0 */
                        0.4f, 1.2f, -1,   -1,   -1,  /* t1: e1, e0 */
                        1.0f, -1,   0.5f, -1,   -1,  /* t2: e0, e2 */
                        1.1f, -1,   0.3f, -1,   -1,  /* t3: e0, e2 */
                        -1,   1.0f, 0.5f, -1,   -1,  /* t4: e1, e2 */
                        1.0f, -1,   -1,   0.5f, -1}; /* t5: e0, e3 */
    float y[NT * NE], dy[NT * NE], dx[NT * NE];
    ct_moe_stats st;
    ct_moe_forward(&cfg, &L.p, &L.a, x, y, NT, NE, 0, 0, &st);
    cr_assert_eq(st.capacity, 2); /* ceil(0.5 * 6 * 2 / 5) */
    /* firsts in token order: e1 <- t0, t1 (t4 dropped); e0 <- t2, t3 (t5 dropped). Then
     * seconds: t0, t1 -> e0 full (dropped although t0 precedes t2); e2 <- t2, t3 (t4
     * dropped); e3 <- t5. Expert 4 gets nothing. */
    int32_t want_kept[NT * 2] = {1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1};
    int32_t want_count[NE] = {2, 2, 2, 1, 0}, want_asg[7] = {4, 6, 0, 2, 5, 7, 11};
    for (int i = 0; i < NT * 2; i++) cr_assert_eq(L.a.row[i] >= 0, want_kept[i], "assignment %d", i);
    for (int e = 0; e < NE; e++) cr_assert_eq(st.kept[e], want_count[e], "expert %d", e);
    for (int r = 0; r < 7; r++) cr_assert_eq(L.a.asg[r], want_asg[r], "row %d", r);
    float want_load[NE] = {5 / 12.0f, 3 / 12.0f, 3 / 12.0f, 1 / 12.0f, 0};
    for (int e = 0; e < NE; e++) cr_assert_float_eq(st.load[e], want_load[e], 1e-7);
    cr_assert_float_eq(st.dropped, 5 / 12.0f, 1e-7);
    for (int ch = 0; ch < NE; ch++) cr_assert_eq(y[4 * NE + ch], 0.0f, "t4 is fully dropped");
    check_combine(&L, x, y);
    fill(dy, NT * NE, 4);
    ct_moe_backward(&cfg, &L.p, &L.g, &L.a, x, dy, dx, &L.s, NT, NE, 1.0f);
    size_t CF = (size_t)NE * cfg.d_hidden;
    for (size_t i = 0; i < CF; i++) /* expert 4 had no rows: its gradients stay 0 */
        cr_assert(L.g.fc_w[4 * CF + i] == 0.0f && L.g.proj_w[4 * CF + i] == 0.0f);
    for (int e = 0; e < 4; e++) cr_assert(L.g.proj_b[e * NE] != 0.0f, "expert %d", e);
    layer_free(&L);
}

Test(moe, combine_matches_per_token_and_routing_is_top_k) {
    ct_moe_config cfg = base_cfg(CT_MOE_TOPK, 3, 0);
    layer L;
    layer_init(&L, &cfg, N, C, 21);
    fill(x_in, N * C, 22);
    ct_moe_stats st;
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 0, 0, &st);
    cr_assert(st.dropped > 0.0f);
    check_combine(&L, x_in, y_out);
    for (int n = 0; n < N; n++) { /* the chosen 3 beat every other expert, gates sum to 1 */
        double l[E], gsum = 0.0;
        for (int e = 0; e < E; e++) {
            l[e] = 0.0;
            for (int i = 0; i < C; i++) l[e] += (double)x_in[n * C + i] * L.p.router_w[i * E + e];
        }
        const int32_t *ex = L.a.expert + n * 3;
        for (int e = 0; e < E; e++) {
            if (e == ex[0] || e == ex[1] || e == ex[2]) continue;
            cr_assert(l[ex[2]] > l[e] && l[ex[1]] > l[ex[2]] && l[ex[0]] > l[ex[1]], "token %d", n);
        }
        for (int j = 0; j < 3; j++) gsum += L.a.gate[n * 3 + j];
        cr_assert(fabs(gsum - 1.0) < 1e-6, "token %d gates sum to %g", n, gsum);
    }
    layer_free(&L);
}

Test(moe, dropless_keeps_every_assignment_and_equals_full_capacity) {
    ct_moe_config cfg = base_cfg(CT_MOE_TOP2, 2, 1);
    layer L, M;
    layer_init(&L, &cfg, N, C, 31);
    for (int i = 0; i < C; i++) L.p.router_w[i * E] += 3.0f; /* skew toward expert 0 */
    fill(x_in, N * C, 32);
    for (int n = 0; n < N; n++) x_in[n * C] = 1.0f + 0.1f * (float)n;
    ct_moe_stats st;
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 0, 0, &st);
    cr_assert_eq(st.dropped, 0.0f);
    cr_assert_eq(L.a.rows, N * 2);
    cr_assert(st.kept[0] >
                  ct_moe_capacity(&(ct_moe_config){.n_experts = E, .top_k = 2, .capacity_factor = 1.0f}, N),
              "skew too weak");
    ct_moe_config big = cfg;
    big.dropless = 0;
    big.capacity_factor = (float)E / 2; /* capacity = N: nothing can drop */
    layer_init(&M, &big, N, C, 31);
    memcpy(M.pbuf, L.pbuf, sizeof(float) * ct_moe_params_size(&cfg, C));
    float y2[N * C];
    ct_moe_forward(&big, &M.p, &M.a, x_in, y2, N, C, 0, 0, NULL);
    cr_assert(memcmp(y_out, y2, sizeof y2) == 0);
    layer_free(&L);
    layer_free(&M);
}

Test(moe, prototype_routes_once_per_group) {
    ct_moe_config cfg = base_cfg(CT_MOE_PROTOTYPE, 3, 0);
    layer L;
    layer_init(&L, &cfg, N, C, 41);
    fill(x_in, N * C, 42);
    ct_moe_stats st;
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 0, 0, &st);
    int G = E / 3;
    cr_assert_eq(st.capacity, 9); /* ceil(0.75 * 24 / (E/k = 2)) */
    for (int n = 0; n < N; n++)
        for (int j = 0; j < 3; j++) {
            int e = L.a.expert[n * 3 + j];
            cr_assert_eq(e / G, j, "token %d group %d got expert %d", n, j, e);
            cr_assert(L.a.gate[n * 3 + j] >= 1.0f / G - 1e-6f);
        }
    for (int j = 0; j < 3; j++) cr_assert_float_eq(st.load[j * G] + st.load[j * G + 1], 1.0f / 3, 1e-6);
    check_combine(&L, x_in, y_out);
    layer_free(&L);
}

/* ---- losses, scaling, noise, determinism ----------------------------------------------- */

Test(moe, losses_closed_form_with_a_zero_router) {
    ct_moe_routing modes[2] = {CT_MOE_TOP1, CT_MOE_PROTOTYPE};
    int ks[2] = {1, 2};
    for (int m = 0; m < 2; m++) {
        ct_moe_config cfg = base_cfg(modes[m], ks[m], 0);
        layer L;
        layer_init(&L, &cfg, N, C, 51);
        memset(L.p.router_w, 0, sizeof(float) * C * E);
        fill(x_in, N * C, 52);
        ct_moe_stats st;
        float loss = ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 0, 0, &st);
        /* uniform probabilities: aux = 1 for any f; ties go to the lowest index */
        cr_assert_float_eq(st.aux, 1.0f, 1e-6);
        cr_assert_float_eq(st.z, logf((float)E) * logf((float)E), 1e-5);
        cr_assert_float_eq(loss, 0.3f * st.aux + 0.05f * st.z, 1e-6);
        cr_assert_float_eq(st.load[0], 1.0f / ks[m], 1e-7);
        int cap = ct_moe_capacity(&cfg, N);
        cr_assert_float_eq(st.dropped, (float)(N - cap) / N, 1e-6);
        layer_free(&L);
    }
}

static void grads_of(layer *L, const float *dy, float scale, float *out) {
    size_t np = ct_moe_params_size(&L->cfg, L->c);
    memset(L->gbuf, 0, sizeof(float) * np);
    ct_moe_backward(&L->cfg, &L->p, &L->g, &L->a, x_in, dy, out + np, &L->s, L->n, L->c, scale);
    memcpy(out, L->gbuf, sizeof(float) * np);
}

Test(moe, loss_scale_multiplies_only_the_aux_and_z_gradients) {
    ct_moe_config cfg = base_cfg(CT_MOE_TOP2, 2, 0);
    layer L;
    layer_init(&L, &cfg, N, C, 61);
    fill(x_in, N * C, 62);
    fill(w_out, N * C, 63);
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 0, 0, NULL);
    size_t np = ct_moe_params_size(&cfg, C), tot = np + N * C;
    float *main_only = malloc(sizeof(float) * tot), *aux_only = malloc(sizeof(float) * tot);
    float *both = malloc(sizeof(float) * tot), *zero = calloc(N * C, sizeof(float));
    grads_of(&L, w_out, 0.0f, main_only);
    grads_of(&L, zero, 1.0f, aux_only);
    grads_of(&L, w_out, 0.25f, both);
    for (size_t i = 0; i < tot; i++)
        cr_assert(fabsf(both[i] - (main_only[i] + 0.25f * aux_only[i])) <= 1e-5f * (1 + fabsf(both[i])));
    size_t CE = (size_t)C * E;
    double router = 0.0;
    for (size_t i = 0; i < CE; i++) router += fabs(aux_only[i]);
    cr_assert(router > 1e-3, "aux/z give the router a gradient");
    for (size_t i = CE; i < np; i++) cr_assert_eq(aux_only[i], 0.0f, "experts get none");
    free(main_only);
    free(aux_only);
    free(both);
    free(zero);
    layer_free(&L);
}

Test(moe, router_noise_is_seeded_and_only_in_training) {
    ct_moe_config cfg = base_cfg(CT_MOE_TOP2, 2, 0), quiet;
    cfg.router_noise = 0.5f;
    quiet = cfg;
    quiet.router_noise = 0.0f;
    layer L;
    layer_init(&L, &cfg, N, C, 71);
    fill(x_in, N * C, 72);
    float l1[N * E], y1[N * C];
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y1, N, C, 5, 1, NULL);
    memcpy(l1, L.a.logits, sizeof l1);
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 5, 1, NULL);
    cr_assert(!memcmp(l1, L.a.logits, sizeof l1) && !memcmp(y1, y_out, sizeof y1), "same seed");
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 6, 1, NULL);
    cr_assert(memcmp(l1, L.a.logits, sizeof l1) != 0, "another seed, other noise");
    ct_moe_forward(&quiet, &L.p, &L.a, x_in, y1, N, C, 5, 1, NULL);
    memcpy(l1, L.a.logits, sizeof l1);
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 5, 0, NULL);
    cr_assert(!memcmp(l1, L.a.logits, sizeof l1) && !memcmp(y1, y_out, sizeof y1), "eval: no noise");
    layer_free(&L);
}

Test(moe, deterministic_and_dx_may_alias_dy) {
    ct_moe_config cfg = base_cfg(CT_MOE_PROTOTYPE, 2, 0);
    layer L;
    layer_init(&L, &cfg, N, C, 81);
    fill(x_in, N * C, 82);
    fill(w_out, N * C, 83);
    size_t tot = ct_moe_params_size(&cfg, C) + N * C;
    float *g1 = malloc(sizeof(float) * tot), *g2 = malloc(sizeof(float) * tot), y1[N * C];
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y1, N, C, 0, 1, NULL);
    grads_of(&L, w_out, 1.0f, g1);
    ct_moe_forward(&cfg, &L.p, &L.a, x_in, y_out, N, C, 0, 1, NULL);
    cr_assert(!memcmp(y1, y_out, sizeof y1));
    memset(L.gbuf, 0, sizeof(float) * ct_moe_params_size(&cfg, C));
    memcpy(dx_out, w_out, sizeof dx_out); /* in place: dy and dx are one buffer */
    ct_moe_backward(&cfg, &L.p, &L.g, &L.a, x_in, dx_out, dx_out, &L.s, N, C, 1.0f);
    memcpy(g2, L.gbuf, sizeof(float) * ct_moe_params_size(&cfg, C));
    memcpy(g2 + ct_moe_params_size(&cfg, C), dx_out, sizeof dx_out);
    cr_assert(!memcmp(g1, g2, sizeof(float) * tot), "bit-identical gradients");
    free(g1);
    free(g2);
    layer_free(&L);
}
