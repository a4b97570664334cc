/* attention.c: multi-head scaled dot-product attention with a causal or prefix-LM mask,
 * fused in the flash-attention manner: no T x T matrix exists. Forward runs over blocks of
 * ROW_BLOCK rows and, within one, over tiles of COL_BLOCK columns with the online softmax
 * (a running max and sum per row, the output rescaled as the max grows); it keeps the output
 * and each row's log-sum-exp. Backward recomputes each tile's probabilities from Q, K and
 * that log-sum-exp and accumulates dQ, dK and dV tile by tile. Tiles wholly above the
 * diagonal (right of the prefix) are skipped both ways.
 *
 * One (batch, head) pair per task of an OpenMP loop, on single-threaded tile products (gemm.c:
 * the library chosen for the tile class, fp32 in either precision); a pair's
 * sums all run in one fixed order on one thread, so the bits do not depend on the thread
 * count. A thread's tiles live on its stack (at most 2 x ROW_BLOCK x COL_BLOCK floats, 128
 * KiB): the kernels allocate nothing, so there is no failure to report. */
#include "ops/cpu.h"
#include "ops/gemm.h"
#include "ops/vmath.h"
#include <math.h>
#include <string.h>

/* Tile sizes: 128 x 128 was the fastest of the sizes tried (32 to 256 rows, 64 to 1024
 * columns) for GPT-2 124M's heads (hd 64) at T 1024 on the machine of docs/benchmarks.md. */
#define ROW_BLOCK 128 /* query rows of a block */
#define COL_BLOCK 128 /* key columns of a tile */

/* One (batch, head) pair. Row t of q, k, v (and of dq, dk, dv) at t * ld; of o, dO at t * C. */
typedef struct head {
    const float *q, *k, *v; /* [T, hd] each, row stride ld = 3C */
    int T, hd, ld, C, prefix;
    float scale; /* 1 / sqrt(hd) */
} head;

static head head_of(const float *qkv, int b, int h, int T, int C, int H, const int32_t *prefix_len) {
    int hd = C / H, ld = 3 * C;
    const float *q = qkv + (size_t)b * T * ld + (size_t)h * hd;
    return (head){q, q + C, q + 2 * C, T, hd, ld, C, prefix_len ? prefix_len[b] : 0, 1.0f / sqrtf((float)hd)};
}

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* Row i attends to columns [0, visible(i)). */
static inline int visible(const head *p, int i) {
    int lim = i + 1 > p->prefix ? i + 1 : p->prefix;
    return min_int(lim, p->T);
}

/* Columns of row i inside the tile that starts at c0 and is w wide: [0, result). */
static inline int seen_in_tile(const head *p, int i, int c0, int w) {
    int n = visible(p, i) - c0;
    return n < 0 ? 0 : min_int(n, w);
}

/* ---- the tile products (every matrix product of the kernels) ---------------------------- */

/* S[rows, w] (row stride COL_BLOCK) = scale Q[r0.., :] K[c0.., :]^T */
static void tile_scores(float *S, const head *p, int r0, int rows, int c0, int w) {
    ct_cpu_gemm_tile(0, 1, rows, w, p->hd, p->scale, p->q + (size_t)r0 * p->ld, p->ld,
                     p->k + (size_t)c0 * p->ld, p->ld, 0.0f, S, COL_BLOCK);
}

/* O[r0.., :] = P[rows, w] V[c0.., :] + beta O[r0.., :]   (O row stride C) */
static void tile_times_v(float *o, const float *P, const head *p, int r0, int rows, int c0, int w, float beta) {
    ct_cpu_gemm_tile(0, 0, rows, p->hd, w, 1.0f, P, COL_BLOCK, p->v + (size_t)c0 * p->ld, p->ld, beta,
                     o + (size_t)r0 * p->C, p->C);
}

/* dP[rows, w] (row stride COL_BLOCK) = dO[r0.., :] V[c0.., :]^T */
static void tile_dprobs(float *dP, const float *dO, const head *p, int r0, int rows, int c0, int w) {
    ct_cpu_gemm_tile(0, 1, rows, w, p->hd, 1.0f, dO + (size_t)r0 * p->C, p->C, p->v + (size_t)c0 * p->ld, p->ld,
                     0.0f, dP, COL_BLOCK);
}

