/* test_ops.c: every op's backward against central finite differences. Each op is wrapped as
 * f(inputs) -> outputs; the objective L = sum(out * w) (w fixed random) is accumulated in
 * double, so the difference quotient is taken in double precision over the float op.
 * Each case is its own test (OP_TEST below), with its tolerance:
 * |analytic - numeric| <= atol + rtol * |numeric|. The ops without a gradient (the AdamW
 * kernel, copy) against their definitions. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "ops/ops.h"
#include "ops/vmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 7, C = 8, H = 2, V = 11, N = B * T };

typedef struct op_case {
    const char *name;
    size_t n_in;  /* floats of the differentiated input */
    size_t n_out; /* floats of the output */
    float eps, atol, rtol;
    void (*fwd)(const float *in, float *out);
    void (*bwd)(const float *in, const float *dout, float *din); /* din overwritten */
} op_case;

static ct_rng rng;
static float fixed_a[4 * N * C], fixed_b[4 * N * C]; /* second operands held constant */
static int32_t toks[N], tgts[N], prefix[B] = {3, 0};

static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * ct_rng_normal(&rng);
}

/* ---- op wrappers ----------------------------------------------------------------------- */
static void mm_x_fwd(const float *x, float *y) { ct_matmul_forward(y, x, fixed_a, fixed_b, N, C, 3 * C); }
static void mm_x_bwd(const float *x, const float *dy, float *dx) {
    float dw[C * 3 * C], db[3 * C];
    ct_matmul_backward(dx, dw, db, dy, x, fixed_a, N, C, 3 * C);
}
static void mm_w_fwd(const float *w, float *y) { ct_matmul_forward(y, fixed_a, w, fixed_b, N, C, 3 * C); }
static void mm_w_bwd(const float *w, const float *dy, float *dw) {
    memset(dw, 0, sizeof(float) * C * 3 * C);
    ct_matmul_backward(NULL, dw, NULL, dy, fixed_a, w, N, C, 3 * C);
}
static void mm_b_fwd(const float *b, float *y) { ct_matmul_forward(y, fixed_a, fixed_b, b, N, C, 3 * C); }
static void mm_b_bwd(const float *b, const float *dy, float *db) {
    float dw[C * 3 * C];
    (void)b;
    memset(db, 0, sizeof(float) * 3 * C);
    ct_matmul_backward(NULL, dw, db, dy, fixed_a, fixed_b, N, C, 3 * C);
}

static void ln_x_fwd(const float *x, float *y) {
    float mean[N], rstd[N];
    ct_layernorm_forward(y, mean, rstd, x, fixed_a, fixed_b, N, C);
}
static void ln_x_bwd(const float *x, const float *dy, float *dx) {
    float mean[N], rstd[N], y[N * C], dg[C] = {0}, db[C] = {0};
    ct_layernorm_forward(y, mean, rstd, x, fixed_a, fixed_b, N, C);
    memset(dx, 0, sizeof(float) * N * C);
    ct_layernorm_backward(dx, dg, db, dy, x, fixed_a, mean, rstd, N, C);
}
/* gain and bias packed as one input [2C] */
static void ln_gb_fwd(const float *gb, float *y) {
    float mean[N], rstd[N];
    ct_layernorm_forward(y, mean, rstd, fixed_a, gb, gb + C, N, C);
}
static void ln_gb_bwd(const float *gb, const float *dy, float *dgb) {
    float mean[N], rstd[N], y[N * C], dx[N * C];
    ct_layernorm_forward(y, mean, rstd, fixed_a, gb, gb + C, N, C);
    memset(dgb, 0, sizeof(float) * 2 * C);
    ct_layernorm_backward(dx, dgb, dgb + C, dy, fixed_a, gb, mean, rstd, N, C);
}

static void gelu_fwd(const float *x, float *y) { ct_gelu_forward(y, x, N * C); }
static void gelu_bwd(const float *x, const float *dy, float *dx) { ct_gelu_backward(dx, x, dy, N * C); }

