/* test_model.c: the whole GPT model: loss at initialisation, every parameter tensor's
 * gradient against central finite differences (sampled entries, objective in double), the
 * prefix-LM mask, gradient accumulation, that AdamW lowers the loss (over owned ranges too),
 * the parameters hook's use order, and bad shapes. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "model/model.h"
#include "train/optim.h"
#include <stdlib.h>
#include <math.h>
#include <string.h>

enum { B = 2, T = 8 };
static const ct_model_config tiny = {.n_layer = 2, .d_model = 16, .n_head = 2, .seq_len = 12, .vocab_size = 23};
static int32_t toks[B * T], tgts[B * T];

static void make_batch(uint64_t seed) {
    ct_rng r;
    ct_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        toks[i] = (int32_t)ct_rng_below(&r, 23);
        tgts[i] = i % 7 == 5 ? -1 : (int32_t)ct_rng_below(&r, 23);
    }
}

static void setup(void) {
    ct_runtime_init(0, 0);
    make_batch(7);
}

Test(model, loss_at_init_is_log_vocab, .init = setup) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, 1), CT_OK);
    float loss;
    cr_assert_eq(ct_model_forward(m, toks, tgts, NULL, B, T, &loss), CT_OK);
    cr_assert(fabsf(loss - logf(23.0f)) < 0.1f, "loss %f vs ln V %f", loss, logf(23.0f));
    cr_assert_eq(ct_model_num_tensors(m), 2 + 12 * 2 + 2);
    const ct_tensor_info *t = ct_model_find_tensor(m, "h.1.attn.c_attn.weight");
    cr_assert_not_null(t);
    cr_assert(t->shape[0] == 16 && t->shape[1] == 48 && t->decay == 1);
    cr_assert_eq(ct_model_find_tensor(m, "h.0.ln_1.bias")->decay, 0);
    ct_model_free(m);
}

static double loss_d(ct_model *m, const int32_t *prefix) {
    float loss;
    cr_assert_eq(ct_model_forward(m, toks, tgts, prefix, B, T, &loss), CT_OK);
    return loss;
}

/* What finite differences compare: the loss the gradients belong to; *moved tells that a
 * perturbation changed something discrete (MoE routing), so the sample is skipped. */
typedef double (*objective_fn)(ct_model *m, const void *ctx, int *moved);

/* Perturbs the weights (larger than at init, so every path carries signal), then checks 6
 * sampled entries of every tensor: central differences, eps 1e-2 in float32. Returns the
 * number of skipped samples in *skipped and of checked ones as the result. */
static int check_tensors_fd(ct_model *m, uint64_t seed, objective_fn f, const void *ctx, int *skipped) {
    float *p = ct_model_params(m);
    ct_rng r;
    ct_rng_seed(&r, seed);
    for (size_t i = 0; i < ct_model_num_params(m); i++) p[i] += 0.2f * ct_rng_normal(&r);
    int moved;
    f(m, ctx, &moved);
    ct_model_zero_grad(m);
    cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
    const float *g = ct_model_grads(m);
    const float eps = 1e-2f;
    int checked = 0;
    *skipped = 0;
    for (size_t k = 0; k < ct_model_num_tensors(m); k++) {
        const ct_tensor_info *t = ct_model_tensor(m, k);
        for (int s = 0; s < 6; s++) {
            size_t i = t->offset + ct_rng_below(&r, t->numel);
            float saved = p[i];
            int moved_p, moved_m;
            p[i] = saved + eps;
            double lp = f(m, ctx, &moved_p);
            p[i] = saved - eps;
            double lm = f(m, ctx, &moved_m);
            p[i] = saved;
            if (moved_p || moved_m) {
                (*skipped)++;
                continue;
            }
            double num = (lp - lm) / (2.0 * eps);
            cr_assert(fabs(g[i] - num) <= 2e-3 + 2e-2 * fabs(num), "%s[%zu]: analytic %g numeric %g", t->name,
                      i - t->offset, (double)g[i], num);
            checked++;
        }
    }
    return checked;
}

static double dense_loss(ct_model *m, const void *prefix, int *moved) {
    *moved = 0;
    return loss_d(m, prefix);
}

