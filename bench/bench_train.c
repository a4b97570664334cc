/* bench_train.c: training-step throughput of a named GPT-2 config: forward + backward +
 * AdamW (with global-norm clipping) on random tokens; a few warmup steps, then N timed
 * steps; prints the median step time, tokens/s and MFU (model FLOPs from
 * ct_model_flops_per_token over the machine's peak), plus the median of each phase.
 * With --profile it also times every kernel of one step, called with the model's shapes
 * (bench-side timers around the src/ops kernels; nothing in the library is instrumented).
 *
 * Usage: bench_train [--config small|gpt2|gpt2_1k|moe] [--steps N] [--warmup N] [--batch B]
 *                    [--seq T] [--threads N] [--peak GFLOPS] [--precision fp32|bf16]
 *                    [--gemm auto|openblas|onednn] [--profile] [--no-pin]
 *   small    6 layers, d 384, 6 heads, T 256, vocab 8192, batch 4
 *   gpt2     GPT-2 124M: 12 layers, d 768, 12 heads, vocab 50257, seq_len 1024; T 256, batch 4
 *   gpt2_1k  GPT-2 124M at T 1024, batch 4
 *   moe      small with blocks 1, 3, 5 Mixture-of-Experts: 8 experts of width 1536, top 2
 *   --precision bf16: the products from bf16 inputs (train.precision); --gemm: runtime.gemm.
 *   --peak defaults to the machine's measured peak in that precision (core/peak.c, `cetus
 *   peak`) for the threads the bench runs.
 * The last line is machine-readable:
 *   RESULT impl=cetus config=NAME precision=P steps=N step_ms=.. tokens_per_s=.. mfu=.. ... */
#include "cetus.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/optim.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "bench_util.h"
#include "core/core.h"

typedef struct bench_config {
    const char *name;
    ct_model_config model;
    int T, B;
} bench_config;

static const bench_config CONFIGS[] = {
    {"small", {.n_layer = 6, .d_model = 384, .n_head = 6, .seq_len = 256, .vocab_size = 8192}, 256, 4},
    {"gpt2", {.n_layer = 12, .d_model = 768, .n_head = 12, .seq_len = 1024, .vocab_size = 50257}, 256, 4},
    {"gpt2_1k", {.n_layer = 12, .d_model = 768, .n_head = 12, .seq_len = 1024, .vocab_size = 50257}, 1024, 4},
    /* small with every second block a Mixture of Experts: 8 experts of width 1536, top 2 */
    {"moe",
     {.n_layer = 6,
      .d_model = 384,
      .n_head = 6,
      .seq_len = 256,
      .vocab_size = 8192,
      .moe_every = 2,
      .moe = {.n_experts = 8,
              .top_k = 2,
              .d_hidden = 1536,
              .routing = CT_MOE_TOPK,
              .capacity_factor = 1.25f,
              .aux_coef = 0.01f}},
     256,
     4},
};