static float att_lse[B * H * T];
static void attn_fwd_mask(const float *qkv, float *y, const int32_t *pl) {
    ct_attention_forward(y, att_lse, qkv, pl, B, T, C, H);
}
static void attn_bwd_mask(const float *qkv, const float *dy, float *dqkv, const int32_t *pl) {
    float y[N * C];
    ct_attention_forward(y, att_lse, qkv, pl, B, T, C, H);
    ct_attention_backward(dqkv, dy, qkv, y, att_lse, pl, B, T, C, H);
}
static void attn_fwd(const float *q, float *y) { attn_fwd_mask(q, y, NULL); }
static void attn_bwd(const float *q, const float *dy, float *dq) { attn_bwd_mask(q, dy, dq, NULL); }
static void attnp_fwd(const float *q, float *y) { attn_fwd_mask(q, y, prefix); }
static void attnp_bwd(const float *q, const float *dy, float *dq) { attn_bwd_mask(q, dy, dq, prefix); }

/* token and position tables packed [V*C + T*C] */
static void emb_fwd(const float *w, float *y) { ct_embedding_forward(y, toks, w, w + V * C, B, T, C); }
static void emb_bwd(const float *w, const float *dy, float *dw) {
    (void)w;
    memset(dw, 0, sizeof(float) * (V + T) * C);
    ct_embedding_backward(dw, dw + V * C, dy, toks, 0, V, B, T, C);
}

/* cross-entropy: output is the scalar loss (n_out = 1) */
static void ce_fwd(const float *logits, float *y) {
    float lse[N];
    y[0] = ct_crossentropy_forward(lse, logits, tgts, N, V, NULL);
}
static void ce_bwd(const float *logits, const float *dy, float *dl) {
    float lse[N];
    int counted;
    ct_crossentropy_forward(lse, logits, tgts, N, V, &counted);
    memcpy(dl, logits, sizeof(float) * N * V);
    ct_crossentropy_backward(dl, lse, tgts, N, V, dy[0] / (float)counted);
}

static double objective(const op_case *oc, const float *in, const float *w, float *out) {
    oc->fwd(in, out);
    double s = 0.0;
    for (size_t i = 0; i < oc->n_out; i++) s += (double)out[i] * (double)w[i];
    return s;
}

static void check_case(const op_case *oc) {
    float *in = calloc(oc->n_in, sizeof(float)), *w = calloc(oc->n_out, sizeof(float));
    float *out = calloc(oc->n_out, sizeof(float)), *din = calloc(oc->n_in, sizeof(float));
    fill(in, oc->n_in, 1.0f);
    fill(w, oc->n_out, 1.0f);
    oc->bwd(in, w, din);
    double worst = 0.0;
    for (size_t i = 0; i < oc->n_in; i++) {
        float saved = in[i];
        in[i] = saved + oc->eps;
        double lp = objective(oc, in, w, out);
        in[i] = saved - oc->eps;
        double lm = objective(oc, in, w, out);
        in[i] = saved;
        double numeric = (lp - lm) / (2.0 * (double)oc->eps), err = fabs(din[i] - numeric);
        double allowed = oc->atol + oc->rtol * fabs(numeric);
        if (err / allowed > worst) worst = err / allowed;
        cr_assert(err <= allowed, "%s: d/din[%zu] analytic %.7g numeric %.7g", oc->name, i, (double)din[i],
                  numeric);
    }
    cr_log_info("%s: worst error %.2f of tolerance over %zu inputs", oc->name, worst, oc->n_in);
    free(in);
    free(w);
    free(out);
    free(din);
}

static void setup(void) {
    ct_runtime_init(0, 0);
    ct_rng_seed(&rng, 1234);
    fill(fixed_a, sizeof fixed_a / sizeof(float), 1.0f);
    fill(fixed_b, sizeof fixed_b / sizeof(float), 1.0f);
    for (int i = 0; i < N; i++) {
        toks[i] = (int32_t)ct_rng_below(&rng, V);
        tgts[i] = i % 5 == 3 ? -1 : (int32_t)ct_rng_below(&rng, V); /* some ignored targets */
    }
}

/* One test per op case, so a failure in one does not hide the others. */
#define OP_TEST(test, label, n_in, n_out, eps, atol, rtol, fwd, bwd) \
    Test(ops, test, .init = setup) { \
        check_case(&(const op_case){label, n_in, n_out, eps, atol, rtol, fwd, bwd}); \
    }

