/* sample.c: temperature / top-k sampling and the generation loop (no KV cache: each new
 * token runs the model over the current context window). */
#include "model/sample.h"
#include <math.h>
#include <string.h>

static int32_t argmax(const float *x, int V) {
    int32_t best = 0;
    for (int v = 1; v < V; v++) if (x[v] > x[best]) best = v;
    return best;
}

/* Smallest logit that is still among the top k (ties may admit a few more). */
static float kth_largest(const float *x, int V, int k) {
    float *copy = malloc(sizeof(float) * (size_t)V);
    CT_ASSERT(copy != NULL);
    memcpy(copy, x, sizeof(float) * (size_t)V);
    int lo = 0, hi = V - 1, target = k - 1; /* quickselect for descending order */
    while (lo < hi) {
        float pivot = copy[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (copy[i] > pivot) i++;
            while (copy[j] < pivot) j--;
            if (i <= j) { float t = copy[i]; copy[i] = copy[j]; copy[j] = t; i++; j--; }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else break;
    }
    float kth = copy[target];
    free(copy);
    return kth;
}

int32_t ct_sample_token(const float *logits, int V, float temperature, int top_k, ct_rng *rng) {
    if (temperature <= 0.0f) return argmax(logits, V);
    float cutoff = top_k > 0 && top_k < V ? kth_largest(logits, V, top_k) : -INFINITY;
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

ct_status ct_generate(ct_model *m, const int32_t *prompt, int n_prompt, int n_new,
                      float temperature, int top_k, ct_rng *rng, ct_token_fn on_token, void *ctx) {
    const ct_model_config *c = ct_model_get_config(m);
    if (n_prompt < 1) return ct_fail(CT_EINVAL, "generate: the prompt needs at least one token");
    int cap = n_prompt + n_new;
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)cap);
    float *last = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (!seq || !last) { free(seq); free(last); return ct_fail(CT_ENOMEM, "generate: out of memory"); }
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)n_prompt);
    ct_status s = CT_OK;
    for (int len = n_prompt; len < cap && s == CT_OK; len++) {
        int T = len < c->seq_len ? len : c->seq_len;
        s = ct_model_forward(m, seq + len - T, NULL, NULL, 1, T, NULL);
        if (s != CT_OK || (s = ct_model_logits_row(m, T - 1, last)) != CT_OK) break;
        seq[len] = ct_sample_token(last, c->vocab_size, temperature, top_k, rng);
        if (on_token) on_token(seq[len], ctx);
    }
    free(seq);
    free(last);
    return s;
}
