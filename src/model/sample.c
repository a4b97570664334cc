/* sample.c: temperature / top-k sampling, the generation loop and caption generation (no
 * KV cache: each new token runs the model over the current context window). */
#include "model/sample.h"
#include "model/model.h"
#include <math.h>
#include <string.h>

static int32_t argmax(const float *x, int V) {
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* Smallest logit that is still among the top k (ties may admit a few more) into *out. */
static ct_status kth_largest(const float *x, int V, int k, float *out) {
    float *copy = ct_alloc(sizeof(float) * (size_t)V, "top-k sampling");
    if (!copy) return CT_ENOMEM;
    memcpy(copy, x, sizeof(float) * (size_t)V);
    int lo = 0, hi = V - 1, target = k - 1; /* quickselect for descending order */
    while (lo < hi) {
        float pivot = copy[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (copy[i] > pivot) i++;
            while (copy[j] < pivot) j--;
            if (i <= j) {
                float t = copy[i];
                copy[i] = copy[j];
                copy[j] = t;
                i++;
                j--;
            }
        }
        if (target <= j) hi = j;
        else if (target >= i)
            lo = i;
        else
            break;
    }
    *out = copy[target];
    ct_free(copy);
    return CT_OK;
}

static int32_t draw(const float *logits, int V, float temperature, float cutoff, ct_rng *rng) {
    float m = logits[argmax(logits, V)];
    double total = 0.0;
    for (int v = 0; v < V; v++)
        if (logits[v] >= cutoff) total += exp((double)(logits[v] - m) / temperature);
    double r = (double)ct_rng_uniform(rng) * total, acc = 0.0;
    int32_t last = 0;
    for (int v = 0; v < V; v++) {
        if (logits[v] < cutoff) continue;
        acc += exp((double)(logits[v] - m) / temperature);
        last = v;
        if (acc > r) return v;
    }
    return last;
}

ct_status ct_sample_token(const float *logits, int V, float temperature, int top_k, ct_rng *rng, int32_t *out) {
    float cutoff = -INFINITY;
    if (temperature <= 0.0f) {
        *out = argmax(logits, V);
        return CT_OK;
    }
    if (top_k > 0 && top_k < V) CT_TRY(kth_largest(logits, V, top_k, &cutoff));
    *out = draw(logits, V, temperature, cutoff, rng);
    return CT_OK;
}

ct_status ct_generate(ct_model *m, const int32_t *prompt, int n_prompt, int n_new, float temperature, int top_k,
                      uint64_t seed, ct_token_fn on_token, void *ctx) {
    const ct_model_config *c = ct_model_get_config(m);
    ct_rng draws, *rng = &draws;
    ct_rng_seed(rng, seed);
    if (n_prompt < 1) return ct_fail(CT_EINVAL, "generate: the prompt needs at least one token");
    int cap = n_prompt + n_new;
    int32_t *seq = ct_alloc(sizeof(int32_t) * (size_t)cap, "generated tokens");
    float *last = seq ? ct_alloc(sizeof(float) * (size_t)c->vocab_size, "generation logits") : NULL;
    if (!last) {
        ct_free(seq);
        return CT_ENOMEM;
    }
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)n_prompt);
    ct_status s = CT_OK;
    ct_model_set_logits_last(m, 1); /* only the next token's logits are needed */
    for (int len = n_prompt; len < cap && s == CT_OK; len++) {
        int T = len < c->seq_len ? len : c->seq_len;
        s = ct_model_forward(m, seq + len - T, NULL, NULL, 1, T, NULL);
        if (s != CT_OK || (s = ct_model_logits_row(m, T - 1, last)) != CT_OK) break;
        if ((s = ct_sample_token(last, c->vocab_size, temperature, top_k, rng, &seq[len])) != CT_OK) break;
        if (on_token) on_token(seq[len], ctx);
    }
    ct_model_set_logits_last(m, 0);
    ct_free(seq);
    ct_free(last);
    return s;
}

/* One caption run: B rows of image + BOS + caption so far, grown one token a step. */
typedef struct caption_run {
    ct_model *m;
    int B, np, cap, V, L; /* rows, image positions, caption limit, vocabulary, row capacity */
    int32_t eot;
    float temperature;
    int top_k;
    ct_rng *rng;
    int32_t *out; /* caption b at out + b * stride */
    int stride, *n_out;
    int32_t *rows;   /* [B, L]: 0 over the image, bos, the caption, eot after it */
    int32_t *batch;  /* [B, T]: this step's forward input */
    int32_t *prefix; /* [B]: np + 1 */
    int *done;       /* [B] */
    float *logits;   /* [V] */
} caption_run;

