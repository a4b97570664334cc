/* test_share.c: cross-layer weight sharing and delinking (Pseudo-to-Real): the table holds
 * one set of weights per group and kind, the shared gradient is the sum of every use's, and
 * the delinked real model computes the pseudo model's function exactly, with per-layer
 * gradients that differ; deeper delinking and its refusals. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "model/model.h"
#include <math.h>
#include <string.h>

enum { B = 2, T = 8, V = 29 };
static int32_t toks[B * T], tgts[B * T];

static void setup(void) {
    ct_runtime_init(0, 0);
    ct_rng r;
    ct_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) {
        toks[i] = (int32_t)ct_rng_below(&r, V);
        tgts[i] = (int32_t)ct_rng_below(&r, V);
    }
}

static ct_model_config config(int L, int share, int moe_every) {
    ct_model_config c = {.n_layer = L,
                         .d_model = 16,
                         .n_head = 2,
                         .seq_len = 12,
                         .vocab_size = V,
                         .moe_every = moe_every,
                         .share_layers = share};
    c.moe = (ct_moe_config){.n_experts = 4,
                            .top_k = 2,
                            .d_hidden = 24,
                            .routing = CT_MOE_TOP2,
                            .dropless = 1,
                            .aux_coef = 0.01f,
                            .z_coef = 0.001f};
    return c;
}

/* Weights further from the initialisation, so every path carries signal. */
static void perturb(ct_model *m, uint64_t seed) {
    ct_rng r;
    ct_rng_seed(&r, seed);
    float *p = ct_model_params(m);
    for (size_t i = 0; i < ct_model_num_params(m); i++) p[i] += 0.1f * ct_rng_normal(&r);
}

Test(share, the_table_holds_one_set_per_group_and_kind, .init = setup) {
    struct {
        int L, share, moe_every, unique;
        const char *held, *absent;
    } cases[] = {
        {4, CT_SHARE_ALL, 0, 1, "h.0.mlp.c_fc.weight", "h.1.ln_1.weight"},
        {5, 2, 0, 3, "h.4.attn.c_attn.weight", "h.3.ln_1.weight"},                 /* groups 0-1, 2-3, 4 */
        {4, CT_SHARE_ALL, 2, 2, "h.1.mlp.router.weight", "h.3.mlp.router.weight"}, /* dense h.0, MoE h.1 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ct_model_config c = config(cases[k].L, cases[k].share, cases[k].moe_every), full = c;
        full.share_layers = 0;
        ct_model *m, *f;
        cr_assert_eq(ct_model_create(&m, &c, 1), CT_OK);
        cr_assert_eq(ct_model_create(&f, &full, 1), CT_OK);
        cr_assert_eq(ct_model_unique_blocks(&c), cases[k].unique);
        cr_assert_not_null(ct_model_find_tensor(m, cases[k].held), "case %zu", k);
        cr_assert_null(ct_model_find_tensor(m, cases[k].absent), "case %zu", k);
        /* the parameters shrink by the blocks that share */
        size_t shared_away = 0;
        for (size_t i = 0; i < ct_model_num_tensors(f); i++) {
            const ct_tensor_info *t = ct_model_tensor(f, i);
            int l;
            if (sscanf(t->name, "h.%d.", &l) == 1 && ct_model_share_owner(&c, l) != l) shared_away += t->numel;
        }
        cr_assert_eq(ct_model_num_params(m) + shared_away, ct_model_num_params(f), "case %zu", k);
        ct_model_free(m);
        ct_model_free(f);
    }
}

/* The pseudo model and its delinked real model: same logits bit for bit; the shared
 * gradient is the sum of the real blocks' gradients, which differ between blocks. */