OP_TEST(matmul_input, "matmul.input", N *C, N * 3 * C, 1e-2f, 1e-4f, 1e-3f, mm_x_fwd, mm_x_bwd)
OP_TEST(matmul_weight, "matmul.weight", C * 3 * C, N * 3 * C, 1e-2f, 1e-4f, 1e-3f, mm_w_fwd, mm_w_bwd)
OP_TEST(matmul_bias, "matmul.bias", 3 * C, N * 3 * C, 1e-2f, 1e-4f, 1e-3f, mm_b_fwd, mm_b_bwd)
OP_TEST(layernorm_input, "layernorm.input", N *C, N *C, 1e-2f, 1e-3f, 5e-3f, ln_x_fwd, ln_x_bwd)
OP_TEST(layernorm_gain_bias, "layernorm.gain_bias", 2 * C, N *C, 1e-2f, 1e-3f, 5e-3f, ln_gb_fwd, ln_gb_bwd)
OP_TEST(gelu, "gelu", N *C, N *C, 1e-2f, 1e-3f, 5e-3f, gelu_fwd, gelu_bwd)
OP_TEST(attention_causal, "attention.causal", N * 3 * C, N *C, 1e-2f, 1e-3f, 5e-3f, attn_fwd, attn_bwd)
OP_TEST(attention_prefix_lm, "attention.prefix_lm", N * 3 * C, N *C, 1e-2f, 1e-3f, 5e-3f, attnp_fwd, attnp_bwd)
OP_TEST(embedding, "embedding", (V + T) * C, N *C, 1e-2f, 1e-4f, 1e-3f, emb_fwd, emb_bwd)
OP_TEST(crossentropy, "crossentropy", N *V, 1, 1e-2f, 1e-4f, 5e-3f, ce_fwd, ce_bwd)

Test(ops, attention_mask_blocks_future, .init = setup) {
    /* changing a future position must not change earlier outputs (causal) but must change
     * outputs inside the prefix (prefix-LM) */
    float qkv[N * 3 * C], y0[N * C], y1[N * C];
    fill(qkv, N * 3 * C, 1.0f);
    for (int mode = 0; mode < 2; mode++) {
        const int32_t *pl = mode ? prefix : NULL;
        attn_fwd_mask(qkv, y0, pl);
        float saved = qkv[2 * 3 * C + 2 * C]; /* v of row 0, position 2 */
        qkv[2 * 3 * C + 2 * C] += 1.0f;
        attn_fwd_mask(qkv, y1, pl);
        qkv[2 * 3 * C + 2 * C] = saved;
        int changed_pos0 = memcmp(y0, y1, sizeof(float) * C) != 0;
        cr_assert_eq(changed_pos0, mode, "mode %d: position 0 %s", mode,
                     changed_pos0 ? "saw position 2" : "did not see position 2");
    }
}

/* Attention against its definitions in double, over shapes that cross the kernel's 128-row
 * blocks and 128-column tiles: T not a multiple of them, T = 1, prefixes ending inside a
 * tile, on a tile's edge, covering the whole row, and the causal mask. Rows of one batch
 * element, packed like the kernels' qkv [T, 3C]; out [T, C], lse [H, T], dqkv [T, 3C]. */
typedef struct attention_want {
    double *out, *lse, *dqkv;
} attention_want;

/* Row i's scaled scores over the columns it sees into P (exp'd and normalised on return);
 * returns lim and the log-sum-exp in *lse. */
static int reference_probs(const float *q, const float *k, int C3, int hd, int T_, int prefix_, int i,
                           double *P, double *lse) {
    int lim = i + 1 > prefix_ ? i + 1 : prefix_;
    lim = lim < T_ ? lim : T_;
    double scale = 1.0 / sqrt((double)hd), m = -INFINITY, sum = 0.0;
    for (int j = 0; j < lim; j++) {
        double sc = 0.0;
        for (int d = 0; d < hd; d++) sc += (double)q[i * C3 + d] * k[j * C3 + d];
        P[j] = sc * scale;
        m = P[j] > m ? P[j] : m;
    }
    for (int j = 0; j < lim; j++) sum += P[j] = exp(P[j] - m);
    for (int j = 0; j < T_; j++) P[j] = j < lim ? P[j] / sum : 0.0;
    *lse = m + log(sum);
    return lim;
}