/* Y[r0.., :] += alpha X[rows, w] Z[c0.., :]   (Y and Z row stride ld: dQ += scale dS K) */
static void tile_accumulate(float *y, const float *X, const float *z, const head *p, int r0, int rows, int c0,
                            int w, float alpha) {
    ct_cpu_gemm_tile(0, 0, rows, p->hd, w, alpha, X, COL_BLOCK, z + (size_t)c0 * p->ld, p->ld, 1.0f,
                     y + (size_t)r0 * p->ld, p->ld);
}

/* Y[c0.., :] += alpha X[rows, w]^T Z[r0.., :]   (dK += scale dS^T Q, dV += P^T dO) */
static void tile_accumulate_t(float *y, const float *X, const float *z, int ldz, const head *p, int r0,
                              int rows, int c0, int w, float alpha) {
    ct_cpu_gemm_tile(1, 0, w, p->hd, rows, alpha, X, COL_BLOCK, z + (size_t)r0 * ldz, ldz, 1.0f,
                     y + (size_t)c0 * p->ld, p->ld);
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Online softmax over one tile. S[rows, w] holds scores; on return the unnormalised
 * probabilities exp(s - m_new) (0 where masked). m, l: each row's running max and sum, which
 * the tile updates; alpha: the factor exp(m_old - m_new) the row's output must be rescaled
 * by (0 on the first tile, whose output is written, not added to). */
static void online_softmax_tile(float *S, float *m, float *l, float *alpha, const head *p, int r0, int rows,
                                int c0, int w) {
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * COL_BLOCK;
        int n = seen_in_tile(p, r0 + r, c0, w);
        float top = c0 ? m[r] : -INFINITY;
        for (int j = 0; j < n; j++) top = s[j] > top ? s[j] : top;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float e = ct_expf(s[j] - top);
            s[j] = e;
            sum += e;
        }
        for (int j = n; j < w; j++) s[j] = 0.0f;
        if (c0 == 0) {
            alpha[r] = 0.0f, l[r] = sum;
        } else {
            alpha[r] = n ? ct_expf(m[r] - top) : 1.0f;
            l[r] = l[r] * alpha[r] + sum;
        }
        m[r] = top;
    }
}

static void scale_rows(float *o, int ldo, const float *factor, int rows, int hd) {
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < hd; d++) o[(size_t)r * ldo + d] *= factor[r];
}

/* Rows [r0, r0 + rows) of one pair: their output and log-sum-exp. */
static void forward_row_block(float *o, float *lse, const head *p, int r0, int rows) {
    float S[ROW_BLOCK * COL_BLOCK], m[ROW_BLOCK], l[ROW_BLOCK], alpha[ROW_BLOCK];
    int cols = visible(p, r0 + rows - 1); /* the block's last row sees the most */
    for (int c0 = 0; c0 < cols; c0 += COL_BLOCK) {
        int w = min_int(COL_BLOCK, cols - c0);
        tile_scores(S, p, r0, rows, c0, w);
        online_softmax_tile(S, m, l, alpha, p, r0, rows, c0, w);
        if (c0) scale_rows(o + (size_t)r0 * p->C, p->C, alpha, rows, p->hd);
        tile_times_v(o, S, p, r0, rows, c0, w, c0 ? 1.0f : 0.0f);
    }
    for (int r = 0; r < rows; r++) {
        alpha[r] = 1.0f / l[r];
        lse[r0 + r] = m[r] + logf(l[r]);
    }
    scale_rows(o + (size_t)r0 * p->C, p->C, alpha, rows, p->hd);
}

void ct_cpu_attention_forward(float *out, float *lse, const float *qkv, const int32_t *prefix_len, int B, int T,
                              int C, int H) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            head p = head_of(qkv, b, h, T, C, H, prefix_len);
            float *o = out + (size_t)b * T * C + (size_t)h * p.hd, *l = lse + ((size_t)b * H + h) * T;
            for (int r0 = 0; r0 < T; r0 += ROW_BLOCK)
                forward_row_block(o, l, &p, r0, min_int(ROW_BLOCK, T - r0));
        }
}