static void check_delink_exact(ct_model_config c) {
    ct_model *p, *r;
    cr_assert_eq(ct_model_create(&p, &c, 5), CT_OK);
    perturb(p, 6);
    cr_assert_eq(ct_model_delink(&r, p, 0), CT_OK);
    cr_assert_eq(ct_model_get_config(r)->share_layers, 0);
    cr_assert_eq(ct_model_get_config(r)->n_layer, c.n_layer);
    float lp, lr;
    ct_model_set_training(p, 1, 77);
    ct_model_set_training(r, 1, 77);
    cr_assert_eq(ct_model_forward(p, toks, tgts, NULL, B, T, &lp), CT_OK);
    cr_assert_eq(ct_model_forward(r, toks, tgts, NULL, B, T, &lr), CT_OK);
    cr_assert_eq(memcmp(ct_model_logits(p), ct_model_logits(r), sizeof(float) * B * T * V), 0, "logits differ");
    cr_assert_eq(lp, lr);
    cr_assert_eq(ct_model_aux_loss(p), ct_model_aux_loss(r));
    ct_model_zero_grad(p);
    ct_model_zero_grad(r);
    cr_assert_eq(ct_model_backward(p, 1.0f), CT_OK);
    cr_assert_eq(ct_model_backward(r, 1.0f), CT_OK);
    const float *gp = ct_model_grads(p), *gr = ct_model_grads(r);
    int differ = 0;
    for (size_t i = 0; i < ct_model_num_tensors(p); i++) {
        const ct_tensor_info *t = ct_model_tensor(p, i);
        int o, at;
        if (sscanf(t->name, "h.%d.%n", &o, &at) != 1) { /* embeddings, ln_f: one use each */
            const ct_tensor_info *u = ct_model_find_tensor(r, t->name);
            for (size_t j = 0; j < t->numel; j++)
                cr_assert(fabsf(gp[t->offset + j] - gr[u->offset + j]) <=
                              1e-5f + 1e-4f * fabsf(gr[u->offset + j]),
                          "%s[%zu]", t->name, j);
            continue;
        }
        const ct_tensor_info *users[16];
        int n = 0;
        for (int l = 0; l < c.n_layer; l++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, t->name + at);
            if (ct_model_share_owner(&c, l) == o) users[n++] = ct_model_find_tensor(r, name);
        }
        cr_assert(n >= 1);
        for (size_t j = 0; j < t->numel; j++) {
            double sum = 0.0, mag = 0.0;
            for (int u = 0; u < n; u++) {
                sum += gr[users[u]->offset + j];
                mag += fabsf(gr[users[u]->offset + j]);
            }
            cr_assert(fabs(gp[t->offset + j] - sum) <= 1e-5 + 1e-4 * mag, "%s[%zu]: shared %g vs summed %g",
                      t->name, j, (double)gp[t->offset + j], sum);
            if (n > 1 && gr[users[0]->offset + j] != gr[users[1]->offset + j]) differ++;
        }
    }
    cr_assert_gt(differ, 0, "the delinked blocks' gradients should differ");
    ct_model_free(p);
    ct_model_free(r);
}

Test(share, delinked_dense_model_is_the_same_function, .init = setup) {
    check_delink_exact(config(3, CT_SHARE_ALL, 0));
}
Test(share, delinked_groups_are_the_same_function, .init = setup) { check_delink_exact(config(5, 2, 0)); }
Test(share, delinked_moe_model_is_the_same_function, .init = setup) {
    ct_model_config c = config(4, CT_SHARE_ALL, 2);
    c.moe.router_noise = 0.5f;
    check_delink_exact(c);
}

Test(share, delinking_deeper_copies_the_group_weights, .init = setup) {
    ct_model_config c = config(4, 2, 0); /* groups: blocks 0-1 (weights h.0), 2-3 (h.2) */
    ct_model *p, *r;
    cr_assert_eq(ct_model_create(&p, &c, 5), CT_OK);
    cr_assert_eq(ct_model_delink(&r, p, 6), CT_OK);
    cr_assert_eq(ct_model_get_config(r)->n_layer, 6);
    int want[6] = {0, 0, 0, 2, 2, 2}; /* group floor(l * 2 / 6) */
    for (int l = 0; l < 6; l++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "h.%d.attn.c_attn.weight", l);
        snprintf(b, sizeof b, "h.%d.attn.c_attn.weight", want[l]);
        const ct_tensor_info *tr = ct_model_find_tensor(r, a), *tp = ct_model_find_tensor(p, b);
        cr_assert_eq(memcmp(ct_model_params(r) + tr->offset, ct_model_params(p) + tp->offset,
                            tp->numel * sizeof(float)),
                     0, "block %d", l);
    }
    float loss;
    cr_assert_eq(ct_model_forward(r, toks, tgts, NULL, B, T, &loss), CT_OK);
    cr_assert(isfinite(loss));
    ct_model_free(p);
    ct_model_free(r);
}

Test(share, delinking_refuses_what_does_not_fit, .init = setup) {
    ct_model_config out, plain = config(3, 0, 0);
    cr_assert_eq(ct_model_delink_config(&plain, 0, &out), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "nothing to delink"), "%s", ct_last_error());
    ct_model_config groups = config(6, 2, 0); /* 3 groups */
    cr_assert_eq(ct_model_delink_config(&groups, 2, &out), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "3 groups"), "%s", ct_last_error());
    cr_assert_eq(ct_model_delink_config(&groups, 3, &out), CT_OK);
    ct_model_config kinds = config(4, 2, 4); /* groups 0-1 dense only, 2-3 dense + MoE */
    cr_assert_eq(ct_model_delink_config(&kinds, 8, &out),
                 CT_EINVAL); /* real block 3 is MoE, group 0 has none */
    cr_assert(strstr(ct_last_error(), "real block 3"), "%s", ct_last_error());
    ct_model_config bad = config(4, 7, 0);
    cr_assert_eq(ct_model_config_check(&bad), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "model.share_layers"), "%s", ct_last_error());
}
