/* test_caption.c: caption generation with an image-prefix model: the layout is the one
 * training uses (the first token is the argmax at position Np of a plain prefix-LM forward),
 * greedy captions are deterministic, stop at the end-of-text token, respect max_tokens and
 * the context, the batched greedy helper agrees with single captions, and the model's image
 * input is left reset. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "model/model.h"
#include "model/sample.h"
#include <math.h>
#include <string.h>

enum { V = 23, NP = 4, PP = 4, SEQ = 24, CAP = SEQ - NP - 1 };
static const ct_model_config tiny = {.n_layer = 1,
                                     .d_model = 16,
                                     .n_head = 2,
                                     .seq_len = SEQ,
                                     .vocab_size = V,
                                     .image = {.patch = 2, .height = 4, .width = 4}};
static float patches[3][NP * PP];

static void setup(void) {
    ct_runtime_init(0, 0);
    ct_rng r;
    ct_rng_seed(&r, 5);
    for (int i = 0; i < 3; i++) {
        float pixels[16];
        for (int p = 0; p < 16; p++) pixels[p] = ct_rng_uniform(&r);
        ct_image_patches(&tiny, pixels, patches[i]);
    }
}

/* A model with weights scaled up so its outputs depend clearly on the image. */
static ct_model *make_model(uint64_t seed) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, seed), CT_OK);
    float *p = ct_model_params(m);
    for (size_t i = 0; i < ct_model_num_params(m); i++) p[i] *= 20.0f;
    return m;
}

static int argmax(const float *x) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* The greedy next token after image + bos + caption[0..n), by a plain forward. */
static int32_t forward_argmax(ct_model *m, const float *img, int32_t bos, const int32_t *caption, int n) {
    int32_t toks[SEQ] = {0}, prefix = NP + 1;
    toks[NP] = bos;
    if (n) memcpy(toks + NP + 1, caption, sizeof(int32_t) * (size_t)n);
    cr_assert_eq(ct_model_set_image(m, img, NP), CT_OK);
    cr_assert_eq(ct_model_forward(m, toks, NULL, &prefix, 1, NP + 1 + n, NULL), CT_OK);
    float logits[V];
    cr_assert_eq(ct_model_logits_row(m, NP + n, logits), CT_OK);
    cr_assert_eq(ct_model_set_image(m, NULL, 0), CT_OK);
    return argmax(logits);
}

/* True when the model has no image input set: a text-only forward leaves logits that do not
 * depend on any image. Checked by comparing with a fresh model's text-only forward. */
static void assert_image_reset(ct_model *m, uint64_t seed) {
    ct_model *fresh = make_model(seed);
    int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float a[V], b[V];
    cr_assert_eq(ct_model_forward(m, toks, NULL, NULL, 1, 8, NULL), CT_OK);
    cr_assert_eq(ct_model_logits_row(m, 7, a), CT_OK);
    cr_assert_eq(ct_model_forward(fresh, toks, NULL, NULL, 1, 8, NULL), CT_OK);
    cr_assert_eq(ct_model_logits_row(fresh, 7, b), CT_OK);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "the image input was left set");
    ct_model_free(fresh);
}

Test(caption, eot_follows_the_vocabulary) {
    cr_assert_eq(ct_caption_eot(&tiny), V - 1);
    ct_model_config big = tiny;
    big.vocab_size = 50304;
    cr_assert_eq(ct_caption_eot(&big), 50256);
    cr_assert_eq(ct_caption_max_tokens(&tiny), CAP);
    ct_model_config text = tiny;
    text.image.patch = 0;
    cr_assert_eq(ct_caption_max_tokens(&text), 0);
}

Test(caption, greedy_follows_the_training_layout, .init = setup) {
    ct_model *m = make_model(3);
    int32_t out[CAP], bos = V - 1;
    int n = -1;
    cr_assert_eq(ct_generate_caption(m, patches[0], bos, bos, CAP, 0.0f, 0, NULL, out, &n), CT_OK);
    cr_assert(n >= 1 && n <= CAP, "%d tokens", n);
    for (int j = 0; j < n; j++) {
        cr_assert_neq(out[j], bos, "the end-of-text token is never part of the caption");
        cr_assert_eq(out[j], forward_argmax(m, patches[0], bos, out, j), "token %d is not the greedy one", j);
    }
    if (n < CAP) cr_assert_eq(forward_argmax(m, patches[0], bos, out, n), bos, "stopped before end-of-text");
    assert_image_reset(m, 3);
    ct_model_free(m);
}

Test(caption, greedy_is_deterministic_and_starts_at_position_np, .init = setup) {
    ct_model *m = make_model(4);
    int32_t a[CAP], b[CAP], c[1];
    int na, nb, nc, eot = V - 1;
    cr_assert_eq(ct_generate_caption(m, patches[1], 0, eot, CAP, 0.0f, 0, NULL, a, &na), CT_OK);
    cr_assert_eq(ct_generate_caption(m, patches[1], 0, eot, CAP, 0.0f, 5, NULL, b, &nb), CT_OK);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, sizeof(int32_t) * (size_t)na), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ct_generate_caption(m, patches[i], 0, eot, 1, 0.0f, 0, NULL, c, &nc), CT_OK);
        cr_assert_eq(nc ? c[0] : eot, forward_argmax(m, patches[i], 0, NULL, 0), "image %d", i);
    }
    ct_model_free(m);
}