static void check(ct_status s, const char *what) {
    if (s == CT_OK) return;
    fprintf(stderr, "bench_train: %s: %s: %s\n", what, ct_status_name(s), ct_last_error());
    exit(1);
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rand_below(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static float *falloc(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_train: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = 0.01f * (float)((int)(i % 201) - 100);
    return p;
}

/* ---- kernel profile ------------------------------------------------------------------- */

enum {
    K_LIN_FWD,
    K_LIN_BWD,
    K_BIAS,
    K_HEAD,
    K_ATT_FWD,
    K_ATT_BWD,
    K_LN,
    K_GELU,
    K_RESID,
    K_XENT,
    K_EMB,
    K_ZERO,
    K_ADAMW,
    K_COUNT
};
static const char *K_NAMES[K_COUNT] = {"sgemm linear fwd (+bias)",
                                       "sgemm linear bwd",
                                       "bias grad column sums",
                                       "sgemm head (tied wte)",
                                       "attention fwd",
                                       "attention bwd",
                                       "layernorm fwd+bwd",
                                       "gelu fwd+bwd",
                                       "residual adds",
                                       "cross-entropy",
                                       "embedding",
                                       "zero_grad",
                                       "adamw (+clip norm)"};
static double k_time[K_COUNT];

#define TIMED(k, stmt) \
    do { \
        double t0_ = ct_now(); \
        stmt; \
        k_time[k] += ct_now() - t0_; \
    } while (0)

static void residual(float *y, const float *x, const float *d, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] + d[i];
}

/* One training step's kernels, in the model's order, on buffers of the model's shapes (one
 * layer's buffers reused by every layer); AdamW and zero_grad run on the real model. */
static void profile_step(ct_model *m, ct_adamw *opt, const ct_adamw_config *ac, const bench_config *bc,
                         const int32_t *tok, const int32_t *tgt) {
    int L = bc->model.n_layer, C = bc->model.d_model, H = bc->model.n_head, V = bc->model.vocab_size;
    int B = bc->B, T = bc->T, N = B * T;
    size_t NC = (size_t)N * C;
    static float *x, *ln, *mean, *rstd, *qkv, *att_lse, *att, *fc, *ge, *logits, *lse, *dx, *dqkv, *dfc, *datt,
        *w, *dw, *wte, *dwte;
    if (!x) {
        x = falloc(NC);
        ln = falloc(NC);
        mean = falloc(N);
        rstd = falloc(N);
        qkv = falloc(3 * NC);
        att_lse = falloc((size_t)B * H * T);
        att = falloc(NC);
        fc = falloc(4 * NC);
        ge = falloc(4 * NC);
        logits = falloc((size_t)N * V);
        lse = falloc(N);
        dx = falloc(NC);
        dqkv = falloc(3 * NC);
        dfc = falloc(4 * NC);
        datt = falloc(NC);
        w = falloc((size_t)12 * C * C + 13 * (size_t)C);
        dw = falloc((size_t)12 * C * C + 13 * (size_t)C);
        wte = falloc((size_t)V * C);
        dwte = falloc((size_t)V * C);
        for (size_t i = 0; i < (size_t)V * C; i++) wte[i] *= 0.02f;
        for (size_t i = 0; i < (size_t)12 * C * C; i++) w[i] *= 0.02f;
    }
    float *wqkv = w, *wproj = wqkv + 3 * C * C, *wfc = wproj + C * C, *wout = wfc + 4 * C * C;
    float *bias = wout + 4 * C * C, *g = bias + 4 * C, *b = g + C;
    float *dwqkv = dw, *dwproj = dw + 3 * C * C, *dwfc = dwproj + C * C, *dwout = dwfc + 4 * C * C;
    float *dbias = dwout + 4 * C * C, *dg = dbias + 4 * C, *db = dg + C;
    TIMED(K_ZERO, ct_model_zero_grad(m));
    TIMED(K_EMB, ct_embedding_forward(x, tok, wte, wte, B, T, C));
    for (int l = 0; l < L; l++) {
        TIMED(K_LN, ct_layernorm_forward(ln, mean, rstd, x, g, b, N, C));
        TIMED(K_LIN_FWD, ct_matmul_forward(qkv, ln, wqkv, bias, N, C, 3 * C));
        TIMED(K_ATT_FWD, ct_attention_forward(att, att_lse, qkv, NULL, B, T, C, H));
        TIMED(K_LIN_FWD, ct_matmul_forward(dx, att, wproj, bias, N, C, C));
        TIMED(K_RESID, residual(x, x, dx, NC));
        TIMED(K_LN, ct_layernorm_forward(ln, mean, rstd, x, g, b, N, C));
        TIMED(K_LIN_FWD, ct_matmul_forward(fc, ln, wfc, bias, N, C, 4 * C));
        TIMED(K_GELU, ct_gelu_forward(ge, fc, 4 * NC));
        TIMED(K_LIN_FWD, ct_matmul_forward(dx, ge, wout, bias, N, 4 * C, C));
        TIMED(K_RESID, residual(x, x, dx, NC));
    }
    TIMED(K_LN, ct_layernorm_forward(ln, mean, rstd, x, g, b, N, C));
    TIMED(K_HEAD,
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, V, C, 1.0f, ln, C, wte, C, 0.0f, logits, V));
    int counted;
    TIMED(K_XENT, ct_crossentropy_forward(lse, logits, tgt, N, V, &counted));
    TIMED(K_XENT, ct_crossentropy_backward(logits, lse, tgt, N, V, 1.0f / (float)N));
    TIMED(K_HEAD, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, V, 1.0f, logits, V, wte, C, 0.0f,
                              dx, C));
    TIMED(K_HEAD,
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, N, 1.0f, logits, V, ln, C, 1.0f, dwte, C));
    TIMED(K_LN, ct_layernorm_backward(datt, dg, db, dx, x, g, mean, rstd, N, C));
    for (int l = L - 1; l >= 0; l--) {
        /* ct_matmul_backward with its bias column sum timed apart */
        TIMED(K_LIN_BWD, ct_matmul_backward(dfc, dwout, NULL, datt, ge, wout, N, 4 * C, C));
        TIMED(K_BIAS, ct_colsum_accumulate(dbias, datt, N, C));
        TIMED(K_GELU, ct_gelu_backward(dfc, fc, dfc, 4 * NC));
        TIMED(K_LIN_BWD, ct_matmul_backward(dx, dwfc, NULL, dfc, ln, wfc, N, C, 4 * C));
        TIMED(K_BIAS, ct_colsum_accumulate(dbias, dfc, N, 4 * C));
        TIMED(K_LN, ct_layernorm_backward(datt, dg, db, dx, x, g, mean, rstd, N, C));
        TIMED(K_LIN_BWD, ct_matmul_backward(dx, dwproj, NULL, datt, att, wproj, N, C, C));
        TIMED(K_BIAS, ct_colsum_accumulate(dbias, datt, N, C));
        TIMED(K_ATT_BWD, ct_attention_backward(dqkv, dx, qkv, att, att_lse, NULL, B, T, C, H));
        TIMED(K_LIN_BWD, ct_matmul_backward(dx, dwqkv, NULL, dqkv, ln, wqkv, N, C, 3 * C));
        TIMED(K_BIAS, ct_colsum_accumulate(dbias, dqkv, N, 3 * C));
        TIMED(K_LN, ct_layernorm_backward(datt, dg, db, dx, x, g, mean, rstd, N, C));
    }
    TIMED(K_EMB, ct_embedding_backward(dwte, dwte, datt, tok, 0, V, B, T, C));
    TIMED(K_ADAMW, ct_adamw_step(opt, m, 1e-4f, ac));
}