static ct_status caption_check(ct_model *m, const float *patches, int B, int32_t bos, int32_t eot,
                               int max_tokens, float temperature, const ct_rng *rng) {
    const ct_model_config *c = ct_model_get_config(m);
    if (c->image.patch <= 0)
        return ct_fail(CT_EINVAL, "caption: the model has no image input (image.patch = 0)");
    if (!patches || B < 1) return ct_fail(CT_EINVAL, "caption: no image given (%d images)", B);
    if (bos < 0 || bos >= c->vocab_size || eot < 0 || eot >= c->vocab_size)
        return ct_fail(CT_EINVAL, "caption: bos %d or eot %d is outside the vocabulary [0, %d)", bos, eot,
                       c->vocab_size);
    if (max_tokens < 0) return ct_fail(CT_EINVAL, "caption: max_tokens = %d (expected >= 0)", max_tokens);
    if (temperature > 0.0f && !rng)
        return ct_fail(CT_EINVAL, "caption: sampling at temperature %g needs an rng", (double)temperature);
    return CT_OK;
}

static ct_status caption_alloc(caption_run *r, int32_t bos) {
    size_t rows = (size_t)r->B * (size_t)r->L;
    if (!(r->rows = ct_alloc(sizeof(int32_t) * (2 * rows + (size_t)r->B), "caption rows")) ||
        !(r->done = ct_calloc((size_t)r->B * sizeof(int), "caption rows")) ||
        !(r->logits = ct_alloc(sizeof(float) * (size_t)r->V, "caption logits")))
        return CT_ENOMEM;
    r->batch = r->rows + rows;
    r->prefix = r->batch + rows;
    for (int b = 0; b < r->B; b++) {
        int32_t *row = r->rows + (size_t)b * r->L;
        for (int t = 0; t < r->L; t++) row[t] = t < r->np ? 0 : t == r->np ? bos : r->eot;
        r->prefix[b] = r->np + 1;
        r->n_out[b] = 0;
    }
    return CT_OK;
}

static void caption_release(caption_run *r) {
    ct_free(r->rows);
    ct_free(r->done);
    ct_free(r->logits);
}

/* Step k: every row holds k caption tokens (finished ones padded with eot); draws token k of
 * the unfinished rows. *active tells whether any row is still unfinished. */
static ct_status caption_step(caption_run *r, int k, int *active) {
    int T = r->np + 1 + k;
    for (int b = 0; b < r->B; b++)
        memcpy(r->batch + (size_t)b * T, r->rows + (size_t)b * r->L, sizeof(int32_t) * (size_t)T);
    CT_TRY(ct_model_forward(r->m, r->batch, NULL, r->prefix, r->B, T, NULL));
    *active = 0;
    for (int b = 0; b < r->B; b++) {
        if (r->done[b]) continue;
        CT_TRY(ct_model_logits_row(r->m, b * T + T - 1, r->logits));
        int32_t id;
        CT_TRY(ct_sample_token(r->logits, r->V, r->temperature, r->top_k, r->rng, &id));
        if (id == r->eot) {
            r->done[b] = 1;
            continue;
        }
        r->rows[(size_t)b * r->L + T] = id;
        r->out[(size_t)b * r->stride + k] = id;
        r->n_out[b] = k + 1;
        *active = 1;
    }
    return CT_OK;
}

static ct_status caption_loop(caption_run *r, const float *patches, int32_t bos) {
    ct_status s = caption_alloc(r, bos);
    if (s == CT_OK && r->cap > 0) s = ct_model_set_image(r->m, patches, r->np);
    int active = 1;
    ct_model_set_logits_last(r->m, 1); /* each step needs only the next token's logits */
    for (int k = 0; k < r->cap && active && s == CT_OK; k++) s = caption_step(r, k, &active);
    ct_model_set_logits_last(r->m, 0);
    ct_model_set_image(r->m, NULL, 0);
    caption_release(r);
    return s;
}

static ct_status caption_run_all(ct_model *m, const float *patches, int B, int32_t bos, int32_t eot,
                                 int max_tokens, float temperature, int top_k, ct_rng *rng, int32_t *out,
                                 int *n_out) {
    ct_status s = caption_check(m, patches, B, bos, eot, max_tokens, temperature, rng);
    if (s != CT_OK) {
        ct_model_set_image(m, NULL, 0);
        return s;
    }
    const ct_model_config *c = ct_model_get_config(m);
    int limit = ct_caption_max_tokens(c);
    caption_run r = {.m = m,
                     .B = B,
                     .np = ct_model_image_patches(c),
                     .V = c->vocab_size,
                     .eot = eot,
                     .cap = max_tokens < limit ? max_tokens : limit,
                     .temperature = temperature,
                     .top_k = top_k,
                     .rng = rng,
                     .out = out,
                     .stride = max_tokens,
                     .n_out = n_out};
    r.L = r.np + 1 + r.cap;
    return caption_loop(&r, patches, bos);
}

ct_status ct_generate_caption(ct_model *m, const float *patches, int32_t bos, int32_t eot, int max_tokens,
                              float temperature, int top_k, ct_rng *rng, int32_t *out, int *n_out) {
    return caption_run_all(m, patches, 1, bos, eot, max_tokens, temperature, top_k, rng, out, n_out);
}

ct_status ct_generate_captions_greedy(ct_model *m, const float *patches, int B, int32_t bos, int32_t eot,
                                      int max_tokens, int32_t *out, int *n_out) {
    return caption_run_all(m, patches, B, bos, eot, max_tokens, 0.0f, 0, NULL, out, n_out);
}