/* A greedy caption of image 0 that runs at least two tokens (its end-of-text id is one greedy
 * decoding does not draw first); stopping at its second token's id must cut it there. */
Test(caption, stops_at_the_end_of_text_token, .init = setup) {
    ct_model *m = make_model(6);
    int32_t full[CAP], out[CAP];
    int n_full = 0, n;
    for (int32_t e = 0; e < V && n_full < 2; e++)
        cr_assert_eq(ct_generate_caption(m, patches[0], 1, e, CAP, 0.0f, 0, NULL, full, &n_full), CT_OK);
    cr_assert_geq(n_full, 2, "no end-of-text id lets the caption run two tokens");
    int32_t eot = full[1];
    int first = 0;
    while (full[first] != eot) first++;
    cr_assert_eq(ct_generate_caption(m, patches[0], 1, eot, CAP, 0.0f, 0, NULL, out, &n), CT_OK);
    cr_assert_eq(n, first, "stopped after %d tokens, expected %d", n, first);
    cr_assert_eq(memcmp(out, full, sizeof(int32_t) * (size_t)n), 0);
    ct_model_free(m);
}

/* With an end-of-text id greedy decoding never draws, the caption runs until the context is
 * full (Np + 1 + n = seq_len) or max_tokens is reached, and never writes past either. */
Test(caption, respects_max_tokens_and_the_context, .init = setup) {
    ct_model *m = make_model(7);
    int32_t out[64];
    int n = 0;
    int32_t eot = 0;
    for (; eot < V && n < CAP; eot++)
        cr_assert_eq(ct_generate_caption(m, patches[2], 0, eot, 64, 0.0f, 0, NULL, out, &n), CT_OK);
    cr_assert_eq(n, CAP, "no end-of-text id lets the caption fill the context");
    eot--;
    for (int i = 0; i < 64; i++) out[i] = -7;
    cr_assert_eq(ct_generate_caption(m, patches[2], 0, eot, 64, 0.0f, 0, NULL, out, &n), CT_OK);
    cr_assert_eq(n, CAP, "caption of %d tokens, the context (%d with %d patches) holds %d", n, SEQ, NP, CAP);
    for (int i = CAP; i < 64; i++) cr_assert_eq(out[i], -7, "wrote past the context at %d", i);
    for (int i = 0; i < 64; i++) out[i] = -7;
    cr_assert_eq(ct_generate_caption(m, patches[2], 0, eot, 3, 0.0f, 0, NULL, out, &n), CT_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[3], -7, "wrote past max_tokens");
    cr_assert_eq(ct_generate_caption(m, patches[2], 0, eot, 0, 0.0f, 0, NULL, out, &n), CT_OK);
    cr_assert_eq(n, 0);
    assert_image_reset(m, 7);
    ct_model_free(m);
}

Test(caption, sampling_is_seeded, .init = setup) {
    ct_model *m = make_model(8);
    int32_t a[CAP], b[CAP];
    int na, nb;
    ct_rng r1, r2;
    ct_rng_seed(&r1, 42);
    ct_rng_seed(&r2, 42);
    cr_assert_eq(ct_generate_caption(m, patches[0], 0, V - 1, CAP, 1.0f, 5, &r1, a, &na), CT_OK);
    cr_assert_eq(ct_generate_caption(m, patches[0], 0, V - 1, CAP, 1.0f, 5, &r2, b, &nb), CT_OK);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, sizeof(int32_t) * (size_t)na), 0);
    ct_model_free(m);
}

Test(caption, batched_greedy_matches_single_captions, .init = setup) {
    ct_model *m = make_model(9);
    int32_t batch[3 * CAP], one[CAP];
    int nb[3], n;
    for (int32_t eot = 0; eot < V; eot += 5) {
        cr_assert_eq(ct_generate_captions_greedy(m, &patches[0][0], 3, 0, eot, CAP, batch, nb), CT_OK);
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(ct_generate_caption(m, patches[i], 0, eot, CAP, 0.0f, 0, NULL, one, &n), CT_OK);
            cr_assert_eq(nb[i], n, "image %d, eot %d: %d vs %d tokens", i, eot, nb[i], n);
            for (int j = 0; j < n; j++) cr_assert_eq(batch[i * CAP + j], one[j], "image %d token %d", i, j);
        }
    }
    assert_image_reset(m, 9);
    ct_model_free(m);
}

Test(caption, bad_requests_are_refused, .init = setup) {
    ct_model *m = make_model(10);
    int32_t out[4];
    int n;
    cr_assert_eq(ct_generate_caption(m, patches[0], 0, V, 4, 0.0f, 0, NULL, out, &n), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "outside the vocabulary"), "%s", ct_last_error());
    cr_assert_eq(ct_generate_caption(m, NULL, 0, 1, 4, 0.0f, 0, NULL, out, &n), CT_EINVAL);
    cr_assert_eq(ct_generate_caption(m, patches[0], 0, 1, 4, 0.7f, 0, NULL, out, &n), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "needs an rng"), "%s", ct_last_error());
    ct_model_free(m);
    ct_model_config text = tiny;
    text.image.patch = 0;
    cr_assert_eq(ct_model_create(&m, &text, 1), CT_OK);
    cr_assert_eq(ct_generate_caption(m, patches[0], 0, 1, 4, 0.0f, 0, NULL, out, &n), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "no image input"), "%s", ct_last_error());
    ct_model_free(m);
}