/* Model FLOPs of each profiled category for one step (multiply-add = 2), for GFLOP/s. */
static void category_flops(const bench_config *bc, double *f) {
    double L = bc->model.n_layer, C = bc->model.d_model, V = bc->model.vocab_size;
    double N = (double)bc->B * bc->T, T = bc->T;
    memset(f, 0, sizeof(double) * K_COUNT);
    f[K_LIN_FWD] = 2.0 * N * 12.0 * C * C * L;
    f[K_LIN_BWD] = 2.0 * f[K_LIN_FWD];
    f[K_HEAD] = 6.0 * N * C * V;
    f[K_ATT_FWD] = 4.0 * N * T * C * L; /* the full T x T score and value products */
    f[K_ATT_BWD] = 2.0 * f[K_ATT_FWD];
}

static void run_profile(ct_model *m, ct_adamw *opt, const ct_adamw_config *ac, const bench_config *bc,
                        const int32_t *tok, const int32_t *tgt, int reps, double step_median) {
    double per[K_COUNT][64], flops[K_COUNT];
    if (reps > 64) reps = 64;
    profile_step(m, opt, ac, bc, tok, tgt); /* warm the buffers */
    for (int r = 0; r < reps; r++) {
        memset(k_time, 0, sizeof k_time);
        profile_step(m, opt, ac, bc, tok, tgt);
        for (int k = 0; k < K_COUNT; k++) per[k][r] = k_time[k];
    }
    category_flops(bc, flops);
    double total = 0.0, med[K_COUNT];
    for (int k = 0; k < K_COUNT; k++) {
        med[k] = median(per[k], reps);
        total += med[k];
    }
    printf("kernel profile (median of %d steps, model shapes, bench-side timers):\n", reps);
    printf("  %-28s %9s %6s %9s\n", "kernel", "ms/step", "share", "GFLOP/s");
    for (int k = 0; k < K_COUNT; k++) {
        printf("  %-28s %9.1f %5.1f%%", K_NAMES[k], 1e3 * med[k], 100.0 * med[k] / total);
        if (flops[k] > 0) printf(" %9.1f", flops[k] / med[k] * 1e-9);
        printf("\n");
    }
    printf("  %-28s %9.1f (the timed training step: %.1f ms)\n", "sum", 1e3 * total, 1e3 * step_median);
}