static void attention_reference(const float *qkv, const float *dout, int T_, int C_, int H_, int prefix_,
                                attention_want *w) {
    int hd = C_ / H_, C3 = 3 * C_;
    double scale = 1.0 / sqrt((double)hd), *P = calloc((size_t)T_ * T_, sizeof *P),
           *dS = calloc((size_t)T_ * T_, sizeof *dS);
    cr_assert(P && dS);
    memset(w->out, 0, sizeof(double) * (size_t)T_ * C_);
    memset(w->dqkv, 0, sizeof(double) * (size_t)T_ * C3);
    for (int h = 0; h < H_; h++) {
        const float *q = qkv + h * hd, *k = q + C_, *v = q + 2 * C_;
        for (int i = 0; i < T_; i++) {
            double *p = P + (size_t)i * T_, dot = 0.0;
            int lim = reference_probs(q, k, C3, hd, T_, prefix_, i, p, &w->lse[h * T_ + i]);
            for (int j = 0; j < lim; j++) { /* dP = dO V^T, then the softmax's backward */
                double dp = 0.0;
                for (int d = 0; d < hd; d++) dp += (double)dout[i * C_ + h * hd + d] * v[j * C3 + d];
                dS[i * T_ + j] = dp;
                dot += p[j] * dp;
            }
            for (int j = 0; j < T_; j++) dS[i * T_ + j] = j < lim ? p[j] * (dS[i * T_ + j] - dot) : 0.0;
        }
        for (int i = 0; i < T_; i++)
            for (int j = 0; j < T_; j++)
                for (int d = 0; d < hd; d++) {
                    w->out[i * C_ + h * hd + d] += P[i * T_ + j] * v[j * C3 + d];
                    w->dqkv[i * C3 + h * hd + d] += scale * dS[i * T_ + j] * k[j * C3 + d];
                    w->dqkv[j * C3 + C_ + h * hd + d] += scale * dS[i * T_ + j] * q[i * C3 + d];
                    w->dqkv[j * C3 + 2 * C_ + h * hd + d] += P[i * T_ + j] * dout[i * C_ + h * hd + d];
                }
    }
    free(P);
    free(dS);
}

static void expect_close(const char *what, const float *got, const double *want, size_t n, double tol, int T_,
                         int prefix_) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol + tol * fabs(want[i]),
                  "T %d prefix %d: %s[%zu] = %.7g, want %.7g", T_, prefix_, what, i, (double)got[i], want[i]);
}

/* One batch element of T_ rows, 2 heads of 8 channels, prefix_ 0: causal. */
static void check_attention_shape(int T_, int prefix_) {
    enum { AC = 16, AH = 2 };
    size_t n = (size_t)T_ * AC;
    float *qkv = malloc(sizeof(float) * 3 * n), *dout = malloc(sizeof(float) * n),
          *y = malloc(sizeof(float) * n);
    float *lse = malloc(sizeof(float) * AH * T_), *dqkv = malloc(sizeof(float) * 3 * n);
    attention_want w = {malloc(sizeof(double) * n), malloc(sizeof(double) * AH * T_),
                        malloc(sizeof(double) * 3 * n)};
    cr_assert(qkv && dout && y && lse && dqkv && w.out && w.lse && w.dqkv);
    fill(qkv, 3 * n, 1.0f);
    fill(dout, n, 1.0f);
    int32_t pl[1] = {prefix_};
    ct_attention_forward(y, lse, qkv, prefix_ ? pl : NULL, 1, T_, AC, AH);
    ct_attention_backward(dqkv, dout, qkv, y, lse, prefix_ ? pl : NULL, 1, T_, AC, AH);
    attention_reference(qkv, dout, T_, AC, AH, prefix_, &w);
    expect_close("out", y, w.out, n, 1e-5, T_, prefix_);
    expect_close("lse", lse, w.lse, (size_t)AH * T_, 1e-5, T_, prefix_);
    expect_close("dqkv", dqkv, w.dqkv, 3 * n, 1e-4, T_, prefix_);
    free(qkv), free(dout), free(y), free(lse), free(dqkv), free(w.out), free(w.lse), free(w.dqkv);
}

/* Several row blocks and column tiles, causal and with a prefix that ends inside a tile (it
 * fails when the prefix's rows skip the tiles past their diagonal). */
Test(ops, attention_over_blocks_matches_the_definition, .init = setup) {
    check_attention_shape(150, 0);
    check_attention_shape(150, 70);
    check_attention_shape(300, 200);
}

/* The last row block and column tile cut short: T one past a block, one short of two. */
Test(ops, attention_t_not_a_multiple_of_the_block, .init = setup) {
    check_attention_shape(129, 0);
    check_attention_shape(255, 0);
    check_attention_shape(255, 130);
    check_attention_shape(256, 0);
}

Test(ops, attention_of_one_position, .init = setup) {
    check_attention_shape(1, 0);
    check_attention_shape(1, 1);
}

/* A prefix on a tile's edge, one past it, and covering every row (prefix_len T or more:
 * full bidirectional attention, every tile seen). */