static void check_fd(const int32_t *prefix) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, 3), CT_OK);
    int skipped;
    check_tensors_fd(m, 99, dense_loss, prefix, &skipped);
    cr_assert_eq(skipped, 0);
    ct_model_free(m);
}

Test(model, gradients_match_finite_differences, .init = setup) { check_fd(NULL); }

Test(model, shared_weights_gradients_match_finite_differences, .init = setup) {
    ct_model_config c = tiny;
    c.n_layer = 3;
    c.share_layers = CT_SHARE_ALL; /* one set of block weights used three times */
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &c, 3), CT_OK);
    int skipped;
    cr_assert_gt(check_tensors_fd(m, 98, dense_loss, NULL, &skipped), 0);
    cr_assert_eq(skipped, 0);
    ct_model_free(m);
}

/* An image-prefix model: a 4 x 6 image in 2 x 2 patches (6 positions), then 6 text
 * positions; prefix-LM over the image and the first token. */
enum { IMG_T = 12, IMG_NP = 6 };
static const ct_model_config tiny_image = {.n_layer = 2,
                                           .d_model = 16,
                                           .n_head = 2,
                                           .seq_len = 12,
                                           .vocab_size = 23,
                                           .image = {.patch = 2, .height = 4, .width = 6}};
static int32_t img_toks[B * IMG_T], img_tgts[B * IMG_T], img_prefix[B] = {IMG_NP + 1, IMG_NP + 1};
static float img_patches[B * IMG_NP * 4];

static void make_image_batch(void) {
    ct_rng r;
    ct_rng_seed(&r, 21);
    for (int i = 0; i < B * IMG_T; i++) {
        int image_pos = i % IMG_T < IMG_NP;
        img_toks[i] = image_pos ? 0 : (int32_t)ct_rng_below(&r, 23);
        img_tgts[i] = image_pos ? -1 : (int32_t)ct_rng_below(&r, 23);
    }
    for (int i = 0; i < B * IMG_NP * 4; i++) img_patches[i] = 2.0f * (float)ct_rng_uniform(&r) - 1.0f;
}

static double image_loss(ct_model *m, const void *ctx, int *moved) {
    (void)ctx;
    *moved = 0;
    float loss;
    cr_assert_eq(ct_model_set_image(m, img_patches, IMG_NP), CT_OK);
    cr_assert_eq(ct_model_forward(m, img_toks, img_tgts, img_prefix, B, IMG_T, &loss), CT_OK);
    return loss;
}

Test(model, image_prefix_gradients_match_finite_differences, .init = setup) {
    make_image_batch();
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny_image, 3), CT_OK);
    cr_assert_not_null(ct_model_find_tensor(m, "img.patch.weight"));
    cr_assert_eq(ct_model_find_tensor(m, "img.row.weight")->shape[0], 2);
    cr_assert_eq(ct_model_find_tensor(m, "img.col.weight")->shape[0], 3);
    int skipped;
    cr_assert_gt(check_tensors_fd(m, 97, image_loss, NULL, &skipped), 0);
    cr_assert_eq(skipped, 0);
    ct_model_free(m);
}

Test(model, image_prefix_is_seen_whole_and_checked, .init = setup) {
    make_image_batch();
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny_image, 3), CT_OK);
    size_t V = 23;
    float *before = malloc(sizeof(float) * B * IMG_T * V);
    int moved;
    image_loss(m, NULL, &moved);
    memcpy(before, ct_model_logits(m), sizeof(float) * B * IMG_T * V);
    img_patches[(IMG_NP - 1) * 4] += 0.5f; /* the last patch of row 0 */
    image_loss(m, NULL, &moved);
    /* the first patch attends to the last one (bidirectional prefix), so does the text */
    cr_assert_neq(memcmp(before, ct_model_logits(m), sizeof(float) * V), 0);
    cr_assert_neq(memcmp(before + IMG_NP * V, ct_model_logits(m) + IMG_NP * V, sizeof(float) * V), 0);
    /* row 1 is another image: untouched */
    cr_assert_eq(memcmp(before + IMG_T * V, ct_model_logits(m) + IMG_T * V, sizeof(float) * IMG_T * V), 0);
    free(before);
    cr_assert_eq(ct_model_set_image(m, img_patches, 4), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "grid has 6"), "%s", ct_last_error());
    ct_model *text;
    cr_assert_eq(ct_model_create(&text, &tiny, 1), CT_OK);
    cr_assert_eq(ct_model_set_image(text, img_patches, 6), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "text-only"), "%s", ct_last_error());
    ct_model_config bad = tiny_image;
    bad.image.width = 5;
    cr_assert_eq(ct_model_config_check(&bad), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "image.patch = 2"), "%s", ct_last_error());
    ct_model_free(text);
    ct_model_free(m);
}