/* ---- backward --------------------------------------------------------------------------- */

/* Gradients of one pair: rows of dq, dk, dv at ld (packed like qkv); dO, O at C. */
typedef struct head_grad {
    float *dq, *dk, *dv;
    const float *dO, *o, *lse;
} head_grad;

/* D[r] = dO_r . O_r: the rowsum of P * dP, from the output instead of the T columns. */
static void row_dots(float *D, const head_grad *g, const head *p, int r0, int rows) {
    for (int r = 0; r < rows; r++) {
        const float *a = g->dO + (size_t)(r0 + r) * p->C, *b = g->o + (size_t)(r0 + r) * p->C;
        float dot = 0.0f;
        for (int d = 0; d < p->hd; d++) dot += a[d] * b[d];
        D[r] = dot;
    }
}

/* P = exp(S - lse) where seen, 0 where masked (in place); then dS = P * (dP - D) in place
 * of dP. */
static void tile_softmax_grad(float *S, float *dP, const float *lse, const float *D, const head *p, int r0,
                              int rows, int c0, int w) {
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * COL_BLOCK, *d = dP + (size_t)r * COL_BLOCK, shift = lse[r0 + r], Dr = D[r];
        int n = seen_in_tile(p, r0 + r, c0, w);
#pragma omp simd
        for (int j = 0; j < n; j++) {
            s[j] = ct_expf(s[j] - shift);
            d[j] = s[j] * (d[j] - Dr);
        }
        for (int j = n; j < w; j++) s[j] = d[j] = 0.0f;
    }
}

/* Rows [r0, r0 + rows): dQ of those rows, their share of dK and dV of the columns they see. */
static void backward_row_block(const head_grad *g, const head *p, int r0, int rows) {
    float S[ROW_BLOCK * COL_BLOCK], dS[ROW_BLOCK * COL_BLOCK], D[ROW_BLOCK];
    int cols = visible(p, r0 + rows - 1);
    row_dots(D, g, p, r0, rows);
    for (int c0 = 0; c0 < cols; c0 += COL_BLOCK) {
        int w = min_int(COL_BLOCK, cols - c0);
        tile_scores(S, p, r0, rows, c0, w);
        tile_dprobs(dS, g->dO, p, r0, rows, c0, w);
        tile_softmax_grad(S, dS, g->lse, D, p, r0, rows, c0, w);
        tile_accumulate_t(g->dv, S, g->dO, p->C, p, r0, rows, c0, w, 1.0f);      /* dV += P^T dO */
        tile_accumulate(g->dq, dS, p->k, p, r0, rows, c0, w, p->scale);          /* dQ += scale dS K */
        tile_accumulate_t(g->dk, dS, p->q, p->ld, p, r0, rows, c0, w, p->scale); /* dK += scale dS^T Q */
    }
}

static void zero_head_rows(float *x, int T, int ld, int hd) {
    for (int t = 0; t < T; t++) memset(x + (size_t)t * ld, 0, sizeof(float) * (size_t)hd);
}

void ct_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                               const float *lse, const int32_t *prefix_len, int B, int T, int C, int H) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            head p = head_of(qkv, b, h, T, C, H, prefix_len);
            size_t o_at = (size_t)b * T * C + (size_t)h * p.hd;
            float *dq = dqkv + (p.q - qkv);
            head_grad g = {dq, dq + C, dq + 2 * C, dout + o_at, out + o_at, lse + ((size_t)b * H + h) * T};
            zero_head_rows(g.dq, T, p.ld, p.hd);
            zero_head_rows(g.dk, T, p.ld, p.hd);
            zero_head_rows(g.dv, T, p.ld, p.hd);
            for (int r0 = 0; r0 < T; r0 += ROW_BLOCK)
                backward_row_block(&g, &p, r0, min_int(ROW_BLOCK, T - r0));
        }
}