Test(ops, attention_prefix_edges, .init = setup) {
    check_attention_shape(300, 128);
    check_attention_shape(300, 129);
    check_attention_shape(300, 300);
    check_attention_shape(200, 1000);
}

/* lse is the log-sum-exp of the scaled scores, and backward's probabilities come from it: a
 * forward that saved the sum without the max, or unscaled scores, fails here before the
 * gradients do; a backward that ignored the lse it is given fails on the shifted one. */
Test(ops, attention_backward_uses_the_saved_lse, .init = setup) {
    enum { AT = 140, AC = 16, AH = 2 };
    static float qkv[AT * 3 * AC], dout[AT * AC], y[AT * AC], lse[AH * AT], dq0[AT * 3 * AC], dq1[AT * 3 * AC];
    fill(qkv, AT * 3 * AC, 3.0f); /* large scores: a lse without its max overflows */
    fill(dout, AT * AC, 1.0f);
    ct_attention_forward(y, lse, qkv, NULL, 1, AT, AC, AH);
    for (int h = 0; h < AH; h++)
        for (int i = 0; i < AT; i++) {
            double P[AT], want;
            reference_probs(qkv + h * (AC / AH), qkv + AC + h * (AC / AH), 3 * AC, AC / AH, AT, 0, i, P, &want);
            cr_assert(fabs(lse[h * AT + i] - want) <= 1e-5 * (1.0 + fabs(want)),
                      "lse[%d][%d] = %.7g, want %.7g", h, i, (double)lse[h * AT + i], want);
        }
    ct_attention_backward(dq0, dout, qkv, y, lse, NULL, 1, AT, AC, AH);
    for (int i = 0; i < AH * AT; i++) lse[i] += 0.5f;
    ct_attention_backward(dq1, dout, qkv, y, lse, NULL, 1, AT, AC, AH);
    cr_assert(memcmp(dq0, dq1, sizeof dq0) != 0, "backward ignored the lse it was given");
}

/* Same bits for 1, 2 and 3 threads: each (batch, head) pair's sums run in one fixed order. */
Test(ops, attention_bits_do_not_depend_on_the_thread_count, .init = setup) {
    enum { AB = 3, AT = 300, AC = 16, AH = 2, AN = AB * AT };
    static float qkv[AN * 3 * AC], dout[AN * AC], y[3][AN * AC], lse[3][AB * AH * AT], dqkv[3][AN * 3 * AC];
    int32_t pl[AB] = {0, 200, 17};
    fill(qkv, AN * 3 * AC, 1.0f);
    fill(dout, AN * AC, 1.0f);
    for (int t = 0; t < 3; t++) {
        ct_runtime_init(t + 1, 0);
        ct_attention_forward(y[t], lse[t], qkv, pl, AB, AT, AC, AH);
        ct_attention_backward(dqkv[t], dout, qkv, y[t], lse[t], pl, AB, AT, AC, AH);
    }
    ct_runtime_init(0, 0);
    for (int t = 1; t < 3; t++) {
        cr_assert(memcmp(y[0], y[t], sizeof y[0]) == 0, "out differs at %d threads", t + 1);
        cr_assert(memcmp(lse[0], lse[t], sizeof lse[0]) == 0, "lse differs at %d threads", t + 1);
        cr_assert(memcmp(dqkv[0], dqkv[t], sizeof dqkv[0]) == 0, "dqkv differs at %d threads", t + 1);
    }
}

Test(ops, expf_accuracy) {
    double worst = 0;
    for (float x = -80.0f; x < 80.0f; x += 0.0137f) {
        double rel = fabs((double)ct_expf(x) - exp((double)x)) / exp((double)x);
        if (rel > worst) worst = rel;
    }
    cr_assert_lt(worst, 5e-7, "ct_expf worst relative error %g", worst);
    cr_assert_lt(fabs(ct_tanhf(0.5f) - tanh(0.5)), 1e-6);
    cr_assert_eq(ct_tanhf(30.0f), 1.0f);
    cr_assert_eq(ct_tanhf(-30.0f), -1.0f);
}