Test(model, prefix_lm_gradients_match_finite_differences, .init = setup) {
    int32_t prefix[B] = {5, 2};
    check_fd(prefix);
}

Test(model, prefix_lm_sees_the_future_inside_the_prefix, .init = setup) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, 1), CT_OK);
    int32_t prefix[B] = {4, 4};
    size_t V = 23;
    float *l0 = malloc(sizeof(float) * B * T * V);
    for (int mode = 0; mode < 2; mode++) {
        cr_assert_eq(ct_model_forward(m, toks, NULL, mode ? prefix : NULL, B, T, NULL), CT_OK);
        memcpy(l0, ct_model_logits(m), sizeof(float) * B * T * V);
        toks[3] = (toks[3] + 1) % 23; /* change position 3 of row 0 */
        cr_assert_eq(ct_model_forward(m, toks, NULL, mode ? prefix : NULL, B, T, NULL), CT_OK);
        toks[3] = (toks[3] + 22) % 23;
        int pos0_changed = memcmp(l0, ct_model_logits(m), sizeof(float) * V) != 0;
        cr_assert_eq(pos0_changed, mode, "mode %d", mode);
    }
    free(l0);
    ct_model_free(m);
}

Test(model, gradient_accumulation_matches_the_full_batch, .init = setup) {
    for (int i = 0; i < B * T; i++)
        if (tgts[i] < 0) tgts[i] = 1; /* equal counts per half */
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, 5), CT_OK);
    size_t n = ct_model_num_params(m);
    float loss;
    cr_assert_eq(ct_model_forward(m, toks, tgts, NULL, B, T, &loss), CT_OK);
    ct_model_zero_grad(m);
    cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
    float *full = malloc(sizeof(float) * n);
    memcpy(full, ct_model_grads(m), sizeof(float) * n);
    ct_model_zero_grad(m);
    for (int half = 0; half < 2; half++) {
        cr_assert_eq(ct_model_forward(m, toks + half * T, tgts + half * T, NULL, 1, T, &loss), CT_OK);
        cr_assert_eq(ct_model_backward(m, 0.5f), CT_OK);
    }
    const float *acc = ct_model_grads(m);
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(acc[i] - full[i]) <= 1e-6f + 1e-4f * fabsf(full[i]), "grad %zu: %g vs %g", i, acc[i],
                  full[i]);
    free(full);
    ct_model_free(m);
}