/* The process's peak resident memory, MiB. */
static double peak_rss_mb(void) {
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? (double)u.ru_maxrss / 1024.0 : 0.0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_train [--config small|gpt2|gpt2_1k|moe] [--steps N] [--warmup N] [--batch B]\n"
            "                   [--seq T] [--threads N] [--peak GFLOPS] [--precision fp32|bf16]\n"
            "                   [--gemm auto|openblas|onednn] [--profile] [--no-pin]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *name = "small", *precision = "fp32", *gemm = "auto";
    int steps = 10, warmup = 2, B = 0, T = 0, threads = 0, pin = 1, profile = 0;
    double peak = 0.0; /* GFLOP/s; 0: measured */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile")) {
            profile = 1;
            continue;
        }
        if (!strcmp(a, "--no-pin")) {
            pin = 0;
            continue;
        }
        if (!v) usage();
        if (!strcmp(a, "--config")) name = v;
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atoi(v);
        else if (!strcmp(a, "--batch"))
            B = atoi(v);
        else if (!strcmp(a, "--seq"))
            T = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--peak"))
            peak = atof(v);
        else if (!strcmp(a, "--precision"))
            precision = v;
        else if (!strcmp(a, "--gemm"))
            gemm = v;
        else
            usage();
        i++;
    }
    bench_config bc;
    const bench_config *found = NULL;
    for (size_t i = 0; i < sizeof CONFIGS / sizeof *CONFIGS; i++)
        if (!strcmp(CONFIGS[i].name, name)) found = &CONFIGS[i];
    if (!found) {
        fprintf(stderr, "bench_train: unknown config '%s' (small, gpt2, gpt2_1k, moe)\n", name);
        return 2;
    }
    bc = *found;
    if (B > 0) bc.B = B;
    if (T > 0) bc.T = T;
    if (bc.T > bc.model.seq_len) bc.model.seq_len = bc.T;
    if (steps < 1 || warmup < 0 || peak < 0) usage();

    ct_runtime_init(threads, pin);
    check(ct_gemm_configure(gemm, precision), "the products");
    if (peak == 0) { /* the measured peak of the precision the products run in */
        ct_peak machine;
        ct_peak_get(&machine);
        int used = ct_runtime_threads() < machine.threads ? ct_runtime_threads() : machine.threads;
        peak = (ct_gemm_is_bf16() ? machine.bf16 : machine.fp32) / machine.threads * used / 1e9;
    }
    char products[768];
    ct_gemm_describe(products, sizeof products);
    printf("products: %s\n", products);
    ct_model *m;
    check(ct_model_create(&m, &bc.model, 1337), "ct_model_create");
    ct_adamw *opt;
    check(ct_adamw_create(&opt, ct_model_num_params(m)), "ct_adamw_create");
    ct_adamw_config ac = {0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    const float lr = 3e-4f;
    int N = bc.B * bc.T;
    int32_t *tok = malloc((size_t)(N + 1) * sizeof(int32_t)), *tgt;
    if (!tok) return 1;
    double flops_tok = ct_model_flops_per_token(m, bc.T);
    printf("config %s: %d layers, d %d, %d heads, vocab %d, batch %d x %d; %.2fM parameters; "
           "%d threads%s; %.3f GFLOP/token; peak %.0f GFLOP/s\n",
           bc.name, bc.model.n_layer, bc.model.d_model, bc.model.n_head, bc.model.vocab_size, bc.B, bc.T,
           (double)ct_model_num_params(m) / 1e6, ct_runtime_threads(), pin ? " pinned" : "", flops_tok * 1e-9,
           peak);

    double *t_step = malloc(sizeof(double) * 4 * (size_t)steps);
    if (!t_step) return 1;
    double *t_fwd = t_step + steps, *t_bwd = t_fwd + steps, *t_opt = t_bwd + steps;
    for (int s = 0; s < warmup + steps; s++) {
        for (int i = 0; i <= N; i++) tok[i] = (int32_t)rand_below((uint32_t)bc.model.vocab_size);
        tgt = tok + 1; /* next-token targets of one random stream */
        float loss;
        double t0 = ct_now();
        ct_model_zero_grad(m);
        check(ct_model_forward(m, tok, tgt, NULL, bc.B, bc.T, &loss), "forward");
        double t1 = ct_now();
        check(ct_model_backward(m, 1.0f), "backward");
        double t2 = ct_now();
        float norm = ct_adamw_step(opt, m, lr, &ac);
        double t3 = ct_now();
        printf("%s step %2d: %8.1f ms (forward %.1f, backward %.1f, adamw %.1f)  loss %.4f  norm %.3f\n",
               s < warmup ? "warmup" : "timed ", s < warmup ? s + 1 : s - warmup + 1, 1e3 * (t3 - t0),
               1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2), loss, norm);
        fflush(stdout);
        if (s >= warmup) {
            int k = s - warmup;
            t_step[k] = t3 - t0;
            t_fwd[k] = t1 - t0;
            t_bwd[k] = t2 - t1;
            t_opt[k] = t3 - t2;
        }
    }
    double step = median(t_step, steps), fwd = median(t_fwd, steps), bwd = median(t_bwd, steps),
           optm = median(t_opt, steps);
    double tps = (double)N / step, mfu = flops_tok * tps / (peak * 1e9);
    if (profile) run_profile(m, opt, &ac, &bc, tok, tok + 1, steps, step);
    printf("median of %d steps: %.1f ms/step (forward %.1f, backward %.1f, adamw %.1f), "
           "%.0f tokens/s, %.1f GFLOP/s, MFU %.1f%%\n",
           steps, 1e3 * step, 1e3 * fwd, 1e3 * bwd, 1e3 * optm, tps, flops_tok * tps * 1e-9, 100.0 * mfu);
    printf("RESULT impl=cetus config=%s precision=%s steps=%d step_ms=%.2f tokens_per_s=%.1f mfu=%.4f "
           "fwd_ms=%.2f bwd_ms=%.2f opt_ms=%.2f peak_rss_mb=%.0f\n",
           bc.name, precision, steps, 1e3 * step, tps, mfu, 1e3 * fwd, 1e3 * bwd, 1e3 * optm, peak_rss_mb());
    free(t_step);
    free(tok);
    ct_adamw_free(opt);
    ct_model_free(m);
    return 0;
}