Test(ops, adamw_kernel_is_the_per_element_formula, .init = setup) {
    enum { M = 1000 };
    static float p[M], g[M], m[M], v[M], p0[M], m0[M], v0[M];
    fill(p, M, 1.0f);
    fill(g, M, 3.0f);
    fill(m, M, 0.1f);
    for (int i = 0; i < M; i++) v[i] = 0.01f * (float)(i % 13);
    memcpy(p0, p, sizeof p), memcpy(m0, m, sizeof m), memcpy(v0, v, sizeof v);
    const ct_adamw_hparams h = {.lr = 1e-2f,
                                .weight_decay = 0.1f,
                                .clip_scale = 0.5f,
                                .beta1 = 0.9f,
                                .beta2 = 0.95f,
                                .eps = 1e-8f,
                                .bc1 = 0.19f,
                                .bc2 = 0.0975f};
    ct_adamw_kernel(p, g, m, v, M, &h);
    for (int i = 0; i < M; i++) { /* the same float arithmetic, one element at a time */
        float grad = g[i] * h.clip_scale;
        float mi = h.beta1 * m0[i] + (1.0f - h.beta1) * grad,
              vi = h.beta2 * v0[i] + (1.0f - h.beta2) * grad * grad;
        float want = p0[i] - h.lr * ((mi / h.bc1) / (sqrtf(vi / h.bc2) + h.eps) + h.weight_decay * p0[i]);
        cr_assert(m[i] == mi && v[i] == vi && p[i] == want, "element %d: p %.9g want %.9g", i, (double)p[i],
                  (double)want);
    }
}

Test(ops, copy_moves_bytes) {
    char src[100], dst[100] = {0};
    for (int i = 0; i < 100; i++) src[i] = (char)(i * 3);
    ct_copy(dst + 1, src + 2, 97);
    cr_assert_eq(memcmp(dst + 1, src + 2, 97), 0);
    cr_assert_eq(dst[0], 0);
    cr_assert_eq(dst[98], 0);
}

Test(ops, residual_add_sums_in_place_too) {
    float x[37], d[37], y[37];
    for (int i = 0; i < 37; i++) x[i] = 0.5f * (float)i, d[i] = 1.0f - (float)i;
    ct_residual_add(y, x, d, 37);
    for (int i = 0; i < 37; i++) cr_assert_eq(y[i], x[i] + d[i]);
    ct_residual_add(d, x, d, 37); /* y aliasing delta, as the block's second residual does */
    cr_assert_eq(memcmp(d, y, sizeof y), 0);
}

/* The column sums (bias gradients, layernorm gain and bias gradients) cut the channels into
 * blocks and the rows into chunks: a shape with several of each, against a double-precision
 * sum, with the gradients accumulated onto what was there. */
Test(ops, column_sums_span_channel_blocks_and_row_chunks, .init = setup) {
    enum { ROWS = 700, COLS = 150 };
    float *x = malloc(sizeof(float) * ROWS * COLS), *dy = malloc(sizeof(float) * ROWS * COLS);
    float *dx = calloc(ROWS * COLS, sizeof(float)), mean[ROWS], rstd[ROWS], g[COLS];
    float sums[COLS], dg[COLS], db[COLS];
    cr_assert(x && dy && dx);
    fill(x, ROWS * COLS, 1.0f);
    fill(dy, ROWS * COLS, 1.0f);
    fill(g, COLS, 1.0f);
    for (int c = 0; c < COLS; c++) sums[c] = dg[c] = db[c] = 1.0f;
    float *y = malloc(sizeof(float) * ROWS * COLS);
    ct_layernorm_forward(y, mean, rstd, x, g, g, ROWS, COLS);
    ct_colsum_accumulate(sums, dy, ROWS, COLS);
    ct_layernorm_backward(dx, dg, db, dy, x, g, mean, rstd, ROWS, COLS);
    for (int c = 0; c < COLS; c++) {
        double s = 1.0, sg = 1.0;
        for (int n = 0; n < ROWS; n++) {
            s += dy[n * COLS + c];
            sg += (double)dy[n * COLS + c] * ((double)x[n * COLS + c] - mean[n]) * rstd[n];
        }
        cr_assert_float_eq(sums[c], s, 1e-4 * (1 + fabs(s)), "colsum[%d] %g, reference %g", c, sums[c], s);
        cr_assert_float_eq(db[c], s, 1e-4 * (1 + fabs(s)), "layernorm bias gradient[%d] %g, reference %g", c,
                           db[c], s);
        cr_assert_float_eq(dg[c], sg, 1e-4 * (1 + fabs(sg)), "layernorm gain gradient[%d] %g, reference %g", c,
                           dg[c], sg);
    }
    free(x);
    free(dy);
    free(dx);
    free(y);
}