Test(model, adamw_overfits_a_batch, .init = setup) {
    ct_model *m;
    ct_adamw *opt;
    cr_assert_eq(ct_model_create(&m, &tiny, 1), CT_OK);
    cr_assert_eq(ct_adamw_create(&opt, ct_model_num_params(m)), CT_OK);
    ct_adamw_config ac = {0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    float first = 0, loss = 0;
    for (int step = 0; step < 60; step++) {
        cr_assert_eq(ct_model_forward(m, toks, tgts, NULL, B, T, &loss), CT_OK);
        if (step == 0) first = loss;
        ct_model_zero_grad(m);
        cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
        ct_adamw_step(opt, m, 1e-2f, &ac);
    }
    cr_assert(loss < 0.3f * first, "loss %f did not fall below 30%% of %f", loss, first);
    ct_adamw_free(opt);
    ct_model_free(m);
}

/* ZeRO 3's optimizer: moments over several owned ranges, a host placement cutting through
 * one of them; the owned elements step exactly as with the whole optimizer, the others stay. */
Test(model, adamw_over_owned_ranges_steps_only_them, .init = setup) {
    ct_model *a, *b;
    ct_adamw *whole, *part;
    cr_assert_eq(ct_model_create(&a, &tiny, 1), CT_OK);
    cr_assert_eq(ct_model_create(&b, &tiny, 1), CT_OK);
    size_t n = ct_model_num_params(a);
    ct_place_range owned[3] = {{10, 100, CT_PLACE_COMPUTE},
                               {500, 777, CT_PLACE_COMPUTE},
                               {n - 50, 50, CT_PLACE_COMPUTE}};
    ct_place_range host = {600, 1000, CT_PLACE_HOST};
    cr_assert_eq(ct_adamw_create(&whole, n), CT_OK);
    cr_assert_eq(ct_adamw_create_owned(&part, owned, 3, &host, 1, NULL), CT_OK);
    cr_assert_eq(ct_adamw_range_lo(part), 10);
    cr_assert_eq(ct_adamw_range_n(part), n - 10);
    cr_assert_eq(ct_adamw_bytes(part, CT_PLACE_HOST), 2 * (1277 - 600) * sizeof(float));
    float *before = malloc(n * sizeof(float));
    memcpy(before, ct_model_params(b), n * sizeof(float));
    ct_adamw_config ac = {0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    for (int step = 0; step < 3; step++) {
        float loss;
        for (int k = 0; k < 2; k++) {
            ct_model *m = k ? b : a;
            cr_assert_eq(ct_model_forward(m, toks, tgts, NULL, B, T, &loss), CT_OK);
            ct_model_zero_grad(m);
            cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
        }
        memcpy(ct_model_grads(b), ct_model_grads(a), n * sizeof(float)); /* the same gradients */
        cr_assert_eq(ct_adamw_update(whole, a, 1e-2f, 1.0f, &ac), CT_OK);
        cr_assert_eq(ct_adamw_update(part, b, 1e-2f, 1.0f, &ac), CT_OK);
        for (size_t i = 0; i < n; i++) { /* b's owned part follows a; the rest keeps its start */
            int mine = 0;
            for (int r = 0; r < 3; r++) mine |= i >= owned[r].lo && i < owned[r].lo + owned[r].n;
            if (mine) cr_assert_eq(ct_model_params(b)[i], ct_model_params(a)[i], "owned %zu", i);
            else
                cr_assert_eq(ct_model_params(b)[i], before[i], "not owned %zu changed", i);
        }
        memcpy(ct_model_params(a), ct_model_params(b), n * sizeof(float)); /* a restarts from b */
        for (size_t i = 0; i < n; i++) before[i] = ct_model_params(b)[i];
    }
    float m_part[777], m_whole[777];
    cr_assert_eq(ct_adamw_read(part, 1, 500, 777, m_part), CT_OK);
    cr_assert_eq(ct_adamw_read(whole, 1, 500, 777, m_whole), CT_OK);
    cr_assert(!memcmp(m_part, m_whole, sizeof m_part), "moments of an owned range differ");
    free(before);
    ct_adamw_free(whole);
    ct_adamw_free(part);
    ct_model_free(a);
    ct_model_free(b);
}

/* The parameters hook sees every use in the order ZeRO 3 gathers by: embeddings, blocks,
 * head in forward; head, blocks from the last in backward; each announcing the next. */
typedef struct use_log {
    int n;
    int ev[32], unit[32], next[32];
} use_log;
static ct_status log_use(void *ctx, ct_use_event ev, int unit, int next) {
    use_log *l = ctx;
    if (l->n < 32) l->ev[l->n] = (int)ev, l->unit[l->n] = unit, l->next[l->n] = next, l->n++;
    return CT_OK;
}

Test(model, params_hook_announces_each_use, .init = setup) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, 1), CT_OK);
    cr_assert_eq(ct_model_num_units(m), 4);
    size_t lo, n, total = 0;
    for (int u = 0; u < 4; u++) {
        ct_model_unit_range(m, u, &lo, &n);
        cr_assert_eq(lo, total, "unit %d starts at %zu", u, lo);
        total += n;
    }
    cr_assert_eq(total, ct_model_num_params(m));
    use_log l = {0};
    ct_model_set_params_hook(m, log_use, &l);
    float loss;
    cr_assert_eq(ct_model_forward(m, toks, tgts, NULL, B, T, &loss), CT_OK);
    cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
    enum { G = CT_USE_GET, F = CT_USE_PUT_FORWARD, K = CT_USE_PUT_BACKWARD };
    int ev[] = {G, F, G, F, G, F, G, F, G, K, G, K, G, K};
    int unit[] = {0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 2, 2, 1, 1};
    int next[] = {1, -1, 2, -1, 3, -1, -1, -1, 2, -1, 1, -1, -1, -1};
    cr_assert_eq(l.n, 14);
    for (int i = 0; i < 14; i++)
        cr_assert(l.ev[i] == ev[i] && l.unit[i] == unit[i] && l.next[i] == next[i], "use %d: %d %d %d", i,
                  l.ev[i], l.unit[i], l.next[i]);
    ct_model_free(m);
}

Test(model, schedule_warms_up_then_decays, .init = setup) {
    ct_lr_schedule s = {.lr_max = 1.0f, .lr_min = 0.1f, .warmup_steps = 10, .total_steps = 110};
    cr_assert_float_eq(ct_lr_at(&s, 0), 0.1f, 1e-6);
    cr_assert_float_eq(ct_lr_at(&s, 9), 1.0f, 1e-6);
    cr_assert_float_eq(ct_lr_at(&s, 60), 0.55f, 1e-6);
    cr_assert_float_eq(ct_lr_at(&s, 110), 0.1f, 1e-6);
    cr_assert(ct_lr_at(&s, 30) > ct_lr_at(&s, 31));
}

Test(model, bad_shapes_are_refused, .init = setup) {
    ct_model *m;
    ct_model_config c = tiny;
    c.n_head = 3;
    cr_assert_eq(ct_model_create(&m, &c, 1), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "model.n_head") != NULL, "%s", ct_last_error());
    cr_assert_eq(ct_model_create(&m, &tiny, 1), CT_OK);
    int32_t big[2 * 13] = {0};
    cr_assert_eq(ct_model_forward(m, big, NULL, NULL, 2, 13, NULL), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "seq_len") != NULL, "%s", ct_last_error());
    big[3] = 23;
    cr_assert_eq(ct_model_forward(m, big, NULL, NULL, 2, 8, NULL), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "vocabulary") != NULL, "%s", ct_last_error());
    ct_model_free(m);
}

/* An MoE model (block 1 MoE, top-2 with dropping, aux and z losses on): every tensor's
 * gradient of (loss + aux losses) against finite differences; samples whose perturbation
 * changes the routing (seen as a change in expert load) are skipped. */
static ct_model_config tiny_moe(void) {
    ct_model_config c = tiny;
    c.moe_every = 2;
    c.moe = (ct_moe_config){.n_experts = 4,
                            .top_k = 2,
                            .d_hidden = 24,
                            .routing = CT_MOE_TOP2,
                            .capacity_factor = 0.75f,
                            .aux_coef = 0.1f,
                            .z_coef = 0.01f};
    return c;
}

/* loss + aux losses; moved when block 1's expert load differs from the reference in ctx */
static double moe_loss(ct_model *m, const void *ctx, int *moved) {
    double l = loss_d(m, NULL) + ct_model_aux_loss(m);
    ct_moe_stats ms;
    cr_assert_eq(ct_model_moe_stats(m, 1, &ms), CT_OK);
    *moved = ctx && memcmp(ms.load, ctx, sizeof(float) * 4) != 0;
    return l;
}

Test(model, moe_gradients_match_finite_differences, .init = setup) {
    ct_model_config c = tiny_moe();
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &c, 3), CT_OK);
    cr_assert_not_null(ct_model_find_tensor(m, "h.1.mlp.experts.c_fc.weight"));
    cr_assert_null(ct_model_find_tensor(m, "h.1.mlp.c_fc.weight"));
    cr_assert_eq(ct_model_find_tensor(m, "h.1.mlp.experts.c_fc.weight")->shape[0], 4);
    /* the reference load: the weights as check_tensors_fd perturbs them (same seed) */
    ct_model *probe;
    cr_assert_eq(ct_model_create(&probe, &c, 3), CT_OK);
    float *p = ct_model_params(probe), load0[4];
    ct_rng r;
    ct_rng_seed(&r, 5);
    for (size_t i = 0; i < ct_model_num_params(probe); i++) p[i] += 0.2f * ct_rng_normal(&r);
    int moved;
    moe_loss(probe, NULL, &moved);
    ct_moe_stats ms;
    ct_model_moe_stats(probe, 1, &ms);
    memcpy(load0, ms.load, sizeof load0);
    cr_assert(ms.dropped > 0.0f, "the test needs a capacity that drops tokens");
    ct_model_free(probe);
    int skipped, checked = check_tensors_fd(m, 5, moe_loss, load0, &skipped);
    cr_assert(checked > 5 * skipped, "too many samples changed the routing: %d of %d", skipped,
              checked + skipped);
    ct_model_free(m);
}

Test(model, moe_router_noise_follows_the_seed, .init = setup) {
    ct_model_config c = tiny_moe();
    c.moe.router_noise = 1.0f;
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &c, 3), CT_OK);
    float a, b, d;
    ct_model_set_training(m, 1, 42);
    ct_model_forward(m, toks, tgts, NULL, B, T, &a);
    ct_model_forward(m, toks, tgts, NULL, B, T, &b);
    ct_model_set_training(m, 1, 43);
    ct_model_forward(m, toks, tgts, NULL, B, T, &d);
    cr_assert_eq(a, b, "same seed, same loss");
    cr_assert_neq(a, d, "another seed routes differently");
    ct_model_free(m);
}

/* One training pass (noise on) of a fresh model with the given recompute mask: loss, aux
 * loss and gradients out, and its activation bytes. */
static size_t pass_with_recompute(const ct_model_config *c, const int *layers, float *loss, float *aux,
                                  float *grads) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, c, 3), CT_OK);
    cr_assert_eq(ct_model_set_recompute(m, layers), CT_OK);
    ct_model_set_training(m, 1, 42);
    cr_assert_eq(ct_model_forward(m, toks, tgts, NULL, B, T, loss), CT_OK);
    *aux = ct_model_aux_loss(m);
    ct_model_zero_grad(m);
    cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
    memcpy(grads, ct_model_grads(m), ct_model_num_params(m) * sizeof(float));
    if (c->moe_every > 0) { /* statistics survive the recomputation */
        ct_moe_stats ms;
        cr_assert_eq(ct_model_moe_stats(m, 1, &ms), CT_OK);
        cr_assert(ms.load[0] + ms.load[1] + ms.load[2] + ms.load[3] > 0.99f);
    }
    size_t bytes = ct_model_acts_bytes(m);
    cr_assert_eq(ct_model_set_recompute(m, layers), CT_EINVAL, "changed after a pass");
    ct_model_free(m);
    return bytes;
}

Test(model, recomputation_is_bit_identical_and_saves_activations, .init = setup) {
    ct_model_config configs[2] = {tiny, tiny_moe()};
    configs[1].moe.router_noise = 1.0f; /* the recomputed routing must draw the same noise */
    for (int k = 0; k < 2; k++) {
        const ct_model_config *c = &configs[k];
        ct_model *probe;
        cr_assert_eq(ct_model_create(&probe, c, 3), CT_OK);
        size_t n = ct_model_num_params(probe);
        ct_model_free(probe);
        float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float)), l0, a0, l1, a1;
        int none[2] = {0, 0}, masks[2][2] = {{1, 1}, {0, 1}};
        size_t full = pass_with_recompute(c, none, &l0, &a0, ref);
        for (int k2 = 0; k2 < 2; k2++) {
            size_t less = pass_with_recompute(c, masks[k2], &l1, &a1, got);
            cr_assert_eq(l0, l1, "loss");
            cr_assert_eq(a0, a1, "aux loss");
            cr_assert(!memcmp(ref, got, n * sizeof(float)), "gradients differ with recomputation");
            if (k2 == 0) cr_assert(less < full, "no activation memory saved: %zu vs %zu", less, full);
            else
                cr_assert_eq(less, full, "one recomputed block still needs its buffer");
        }
        free(ref);
        free(got);
    }
}
